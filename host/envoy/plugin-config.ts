// The filter's plugin configuration (the JSON the module parses in proxy_on_configure,
// assembly/proxy/config.ts). One builder for the Envoy fragment and the Istio WasmPlugin,
// so both deliver the same keys.

export type FilterMode = "enforce" | "observe";

export interface PluginConfigOptions {
  readonly mode: FilterMode;
  /** Our own SPIFFE ID; omitted: the filter reads it from the local certificate. */
  readonly identity?: string;
  /** Envoy cluster that reaches the engine; omitted: decisions are not shipped. */
  readonly ingestCluster?: string;
  readonly ingestAuthority?: string;
  readonly ingestPath?: string;
  readonly ingestToken?: string;
  readonly ingestTimeoutMs?: number;
  readonly flushIntervalMs?: number;
  readonly maxBufferRecords?: number;
  /**
   * `sha256:<hex>` of a module with a policy image: stamped on records until the first sync.
   * Omitted for the bare filter module (it has no policy until it syncs).
   */
  readonly policyVersion?: string;
  /** Envoy cluster reaching the engine for policy sync (GET /v1/policy-image); omitted: no sync. */
  readonly syncCluster?: string;
  readonly syncAuthority?: string;
  /** Only when it differs from the ingest token (the filter uses that one by default). */
  readonly syncToken?: string;
  readonly syncWaitMs?: number;
  /** Who the records come from (AuditRecord.origin). */
  readonly origin?: string;
}

/** Keys exactly as the module reads them (docs/envoy.md "Plugin configuration"). */
export interface PluginConfiguration {
  mode: FilterMode;
  policy_version?: string;
  identity?: string;
  ingest_cluster?: string;
  ingest_authority?: string;
  ingest_path?: string;
  ingest_token?: string;
  ingest_timeout_ms?: number;
  flush_interval_ms?: number;
  max_buffer_records?: number;
  origin?: string;
  sync_cluster?: string;
  sync_authority?: string;
  sync_token?: string;
  sync_wait_ms?: number;
}

export function pluginConfiguration(o: PluginConfigOptions): PluginConfiguration {
  const c: PluginConfiguration = { mode: o.mode };
  if (o.policyVersion !== undefined) c.policy_version = o.policyVersion;
  if (o.identity !== undefined) c.identity = o.identity;
  if (o.ingestCluster !== undefined) {
    c.ingest_cluster = o.ingestCluster;
    if (o.ingestAuthority !== undefined) c.ingest_authority = o.ingestAuthority;
    if (o.ingestPath !== undefined) c.ingest_path = o.ingestPath;
    if (o.ingestToken !== undefined) c.ingest_token = o.ingestToken;
    if (o.ingestTimeoutMs !== undefined) c.ingest_timeout_ms = o.ingestTimeoutMs;
    if (o.flushIntervalMs !== undefined) c.flush_interval_ms = o.flushIntervalMs;
    if (o.maxBufferRecords !== undefined) c.max_buffer_records = o.maxBufferRecords;
  }
  if (o.origin !== undefined) c.origin = o.origin;
  if (o.syncCluster !== undefined) {
    c.sync_cluster = o.syncCluster;
    if (o.syncAuthority !== undefined) c.sync_authority = o.syncAuthority;
    if (o.syncToken !== undefined) c.sync_token = o.syncToken;
    if (o.syncWaitMs !== undefined) c.sync_wait_ms = o.syncWaitMs;
  }
  return c;
}
