// `zt netpol <paths…>`: policy files -> NetworkPolicy YAML on stdout (or -o FILE), warnings
// on stderr. Exit 0 ok (warnings included), 1 policy or I/O errors, 2 usage.
import { writeFile } from "node:fs/promises";
import { isIP } from "node:net";
import { parseArgs } from "node:util";
import { formatDiagnostic, loadPolicyFiles } from "../load.js";
import type { PolicySet } from "../model.js";
import { generateNetworkPolicies } from "./generate.js";
import { isDnsLabel } from "./project.js";
import { gatewayOutput, meshDocuments, meshRemoteCidrs } from "./gateway.js";
import { DEFAULT_NAMESPACE_LABEL, DEFAULT_POD_LABEL, formatNetpolWarning, netpolOptions } from "./types.js";

export interface CommandIO {
  readonly stdout: { write(s: string): unknown };
  readonly stderr: { write(s: string): unknown };
}

export const NETPOL_USAGE = `usage: zt netpol <policy files or directories…> [options]

Emits Kubernetes networking.k8s.io/v1 NetworkPolicy objects mirroring the ServiceAccessPolicy rules
(docs/netpol.md). YAML goes to stdout, warnings to stderr.

options:
  --cluster NAME            cluster whose objects to emit (default: the only cluster the policy names)
  --trust-domain TD         trust domain of that cluster (default: the only one the policy names)
  --label KEY               pod label holding the service account (default: ${DEFAULT_POD_LABEL})
  --namespace-label KEY     namespace label holding its name (default: ${DEFAULT_NAMESPACE_LABEL})
  --remote-cidr CLUSTER=CIDR  pod CIDR of another cluster, routed by the WireGuard gateway (repeatable;
                            default: that cluster's allowedIPs in a WireGuardMesh document among the inputs,
                            which also adds this cluster's gateway objects)
  --system-namespace NS     a namespace never isolated, besides kube-system (repeatable): no object
                            goes there; rules naming it are mirrored on the other end only
  --no-infra-egress         omit the zt-infra-egress objects (DNS and the ZT engine)
  -o, --output FILE         write the YAML to FILE instead of stdout
  -h, --help                this text
exit status: 0 ok (warnings included), 1 policy or I/O errors (file:line:col), 2 usage, 4 internal error
`;

class UsageError extends Error {}

// A label key: optional DNS-subdomain prefix and "/", then a name of at most 63 characters.
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

function checkLabelKey(flag: string, key: string): string {
  const slash = key.lastIndexOf("/");
  const prefix = slash >= 0 ? key.slice(0, slash) : null;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  const ok = name.length <= 63 && LABEL_NAME.test(name) && (prefix === null || (prefix.length <= 253 && DNS_SUBDOMAIN.test(prefix)));
  if (!ok) throw new UsageError(`${flag}: "${key}" is not a valid Kubernetes label key`);
  return key;
}

function checkCidr(text: string): string {
  const [addr, bits, extra] = text.split("/");
  const family = isIP(addr ?? "");
  const max = family === 4 ? 32 : 128;
  const n = Number(bits);
  if (family === 0 || extra !== undefined || bits === undefined || !/^\d+$/.test(bits) || n > max) {
    throw new UsageError(`--remote-cidr: "${text}" is not a CIDR (e.g. 10.244.0.0/16)`);
  }
  return text;
}

/** The single value the policy's service rules name at one spot, or a usage error. */
function only(set: PolicySet, what: string, flag: string, pick: (p: { trustDomain: string; segments: readonly { kind: string; value?: string }[] }) => string | null): string {
  const seen = new Set<string>();
  for (const p of set.policies) {
    if (p.kind !== "ServiceAccessPolicy") continue;
    for (const r of p.rules) {
      for (const pat of [r.from, ...r.to.map((t) => t.spiffe)]) {
        const v = pick(pat);
        if (v !== null) seen.add(v);
      }
    }
  }
  if (seen.size === 1) return [...seen][0]!;
  if (seen.size === 0) throw new UsageError(`the policy names no ${what}: give ${flag}`);
  throw new UsageError(`the policy names several ${what}s (${[...seen].sort().join(", ")}): choose one with ${flag}`);
}

