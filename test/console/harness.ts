// A real engine with a real PostgreSQL trail and the console mounted, a trail made by real
// evaluate calls, and a real Chromium driven by playwright-core.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium, type ConsoleMessage, type Page } from "playwright-core";
import { CHROMIUM_ARGS } from "../support/chromium.js";
import { type Audit, auditConfigFromEnv, openAudit } from "../../host/audit/index.js";
import { consoleExtension } from "../../host/console/extension.js";
import { createMeshMetrics } from "../../host/mesh/metrics.js";
import { rolloutExtension } from "../../host/rollout/extension.js";
import { call, startTestEngine, type TestEngine, TOKEN } from "../http/harness.js";
import { requireProgram } from "../support/programs.js";

export { TOKEN };

/** Screenshots go here (gitignored; CI keeps them as artifacts). */
export const ARTIFACTS = join(import.meta.dirname, "..", "artifacts", "console");

/** A third policy next to the seed's: lux traffic is observed, not enforced (rollout phase 1). */
export const LUX_OBSERVE_POLICY = `apiVersion: zt.hanzo.ai/v1
kind: ServiceAccessPolicy
metadata:
  name: lux-observe
spec:
  rules:
    - name: api-to-db
      from:
        spiffe: "spiffe://hanzo.ai/lux-k8s/lux/api"
      to:
        - spiffe: "spiffe://hanzo.ai/lux-k8s/lux/db"
          ports: [5432]
  rollout:
    - destination: "spiffe://hanzo.ai/lux-k8s/lux/**"
      mode: observe
`;

export interface ConsoleEngine {
  engine: TestEngine;
  audit: Audit;
  url: string;
  close(): Promise<void>;
}

export async function startConsoleEngine(opts: { meshMetrics?: string[] } = {}): Promise<ConsoleEngine> {
  let audit: Audit | null = null;
  const engine = await startTestEngine({
    audit: async (dir) => {
      writeFileSync(join(dir, "policies", "lux-observe.yaml"), LUX_OBSERVE_POLICY);
      audit = await openAudit(auditConfigFromEnv({ ZT_DATA_DIR: join(dir, "data") }));
      return audit;
    },
    engine: {
      extensions: [rolloutExtension(), (core) => consoleExtension({ audit: audit as Audit, adminToken: TOKEN, meshMetrics: opts.meshMetrics ?? [], trailDsn: (audit as Audit).connections.engine })(core)],
    },
  });
  return {
    engine,
    audit: audit as unknown as Audit,
    url: engine.url,
    close: () => engine.dispose(),
  };
}

/** Real decisions through POST /v1/evaluate; resolves once they are in PostgreSQL. */
export async function evaluate(ce: ConsoleEngine, requests: unknown[]): Promise<Array<{ decision: string; decision_id: string; enforced: boolean }>> {
  const r = await call<Array<{ decision: string; decision_id: string; enforced: boolean }>>(ce.url, "POST", "/v1/evaluate", { body: requests, token: TOKEN });
  if (r.status !== 200) throw new Error(`evaluate: ${r.status} ${r.text}`);
  await ce.audit.sink.flush();
  return r.body;
}

export interface Browser {
  context: BrowserContext;
  /** Console errors and uncaught exceptions of every page, with the page's URL. */
  errors: string[];
  newPage(): Promise<Page>;
  close(): Promise<void>;
}

/** `extraArgs`: after the common flags (e.g. host resolver rules, trusted test certificates). */
export async function launchBrowser(extraArgs: readonly string[] = []): Promise<Browser> {
  const executablePath = requireProgram("chromium");
  const userDataDir = mkdtempSync(join(tmpdir(), "zt-console-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: [...CHROMIUM_ARGS, ...extraArgs],
  });
  const errors: string[] = [];
  const watch = (page: Page): void => {
    page.on("console", (m: ConsoleMessage) => {
      if (m.type() === "error") errors.push(`${page.url()}: ${m.text()}`);
    });
    page.on("pageerror", (e) => errors.push(`${page.url()}: uncaught ${e.message}`));
  };
  for (const p of context.pages()) watch(p);
  context.on("page", watch);
  return {
    context,
    errors,
    newPage: () => context.newPage(),
    async close() {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

export async function signIn(page: Page, base: string, token: string = TOKEN): Promise<void> {
  await page.goto(`${base}/console/login`);
  await page.getByLabel("Admin token").fill(token);
  await Promise.all([page.waitForURL(`${base}/console`), page.getByRole("button", { name: "Sign in" }).click()]);
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const file = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/**
 * A mesh agent's /metrics as the agent serves it (host/mesh/metrics.ts, the same registry and
 * exposition), over real HTTP, with the peers set as the agent would observe them.
 */
export async function startMeshMetrics(peers: Array<{ cluster: string; up: boolean }>): Promise<{ url: string; close(): Promise<void> }> {
  const metrics = createMeshMetrics({ processMetrics: false });
  metrics.update({ interfaceUp: true, peers: peers.map((p) => ({ ...p, handshakeAgeSeconds: p.up ? 5 : Infinity, rxBytes: 0, txBytes: 0 })), keyAges: [] });
  const server = createServer((req, res) => {
    if (req.url !== "/metrics") return void res.writeHead(404).end();
    void metrics.registry.metrics().then((body) => res.writeHead(200, { "content-type": metrics.registry.contentType }).end(body));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/metrics`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** A port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
