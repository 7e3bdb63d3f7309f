// The console in a real Chromium against a real engine, a real PostgreSQL trail and decisions
// made by real POST /v1/evaluate calls.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { AxeBuilder } from "@axe-core/playwright";
import type { Page } from "playwright-core";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAuditQuery, queryAudit } from "../../host/audit/query.js";
import { exportStream } from "../../host/console/audit-export.js";
import { CONTENT_SECURITY_POLICY } from "../../host/console/security-headers.js";
import { startTestEngine } from "../http/harness.js";
import { servicePolicy } from "../support/policy-text.js";
import { type Browser, closedPort, TOKEN, type ConsoleEngine, evaluate, launchBrowser, LUX_OBSERVE_POLICY, screenshot, signIn, startConsoleEngine, startMeshMetrics } from "./harness.js";

const H = "spiffe://hanzo.ai/hanzo-k8s/hanzo/";
const L = "spiffe://hanzo.ai/lux-k8s/lux/";
const svc = (src: string, dst: string, port: number) => ({ source: { spiffe_id: src }, destination: { spiffe_id: dst, port } });
const op = (roles: string[], service: string, action: string, mfa: boolean, incident?: string) => ({
  operator: { subject: "alice@hanzo.ai", roles, mfa, ...(incident !== undefined ? { incident } : {}) },
  target: { service, action },
});

let ce: ConsoleEngine;
let browser: Browser;
let page: Page;
let mesh: Awaited<ReturnType<typeof startMeshMetrics>>;
let deadAgent: string;

beforeAll(async () => {
  mesh = await startMeshMetrics([
    { cluster: "lux-k8s", up: true },
    { cluster: "zoo-k8s", up: false },
  ]);
  deadAgent = `http://127.0.0.1:${await closedPort()}/metrics`;
  ce = await startConsoleEngine({ meshMetrics: [mesh.url, deadAgent] });
  await ce.engine.state.putIncident("INC-7", { description: "postgres failover" }, "test");
  await evaluate(ce, [
    ...Array.from({ length: 3 }, () => svc(H + "gateway", H + "postgres", 5432)),
    ...Array.from({ length: 2 }, () => svc(H + "chat", H + "gateway", 4000)),
    svc(H + "iam", H + "redis", 6379),
    // denied, enforced: chat has no direct database access
    ...Array.from({ length: 2 }, () => svc(H + "chat", H + "postgres", 5432)),
    // lux is observed: allowed, and a would-be denial that is let through
    svc(L + "api", L + "db", 5432),
    ...Array.from({ length: 4 }, () => svc(L + "web", L + "db", 5432)),
    op(["sre"], "postgres", "write", true),
    op(["oncall"], "chat", "restart", true, "INC-7"),
    op(["oncall"], "chat", "restart", false, "INC-7"),
  ]);
  browser = await launchBrowser();
  page = await browser.newPage();
  await signIn(page, ce.url);
});

afterAll(async () => {
  await browser?.close();
  await ce?.close();
  await mesh?.close();
});

const PAGES: Array<[string, string, string]> = [
  ["overview", "/console", "Overview"],
  ["graph", "/console/graph", "Service graph"],
  ["audit", "/console/audit", "Audit trail"],
  ["policies", "/console/policies", "Policies"],
  ["policy", "/console/policies/hanzo-core-policy", "hanzo-core-policy"],
  ["diff", "/console/diff?policy=hanzo-core-policy", "Check a policy change"],
  ["rollout", "/console/rollout", "Rollout"],
  ["tests", "/console/tests", "Policy tests"],
  ["history", "/console/policies/hanzo-core-policy/history", "History of hanzo-core-policy"],
  ["suggest-form", "/console/rollout/suggest", "Suggest a rule"],
  ["replay-form", "/console/rollout/replay", "Replay a candidate"],
  ["incidents", "/console/incidents", "Incidents"],
];

