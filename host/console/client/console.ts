// The console's page script (progressive enhancement: every page works without it). While a
// form's request runs (a long audit query, a replay), it shows the form's loading indicator,
// marks the page busy for assistive technology and keeps the button from being pressed twice.
export {};

function markBusy(form: HTMLFormElement): void {
  form.classList.add("busy");
  document.getElementById("main")?.setAttribute("aria-busy", "true");
  // After this turn, so the pressed button's name and value are still submitted.
  setTimeout(() => {
    for (const b of Array.from(form.querySelectorAll<HTMLButtonElement>("button[type=submit], button:not([type])"))) b.disabled = true;
  }, 0);
}

document.addEventListener("submit", (ev) => {
  const form = ev.target;
  if (form instanceof HTMLFormElement && form.hasAttribute("data-busy") && !ev.defaultPrevented) markBusy(form);
});

// Back/forward restores a page from the cache with its buttons still disabled.
window.addEventListener("pageshow", () => {
  for (const f of Array.from(document.querySelectorAll<HTMLFormElement>("form.busy"))) {
    f.classList.remove("busy");
    for (const b of Array.from(f.querySelectorAll<HTMLButtonElement>("button"))) b.disabled = false;
  }
  document.getElementById("main")?.removeAttribute("aria-busy");
});

// Live sections (`data-live="<seconds>"`, with an id): refreshed in place from the page's own
// URL, so a number on screen is always rendered by the same server code as on first load.
// Paused while the tab is hidden.
async function refresh(ids: string[]): Promise<void> {
  const r = await fetch(location.href, { credentials: "same-origin", headers: { accept: "text/html" } });
  if (!r.ok || r.redirected) return;
  const doc = new DOMParser().parseFromString(await r.text(), "text/html");
  for (const id of ids) {
    const fresh = doc.getElementById(id);
    const here = document.getElementById(id);
    if (fresh && here) here.replaceWith(document.importNode(fresh, true));
  }
}

const live = Array.from(document.querySelectorAll<HTMLElement>("[data-live][id]"));
if (live.length > 0) {
  const seconds = Math.max(5, Math.min(...live.map((e) => Number(e.dataset.live) || 15)));
  const ids = live.map((e) => e.id);
  setInterval(() => {
    if (document.visibilityState === "visible") refresh(ids).catch(() => undefined);
  }, seconds * 1000);
}
