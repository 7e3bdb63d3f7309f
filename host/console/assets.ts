// The console's static files, served under content-hashed names with a year's immutable
// caching: a new build changes the name, so a browser never runs a stale script against a
// new page. Everything is read (and gzipped) once at start: the stylesheet, the client
// scripts compiled by tsc from host/console/client/, and Graphviz (@viz-js/viz's browser
// build) from node_modules.
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { gzip } from "node:zlib";
import { BASE } from "./paths.js";
import { CONSOLE_CSS } from "./styles.js";

const gzipAsync = promisify(gzip);

/** The files pages refer to, by their logical name. */
export type AssetName = "console.css" | "console.js" | "graph.js" | "viz.js";

export interface Asset {
  /** e.g. `graph.3f2a9b1c4d5e.js` */
  readonly file: string;
  readonly type: string;
  readonly body: Buffer;
  readonly gzipped: Buffer;
  readonly etag: string;
}

export interface Assets {
  /** The URL path of a file (hashed name), for pages. */
  url(name: AssetName): string;
  /** The file a request names, or undefined. */
  byFile(file: string): Asset | undefined;
}

const TYPES: Record<string, string> = { css: "text/css; charset=utf-8", js: "text/javascript; charset=utf-8" };

async function asset(name: string, body: Buffer): Promise<Asset> {
  const digest = createHash("sha256").update(body).digest("hex");
  const dot = name.lastIndexOf(".");
  const ext = name.slice(dot + 1);
  return {
    file: `${name.slice(0, dot)}.${digest.slice(0, 16)}.${ext}`,
    type: TYPES[ext] ?? "application/octet-stream",
    body,
    gzipped: await gzipAsync(body, { level: 9 }),
    etag: `"${digest}"`,
  };
}

/**
 * A client script: the tsc output next to this module (dist/host/console/client/*.js), or,
 * when running from the TypeScript sources (tests, `tsx`), the same file transpiled here with
 * the compiler tsc uses. The source map reference is dropped: the maps are not served.
 */
async function clientScript(base: string): Promise<Buffer> {
  const here = dirname(fileURLToPath(import.meta.url));
  const built = join(here, "client", `${base}.js`);
  let text: string;
  if (existsSync(built)) {
    text = await readFile(built, "utf8");
  } else {
    const source = join(here, "client", `${base}.ts`);
    const ts = (await import("typescript")).default;
    const out = ts.transpileModule(await readFile(source, "utf8"), {
      fileName: source,
      compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ES2022, verbatimModuleSyntax: true },
    });
    text = out.outputText;
  }
  return Buffer.from(text.replace(/^\/\/# sourceMappingURL=.*$/m, ""), "utf8");
}

function vizFile(): string {
  // The package's `require` entry is dist/viz.cjs; the ES module build for browsers sits beside it.
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve("@viz-js/viz")), "viz.js");
}

export async function loadAssets(): Promise<Assets> {
  const list: Array<[AssetName, Asset]> = await Promise.all([
    asset("console.css", Buffer.from(CONSOLE_CSS, "utf8")).then((a): [AssetName, Asset] => ["console.css", a]),
    clientScript("console").then((b) => asset("console.js", b)).then((a): [AssetName, Asset] => ["console.js", a]),
    clientScript("graph").then((b) => asset("graph.js", b)).then((a): [AssetName, Asset] => ["graph.js", a]),
    readFile(vizFile()).then((b) => asset("viz.js", b)).then((a): [AssetName, Asset] => ["viz.js", a]),
  ]);
  const byName = new Map(list);
  const byFile = new Map(list.map(([, a]) => [a.file, a]));
  return {
    url: (name) => `${BASE}/assets/${(byName.get(name) as Asset).file}`,
    byFile: (file) => byFile.get(file),
  };
}