describe("every page", () => {
  it.each(PAGES)("%s loads without console errors, passes axe and is screenshotted", async (name, path, heading) => {
    const before = browser.errors.length;
    const res = await page.goto(ce.url + path);
    expect(res?.status()).toBe(200);
    await expect.poll(() => page.getByRole("heading", { level: 1 }).first().textContent()).toContain(heading);
    if (name === "graph") await page.waitForSelector("#graph svg");
    const axe = await new AxeBuilder({ page }).analyze();
    const serious = axe.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
    expect(serious.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`)).toEqual([]);
    await screenshot(page, name);
    expect(browser.errors.slice(before)).toEqual([]);
  });
});

describe("overview", () => {
  it("refreshes its numbers in place while the page is open", async () => {
    await page.goto(ce.url + "/console");
    const hour = page.getByTestId("decisions-last-hour");
    const before = Number(/^(\d+)/.exec((await hour.textContent()) ?? "")?.[1]);
    await evaluate(ce, [svc(H + "gateway", H + "iam", 8000), svc(H + "gateway", H + "iam", 8000)]);
    // The page's script re-renders the cards from the same URL every 10 s; no reload.
    const url = page.url();
    await expect.poll(async () => Number(/^(\d+)/.exec((await hour.textContent()) ?? "")?.[1]), { timeout: 60_000, interval: 500 }).toBe(before + 2);
    expect(page.url()).toBe(url);
    expect(await page.getByTestId("decisions-per-second").textContent()).toMatch(/^\d+(\.\d+)?\/s$/);
  });
});

describe("overview: replicas and the mesh", () => {
  const replicaRows = () => page.locator("[data-testid=replicas] tbody tr");

  it("shows the policy version per replica and whether they agree, as GET /v1/replicas", async () => {
    await page.goto(ce.url + "/console");
    expect(await page.getByTestId("replicas-agree").textContent()).toBe("agree");
    expect(await replicaRows().count()).toBe(1);
    const mine = ce.engine.store.current()!.version;
    expect(await replicaRows().first().getAttribute("data-replica")).toBe("test");
    expect(await replicaRows().first().locator("code[title]").getAttribute("title")).toBe(mine);

    // A second replica on the same shared state, without the lux policy file: another version.
    const b = await startTestEngine({ state: ce.engine.db!, env: { ZT_REPLICA_ID: "test-b" } });
    try {
      const other = b.store.current()!.version;
      expect(other).not.toBe(mine);
      const shown = async () => Object.fromEntries(await replicaRows().evaluateAll((trs) => trs.map((t) => [t.getAttribute("data-replica"), t.querySelector("code[title]")?.getAttribute("title")])));
      await expect.poll(async () => (await page.reload(), await shown()), { timeout: 30_000, interval: 300 }).toEqual({ test: mine, "test-b": other });
      expect(await page.getByTestId("replicas-agree").textContent()).toBe("disagree");
      const api = await (await fetch(ce.url + "/v1/replicas", { headers: { authorization: `Bearer ${TOKEN}` } })).json();
      expect(api.agree).toBe(false);
      expect(Object.fromEntries(api.replicas.map((r: { id: string; policy_version: string }) => [r.id, r.policy_version]))).toEqual({ test: mine, "test-b": other });
      await screenshot(page, "overview-disagree");

      // The same file on replica b: the same set, the same version; the page says they agree.
      writeFileSync(join(b.policyDir, "lux-observe.yaml"), LUX_OBSERVE_POLICY);
      await expect.poll(() => b.store.current()!.version, { timeout: 30_000, interval: 100 }).toBe(mine);
      await expect.poll(async () => (await page.reload(), await page.getByTestId("replicas-agree").textContent()), { timeout: 30_000, interval: 300 }).toBe("agree");
    } finally {
      await b.dispose();
    }
    // A replica that stops cleanly leaves the list at once.
    await page.reload();
    expect(await replicaRows().count()).toBe(1);
  });

  it("shows the WireGuard peers the mesh agents report up, and an agent it cannot read", async () => {
    await page.goto(ce.url + "/console");
    expect(await page.getByTestId("mesh-peers-up").textContent()).toBe("1 of 2 up");
    const agents = page.getByTestId("mesh-agents").locator("li");
    expect(await agents.count()).toBe(2);
    const [live, dead] = await agents.allTextContents();
    expect(live).toContain(mesh.url);
    expect(live).toContain("lux-k8s up");
    expect(live).toContain("zoo-k8s down");
    expect(dead).toContain(deadAgent);
    expect(dead).toContain("not readable");
  });
});

describe("headers and assets", () => {
  it("every page has the CSP without unsafe-inline, and is not cached", async () => {
    expect(CONTENT_SECURITY_POLICY).not.toContain("unsafe-inline");
    expect(CONTENT_SECURITY_POLICY).not.toContain("'unsafe-eval'");
    for (const [, path] of PAGES) {
      const r = await page.request.get(ce.url + path);
      expect(r.headers()["content-security-policy"]).toBe(CONTENT_SECURITY_POLICY);
      expect(r.headers()["cache-control"]).toBe("no-store");
      expect(r.headers()["x-frame-options"]).toBe("DENY");
    }
  });

  it("serves assets under content-hashed names, cached for a year, gzipped on request", async () => {
    await page.goto(ce.url + "/console/graph");
    const srcs = await page.$$eval("script[src], link[rel=stylesheet]", (els) => els.map((e) => e.getAttribute("src") ?? e.getAttribute("href")));
    expect(srcs).toHaveLength(3);
    for (const src of srcs) {
      expect(src).toMatch(/^\/console\/assets\/[a-z]+\.[0-9a-f]{16}\.(js|css)$/);
      const r = await fetch(ce.url + src, { headers: { "accept-encoding": "gzip" } });
      expect(r.status).toBe(200);
      expect(r.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
      expect(r.headers.get("content-encoding")).toBe("gzip");
      const again = await fetch(ce.url + src, { headers: { "if-none-match": r.headers.get("etag") as string } });
      expect(again.status).toBe(304);
    }
    const viz = await page.$eval("#graph", (el) => el.getAttribute("data-viz"));
    expect(viz).toMatch(/^\/console\/assets\/viz\.[0-9a-f]{16}\.js$/);
    expect((await fetch(ce.url + "/console/assets/viz.0000000000000000.js")).status).toBe(404);
  });
});

describe("graph", () => {
  it("draws the expected services and edges, allows and denies apart", async () => {
    await page.goto(ce.url + "/console/graph");
    await page.waitForSelector("#graph svg");
    const titles = await page.$$eval("#graph svg g.node title", (ts) => ts.map((t) => t.textContent).sort());
    expect(titles).toEqual([H + "chat", H + "gateway", H + "iam", H + "postgres", H + "redis", L + "api", L + "db", L + "web"].sort());
    const edges = await page.$$eval("#graph svg g.edge title", (ts) => ts.map((t) => t.textContent?.replace("&#45;", "-")).sort());
    expect(edges).toEqual(
      [
        `${H}chat->${H}gateway`,
        `${H}chat->${H}postgres`,
        `${H}gateway->${H}iam`,
        `${H}gateway->${H}postgres`,
        `${H}iam->${H}redis`,
        `${L}api->${L}db`,
        `${L}web->${L}db`,
      ].sort(),
    );
    // Enforced denies are red, observe-only denies dashed orange (graphToDot's colours).
    const stroke = (src: string, dst: string) =>
      page.$eval(`#graph svg g.edge:has(title:text-is("${src}->${dst}")) path`, (p) => [p.getAttribute("stroke"), p.getAttribute("stroke-dasharray")]);
    expect((await stroke(H + "chat", H + "postgres"))[0]).toBe("red");
    expect(await stroke(L + "web", L + "db")).toEqual(["orange", "5,2"]);
    expect((await stroke(H + "gateway", H + "postgres"))[0]).toBe("black");
  });

  it("filters by namespace", async () => {
    await page.goto(ce.url + "/console/graph");
    await page.getByLabel("Namespace").selectOption("lux");
    await Promise.all([page.waitForURL(/namespace=lux/), page.getByRole("button", { name: "Show" }).click()]);
    await page.waitForSelector("#graph svg");
    const titles = await page.$$eval("#graph svg g.node title", (ts) => ts.map((t) => t.textContent).sort());
    expect(titles).toEqual([L + "api", L + "db", L + "web"]);
  });

  it("clicking an edge opens the audit browser filtered to that edge", async () => {
    await page.goto(ce.url + "/console/graph");
    await page.waitForSelector("#graph svg");
    // With the keyboard: the edge is a link.
    await page.locator(`#graph svg g.edge:has(title:text-is("${H}chat->${H}postgres")) a`).first().focus();
    await Promise.all([page.waitForURL(/\/console\/audit\?/), page.keyboard.press("Enter")]);
    const rows = page.locator("[data-testid=audit-results] tbody tr");
    await expect.poll(() => rows.count()).toBe(2);
    for (const text of await rows.allTextContents()) {
      expect(text).toContain(H + "chat");
      expect(text).toContain(H + "postgres");
      expect(text).toContain("DENY");
    }
  });
});

describe("audit browser", () => {
  it("a filter returns exactly the matching rows", async () => {
    await page.goto(ce.url + "/console/audit");
    await page.getByLabel("Source", { exact: true }).fill(L + "*");
    await page.getByLabel("Enforced").selectOption("false");
    await page.getByLabel("Decision").selectOption("DENY");
    await Promise.all([page.waitForURL(/enforced=false/), page.getByRole("button", { name: "Search" }).click()]);
    const rows = page.locator("[data-testid=audit-results] tbody tr");
    expect(await rows.count()).toBe(4);
    for (const text of await rows.allTextContents()) expect(text).toContain(L + "web");
  });

  it("filters by reason prefix, and an incident links to the decisions that referenced it", async () => {
    await page.goto(ce.url + "/console/audit?reason=" + encodeURIComponent("condition_failed:*"));
    const rows = page.locator("[data-testid=audit-results] tbody tr");
    expect(await rows.allTextContents()).toEqual([expect.stringContaining("condition_failed:requireMFA")]);
    await page.goto(ce.url + "/console/incidents");
    await Promise.all([page.waitForURL(/incident=INC-7/), page.getByRole("link", { name: "decisions that referenced INC-7" }).click()]);
    const texts = await rows.allTextContents();
    expect(texts).toHaveLength(2);
    for (const t of texts) expect(t).toContain("incident INC-7");
  });

  it("pages with the cursor, each record once", async () => {
    const ids: string[] = [];
    let pages = 0;
    let url: string | null = ce.url + "/console/audit?limit=10";
    while (url !== null) {
      await page.goto(url);
      pages++;
      ids.push(...(await page.locator("[data-testid=audit-results] tbody tr").evaluateAll((trs) => trs.map((t) => t.getAttribute("data-decision-id") as string))));
      const next = page.getByRole("link", { name: "Older records »" });
      url = (await next.count()) > 0 ? ce.url + (await next.getAttribute("href")) : null;
    }
    expect(pages).toBe(2);
    expect(ids).toHaveLength(18);
    expect(new Set(ids).size).toBe(18);
  });

  it("shows a record with its chain position, verified", async () => {
    await page.goto(ce.url + "/console/audit?subject=alice@hanzo.ai");
    await Promise.all([page.waitForURL(/\/console\/audit\/record\//), page.getByRole("link", { name: /^record / }).first().click()]);
    await expect.poll(() => page.getByText("This record's hash and its links check out.").count()).toBe(1);
    expect(await page.getByTestId("chain-seq").textContent()).toMatch(/^#\d+$/);
  });

  it("a record whose row was changed behind the trail's back shows the broken hash", async () => {
    const [victim] = await evaluate(ce, [svc(H + "iam", H + "postgres", 5432)]);
    const su = postgres((ce.audit.connections.superuser as string).replace(/\/postgres$/, "/zt"), { onnotice: () => undefined });
    try {
      await su.begin(async (tx) => {
        await tx`SET LOCAL session_replication_role = replica`;
        await tx`UPDATE zt_audit.decisions SET decision = 'DENY', reason = 'default_deny' WHERE decision_id = ${victim!.decision_id}::uuid`;
      });
    } finally {
      await su.end();
    }
    await page.goto(`${ce.url}/console/audit/record/${victim!.decision_id}`);
    await expect.poll(() => page.getByRole("alert").textContent()).toContain("do not match its hash");
  });

  it("exports the filtered records as NDJSON and CSV", async () => {
    const q = "source=" + encodeURIComponent(L + "web");
    const nd = await page.request.get(`${ce.url}/console/audit/export?format=ndjson&${q}`);
    expect(nd.status()).toBe(200);
    const lines = (await nd.text()).trim().split("\n").map((l) => JSON.parse(l));
    expect(lines).toHaveLength(4);
    expect(lines.every((r) => r.source.spiffe_id === L + "web" && r.enforced === false)).toBe(true);
    const csv = await page.request.get(`${ce.url}/console/audit/export?format=csv&${q}`);
    const rows = (await csv.text()).trim().split("\r\n");
    expect(rows[0]).toMatch(/^timestamp,decision,enforced,source,/);
    expect(rows).toHaveLength(5);
  });

  it("an export pages through the whole result: every record once, newest first", async () => {
    const q = parseAuditQuery({});
    if (!q.ok) throw new Error(q.error.message);
    const text = await new Response(exportStream(ce.audit.query, q.value, "ndjson", 3)).text();
    const ids = text.trim().split("\n").map((l) => (JSON.parse(l) as { decision_id: string; timestamp: string }));
    const api = await queryAudit(ce.audit.query, { ...q.value, limit: 1000 });
    expect(ids.map((r) => r.decision_id)).toEqual(api.records.map((r) => r.decision_id));
    expect(new Set(ids.map((r) => r.decision_id)).size).toBe(ids.length);
  });
});

describe("writes", () => {
  it("refuses a write without the CSRF token", async () => {
    const r = await page.request.post(`${ce.url}/console/incidents`, { form: { id: "INC-9", ttl: "" } });
    expect(r.status()).toBe(403);
    expect((await r.json()).error.code).toBe("csrf_token_invalid");
    expect(ce.engine.incidents.get("INC-9")).toBeNull();
  });

  it("declares and closes an incident from the page", async () => {
    await page.goto(ce.url + "/console/incidents");
    await page.getByLabel("Id").fill("INC-8");
    await page.getByLabel("Description").fill("redis latency");
    await Promise.all([page.waitForURL(/done=opened/), page.getByRole("button", { name: "Declare" }).click()]);
    expect(ce.engine.incidents.isActive("INC-8")).toBe(true);
    expect(ce.engine.incidents.get("INC-8")?.created_by).toBe("console:admin-token");
    await Promise.all([page.waitForURL(/done=closed/), page.getByRole("button", { name: "close INC-8" }).click()]);
    expect(ce.engine.incidents.get("INC-8")).toBeNull();
  });

  it("shows exactly what a change would break, before it is made", async () => {
    await page.goto(ce.url + "/console/policies/hanzo-core-policy");
    await Promise.all([page.waitForURL(/\/console\/diff\?policy=/), page.getByRole("link", { name: "Check a change to this policy" }).click()]);
    const box = page.getByLabel("Changed policies");
    const text = await box.inputValue();
    expect(text).toContain("kind: ServiceAccessPolicy");
    // Drop the chat rule: chat loses the gateway, and nothing else changes.
    await box.fill(text.replace(/ {4}# Chat can reach Gateway[\s\S]*?ports: \[4000\]\n/, ""));
    await Promise.all([page.waitForLoadState("load"), page.getByRole("button", { name: "Show what changes" }).click()]);
    const lost = page.getByTestId("diff-service-allow_to_deny");
    await expect.poll(() => lost.locator("tbody tr").count()).toBe(1);
    const row = (await lost.locator("tbody tr").textContent()) ?? "";
    expect(row).toContain(H + "chat");
    expect(row).toContain(H + "gateway:4000");
    expect(await page.getByTestId("diff-service-deny_to_allow").count()).toBe(0);
    expect(ce.engine.store.current()?.set.policies.find((p) => p.name === "hanzo-core-policy")?.rules).toHaveLength(3);
  });

  it("compares two versions of a policy exactly, and a rollback from the page changes the served version", async () => {
    const put = async (text: string) => {
      const r = await fetch(ce.url + "/v1/policies/cache-access", { method: "PUT", body: text, headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/yaml" } });
      expect(r.status).toBeLessThan(300);
      return ((await r.json()) as { version: string }).version;
    };
    const errorsBefore = browser.errors.length;
    const v1 = await put(servicePolicy("cache-access", "chat", "redis", 6379));
    const v2 = await put(servicePolicy("cache-access", "gateway", "redis", 6379));
    expect(v2).not.toBe(v1);
    const decide = async () => (await evaluate(ce, [svc(H + "chat", H + "redis", 6379)]))[0]!.decision;
    expect(await decide()).toBe("DENY");

    await page.goto(ce.url + "/console/policies/cache-access");
    await Promise.all([page.waitForURL(/\/history$/), page.getByRole("link", { name: /^History/ }).click()]);
    expect(await page.locator("[data-testid=history] tbody tr").evaluateAll((trs) => trs.map((t) => t.getAttribute("data-seq")))).toEqual(["2", "1"]);
    // The exact diff between the two versions: chat loses redis, gateway gains it.
    await page.getByLabel("From version", { exact: true }).selectOption("1");
    await page.getByLabel("To version", { exact: true }).selectOption("2");
    await Promise.all([page.waitForURL(/from=1&to=2/), page.getByRole("button", { name: "Compare" }).click()]);
    const lost = page.getByTestId("diff-service-allow_to_deny").locator("tbody tr");
    const gained = page.getByTestId("diff-service-deny_to_allow").locator("tbody tr");
    expect(await lost.count()).toBe(1);
    expect(await lost.first().textContent()).toContain(H + "chat");
    expect(await gained.count()).toBe(1);
    expect(await gained.first().textContent()).toContain(H + "gateway");
    const axe = await new AxeBuilder({ page }).analyze();
    expect(axe.violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => v.id)).toEqual([]);
    await screenshot(page, "policy-history");

    // Roll back to version 1 in the UI: the engine serves version 1's set again.
    await Promise.all([page.waitForURL(/done=rolled-back/), page.getByRole("button", { name: "roll cache-access back to version 1" }).click()]);
    expect(await page.getByTestId("rolled-back-to").textContent()).toBe("1");
    expect(ce.engine.store.current()!.version).toBe(v1);
    const served = (await (await fetch(ce.url + "/v1/policies", { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as { version: string };
    expect(served.version).toBe(v1);
    expect(await decide()).toBe("ALLOW");
    const history = (await (await fetch(ce.url + "/v1/policies/cache-access/history", { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as { versions: Array<{ revision: number; action: string; rollback_of: number; author: string }> };
    expect(history.versions[0]).toMatchObject({ revision: 3, action: "rollback", rollback_of: 1, author: "console:admin-token" });
    expect(browser.errors.slice(errorsBefore)).toEqual([]);
  });

  it("a rollback from a page that is out of date is refused, and nothing changes", async () => {
    await page.goto(ce.url + "/console/policies/cache-access/history");
    // Someone else writes meanwhile.
    const r = await fetch(ce.url + "/v1/policies/cache-access", { method: "PUT", body: servicePolicy("cache-access", "iam", "redis", 6380), headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/yaml" } });
    expect(r.status).toBe(200);
    const now = ce.engine.store.current()!.version;
    await page.getByRole("button", { name: "roll cache-access back to version 2" }).click();
    await expect.poll(() => page.getByTestId("rollback-refused").textContent()).toContain("changed since this page was loaded");
    expect(ce.engine.store.current()!.version).toBe(now);
    // A rollback without the CSRF token is refused too.
    const forged = await page.request.post(`${ce.url}/console/policies/cache-access/rollback`, { form: { to: "1" } });
    expect(forged.status()).toBe(403);
    expect(ce.engine.store.current()!.version).toBe(now);
  });

  it("suggests a rule from the observed denials, and replays it over the same window", async () => {
    const before = browser.errors.length;
    await page.goto(ce.url + "/console/rollout");
    await Promise.all([page.waitForURL(/\/console\/rollout\/suggest$/), page.getByRole("link", { name: "Suggest a rule from observed traffic" }).click()]);
    await Promise.all([page.waitForURL(/run=1/), page.getByRole("button", { name: "Suggest" }).click()]);
    const yaml = (await page.getByLabel("The suggested policy").textContent()) ?? "";
    expect(yaml).toContain("kind: ServiceAccessPolicy");
    expect(yaml).toContain(L + "web");
    expect(yaml).toContain(L + "db");
    expect(await page.getByLabel("Candidate policies").inputValue()).toContain(L + "web");
    const axe = await new AxeBuilder({ page }).analyze();
    expect(axe.violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => v.id)).toEqual([]);
    await screenshot(page, "suggest");

    await Promise.all([page.waitForURL(/\/console\/rollout\/replay$/), page.getByRole("button", { name: "Replay" }).click()]);
    await expect.poll(() => page.getByTestId("replay-report").count()).toBe(1);
    const opened = page.getByTestId("replay-service-deny_to_allow").locator("tbody tr", { hasText: L + "web" });
    expect(await opened.count()).toBe(1);
    const cells = await opened.locator("td").allTextContents();
    expect(cells.slice(0, 4)).toEqual([L + "web", L + "db", "5432", "4"]);
    // What the suggestion opens is all it changes: no recorded allow of lux becomes a denial.
    expect(await page.getByTestId("replay-service-allow_to_deny").locator("tbody tr", { hasText: L }).count()).toBe(0);
    expect(Number(await page.getByTestId("replay-changed").textContent())).toBeGreaterThanOrEqual(4);
    const replayAxe = await new AxeBuilder({ page }).analyze();
    expect(replayAxe.violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => v.id)).toEqual([]);
    await screenshot(page, "replay");
    // Nothing was activated.
    expect(ce.engine.store.current()!.set.policies.map((p) => p.name)).not.toContain("suggested");
    expect(browser.errors.slice(before)).toEqual([]);
  });

  it("a candidate that does not validate is refused with its line and column", async () => {
    await page.goto(ce.url + "/console/rollout/replay");
    await page.getByLabel("Candidate policies").fill("apiVersion: zt.hanzo.ai/v1\nkind: ServiceAccessPolicy\nmetadata:\n  name: broken\nspec:\n  rules: 7\n");
    await page.getByRole("button", { name: "Replay" }).click();
    await expect.poll(() => page.getByRole("alert").textContent()).toMatch(/does not validate[\s\S]*6:\d+:/);
  });

  it("sets per-destination modes and canaries from the page, as PUT /v1/rollout does", async () => {
    const rollout = async () => (await (await fetch(ce.url + "/v1/rollout", { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as { settings: { revision: number; destinations: unknown[]; canary: unknown[]; author: string }; canary: Array<{ destination: string; enforcing: string[] }> };
    const webToDb = async () => (await evaluate(ce, [svc(L + "web", L + "db", 5432)]))[0]!;
    expect(await webToDb()).toMatchObject({ decision: "DENY", enforced: false });

    await page.goto(ce.url + "/console/rollout");
    await page.getByLabel("Per-destination row 1 destination").fill(L + "**");
    await page.getByLabel("Per-destination row 1 mode").selectOption("enforce");
    await page.getByLabel("Canary row 1 destination").fill(H + "postgres");
    await page.getByLabel("Canary row 1 replicas").fill("1");
    await page.getByLabel("Why (kept with the change)").fill("lux enforced");
    await Promise.all([page.waitForURL(/done=saved/), page.getByRole("button", { name: "Save rollout settings" }).click()]);
    const r = await rollout();
    expect(r.settings).toMatchObject({ destinations: [{ destination: L + "**", mode: "enforce" }], canary: [{ destination: H + "postgres", replicas: 1 }], author: "console:admin-token" });
    expect(r.canary).toEqual([expect.objectContaining({ destination: H + "postgres", enforcing: ["test"] })]);
    expect(await page.getByTestId("canaries").locator("tbody tr").first().textContent()).toContain("test");
    // The engine enforces lux now.
    expect(await webToDb()).toMatchObject({ decision: "DENY", enforced: true });
    await screenshot(page, "rollout-settings");

    // A change made meanwhile (through the API) is not overwritten by a stale form.
    await page.goto(ce.url + "/console/rollout");
    const put = await fetch(ce.url + "/v1/rollout", { method: "PUT", headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json", "if-match": `"rollout-${r.settings.revision}"` }, body: JSON.stringify({ mode: null, destinations: [{ destination: L + "**", mode: "observe" }] }) });
    expect(put.status).toBe(200);
    await page.getByLabel("Per-destination row 2 destination").fill(H + "redis");
    await page.getByRole("button", { name: "Save rollout settings" }).click();
    await expect.poll(() => page.getByTestId("settings-error").textContent()).toContain("changed meanwhile");
    expect((await rollout()).settings.destinations).toEqual([{ destination: L + "**", mode: "observe" }]);
    // The form now shows what is saved.
    expect(await page.getByLabel("Per-destination row 1 mode").inputValue()).toBe("observe");

    // A bad pattern is refused with its row, and nothing is written.
    await page.goto(ce.url + "/console/rollout");
    await page.getByLabel("Per-destination row 2 destination").fill("not-a-spiffe-id");
    await page.getByRole("button", { name: "Save rollout settings" }).click();
    await expect.poll(() => page.getByTestId("settings-error").textContent()).toContain("Per-destination row 2 (destination)");
    expect((await rollout()).settings.destinations).toEqual([{ destination: L + "**", mode: "observe" }]);

    // Back to no settings: the policies' own rollout again.
    await page.goto(ce.url + "/console/rollout");
    await page.getByLabel("Per-destination row 1 destination").fill("");
    await Promise.all([page.waitForURL(/done=saved/), page.getByRole("button", { name: "Save rollout settings" }).click()]);
    expect((await rollout()).settings).toMatchObject({ destinations: [], canary: [] });
    expect(await webToDb()).toMatchObject({ decision: "DENY", enforced: false });
  });

  it("runs policy tests against the active module", async () => {
    await page.goto(ce.url + "/console/tests");
    await Promise.all([page.waitForLoadState("load"), page.getByRole("button", { name: "Run tests" }).click()]);
    await expect.poll(() => page.getByTestId("tests-summary").textContent()).toContain("PASS 1/1");
  });
});

describe("without a session", () => {
  it("pages redirect to the sign-in page, writes are refused", async () => {
    const r = await fetch(`${ce.url}/console/audit`, { redirect: "manual" });
    expect(r.status).toBe(303);
    expect(r.headers.get("location")).toBe("/console/login?next=%2Fconsole%2Faudit");
    const w = await fetch(`${ce.url}/console/incidents`, { method: "POST", body: new URLSearchParams({ id: "X" }) });
    expect(w.status).toBe(401);
    expect(ce.engine.incidents.get("X")).toBeNull();
  });

  it("signing out ends the session; a wrong token does not sign in", async () => {
    await page.goto(ce.url + "/console");
    await Promise.all([page.waitForURL(/\/console\/login/), page.getByRole("button", { name: "Sign out" }).click()]);
    await page.goto(ce.url + "/console/policies");
    expect(new URL(page.url()).pathname).toBe("/console/login");
    const axe = await new AxeBuilder({ page }).analyze();
    expect(axe.violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => v.id)).toEqual([]);
    await screenshot(page, "login");
    await page.getByLabel("Admin token").fill("not-the-token-at-all");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect.poll(() => page.getByRole("alert").textContent()).toContain("not the admin token");
    await signIn(page, ce.url);
  });
});
