// Loads a policy module and evaluates requests with it. Shared by the engine and the CLI.
// The hot path writes the request's bytes into the module's I/O buffer and makes one call;
// the only allocation per decision is the returned Verdict.
import { createHash } from "node:crypto";
import * as L from "../../assembly/layout.js";
import type { Manifest } from "../../compiler/compile.js";
import { MANIFEST_SECTION } from "../../compiler/link.js";
import type { OperatorRequest, ReasonCode, RolloutMode, ServiceRequest, Verdict } from "../../compiler/model.js";
import { parseSpiffeId, parseSpiffePattern, patternMatches, type SpiffePattern } from "../../compiler/spiffe.js";

interface Exports {
  memory: WebAssembly.Memory;
  _initialize(): void;
  zt_io(): number;
  zt_ready(): number;
  zt_eval_service(srcLen: number, dstLen: number, port: number): number;
  zt_eval_operator(len: number, flags: number): number;
  zt_eval_rollout(len: number): number;
  zt_rule_count(): number;
  zt_rule_id_ptr(idx: number): number;
  zt_rule_id_len(idx: number): number;
}

/** The module trapped; the runtime has re-instantiated itself. Callers fail closed. */
export class RuntimeTrapError extends Error {
  constructor(cause: unknown) {
    super(`policy module trapped: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = "RuntimeTrapError";
  }
}

const ROLLOUT: ReadonlyArray<RolloutMode | null> = [null, "observe", "enforce", null];
/** proxy-wasm's UNIMPLEMENTED status: what a proxy_* import answers outside Envoy. */
const UNIMPLEMENTED = 12;

/**
 * Imports for running the module outside a proxy: the proxy-wasm and WASI functions the
 * filter code imports are present (so linking succeeds) and answer UNIMPLEMENTED; the host
 * path never calls them.
 */
export function hostImports(module: WebAssembly.Module): WebAssembly.Imports {
  const imports: Record<string, Record<string, WebAssembly.ImportValue>> = {};
  for (const imp of WebAssembly.Module.imports(module)) {
    if (imp.kind !== "function") throw new Error(`policy module imports a ${imp.kind} (${imp.module}.${imp.name}); only functions are allowed`);
    (imports[imp.module] ??= {})[imp.name] = () => UNIMPLEMENTED;
  }
  return imports;
}

export function decodeResult(r: number): Verdict {
  const reason = (r & L.RESULT_REASON_MASK) as ReasonCode;
  return { allow: reason === L.REASON_ALLOWED_BY_RULE, reason, rule: (r >>> L.RESULT_RULE_SHIFT) - 1, rollout: ROLLOUT[(r >>> L.RESULT_ROLLOUT_SHIFT) & 3]! };
}

export class PolicyRuntime {
  private ex!: Exports;
  private mem!: Buffer;
  private io = 0;
  private ruleIds: Array<string | undefined> = [];
  private readonly agentScopes: Array<{ destination: SpiffePattern; scopes: readonly string[] }>;
  private readonly decoder = new TextDecoder();

  private constructor(
    /** The compiled module: it can be posted to another thread and instantiated there. */
    readonly module: WebAssembly.Module,
    readonly wasm: Uint8Array,
    readonly version: string,
    readonly manifest: Manifest,
  ) {
    this.agentScopes = (manifest.agent_scopes ?? []).map((e) => {
      const p = parseSpiffePattern(e.destination);
      if (!p.ok) throw new Error(`policy module has an invalid agent scope pattern: ${p.error}`);
      return { destination: p.value, scopes: e.scopes };
    });
    this.instantiate();
  }

  static async load(wasm: Uint8Array): Promise<PolicyRuntime> {
    const module = await WebAssembly.compile(wasm as Uint8Array<ArrayBuffer>);
    const sections = WebAssembly.Module.customSections(module, MANIFEST_SECTION);
    if (sections.length !== 1) throw new Error(`not a ZT policy module: no "${MANIFEST_SECTION}" section`);
    const manifest = JSON.parse(new TextDecoder().decode(sections[0]!)) as Manifest;
    const version = `sha256:${createHash("sha256").update(wasm).digest("hex")}`;
    return PolicyRuntime.fromModule(module, wasm, version, manifest);
  }

  /**
   * A runtime for a module compiled and checked elsewhere (the build thread ran load() on the
   * same bytes): only instantiation is left, so a swap costs the serving thread no compile.
   */
  static fromModule(module: WebAssembly.Module, wasm: Uint8Array, version: string, manifest: Manifest): PolicyRuntime {
    const rt = new PolicyRuntime(module, wasm, version, manifest);
    if (rt.ex.zt_ready() !== 1) throw new Error("policy module has no valid policy image");
    return rt;
  }

  private instantiate(): void {
    const instance = new WebAssembly.Instance(this.module, hostImports(this.module));
    this.ex = instance.exports as unknown as Exports;
    this.ex._initialize();
    this.io = this.ex.zt_io();
    this.mem = Buffer.from(this.ex.memory.buffer);
  }

  private view(): Buffer {
    // A grown memory detaches the old buffer.
    if (this.mem.byteLength === 0) this.mem = Buffer.from(this.ex.memory.buffer);
    return this.mem;
  }

  /**
   * Writes a string as UTF-8 at io+off (Buffer#write: native, about twice as fast as a
   * charCodeAt loop) and returns the bytes written, at most `max`. The module rejects any
   * byte >= 0x80 in a SPIFFE ID, and a length over its limit, so callers pass the limit + 1.
   */
  private put(mem: Buffer, s: string, off: number, max: number): number {
    return mem.write(s, this.io + off, max, "utf8");
  }

  /**
   * Writes an ID and returns the length to pass: its byte length, or MAX_ID_BYTES + 1 when it
   * is longer than any SPIFFE ID. Buffer#write stops before a character that does not fit
   * whole, so an over-long ID ending in a multi-byte character can come out as a valid
   * prefix of up to MAX_ID_BYTES bytes: when the write reaches within 3 bytes of the limit
   * (a character is at most 4 bytes), the true length decides.
   */
  private putId(mem: Buffer, s: string, off: number): number {
    if (s.length > L.MAX_ID_BYTES) return L.MAX_ID_BYTES + 1; // every UTF-16 unit is at least a byte
    const n = this.put(mem, s, off, L.MAX_ID_BYTES + 1);
    if (n >= L.MAX_ID_BYTES - 2 && Buffer.byteLength(s, "utf8") > L.MAX_ID_BYTES) return L.MAX_ID_BYTES + 1;
    return n;
  }

  /** After a trap the instance's state is unknown: start a fresh one, and tell the caller. */
  private trapped(e: unknown): never {
    if (e instanceof WebAssembly.RuntimeError) {
      this.instantiate();
      throw new RuntimeTrapError(e);
    }
    throw e;
  }

  evaluateService(req: ServiceRequest): Verdict {
    const mem = this.view();
    const s = this.putId(mem, req.source, 0);
    const d = this.putId(mem, req.destination, L.MAX_ID_BYTES);
    const port = Number.isInteger(req.port) ? req.port : -1;
    let r: number;
    try {
      r = this.ex.zt_eval_service(s, d, port);
    } catch (e) {
      this.trapped(e);
    }
    return decodeResult(r);
  }

  evaluateServiceBatch(reqs: readonly ServiceRequest[]): Verdict[] {
    const out = new Array<Verdict>(reqs.length);
    for (let i = 0; i < reqs.length; i++) out[i] = this.evaluateService(reqs[i]!);
    return out;
  }

  evaluateOperator(req: OperatorRequest): Verdict {
    const mem = this.view();
    const cap = L.IO_BUFFER_SIZE;
    let off = 0;
    // service, action, then the roles: walked by index, no array built per call.
    const count = 2 + req.roles.length;
    for (let i = 0; i < count; i++) {
      const p = i === 0 ? req.service : i === 1 ? req.action : req.roles[i - 2]!;
      const bytes = Buffer.byteLength(p, "utf8");
      if (bytes === 0 || off + bytes + 1 > cap || p.includes("\0")) {
        // Empty, oversized or NUL-carrying values cannot name anything in a policy (and
        // non-ASCII ones cannot either: policy names are ASCII tokens).
        if (i < 2) return decodeResult(L.REASON_INVALID_REQUEST);
        continue;
      }
      if (i > 0) mem[this.io + off++] = 0;
      off += this.put(mem, p, off, bytes);
    }
    const flags = (req.mfa ? L.OP_FLAG_MFA : 0) | (req.incidentActive ? L.OP_FLAG_INCIDENT : 0);
    let r: number;
    try {
      r = this.ex.zt_eval_operator(off, flags);
    } catch (e) {
      this.trapped(e);
    }
    return decodeResult(r);
  }

  /** The rollout mode the policy sets for a destination, or null. */
  rolloutFor(destination: string): RolloutMode | null {
    const n = this.putId(this.view(), destination, 0);
    let r: number;
    try {
      r = this.ex.zt_eval_rollout(n);
    } catch (e) {
      this.trapped(e);
    }
    return ROLLOUT[r & 3]!;
  }

  /**
   * Scopes an agent's JWT must carry to reach `destination` (union of the matching
   * `agentScopes` entries), or null when the policy grants agents no access there.
   * The entries are few, so a scan is fine here; this is not the service hot path.
   */
  requiredScopes(destination: string): string[] | null {
    const dst = parseSpiffeId(destination);
    if (!dst.ok) return null;
    let found = false;
    const scopes = new Set<string>();
    for (const e of this.agentScopes) {
      if (!patternMatches(e.destination, dst.value)) continue;
      found = true;
      for (const s of e.scopes) scopes.add(s);
    }
    return found ? [...scopes].sort() : null;
  }

  /** `<policy>/<rule>` for a global rule index, read from the module's image. */
  ruleId(index: number): string | null {
    if (index < 0 || index >= this.manifest.rules) return null;
    let id = this.ruleIds[index];
    if (id === undefined) {
      const ptr = this.ex.zt_rule_id_ptr(index);
      const len = this.ex.zt_rule_id_len(index);
      id = this.decoder.decode(this.view().subarray(ptr, ptr + len));
      this.ruleIds[index] = id;
    }
    return id;
  }
}
