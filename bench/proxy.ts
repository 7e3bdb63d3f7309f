// The operator access proxy (issue 19): a request through the proxy (TLS, session, decision by the
// engine's core, audit record, signed assertion, mTLS to the upstream) next to the same request
// sent straight to the upstream over mTLS, in the same run; and a TCP tunnel (CONNECT over TLS)
// next to a direct TCP connection to the same echo server. Goals: proxied p50 <= 1.3x direct,
// tunnel throughput >= 0.8x direct. The proxy, the upstream and this load generator are three
// processes on the same machine; the certificates are made with openssl for the run.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as https from "node:https";
import { connect as tcpConnect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { Duplex } from "node:stream";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import { openTunnel, parseTarget } from "../host/cli/proxy-client.js";
import { cpuAccountingAvailable, type CpuSplit, startCpuMeter } from "./cpu.js";
import { quantile, round } from "./measure.js";
import type { BenchFn, BenchSection, Cell } from "./types.js";

const HOST = "bench.zt.test";

function openssl(dir: string, args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
}

/** A CA, the engine's and the upstream's X.509-SVIDs, a client SVID, the proxy's public certificate. */
function pki(dir: string): void {
  openssl(dir, ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "ca.key"]);
  openssl(dir, ["req", "-x509", "-new", "-key", "ca.key", "-subj", "/O=SPIFFE/CN=bench CA", "-days", "2", "-out", "ca.pem", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-addext", "subjectAltName=URI:spiffe://bench.test"]);
  const leaf = (name: string, san: string): void => {
    writeFileSync(join(dir, `${name}.ext`), `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment,keyAgreement\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=${san}\n`);
    openssl(dir, ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", `${name}.key`]);
    openssl(dir, ["req", "-new", "-key", `${name}.key`, "-subj", "/O=SPIFFE", "-out", `${name}.csr`]);
    openssl(dir, ["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1", "-extfile", `${name}.ext`, "-out", `${name}.pem`]);
  };
  leaf("engine", "URI:spiffe://bench.test/zt/proxy");
  leaf("upstream", "URI:spiffe://bench.test/console");
  leaf("client", "URI:spiffe://bench.test/operator-laptop");
  leaf("public", `DNS:${HOST}`);
}

function routes(dir: string, httpsPort: number, tcpPort: number): void {
  mkdirSync(join(dir, "routes"));
  writeFileSync(
    join(dir, "routes", "bench.yaml"),
    `apiVersion: zt.hanzo.ai/v1
kind: AccessRoute
metadata: {name: console}
spec:
  from: https://${HOST}
  service: postgres
  to: https://127.0.0.1:${httpsPort}
  upstream: {spiffeId: "spiffe://bench.test/console"}
  actions: [{action: write}]
---
apiVersion: zt.hanzo.ai/v1
kind: AccessRoute
metadata: {name: echo}
spec: {from: "tcp+https://${HOST}:7", service: postgres, to: "tcp://127.0.0.1:${tcpPort}", action: write}
`,
  );
  writeFileSync(join(dir, "client-secret"), "bench-client-secret\n");
}

async function child(args: string[]): Promise<{ child: ChildProcess; fields: string[] }> {
  const here = fileURLToPath(import.meta.url);
  const script = here.replace(/proxy\.(ts|js)$/, "proxy-server.$1");
  const execArgv = script.endsWith(".ts") ? ["--import", "tsx"] : [];
  let root = dirname(here);
  while (!root.endsWith("/dist") && root !== "/") root = dirname(root);
  const c = spawn(process.execPath, [...execArgv, script, ...args], { stdio: ["ignore", "pipe", "inherit"], cwd: root === "/" ? process.cwd() : dirname(root) });
  const fields = await new Promise<string[]>((resolve, reject) => {
    let out = "";
    c.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /READY (.+)\n/.exec(out);
      if (m) resolve(m[1]!.split(" "));
    });
    c.once("exit", (code) => reject(new Error(`bench child ${args[0]} exited (${code}) before it was ready`)));
  });
  return { child: c, fields };
}

async function stop(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null) return;
  const done = new Promise<void>((r) => c.once("exit", () => r()));
  c.kill("SIGTERM");
  await done;
}

