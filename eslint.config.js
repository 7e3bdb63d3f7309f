import js from "@eslint/js";
import tseslint from "typescript-eslint";

// Rooms and the direction of their imports (README "Layout"). Data flows one way:
//   compiler -> host/{common, metrics, audit, identity, store, envoy} -> host/engine
//            -> host/{http, proxy, mesh, rollout, console} -> host/cli
// A room may import what is to its left, never what is to its right, and the rooms of one
// column do not import each other except as listed below. test/ and bench/ may import anything.
const FRONT = ["http", "proxy", "mesh", "rollout", "console"];
const SERVICES_FORBIDDEN = ["engine", ...FRONT, "cli"];
const HONO = [
  { group: ["hono", "hono/*", "@hono/*"], message: "this room holds no HTTP: the HTTP layer (host/http, proxy, console) calls it" },
];

/** no-restricted-imports for a room: relative imports into any of `rooms`, and the extra `patterns`. */
function forbid(rooms, patterns = []) {
  return [
    "error",
    {
      patterns: [
        ...patterns,
        {
          regex: `^(\\.\\./)+(${rooms.join("|")})/`,
          message: `imports point one way (eslint.config.js): this room may not import ${rooms.join(", ")}`,
        },
      ],
    },
  ];
}

export const BOUNDARIES = [
  {
    files: ["compiler/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        { patterns: [{ regex: "(^|/)host/", message: "compiler/ never imports host/: data flows compiler -> host" }] },
      ],
    },
  },
  {
    files: ["host/{common,metrics,audit,identity,store,envoy}/**/*.ts"],
    rules: { "no-restricted-imports": forbid(SERVICES_FORBIDDEN, HONO) },
  },
  { files: ["host/engine/**/*.ts"], rules: { "no-restricted-imports": forbid([...FRONT, "cli"], HONO) } },
  { files: ["host/http/**/*.ts"], rules: { "no-restricted-imports": forbid(["proxy", "mesh", "rollout", "console", "cli"]) } },
  { files: ["host/proxy/**/*.ts"], rules: { "no-restricted-imports": forbid(["mesh", "rollout", "console", "cli"]) } },
  { files: ["host/mesh/**/*.ts"], rules: { "no-restricted-imports": forbid(["proxy", "rollout", "console", "cli"]) } },
  { files: ["host/rollout/**/*.ts"], rules: { "no-restricted-imports": forbid(["proxy", "mesh", "console", "cli"]) } },
  { files: ["host/console/**/*.ts", "host/console/**/*.tsx"], rules: { "no-restricted-imports": forbid(["cli"]) } },
];

// A test never skips: a missing program or privilege makes it fail with the reason
// (test/support/programs.ts), and `.only` would silently skip the rest of the file.
const RUNNERS = "/^(it|test|describe|suite)$/";
export const NO_SKIPS = {
  files: ["test/**/*.ts"],
  rules: {
    "no-restricted-syntax": [
      "error",
      {
        selector: `MemberExpression[property.name=/^(skip|skipIf|runIf|todo|only)$/]:matches([object.name=${RUNNERS}], [object.object.name=${RUNNERS}])`,
        message: "a test never skips: fail with the reason instead (requireProgram/requireRoot in test/support/programs.ts)",
      },
      {
        selector: "CallExpression[callee.property.name='skip'][callee.object.name=/^(ctx|context|t|task)$/]",
        message: "a test never skips: fail with the reason instead (requireProgram/requireRoot in test/support/programs.ts)",
      },
    ],
  },
};

export default tseslint.config(
  { ignores: ["node_modules/", "dist/", "build/", "data/", "assembly/", "coverage/", "test/artifacts/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/no-explicit-any": "error",
    },
  },
  ...BOUNDARIES,
  NO_SKIPS,
);
