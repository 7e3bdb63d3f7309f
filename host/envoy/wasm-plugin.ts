// The Istio side: one extensions.istio.io/v1alpha1 WasmPlugin per filter type. Istio's
// agent fetches `url`, checks `sha256` and pushes the module to the selected sidecars;
// pluginConfig reaches the module as its JSON plugin configuration.
import type { FilterType } from "./envoy-fragment.js";
import type { PluginConfiguration } from "./plugin-config.js";

export interface WasmPluginOptions {
  readonly types: readonly FilterType[];
  readonly name: string;
  readonly namespace?: string;
  /** Pod labels the plugin applies to; empty: every workload in the namespace. */
  readonly selector: Readonly<Record<string, string>>;
  /** oci://, https://, http:// or file:// */
  readonly url: string;
  readonly sha256: string;
  readonly pluginName: string;
  readonly configuration: PluginConfiguration;
}

export function wasmPlugins(o: WasmPluginOptions): Array<Record<string, unknown>> {
  return o.types.map((type) => {
    const metadata: Record<string, unknown> = { name: `${o.name}-${type}` };
    if (o.namespace !== undefined) metadata["namespace"] = o.namespace;
    const spec: Record<string, unknown> = {};
    if (Object.keys(o.selector).length > 0) spec["selector"] = { matchLabels: { ...o.selector } };
    Object.assign(spec, {
      url: o.url,
      sha256: o.sha256,
      imagePullPolicy: "IfNotPresent",
      pluginName: o.pluginName,
      phase: "AUTHZ",
      failStrategy: "FAIL_CLOSE",
      type: type === "http" ? "HTTP" : "NETWORK",
      pluginConfig: { ...o.configuration },
    });
    return { apiVersion: "extensions.istio.io/v1alpha1", kind: "WasmPlugin", metadata, spec };
  });
}
