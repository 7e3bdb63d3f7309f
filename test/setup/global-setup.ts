// vitest's global setup (vitest.config.ts): runs once before any test file, for `npm test` and
// for `npx vitest run <file>` alike. It installs the system packages the tests need, or says
// what is missing and how to get it.
import { ensureSystemPackages } from "./system-packages.js";

export default function setup(): void {
  ensureSystemPackages();
}
