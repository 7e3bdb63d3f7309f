// `zt mesh agent`: keeps one gateway's WireGuard interface equal to the mesh document. It
// reconciles on start, when the document or the key file changes (fs.watch on their
// directories: Secret and ConfigMap volumes swap a symlink) and every interval (drift, a
// recreated interface). An invalid document is refused and the last valid one keeps serving;
// a key file that does not match the document's publicKey (a rotation half done) leaves the
// device's key as it is until both agree.
import { type FSWatcher, watch } from "node:fs";
import { lookup } from "node:dns/promises";
import { stat } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { formatDiagnostic } from "../../compiler/diagnostics.js";
import { parseIp } from "../../compiler/mesh/cidr.js";
import { loadMeshFile } from "../../compiler/mesh/load.js";
import type { MeshEndpoint, WireGuardMesh } from "../../compiler/mesh/model.js";
import type { Logger } from "../common/logger.js";
import { clusterOf, type DesiredDevice, desiredDevice } from "./desired.js";
import { isEmptyChange, type WgBackend } from "./device.js";
import { readPrivateKeyFile } from "./keys.js";
import { type CreateMode, Link } from "./link.js";
import { createMeshMetrics, type MeshMetrics, type ReconcileResult } from "./metrics.js";
import { planChange } from "./plan.js";
import { DEFAULT_PEER_UP_BOUND_MS, type Observation, observe } from "./status.js";
import { uapiBackend, uapiSocket } from "./uapi.js";
import { wgToolBackend } from "./wg-tool.js";

export type BackendChoice = "auto" | "uapi" | "wg";

export interface AgentOptions {
  readonly meshFile: string;
  readonly cluster: string;
  /** metadata.name of the mesh when the file holds several. */
  readonly meshName?: string;
  readonly iface: string;
  readonly create: CreateMode;
  readonly backend: BackendChoice;
  readonly peerUpBoundMs?: number;
  readonly intervalMs?: number;
  readonly logger: Logger;
  readonly metrics?: MeshMetrics;
  readonly uapiDir?: string;
  readonly now?: () => number;
}

export interface AgentState {
  readonly mesh: WireGuardMesh | null;
  readonly desired: DesiredDevice | null;
  readonly lastResult: ReconcileResult | null;
  readonly lastError: string | null;
  /** False while the key file and the document's publicKey disagree. */
  readonly keyMatches: boolean;
}

function endpointText(ip: string, family: number, port: number): string {
  return family === 6 ? `[${ip}]:${port}` : `${ip}:${port}`;
}

export class MeshAgent {
  readonly metrics: MeshMetrics;
  private readonly link: Link;
  private readonly boundMs: number;
  private readonly now: () => number;
  private mesh: WireGuardMesh | null = null;
  private desired: DesiredDevice | null = null;
  private lastResult: ReconcileResult | null = null;
  private lastError: string | null = null;
  private keyMatches = true;
  private running: Promise<void> | null = null;
  private again = false;
  private timer: NodeJS.Timeout | null = null;
  private watchers = new Map<string, FSWatcher>();
  private debounce: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(private readonly opts: AgentOptions) {
    this.metrics = opts.metrics ?? createMeshMetrics();
    this.boundMs = opts.peerUpBoundMs ?? DEFAULT_PEER_UP_BOUND_MS;
    this.now = opts.now ?? Date.now;
    this.link = new Link({
      iface: opts.iface,
      create: opts.create,
      ...(opts.uapiDir !== undefined ? { uapiDir: opts.uapiDir } : {}),
      onUserspaceExit: (code) => {
        if (this.stopped) return;
        opts.logger.warn("wireguard-go exited: the interface is gone; recreating it", { interface: opts.iface, code });
        this.trigger();
      },
    });
  }

  state(): AgentState {
    return { mesh: this.mesh, desired: this.desired, lastResult: this.lastResult, lastError: this.lastError, keyMatches: this.keyMatches };
  }

  /** The first reconciliation (its outcome is in state()), then the watchers and the interval. */
  async start(): Promise<void> {
    await this.reconcile();
    this.watch(dirname(this.opts.meshFile));
    this.timer = setInterval(() => this.trigger(), this.opts.intervalMs ?? 10_000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.debounce) clearTimeout(this.debounce);
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
    await this.running;
    await this.link.close();
  }

  private watch(dir: string): void {
    if (this.watchers.has(dir) || this.stopped) return;
    try {
      // Only the watched files (and a volume's ..data symlink swap), not whatever else the directory holds.
      const w = watch(dir, (_event, name) => {
        if (name === null || name.startsWith("..") || this.watchedNames().has(name)) this.trigger();
      });
      w.on("error", () => undefined);
      this.watchers.set(dir, w);
    } catch (e) {
      // The interval still catches every change, only later.
      this.opts.logger.warn("cannot watch a directory; relying on the interval", { dir, error: (e as NodeJS.ErrnoException).code ?? String(e) });
    }
  }

  private watchedNames(): Set<string> {
    const names = new Set([basename(this.opts.meshFile)]);
    if (this.desired) names.add(basename(this.desired.privateKeyFile));
    return names;
  }

  /** Asks for a reconciliation soon (coalescing bursts of file events). */
  trigger(): void {
    if (this.stopped || this.debounce) return;
    this.debounce = setTimeout(() => {
      this.debounce = null;
      void this.reconcile();
    }, 50);
  }

