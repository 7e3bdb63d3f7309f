// Engine configuration from the environment: defaults that make `npm start` work on a fresh
// machine, and every bad value reported at once.
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../host/common/config.js";

describe("loadConfig", () => {
  it("defaults: ports 8054/8055, ./policies, ./data, enforce, loopback without an SVID", () => {
    const r = loadConfig({}, "/srv/zt");
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.config).toMatchObject({ host: "127.0.0.1", port: 8054, healthPort: 8055, mode: "enforce", policyPath: "/srv/zt/policies", dataDir: "/srv/zt/data", auditWaitMs: 1000 });
  });

  it("listens on every interface when a workload identity is configured", () => {
    for (const env of [{ ZT_SPIRE_SOCKET: "/run/spire/sockets/agent.sock" }, { ZT_TLS_CERT: "/etc/zt/tls.crt" }]) {
      const r = loadConfig(env, "/srv/zt");
      expect(r.ok && r.config.host).toBe("0.0.0.0");
    }
    const explicit = loadConfig({ ZT_SPIRE_SOCKET: "/s", ZT_HOST: "10.0.0.1" }, "/srv/zt");
    expect(explicit.ok && explicit.config.host).toBe("10.0.0.1");
  });

  it("reports every bad value at once", () => {
    const r = loadConfig({ ZT_PORT: "http", ZT_MODE: "audit", ZT_AUDIT_BACKPRESSURE_MS: "-1" }, "/srv/zt");
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.errors.length).toBe(3);
      expect(r.errors.join("\n")).toMatch(/ZT_PORT/);
      expect(r.errors.join("\n")).toMatch(/ZT_MODE/);
      expect(r.errors.join("\n")).toMatch(/ZT_AUDIT_BACKPRESSURE_MS/);
    }
  });

  it("reads the mesh agents' metrics URLs for the console, refusing what is not one or carries credentials", () => {
    const ok = loadConfig({ ZT_CONSOLE_MESH_METRICS: "http://gw-0.zt-mesh:9586/metrics, https://gw-1:9586/metrics" }, "/srv/zt");
    expect(ok.ok && ok.config.consoleMeshMetrics).toEqual(["http://gw-0.zt-mesh:9586/metrics", "https://gw-1:9586/metrics"]);
    expect(loadConfig({}, "/srv/zt")).toMatchObject({ ok: true, config: { consoleMeshMetrics: [] } });
    const bad = loadConfig({ ZT_CONSOLE_MESH_METRICS: "gw-0:9586 ftp://x/metrics http://u:secret@gw/metrics" }, "/srv/zt");
    expect(bad.ok).toBe(false);
    if (!bad.ok) {
      expect(bad.errors).toHaveLength(3);
      expect(bad.errors.join("\n")).not.toContain("secret");
    }
  });

  it("reads the audience of the access proxy's assertions for the console, a host name or address", () => {
    expect(loadConfig({ ZT_CONSOLE_PROXY_AUDIENCE: "zt-engine.zt-system.svc" }, "/srv/zt")).toMatchObject({ ok: true, config: { consoleProxyAudience: "zt-engine.zt-system.svc" } });
    expect(loadConfig({}, "/srv/zt")).toMatchObject({ ok: true, config: { consoleProxyAudience: null } });
    const bad = loadConfig({ ZT_CONSOLE_PROXY_AUDIENCE: "https://zt-engine/console" }, "/srv/zt");
    expect(bad.ok).toBe(false);
  });
});
