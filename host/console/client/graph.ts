// Draws the service graph: fetches the page's DOT (the same text GET /v1/graph?format=dot
// gives, with a link on each edge) and lays it out with Graphviz compiled to WebAssembly
// (@viz-js/viz, served by the console under a hashed name). Edges are SVG links, so they are
// reachable with the keyboard and open the audit browser filtered to that edge.
import type { Viz } from "@viz-js/viz";

export {};

type VizModule = { instance(): Promise<Viz> };

async function draw(box: HTMLElement): Promise<void> {
  const status = box.querySelector<HTMLElement>("[data-graph-status]");
  const say = (text: string, error = false): void => {
    if (!status) return;
    status.textContent = text;
    status.classList.toggle("on", text !== "");
    if (error) status.setAttribute("role", "alert");
  };
  try {
    const [viz, dot] = await Promise.all([
      (import(box.dataset.viz as string) as Promise<VizModule>).then((m) => m.instance()),
      fetch(box.dataset.dot as string, { credentials: "same-origin", headers: { accept: "text/vnd.graphviz" } }).then(async (r) => {
        if (!r.ok) throw new Error(`the graph could not be loaded (HTTP ${r.status})`);
        return r.text();
      }),
    ]);
    const svg = viz.renderSVGElement(dot);
    // Scale to the box: the viewBox keeps the proportions.
    svg.removeAttribute("width");
    svg.removeAttribute("height");
    svg.setAttribute("role", "group");
    svg.setAttribute("aria-label", `Service graph: ${box.closest("figure")?.querySelector("figcaption")?.textContent ?? ""}`);
    const XLINK = "http://www.w3.org/1999/xlink";
    for (const a of Array.from(svg.querySelectorAll("a"))) {
      // SVG 2 `href`: a link to browsers and assistive technology alike (Graphviz writes xlink:href).
      const href = a.getAttributeNS(XLINK, "href");
      if (href !== null) a.setAttribute("href", href);
      const title = a.getAttributeNS(XLINK, "title");
      if (title !== null) a.setAttribute("aria-label", `decisions of ${title}`);
    }
    say("");
    box.appendChild(svg);
  } catch (e) {
    say(`The drawing failed: ${(e as Error).message}. The table below holds the same edges.`, true);
  } finally {
    box.removeAttribute("aria-busy");
  }
}

const box = document.getElementById("graph");
if (box instanceof HTMLElement && box.dataset.dot) void draw(box);
