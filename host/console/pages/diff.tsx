// "What will this change break?": changed policy documents against the active set, the exact
// diff of compiler/diff (what POST /v1/diff and `zt diff` report). Nothing is activated.
import type { Context, Hono } from "hono";
import type { PolicyDiff } from "../../../compiler/diff/index.js";
import { requireAdmin } from "../auth.js";
import type { ConsoleDeps, ConsoleEnv } from "../context.js";
import { consoleUrl } from "../paths.js";
import { DiffView } from "../views/diff.js";
import { type DocumentsProblem, DocumentsForm, DocumentsProblemView } from "../views/documents.js";
import { page } from "../views/layout.js";
import { Version } from "../views/parts.js";

type Outcome = { diff: PolicyDiff; version: string } | DocumentsProblem | null;

function render(c: Context<ConsoleEnv>, deps: ConsoleDeps, text: string, outcome: Outcome) {
  const active = deps.core.store.current();
  const status = outcome === null || "diff" in outcome ? 200 : "errors" in outcome ? 422 : 400;
  return page(
    c,
    deps,
    { title: "Check a change", active: "policies", status },
    <>
      <h1>Check a policy change</h1>
      <p class="lead">
        Paste changed policies (YAML or JSON, several separated by <code>---</code>): they replace the active policies of the same names, the others
        stay. The answer is exact, not sampled: every request whose decision would change, by class, with one example each.
      </p>
      {outcome !== null && "diff" in outcome && (
        <>
          <h2>
            <Version v={active?.version ?? null} /> → <Version v={outcome.version} />
          </h2>
          <DiffView diff={outcome.diff} from="the active policies" to="the change" />
        </>
      )}
      {outcome !== null && !("diff" in outcome) && <DocumentsProblemView problem={outcome} />}
      <DocumentsForm
        session={c.get("session")}
        csrf={(x) => deps.keys.csrfToken(x)}
        action={consoleUrl("/diff")}
        id="diff-text"
        label="Changed policies"
        text={text}
        rows={22}
        submit="Show what changes"
        busy="Compiling and comparing…"
        needsAdmin="Checking a change needs the zt-admin role, as POST /v1/diff does."
      />
    </>,
  );
}

export function diffRoutes(app: Hono<ConsoleEnv>, deps: ConsoleDeps): void {
  // ?policy=<name> starts from that policy's document.
  app.get("/diff", async (c) => {
    const name = c.req.query("policy");
    const info = name === undefined ? undefined : deps.core.store.current()?.policies.find((p) => p.name === name);
    let text = "";
    if (info) text = (await deps.core.store.policyText(info.name)) ?? "";
    return render(c, deps, text, null);
  });

  app.post("/diff", requireAdmin(), async (c) => {
    const body = await c.req.parseBody();
    const text = typeof body.documents === "string" ? body.documents : "";
    const active = deps.core.store.current();
    if (!active) return render(c, deps, text, { message: "No policy module is loaded yet." });
    if (text.trim() === "") return render(c, deps, text, { message: "Paste the changed policies first." });
    const r = await deps.candidates.run({ kind: "diff", text, label: "change", replace: false }, active);
    if (r.ok) return render(c, deps, text, { diff: r.diff, version: r.version });
    if (r.reason === "invalid") return render(c, deps, text, { errors: r.errors });
    return render(c, deps, text, { message: `The diff was not computed: ${r.reason === "unavailable" ? r.message : r.reason}` });
  });
}
