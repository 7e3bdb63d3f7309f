import { createHash, X509Certificate } from "node:crypto";
// How the tests start the distribution's Chromium with playwright-core: headless, no sandbox
// (root in CI), nothing that phones home, and a fresh profile directory per launch.

/** The command-line flags every browser test passes, before its own. */
export const CHROMIUM_ARGS: readonly string[] = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** The flag that makes Chromium trust exactly these test certificates (by public key), as a real deployment's would be trusted. */
export function trustedCertificates(pems: readonly string[]): string {
  const spki = (pem: string): string => createHash("sha256").update(new X509Certificate(pem).publicKey.export({ type: "spki", format: "der" })).digest("base64");
  return `--ignore-certificate-errors-spki-list=${pems.map(spki).join(",")}`;
}