export async function netpolCommand(argv: string[], io: CommandIO = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  let values: Record<string, string | boolean | string[] | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        cluster: { type: "string" },
        "trust-domain": { type: "string" },
        label: { type: "string" },
        "namespace-label": { type: "string" },
        "remote-cidr": { type: "string", multiple: true },
        "no-infra-egress": { type: "boolean" },
        "system-namespace": { type: "string", multiple: true },
        output: { type: "string", short: "o" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (e) {
    io.stderr.write(`zt netpol: ${(e as Error).message}\n\n${NETPOL_USAGE}`);
    return 2;
  }
  if (values.help) {
    io.stdout.write(NETPOL_USAGE);
    return 0;
  }
  if (positionals.length === 0) {
    io.stderr.write(`zt netpol: no policy files given\n\n${NETPOL_USAGE}`);
    return 2;
  }

  let remoteCidrs: Record<string, string[]>;
  let systemNamespaces: string[];
  let podLabel: string;
  let namespaceLabel: string;
  try {
    remoteCidrs = {};
    for (const spec of (values["remote-cidr"] as string[] | undefined) ?? []) {
      const eq = spec.indexOf("=");
      if (eq <= 0) throw new UsageError(`--remote-cidr: expected CLUSTER=CIDR, got "${spec}"`);
      (remoteCidrs[spec.slice(0, eq)] ??= []).push(checkCidr(spec.slice(eq + 1)));
    }
    systemNamespaces = ((values["system-namespace"] as string[] | undefined) ?? []).map((ns) => {
      if (!isDnsLabel(ns)) throw new UsageError(`--system-namespace: "${ns}" is not a Kubernetes namespace name`);
      return ns;
    });
    podLabel = checkLabelKey("--label", (values.label as string | undefined) ?? DEFAULT_POD_LABEL);
    namespaceLabel = checkLabelKey("--namespace-label", (values["namespace-label"] as string | undefined) ?? DEFAULT_NAMESPACE_LABEL);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.stderr.write(`zt netpol: ${e.message}\n`);
    return 2;
  }

  const loaded = await loadPolicyFiles(positionals);
  if (!loaded.ok) {
    for (const d of loaded.errors) io.stderr.write(formatDiagnostic(d) + "\n");
    return 1;
  }
  // A WireGuardMesh among the inputs adds its gateway's objects (gateway.ts, docs/mesh.md).
  const mesh = meshDocuments(loaded.companions);
  if (mesh.errors.length > 0) {
    for (const d of mesh.errors) io.stderr.write(formatDiagnostic(d) + "\n");
    return 1;
  }

  let cluster: string;
  let trustDomain: string;
  try {
    cluster =
      (values.cluster as string | undefined) ??
      only(loaded.set, "cluster", "--cluster", (p) => {
        const s = p.segments[0];
        return p.segments.length >= 3 && s?.kind === "literal" ? s.value! : null;
      });
    trustDomain = (values["trust-domain"] as string | undefined) ?? only(loaded.set, "trust domain", "--trust-domain", (p) => p.trustDomain);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.stderr.write(`zt netpol: ${e.message}\n`);
    return 2;
  }

  const options = netpolOptions({ cluster, trustDomain, podLabel, namespaceLabel, systemNamespaces, remoteCidrs: meshRemoteCidrs(mesh.meshes, cluster, remoteCidrs), ...(values["no-infra-egress"] ? { infraEgress: [] } : {}) });
  const pods = generateNetworkPolicies(loaded.set, options);
  const gateway = gatewayOutput(mesh.meshes, loaded.set, options);
  const result = { objects: [...pods.objects, ...gateway.objects], warnings: [...pods.warnings, ...gateway.warnings], yaml: pods.yaml + gateway.yaml, namespaces: pods.namespaces };
  for (const w of result.warnings) io.stderr.write(formatNetpolWarning(w) + "\n");
  const out = values.output as string | undefined;
  if (out === undefined) {
    io.stdout.write(result.yaml);
  } else {
    try {
      await writeFile(out, result.yaml);
    } catch (e) {
      io.stderr.write(`zt netpol: cannot write ${out}: ${(e as NodeJS.ErrnoException).code ?? String(e)}\n`);
      return 1;
    }
  }
  io.stderr.write(`zt netpol: ${result.objects.length} NetworkPolicy object(s) for cluster ${cluster} in ${result.namespaces.length} namespace(s), ${result.warnings.length} warning(s)\n`);
  return 0;
}
