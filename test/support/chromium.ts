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
