// A real browser through the proxy: Chromium (the distribution's, driven by playwright-core) signs
// in at the real IdP, reaches the web console upstream over mTLS, is refused where the policy says
// so, steps up to MFA when a route needs it, chooses an incident, and signs out everywhere.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHROMIUM_ARGS, trustedCertificates } from "../support/chromium.js";
import { requireProgram } from "../support/programs.js";
import { ADMIN, APP, ENGINE_ID, type ProxyHarness, startProxyHarness } from "./harness.js";
import { OTP, USERS } from "./idp.js";

let h: ProxyHarness;
let context: BrowserContext;
let userDataDir: string;

beforeAll(async () => {
  const executablePath = requireProgram("chromium");
  h = await startProxyHarness();
  userDataDir = mkdtempSync(join(tmpdir(), `zt-proxy-chromium-${process.pid}-`));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: [
      ...CHROMIUM_ARGS,
      // The route hosts are names of the proxy on this machine.
      "--host-resolver-rules=MAP *.zt.test 127.0.0.1",
      trustedCertificates([h.publicCertPem, h.idpCertPem]),
    ],
  });
});
afterAll(async () => {
  await context?.close();
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  await h?.dispose();
});

const url = (host: string, path: string): string => `${h.origin(host)}${path}`;

/** The IdP's sign-in page: user and password, then the one-time code when it asks for one. */
async function signInAtIdp(page: Page, user: string): Promise<void> {
  await page.waitForURL((u) => u.origin === h.idp.issuer);
  await page.getByLabel("User").fill(user);
  await page.getByLabel("Password").fill(USERS[user]!.password);
  await page.locator("#submit").click();
}

async function otpAtIdp(page: Page): Promise<void> {
  await page.getByLabel("One-time code").fill(OTP);
  await page.locator("#submit").click();
}

async function json(page: Page): Promise<Record<string, unknown>> {
  return JSON.parse((await page.locator("body").innerText()).trim()) as Record<string, unknown>;
}

async function fresh(): Promise<Page> {
  await context.clearCookies();
  return context.newPage();
}

describe("Chromium through the access proxy", () => {
  it("signs in at the IdP and reaches the web console over mTLS with the assertion", async () => {
    const page = await fresh();
    await page.goto(url(APP, "/logs/today?lines=3"));
    await signInAtIdp(page, "sre");
    await page.waitForURL(url(APP, "/logs/today?lines=3"));
    const body = await json(page);
    expect(body).toMatchObject({ path: "/logs/today?lines=3", peer: ENGINE_ID, assertion_error: null, claims: { sub: "sre@hanzo.test", roles: ["sre"] } });
    const cookies = await context.cookies(h.origin(APP));
    const session = cookies.find((c) => c.name === "__Host-zt-session")!;
    expect(session).toMatchObject({ secure: true, httpOnly: true, sameSite: "Lax", path: "/" });
    await page.close();
  });

  it("is refused where the policy says so, with a page that names the reason", async () => {
    const page = await fresh();
    const res = await page.goto(url(ADMIN, "/tables"));
    expect(res!.status()).toBe(200);
    await signInAtIdp(page, "dev");
    await page.waitForURL(url(ADMIN, "/tables"));
    await expect(page.locator("h1").innerText()).resolves.toBe("Access denied");
    await expect(page.locator("body").innerText()).resolves.toContain("default_deny");
    expect(h.upstream.seen.some((s) => s.path === "/tables")).toBe(false);
    await page.close();
  });

  it("steps up to MFA: back to the IdP for a second factor, then an incident, then through", async () => {
    const page = await fresh();
    await page.goto(url(APP, "/dashboards/db"));
    await signInAtIdp(page, "oncall");
    // The route needs MFA: the proxy sent the browser back to the IdP, which asks again, with a code.
    await page.waitForURL((u) => u.origin === h.idp.issuer);
    await signInAtIdp(page, "oncall");
    await otpAtIdp(page);
    await page.waitForURL(url(APP, "/dashboards/db"));
    await expect(page.locator("body").innerText()).resolves.toContain("condition_failed:requireIncident");
    await h.engine.state.putIncident("INC-77", { description: "browser test" }, "test");
    await page.goto(url(APP, "/.zt/incident"));
    await page.getByLabel("Incident id").fill("INC-77");
    await page.getByRole("button", { name: "Use this incident" }).click();
    await expect(page.locator("body").innerText()).resolves.toContain("INC-77");
    await page.goto(url(APP, "/dashboards/db"));
    expect(await json(page)).toMatchObject({ claims: { sub: "oncall@hanzo.test", amr: ["pwd", "otp"] } });
    await page.close();
  });

  it("signs out: the session ends at the proxy and at the IdP", async () => {
    const page = await fresh();
    await page.goto(url(APP, "/logs/a"));
    await signInAtIdp(page, "sre");
    await page.waitForURL(url(APP, "/logs/a"));
    await page.goto(url(APP, "/.zt/logout"));
    await page.getByRole("button", { name: "Sign out" }).click();
    // RP-initiated logout: the IdP asks, then comes back to the proxy's signed-out page.
    await page.waitForURL((u) => u.origin === h.idp.issuer);
    await page.locator("#logout-yes").click();
    await page.waitForURL(url(APP, "/.zt/signed-out"));
    await expect(page.locator("h1").innerText()).resolves.toBe("Signed out");
    // Both sessions are gone: the next visit asks for the password again.
    await page.goto(url(APP, "/logs/a"));
    await page.waitForURL((u) => u.origin === h.idp.issuer);
    expect(await page.getByLabel("Password").isVisible()).toBe(true);
    await page.close();
  });
});
