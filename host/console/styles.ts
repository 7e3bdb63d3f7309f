// The console's one stylesheet, served as a hashed file (assets.ts): no inline style anywhere,
// so the Content-Security-Policy needs no 'unsafe-inline'. Colours keep WCAG AA contrast
// (4.5:1 for text) on their backgrounds; focus is always visible.
export const CONSOLE_CSS = `
:root {
  --fg: #1a1a1a; --muted: #4b5563; --bg: #ffffff; --panel: #f6f7f9; --line: #d4d7dd;
  --nav: #1f2937; --nav-fg: #f9fafb; --link: #1d4ed8; --focus: #b45309;
  --allow-bg: #dcfce7; --allow-fg: #14532d; --deny-bg: #fee2e2; --deny-fg: #7f1d1d;
  --observe-bg: #ffedd5; --observe-fg: #7c2d12; --info-bg: #e0e7ff; --info-fg: #1e3a8a;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  font-size: 15px; line-height: 1.45; color: var(--fg); background: var(--bg);
}
* { box-sizing: border-box; }
body { margin: 0; }
a { color: var(--link); }
a:focus-visible, button:focus-visible, input:focus-visible, select:focus-visible, textarea:focus-visible, summary:focus-visible, [tabindex]:focus-visible {
  outline: 3px solid var(--focus); outline-offset: 2px;
}
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; }
.skip { position: absolute; left: -9999px; top: 0; background: var(--bg); padding: 8px; z-index: 10; }
.skip:focus { left: 8px; }

header.top { background: var(--nav); color: var(--nav-fg); display: flex; align-items: center; gap: 24px; padding: 0 20px; flex-wrap: wrap; }
header.top .brand { font-weight: 700; font-size: 17px; padding: 12px 0; color: var(--nav-fg); text-decoration: none; }
header.top nav ul { list-style: none; display: flex; gap: 4px; margin: 0; padding: 0; flex-wrap: wrap; }
header.top nav a { color: var(--nav-fg); text-decoration: none; padding: 14px 10px; display: block; border-bottom: 3px solid transparent; }
header.top nav a[aria-current="page"] { border-bottom-color: #fbbf24; font-weight: 600; }
header.top nav a:hover { background: #374151; }
header.top .who { margin-left: auto; display: flex; align-items: center; gap: 10px; font-size: 14px; }
header.top .who form { margin: 0; }
header.top .who a.signout { color: var(--nav-fg); border: 1px solid #9ca3af; border-radius: 4px; padding: 4px 10px; text-decoration: none; }
header.top .who button { background: transparent; color: var(--nav-fg); border: 1px solid #9ca3af; border-radius: 4px; padding: 4px 10px; cursor: pointer; }

main { max-width: 1400px; margin: 0 auto; padding: 20px 24px 48px; }
h1 { font-size: 24px; margin: 8px 0 16px; }
h2 { font-size: 19px; margin: 28px 0 10px; }
h3 { font-size: 16px; margin: 18px 0 8px; }
p.lead { color: var(--muted); margin-top: -8px; }
.muted { color: var(--muted); }

table { border-collapse: collapse; width: 100%; margin: 8px 0 16px; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--panel); font-weight: 600; font-size: 14px; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.wrap, span.wrap { overflow-wrap: anywhere; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }

.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(240px, 1fr)); gap: 14px; margin: 12px 0 20px; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; }
.card h2 { margin: 0 0 6px; font-size: 15px; color: var(--muted); font-weight: 600; }
.card .big { font-size: 26px; font-weight: 700; }
.card dl { margin: 6px 0 0; display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 2px 10px; font-size: 14px; }
.card dt { color: var(--muted); }
.card dd { margin: 0; overflow-wrap: break-word; }
.card ul.plain { list-style: none; margin: 6px 0 0; padding: 0; font-size: 14px; }
.card ul.plain li { margin: 3px 0; overflow-wrap: anywhere; }
.card ul.plain .badge { margin: 1px 4px 1px 0; white-space: normal; }

.badge { display: inline-block; border-radius: 4px; padding: 1px 7px; font-size: 13px; font-weight: 600; white-space: nowrap; }
.badge.allow { background: var(--allow-bg); color: var(--allow-fg); }
.badge.deny { background: var(--deny-bg); color: var(--deny-fg); }
.badge.observe { background: var(--observe-bg); color: var(--observe-fg); }
.badge.info { background: var(--info-bg); color: var(--info-fg); }

.notice { border-radius: 6px; padding: 10px 14px; margin: 12px 0; border: 1px solid var(--line); background: var(--panel); }
.notice.error { background: var(--deny-bg); color: var(--deny-fg); border-color: #fca5a5; }
.notice.ok { background: var(--allow-bg); color: var(--allow-fg); border-color: #86efac; }
.notice.warn { background: var(--observe-bg); color: var(--observe-fg); border-color: #fdba74; }
.empty { border: 1px dashed var(--line); border-radius: 8px; padding: 22px; background: var(--panel); }
.empty h2 { margin-top: 0; }

.filters { display: flex; flex-wrap: wrap; gap: 10px 14px; align-items: flex-end; background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; margin-bottom: 14px; }
.filters .field { display: flex; flex-direction: column; gap: 3px; }
.filters .field.wide input { width: 30ch; }
label { font-size: 13px; font-weight: 600; color: var(--muted); }
input, select, textarea { font: inherit; padding: 5px 8px; border: 1px solid #6b7280; border-radius: 4px; background: var(--bg); color: var(--fg); }
textarea { width: 100%; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; }
button, .button { font: inherit; background: var(--link); color: #fff; border: 1px solid var(--link); border-radius: 4px; padding: 6px 14px; cursor: pointer; text-decoration: none; display: inline-block; }
button.secondary, .button.secondary { background: var(--bg); color: var(--link); }
button.danger { background: #b91c1c; border-color: #b91c1c; }
button[disabled] { opacity: 0.6; cursor: progress; }
.actions { display: flex; gap: 10px; align-items: center; flex-wrap: wrap; margin: 10px 0; }
form.inline { display: inline; margin: 0; }

.pager { display: flex; gap: 14px; align-items: center; margin: 10px 0; }
.busy-indicator { display: none; align-items: center; gap: 8px; color: var(--muted); }
.busy .busy-indicator, .busy-indicator.on { display: inline-flex; }
.spinner { width: 14px; height: 14px; border: 2px solid var(--line); border-top-color: var(--link); border-radius: 50%; animation: spin 0.8s linear infinite; }
@keyframes spin { to { transform: rotate(360deg); } }
@media (prefers-reduced-motion: reduce) { .spinner { animation: none; } }

.graph-box { border: 1px solid var(--line); border-radius: 8px; min-height: 120px; padding: 10px; overflow: auto; background: var(--bg); }
.graph-box svg { max-width: 100%; height: auto; display: block; margin: 0 auto; }
.graph-box svg a:focus { outline: 3px solid var(--focus); }
.legend { display: flex; gap: 16px; flex-wrap: wrap; font-size: 14px; color: var(--muted); margin: 6px 0; }
.legend .sw { display: inline-block; width: 26px; height: 0; border-top: 3px solid #111; vertical-align: middle; margin-right: 6px; }
.legend .sw.deny { border-top-color: red; }
.legend .sw.observe { border-top: 3px dashed orange; }

pre.code { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 12px; overflow: auto; line-height: 1.5; }
pre.code .ln { display: inline-block; width: 3.5ch; color: var(--muted); text-align: right; margin-right: 1.5ch; user-select: none; }
.tok-key { color: #1e3a8a; font-weight: 600; }
.tok-str { color: #14532d; }
.tok-num { color: #7c2d12; }
.tok-bool { color: #6b21a8; }
.tok-comment { color: #4b5563; font-style: italic; }
.tok-punct { color: #374151; }
.tok-anchor { color: #9a3412; }
.tok-doc { color: #6b21a8; font-weight: 600; }
.diff-add { background: var(--allow-bg); }
.diff-del { background: var(--deny-bg); }

details { margin: 8px 0; }
summary { cursor: pointer; font-weight: 600; }
.login { max-width: 460px; margin: 60px auto; background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 24px 28px; }
.login input { width: 100%; }
input.pattern { width: min(52ch, 100%); }
.kv { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 8px 0 16px; }
.kv dt { color: var(--muted); font-weight: 600; }
.kv dd { margin: 0; overflow-wrap: anywhere; }
@media (max-width: 900px) { main { padding: 14px; } .filters .field.wide input { width: 22ch; } }
`;