interface Target {
  readonly port: number;
  readonly servername?: string;
  readonly headers: Record<string, string>;
  readonly tls: https.AgentOptions;
}

function get(agent: https.Agent, t: Target): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: "127.0.0.1", port: t.port, path: "/dashboards", agent, servername: t.servername, headers: t.headers }, (res) => {
      if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
      res.resume();
      res.on("end", () => resolve());
    });
    req.on("error", reject);
    req.end();
  });
}

/** One connection, one request at a time: the latency a person at a console sees. */
async function sequential(t: Target, n: number): Promise<{ p50: number; p99: number }> {
  const agent = new https.Agent({ ...t.tls, keepAlive: true, maxSockets: 1 });
  for (let i = 0; i < Math.min(300, n); i++) await get(agent, t);
  const us: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await get(agent, t);
    us.push((performance.now() - t0) * 1000);
  }
  agent.destroy();
  us.sort((a, b) => a - b);
  return { p50: quantile(us, 0.5), p99: quantile(us, 0.99) };
}

async function concurrent(t: Target, seconds: number, pid: number | null, connections = 16): Promise<{ rps: number; p50: number; p99: number; errors: number; cpu: CpuSplit | null }> {
  const meter = pid !== null && cpuAccountingAvailable() ? startCpuMeter(pid) : null;
  const r = await autocannon({
    url: `https://127.0.0.1:${t.port}/dashboards`,
    connections,
    duration: seconds,
    headers: t.headers,
    servername: t.servername,
    tlsOptions: t.tls,
  } as autocannon.Options);
  const cpu = meter ? meter.stop(r.requests.total) : null;
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.timeouts + r.non2xx, cpu };
}

/** Streams `total` bytes through an echo and reads them back; MB/s of the round trip. */
async function echoThroughput(socket: Duplex, total: number): Promise<number> {
  const chunk = Buffer.alloc(64 * 1024, 7);
  const t0 = performance.now();
  let received = 0;
  const done = new Promise<void>((resolve, reject) => {
    socket.on("data", (b: Buffer) => {
      received += b.length;
      if (received >= total) resolve();
    });
    socket.on("error", reject);
  });
  let sent = 0;
  while (sent < total) {
    const ok = socket.write(chunk);
    sent += chunk.length;
    if (!ok) await new Promise((r) => socket.once("drain", r));
  }
  await done;
  const ms = performance.now() - t0;
  socket.destroy();
  return total / (1024 * 1024) / (ms / 1000);
}

