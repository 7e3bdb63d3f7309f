// Sign-in to the console through the operator access proxy, for real: zt serve's extensions
// (host/cli/extensions.ts: rollout, console, proxy) on an engine with mTLS, a real OpenID Provider,
// Chromium. The console is an AccessRoute upstream (the engine itself, over mTLS with its SVID);
// the proxy signs the operator in, decides with the operator policies, and forwards with its
// signed assertion, which the console verifies with the proxy's keys. zt-admin writes; any
// other operator reads.
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionKeys } from "../../host/console/session.js";
import { TOKEN } from "../http/harness.js";
import { trustedCertificates } from "../support/chromium.js";
import { CONSOLE_HOST, ENGINE_ID, type ProxyHarness, startProxyHarness } from "../proxy/harness.js";
import { USERS } from "../proxy/idp.js";
import { type Browser, launchBrowser, screenshot } from "./harness.js";

const CONSOLE_POLICY = `apiVersion: zt.hanzo.ai/v1
kind: OperatorAccessPolicy
metadata:
  name: console-access
spec:
  rules:
    # The proxy lets both through; the console itself keeps writes to zt-admin.
    - role: sre
      targets:
        - service: zt-console
          actions: [read, write]
    - role: zt-admin
      targets:
        - service: zt-console
          actions: [read, write]
`;

let h: ProxyHarness;
let browser: Browser;

beforeAll(async () => {
  h = await startProxyHarness({
    policies: { "console-access.yaml": CONSOLE_POLICY },
    routes: ({ enginePort }) => `apiVersion: zt.hanzo.ai/v1
kind: AccessRoute
metadata: {name: zt-console}
spec:
  from: https://${CONSOLE_HOST}
  service: zt-console
  to: https://127.0.0.1:${enginePort}
  upstream:
    spiffeId: ${ENGINE_ID}
`,
    // The assertion's audience is the upstream's host in the route's to: URL.
    serveExtensions: { ZT_CONSOLE_PROXY_AUDIENCE: "127.0.0.1" },
  });
  browser = await launchBrowser(["--host-resolver-rules=MAP *.zt.test 127.0.0.1", trustedCertificates([h.publicCertPem, h.idpCertPem])]);
});

afterAll(async () => {
  await browser?.close();
  await h?.dispose();
});

/** The console's own errors since `before` (the IdP's pages are not the console's). */
const consoleErrors = (before: number): string[] => browser.errors.slice(before).filter((e) => e.startsWith(h.origin(CONSOLE_HOST)));

const consoleUrl = (path: string): string => `${h.origin(CONSOLE_HOST)}${path}`;

async function signedIn(user: string, path: string): Promise<Page> {
  await browser.context.clearCookies();
  const page = await browser.newPage();
  await page.goto(consoleUrl(path));
  await page.waitForURL((u) => u.origin === h.idp.issuer);
  await page.getByLabel("User").fill(user);
  await page.getByLabel("Password").fill(USERS[user]!.password);
  await page.locator("#submit").click();
  await page.waitForURL(consoleUrl(path));
  return page;
}

describe("the console behind the access proxy", () => {
  it("an operator signed in at the identity provider reads, and may not write", async () => {
    const before = browser.errors.length;
    const page = await signedIn("sre", "/console");
    await expect.poll(() => page.getByRole("heading", { level: 1 }).first().textContent()).toBe("Overview");
    expect(await page.locator("header .who").textContent()).toContain("sre@hanzo.test");
    expect(await page.locator("header .who").textContent()).toContain("reader");
    // The proxy signs out (here and at the identity provider); the console has no cookie of its own.
    expect(await page.getByRole("link", { name: "Sign out" }).getAttribute("href")).toBe("/.zt/logout");
    expect((await browser.context.cookies(h.origin(CONSOLE_HOST))).map((c) => c.name)).not.toContain("__Host-zt-console");
    await page.goto(consoleUrl("/console/incidents"));
    expect(await page.getByRole("button", { name: "Declare" }).count()).toBe(0);
    await screenshot(page, "proxy-reader");
    expect(consoleErrors(before)).toEqual([]);
    // Even with the right CSRF token, a reader's write is refused by the console.
    const csrf = new SessionKeys(TOKEN).csrfToken({ sid: new SessionKeys(TOKEN).proxySid("sre@hanzo.test"), sub: "sre@hanzo.test", role: "reader", exp: 0 });
    const r = await page.evaluate(async (token) => {
      const res = await fetch("/console/incidents", { method: "POST", headers: { "x-csrf-token": token }, body: new URLSearchParams({ id: "INC-R", ttl: "" }) });
      return { status: res.status, body: await res.text() };
    }, csrf);
    expect(r.status).toBe(403);
    expect(JSON.parse(r.body).error.code).toBe("not_admin");
    expect(h.engine.incidents.get("INC-R")).toBeNull();
    await page.close();
  });

  it("zt-admin writes: an incident declared and closed through the proxy, with the CSRF token", async () => {
    const before = browser.errors.length;
    const page = await signedIn("zt-admin", "/console/incidents");
    expect(await page.locator("header .who").textContent()).toContain("zt-admin");
    await page.getByLabel("Id", { exact: true }).fill("INC-P1");
    await Promise.all([page.waitForURL(/done=opened/), page.getByRole("button", { name: "Declare" }).click()]);
    expect(h.engine.incidents.isActive("INC-P1")).toBe(true);
    expect(h.engine.incidents.get("INC-P1")?.created_by).toBe("console:admin@hanzo.test");
    expect(consoleErrors(before)).toEqual([]);
    // Without the token the same write is refused.
    const forged = await page.evaluate(async () => (await fetch("/console/incidents/INC-P1/close", { method: "POST", body: new URLSearchParams({}) })).status);
    expect(forged).toBe(403);
    expect(h.engine.incidents.isActive("INC-P1")).toBe(true);
    await Promise.all([page.waitForURL(/done=closed/), page.getByRole("button", { name: "close INC-P1" }).click()]);
    expect(h.engine.incidents.get("INC-P1")).toBeNull();
    await screenshot(page, "proxy-admin");
    await page.close();
  });
});