  /** One reconciliation at a time; a request during one runs once more after it. */
  reconcile(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        const result = await this.reconcileOnce().catch((e: unknown) => {
          this.lastError = (e as Error).message;
          this.opts.logger.error("reconcile failed", { error: this.lastError });
          return "failed" as const;
        });
        this.lastResult = result;
        this.metrics.reconciled(result);
      } while (this.again && !this.stopped);
    })().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private backend(): Promise<WgBackend> {
    const { backend, iface, uapiDir } = this.opts;
    if (backend === "uapi") return Promise.resolve(uapiBackend(iface, uapiDir));
    if (backend === "wg") return Promise.resolve(wgToolBackend(iface));
    return stat(uapiSocket(iface, uapiDir)).then(
      () => uapiBackend(iface, uapiDir),
      () => wgToolBackend(iface),
    );
  }

  private async loadDocument(): Promise<boolean> {
    const r = await loadMeshFile(this.opts.meshFile, this.opts.meshName);
    if (!r.ok) {
      this.metrics.documentValid(false);
      const errors = r.errors.map(formatDiagnostic);
      this.lastError = `the mesh document is invalid (${errors.length} error(s)); ${this.mesh ? "the last valid one keeps serving" : "nothing to apply yet"}`;
      this.opts.logger.error("mesh document refused", { file: this.opts.meshFile, errors, serving: this.mesh?.name ?? null });
      return false;
    }
    const self = clusterOf(r.mesh, this.opts.cluster);
    if (!self) {
      this.metrics.documentValid(false);
      this.lastError = `cluster "${this.opts.cluster}" is not in mesh ${r.mesh.name} (clusters: ${r.mesh.clusters.map((c) => c.name).join(", ")})`;
      this.opts.logger.error("mesh document refused", { file: this.opts.meshFile, error: this.lastError });
      return false;
    }
    this.metrics.documentValid(true);
    this.mesh = r.mesh;
    this.desired = desiredDevice(r.mesh, self);
    return true;
  }

  private async resolveEndpoints(desired: DesiredDevice): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const p of desired.peers) {
      const ep: MeshEndpoint | null = p.endpoint;
      if (!ep) continue;
      const ip = parseIp(ep.host);
      if (ip) {
        out.set(p.cluster, endpointText(ep.host, ip.family, ep.port));
        continue;
      }
      try {
        const a = await lookup(ep.host);
        out.set(p.cluster, endpointText(a.address, a.family, ep.port));
      } catch (e) {
        this.opts.logger.warn("cannot resolve a peer endpoint; leaving it as it is", { cluster: p.cluster, endpoint: ep.text, error: (e as NodeJS.ErrnoException).code ?? String(e) });
      }
    }
    return out;
  }

  private async reconcileOnce(): Promise<ReconcileResult> {
    const fresh = await this.loadDocument();
    const desired = this.desired;
    if (!desired) return "refused";
    this.watch(dirname(desired.privateKeyFile));
    const key = await readPrivateKeyFile(desired.privateKeyFile);
    let privateKey: { key: string; file: string } | null = null;
    if (!key.ok) {
      this.keyMatches = false;
      this.opts.logger.error("private key unusable; the device keeps its key", { error: key.error });
    } else if (key.publicKey !== desired.publicKey) {
      this.keyMatches = false;
      this.opts.logger.warn("the private key file does not match the document's publicKey (a rotation half done?); the device keeps its key until both agree", {
        file: desired.privateKeyFile,
        cluster: desired.cluster,
        file_public_key: key.publicKey,
        document_public_key: desired.publicKey,
      });
    } else {
      this.keyMatches = true;
      privateKey = { key: key.privateKey, file: desired.privateKeyFile };
      if (key.looseMode) this.opts.logger.warn("the private key file is readable by group or others (want 0600 or 0400)", { file: desired.privateKeyFile });
    }
    const created = await this.link.ensure();
    if (created) this.opts.logger.info("interface created", { interface: this.opts.iface, how: created });
    const backend = await this.backend();
    const current = await backend.get();
    if (!current) throw new Error(`interface ${this.opts.iface} vanished during reconciliation`);
    const change = planChange({ desired, current, privateKey, endpoints: await this.resolveEndpoints(desired) });
    if (!isEmptyChange(change)) await backend.set(change);
    await this.link.configure(desired.address, desired.routes);
    if (this.lastError !== null && fresh) this.opts.logger.info("recovered", { previous_error: this.lastError });
    if (fresh) this.lastError = null;
    if (isEmptyChange(change) && !created) return fresh ? "unchanged" : "refused";
    this.opts.logger.info("interface reconciled", {
      interface: this.opts.iface,
      backend: backend.name,
      mesh: desired.mesh,
      cluster: desired.cluster,
      private_key_changed: change.privateKey !== undefined,
      listen_port: change.listenPort ?? null,
      peers_removed: change.removePeers.length,
      peers_added_or_updated: change.upsertPeers.map((p) => desired.peers.find((d) => d.publicKey === p.publicKey)?.cluster ?? p.publicKey),
    });
    return fresh ? "applied" : "refused";
  }

  /** The tunnels now, read from the device (0 for every peer when the interface is gone). */
  async observe(): Promise<Observation> {
    let device = null;
    try {
      device = await (await this.backend()).get();
    } catch (e) {
      this.opts.logger.warn("cannot read the device", { interface: this.opts.iface, error: (e as Error).message });
    }
    const o = observe(this.desired, this.mesh, device, this.now(), this.boundMs);
    this.metrics.update(o);
    return o;
  }
}