export const run: BenchFn = async (opts) => {
  const dir = mkdtempSync(join(tmpdir(), "zt-bench-proxy-"));
  pki(dir);
  const n = opts.quick ? 1000 : 5000;
  const seconds = opts.quick ? 3 : 10;
  const tunnelBytes = (opts.quick ? 64 : 512) * 1024 * 1024;
  const up = await child(["upstream", dir]);
  let px: Awaited<ReturnType<typeof child>> | null = null;
  try {
    const [httpsPort, tcpPort] = up.fields.map(Number) as [number, number];
    routes(dir, httpsPort, tcpPort);
    px = await child(["proxy", dir]);
    const [proxyPort, token] = [Number(px.fields[0]), px.fields[1]!];
    const { readFileSync } = await import("node:fs");
    const ca = readFileSync(join(dir, "ca.pem"), "utf8");
    const direct: Target = { port: httpsPort, headers: {}, tls: { ca, cert: readFileSync(join(dir, "client.pem")), key: readFileSync(join(dir, "client.key")), checkServerIdentity: () => undefined } };
    const proxied: Target = { port: proxyPort, servername: HOST, headers: { host: `${HOST}:${proxyPort}`, "proxy-authorization": `Bearer ${token}` }, tls: { ca, servername: HOST } };

    const dSeq = await sequential(direct, n);
    const pSeq = await sequential(proxied, n);
    const dLoad = await concurrent(direct, seconds, null);
    const pLoad = await concurrent(proxied, seconds, px.child.pid ?? null);

    const directTcp = await echoThroughput(tcpConnect({ host: "127.0.0.1", port: tcpPort }) as Socket, tunnelBytes);
    const caFile = join(dir, "ca.pem");
    const t = await openTunnel(parseTarget(`${HOST}:7`, { proxy: `127.0.0.1:${proxyPort}`, ca: caFile }), token, null);
    if (!t.ok) throw new Error(`tunnel refused: ${JSON.stringify(t.refusal)}`);
    t.socket.resume();
    const tunnelled = await echoThroughput(t.socket, tunnelBytes);

    const ratio = pSeq.p50 / dSeq.p50;
    const tunnelRatio = tunnelled / directTcp;
    const c = pLoad.cpu;
    const row = (name: string, seq: { p50: number; p99: number }, l: typeof dLoad, vs: string): Record<string, Cell> => ({
      case: name,
      "p50 µs (1 conn)": round(seq.p50, 0),
      "p99 µs (1 conn)": round(seq.p99, 0),
      "req/s (16 conn)": Math.round(l.rps),
      "p50 ms (16 conn)": l.p50,
      "p99 ms (16 conn)": l.p99,
      errors: l.errors,
      "p50 vs direct": vs,
    });
    const addedUs = Math.round(pSeq.p50 - dSeq.p50);
    const http: BenchSection = {
      name: "proxy",
      title: "Operator access proxy: a request through the proxy vs straight to the upstream (same run)",
      rows: [row("direct: mTLS to the upstream", dSeq, dLoad, "1.00"), row("through the proxy (session, decision, audit record, assertion, mTLS)", pSeq, pLoad, ratio.toFixed(2))],
      notes: [
        `goal: proxied p50 at one connection <= 1.3x direct: ${ratio.toFixed(2)}x (${ratio <= 1.3 ? "met" : "not met"}): the proxy adds ${addedUs} µs at the median; throughput at 16 connections ${(pLoad.rps / dLoad.rps).toFixed(2)}x direct`,
        "the upstream answers a constant JSON at once, the worst case for the ratio: a proxied request is two TLS hops and two HTTP exchanges where the direct one is one, so the ratio falls toward 1 as the upstream's own work grows",
        c
          ? `proxy CPU per request at 16 connections (from /proc): ${c.mainUs} µs main thread (TLS in and out, HTTP twice, session, decision, assertion), ${c.otherThreadsUs} µs other threads (audit writer, GC), ${c.childrenUs} µs its PostgreSQL (the audit record); machine ${Math.round(c.busy * 100)}% busy`
          : "CPU accounting (/proc) unavailable",
        "every proxied request is a real operator decision of the engine's core with its audit record in PostgreSQL; the assertion is re-signed once a minute per operator and upstream (cached); the session is read from PostgreSQL at most every ZT_PROXY_SESSION_CACHE_MS",
        "the proxy, the upstream, PostgreSQL and the load generator share this machine's cores: ratios, not absolute figures, are the result; on a loaded machine (other jobs) they move",
      ],
    };
    const tunnel: BenchSection = {
      name: "proxy-tunnel",
      title: "Operator access proxy: a TCP tunnel (CONNECT over TLS) vs direct TCP to the same echo server",
      rows: [
        { case: "direct TCP", "MiB/s (echoed)": round(directTcp, 0), "vs direct": "1.00" },
        { case: "tunnel: CONNECT over TLS through the proxy", "MiB/s (echoed)": round(tunnelled, 0), "vs direct": tunnelRatio.toFixed(2) },
      ],
      notes: [
        `goal: tunnel throughput >= 0.8x direct TCP: ${tunnelRatio.toFixed(2)}x (${tunnelRatio >= 0.8 ? "met" : "not met"}); ${tunnelBytes / 1024 / 1024} MiB through an echo server each way, 64 KiB writes`,
        "the tunnel's client leg is TLS (the proxy is an HTTPS endpoint): every byte is encrypted and decrypted twice more than on the direct loopback connection, on the same cores",
      ],
    };
    return [http, tunnel];
  } finally {
    if (px) await stop(px.child);
    await stop(up.child);
    rmSync(dir, { recursive: true, force: true });
  }
};
