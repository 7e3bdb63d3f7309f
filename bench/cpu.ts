// CPU accounting for the HTTP benchmark: where a request's CPU time goes on this machine,
// read from /proc around a load run. The server's main thread (HTTP, evaluation, audit
// hand-off), its other threads (the audit writer, V8's GC helpers), the processes it started
// (embedded PostgreSQL) and this process (autocannon). With every component on the same
// few cores, req/s is bounded by cores / (CPU per request): these figures say which part
// of a target is out of reach, and by how much. Linux only; elsewhere there is no split.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { availableParallelism } from "node:os";

/** CPU seconds per component over one load run. */
interface Times {
  main: number;
  otherThreads: number;
  children: number;
  self: number;
  wallMs: number;
}

/** Microseconds of CPU per request, per component, and how busy the machine was. */
export interface CpuSplit {
  mainUs: number;
  otherThreadsUs: number;
  childrenUs: number;
  loadGenUs: number;
  totalUs: number;
  /** All measured CPU over (cores x wall time). */
  busy: number;
}

let tick: number | null = null;
function ticksPerSecond(): number {
  if (tick === null) {
    try {
      tick = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      tick = 100;
    }
  }
  return tick;
}

/** utime + stime (seconds) and the parent pid, from a /proc stat file; null if it is gone. */
function stat(path: string): { cpu: number; ppid: number } | null {
  let s: string;
  try {
    s = readFileSync(path, "utf8");
  } catch {
    return null;
  }
  // The command name may hold spaces and parentheses: fields start after the last ")".
  const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
  return { cpu: (Number(f[11]) + Number(f[12])) / ticksPerSecond(), ppid: Number(f[1]) };
}

function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const st = stat(`/proc/${name}/stat`);
    if (!st) continue;
    const list = children.get(st.ppid) ?? [];
    list.push(Number(name));
    children.set(st.ppid, list);
  }
  const out: number[] = [];
  const todo = [...(children.get(pid) ?? [])];
  while (todo.length > 0) {
    const p = todo.pop() as number;
    out.push(p);
    todo.push(...(children.get(p) ?? []));
  }
  return out;
}

function sample(pid: number): Map<string, number> {
  const m = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const st = stat(`/proc/${pid}/task/${tid}/stat`);
    if (st) m.set(Number(tid) === pid ? "main" : `t${tid}`, st.cpu);
  }
  for (const c of descendants(pid)) {
    const st = stat(`/proc/${c}/stat`);
    if (st) m.set(`c${c}`, st.cpu);
  }
  const self = process.cpuUsage();
  m.set("self", (self.user + self.system) / 1e6);
  return m;
}

function delta(a: Map<string, number>, b: Map<string, number>, wallMs: number): Times {
  const t: Times = { main: 0, otherThreads: 0, children: 0, self: 0, wallMs };
  for (const [k, v] of b) {
    // A thread or process that started during the run counts from zero.
    const d = v - (a.get(k) ?? 0);
    if (k === "main") t.main += d;
    else if (k === "self") t.self += d;
    else if (k.startsWith("t")) t.otherThreads += d;
    else t.children += d;
  }
  return t;
}

export function cpuAccountingAvailable(): boolean {
  try {
    readdirSync("/proc/self/task");
    return true;
  } catch {
    return false;
  }
}

/** Starts measuring the server `pid` (threads and child processes) and this process. */
export function startCpuMeter(pid: number): { stop(requests: number): CpuSplit } {
  const t0 = performance.now();
  const a = sample(pid);
  return {
    stop(requests: number): CpuSplit {
      const t = delta(a, sample(pid), performance.now() - t0);
      const per = (s: number): number => Math.round((s * 1e6) / Math.max(1, requests));
      const total = t.main + t.otherThreads + t.children + t.self;
      return {
        mainUs: per(t.main),
        otherThreadsUs: per(t.otherThreads),
        childrenUs: per(t.children),
        loadGenUs: per(t.self),
        totalUs: per(total),
        busy: total / (availableParallelism() * (t.wallMs / 1000)),
      };
    },
  };
}
