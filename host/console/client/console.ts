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
