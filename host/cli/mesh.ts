// zt mesh keygen|render|agent: the WireGuard mesh's gateway tools (docs/mesh.md).
import { parseArgs } from "node:util";
import { formatDiagnostic } from "../../compiler/diagnostics.js";
import { loadMeshFile } from "../../compiler/mesh/load.js";
import { createLogger } from "../common/logger.js";
import { type BackendChoice, MeshAgent } from "../mesh/agent.js";
import { clusterOf, desiredDevice } from "../mesh/desired.js";
import { generateKeyPair, KeyFileExistsError, readPrivateKeyFile, writePrivateKeyFile } from "../mesh/keys.js";
import type { CreateMode } from "../mesh/link.js";
import { renderConfig, type RenderFormat } from "../mesh/render.js";
import { createAgentApp, listenAgent } from "../mesh/server.js";
import { EXIT, printJson, UsageError } from "./io.js";

export const MESH_USAGE = `usage:
  zt mesh keygen -o FILE [--force]          new key pair: private key to FILE (mode 0600), public key printed
  zt mesh keygen --print-private-key        new key pair printed, private key included (explicit)
  zt mesh render MESH.yaml --cluster NAME [--format setconf|wg-quick] [--include-private-key] [--name MESH]
  zt mesh agent MESH.yaml --cluster NAME [--interface wg0] [--create auto|kernel|userspace|none]
                [--backend auto|uapi|wg] [--listen HOST:PORT] [--peer-up-bound SECONDS] [--interval SECONDS] [--name MESH]
`;

function today(): string {
  return new Date().toISOString().slice(0, 10);
}

async function keygen(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { output: { type: "string", short: "o" }, force: { type: "boolean" }, "print-private-key": { type: "boolean" } } });
  const out = values.output;
  const printPrivate = values["print-private-key"] === true;
  if (out === undefined && !printPrivate) throw new UsageError(`give -o FILE (the private key is written there, mode 0600), or --print-private-key to print it\n${MESH_USAGE}`);
  const pair = generateKeyPair();
  if (out !== undefined) {
    try {
      await writePrivateKeyFile(out, pair.privateKey, values.force === true);
    } catch (e) {
      if (e instanceof KeyFileExistsError) throw new UsageError(e.message);
      throw e;
    }
  }
  printJson({
    publicKey: pair.publicKey,
    keyCreated: today(),
    ...(out !== undefined ? { privateKeyFile: out } : {}),
    ...(printPrivate ? { privateKey: pair.privateKey } : {}),
  });
  return EXIT.ok;
}

async function loadOrReport(file: string, name: string | undefined) {
  const r = await loadMeshFile(file, name);
  if (r.ok) return r.mesh;
  for (const e of r.errors) process.stderr.write(formatDiagnostic(e) + "\n");
  process.stderr.write(`${r.errors.length} error${r.errors.length === 1 ? "" : "s"}\n`);
  return null;
}

function onlyFile(positionals: string[]): string {
  if (positionals.length !== 1) throw new UsageError(`give exactly one mesh file\n${MESH_USAGE}`);
  return positionals[0]!;
}

async function render(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { cluster: { type: "string" }, format: { type: "string", default: "setconf" }, "include-private-key": { type: "boolean" }, name: { type: "string" } },
  });
  const file = onlyFile(positionals);
  if (!values.cluster) throw new UsageError(`--cluster NAME is required\n${MESH_USAGE}`);
  const format = values.format as RenderFormat;
  if (format !== "setconf" && format !== "wg-quick") throw new UsageError(`--format must be setconf or wg-quick, got "${String(values.format)}"`);
  const mesh = await loadOrReport(file, values.name);
  if (!mesh) return EXIT.policyError;
  const self = clusterOf(mesh, values.cluster);
  if (!self) throw new UsageError(`cluster "${values.cluster}" is not in mesh ${mesh.name} (clusters: ${mesh.clusters.map((c) => c.name).join(", ")})`);
  const desired = desiredDevice(mesh, self);
  let privateKey: string | undefined;
  if (values["include-private-key"]) {
    const key = await readPrivateKeyFile(self.privateKeyFile);
    if (!key.ok) {
      process.stderr.write(`zt mesh render: ${key.error}\n`);
      return EXIT.policyError;
    }
    if (key.publicKey !== self.publicKey) {
      process.stderr.write(`zt mesh render: the private key in ${self.privateKeyFile} does not belong to publicKey of cluster ${self.name} (${self.at.file}:${self.at.line}:${self.at.col})\n`);
      return EXIT.policyError;
    }
    privateKey = key.privateKey;
  }
  process.stdout.write(renderConfig(desired, { format, ...(privateKey !== undefined ? { privateKey } : {}) }));
  return EXIT.ok;
}

function seconds(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${flag} must be a positive number of seconds, got "${text}"`);
  return n * 1000;
}

function hostPort(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text);
  const port = Number(m?.[3]);
  if (!m || port > 65535) throw new UsageError(`--listen must be HOST:PORT (port 0: any free port), got "${text}"`);
  return { host: m[1] ?? (m[2] || "0.0.0.0"), port };
}

async function agent(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      cluster: { type: "string" },
      interface: { type: "string", default: "wg0" },
      create: { type: "string", default: "auto" },
      backend: { type: "string", default: "auto" },
      listen: { type: "string", default: "0.0.0.0:9586" },
      "peer-up-bound": { type: "string", default: "180" },
      interval: { type: "string", default: "10" },
      name: { type: "string" },
    },
  });
  const file = onlyFile(positionals);
  if (!values.cluster) throw new UsageError(`--cluster NAME is required\n${MESH_USAGE}`);
  const create = values.create as CreateMode;
  if (!["auto", "kernel", "userspace", "none"].includes(create)) throw new UsageError(`--create must be auto, kernel, userspace or none`);
  const backend = values.backend as BackendChoice;
  if (!["auto", "uapi", "wg"].includes(backend)) throw new UsageError(`--backend must be auto, uapi or wg`);
  if (!/^[A-Za-z0-9_=+.-]{1,15}$/.test(values.interface)) throw new UsageError(`--interface "${values.interface}" is not an interface name (at most 15 characters)`);
  const listen = hostPort(values.listen);
  const logger = createLogger({ base: { component: "mesh-agent" } });
  const a = new MeshAgent({
    meshFile: file,
    cluster: values.cluster,
    ...(values.name !== undefined ? { meshName: values.name } : {}),
    iface: values.interface,
    create,
    backend,
    peerUpBoundMs: seconds("--peer-up-bound", values["peer-up-bound"]),
    intervalMs: seconds("--interval", values.interval),
    logger,
  });
  await a.start();
  const { server, url } = await listenAgent(createAgentApp(a), listen.host, listen.port);
  const s = a.state();
  logger.info("mesh agent listening", { metrics: `${url}/metrics`, interface: values.interface, cluster: values.cluster, mesh: s.mesh?.name ?? null, reconcile: s.lastResult, error: s.lastError });
  await new Promise<void>((resolve) => {
    const done = (): void => resolve();
    process.once("SIGTERM", done);
    process.once("SIGINT", done);
  });
  logger.info("mesh agent stopping", { interface: values.interface });
  server.close();
  server.closeAllConnections();
  await a.stop();
  return EXIT.ok;
}

export async function meshCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === "keygen") return keygen(rest);
  if (sub === "render") return render(rest);
  if (sub === "agent") return agent(rest);
  throw new UsageError(`unknown or missing subcommand${sub ? ` "${sub}"` : ""}\n${MESH_USAGE}`);
}
