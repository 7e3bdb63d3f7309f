// Policy tests in the browser: PolicyTest documents (and, optionally, changed policies) run
// against the active module or that candidate, by the rollout room's own runner (the code
// behind `zt test` and POST /v1/tests). Nothing is activated.
import type { Context, Hono } from "hono";
import type { TestReport } from "../../rollout/policy-tests.js";
import { requireAdmin } from "../auth.js";
import type { ConsoleDeps, ConsoleEnv } from "../context.js";
import { consoleUrl } from "../paths.js";
import { type DocumentsProblem, DocumentsForm, DocumentsProblemView } from "../views/documents.js";
import { page } from "../views/layout.js";
import { DecisionBadge, HeadRow, Notice, Version } from "../views/parts.js";

export const EXAMPLE_TESTS = `apiVersion: zt.hanzo.ai/v1
kind: PolicyTest
metadata:
  name: console-check
spec:
  cases:
    - name: gateway-reaches-postgres
      request: {source: "spiffe://hanzo.ai/hanzo-k8s/hanzo/gateway", destination: "spiffe://hanzo.ai/hanzo-k8s/hanzo/postgres", port: 5432}
      expect: {decision: ALLOW}
`;

const LABEL = "console";

type Outcome = { report: TestReport } | DocumentsProblem | null;

function Report(props: { report: TestReport }) {
  const r = props.report;
  return (
    <>
      <Notice kind={r.summary.fail === 0 ? "ok" : "error"}>
        <span data-testid="tests-summary">
          PASS {r.summary.pass}/{r.summary.total}
          {r.summary.fail > 0 ? `, FAIL ${r.summary.fail}/${r.summary.total}` : ""}
        </span>{" "}
        against module <Version v={r.policy_version} />. Coverage: {r.coverage.covered}/{r.coverage.rules} rules ({r.coverage.percent.toFixed(1)} %).
      </Notice>
      <table>
        <HeadRow cols={["Case", "Result", "Expected", "Got", "Why"]} />
        <tbody>
          {r.cases.map((k) => (
            <tr>
              <td>
                <code>{k.id}</code>
                <div class="muted">
                  line {k.line}, column {k.col}
                </div>
              </td>
              <td>{k.result === "pass" ? <span class="badge allow">PASS</span> : <span class="badge deny">FAIL</span>}</td>
              <td>
                <DecisionBadge decision={k.expected.decision} />
              </td>
              <td>
                <DecisionBadge decision={k.actual.decision} /> <code>{k.actual.rule ?? "no rule"}</code> <code>{k.actual.reason}</code>
              </td>
              <td>{k.mismatches.join("; ")}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {r.coverage.uncovered.length > 0 && (
        <>
          <h3>Rules no case exercised</h3>
          <ul>
            {r.coverage.uncovered.map((u) => (
              <li>
                <code>{u.rule}</code>
              </li>
            ))}
          </ul>
        </>
      )}
    </>
  );
}

function render(c: Context<ConsoleEnv>, deps: ConsoleDeps, text: string, outcome: Outcome) {
  const status = outcome !== null && !("report" in outcome) ? (("errors" in outcome ? 422 : 400) as 422 | 400) : 200;
  return page(
    c,
    deps,
    { title: "Policy tests", active: "tests", status },
    <>
      <h1>Policy tests</h1>
      <p class="lead">
        <code>PolicyTest</code> documents run against the active module, as <code>zt test</code> runs them. Add changed policies (separated by{" "}
        <code>---</code>) to test a candidate: they replace the active policies of the same name for this run only.
      </p>
      {outcome !== null && "report" in outcome && <Report report={outcome.report} />}
      {outcome !== null && !("report" in outcome) && <DocumentsProblemView problem={outcome} />}
      <DocumentsForm
        session={c.get("session")}
        csrf={(x) => deps.keys.csrfToken(x)}
        action={consoleUrl("/tests")}
        id="tests-text"
        label="Documents (YAML or JSON)"
        text={text}
        rows={18}
        submit="Run tests"
        busy="Compiling and running…"
        needsAdmin="Running tests needs the zt-admin role, as POST /v1/tests does."
      />
    </>,
  );
}

export function testsRoutes(app: Hono<ConsoleEnv>, deps: ConsoleDeps): void {
  app.get("/tests", (c) => render(c, deps, EXAMPLE_TESTS, null));

  app.post("/tests", requireAdmin(), async (c) => {
    const body = await c.req.parseBody();
    const text = typeof body.documents === "string" ? body.documents : "";
    if (text.trim() === "") return render(c, deps, text, { message: "Paste PolicyTest documents first." });
    const active = deps.core.store.current();
    if (!active) return render(c, deps, text, { message: "No policy module is loaded yet." });
    const r = await deps.candidates.run({ kind: "tests", text, label: LABEL }, active);
    if (r.ok) return render(c, deps, text, { report: r.report });
    if (r.reason === "invalid") return render(c, deps, text, { errors: r.errors });
    if (r.reason === "no_tests") return render(c, deps, text, { message: "The documents hold no PolicyTest." });
    return render(c, deps, text, { message: `The tests did not run: ${r.message}` });
  });
}
