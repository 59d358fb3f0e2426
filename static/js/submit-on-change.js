// A <select data-submit-on-change> submits its form as soon as it changes (the workspace
// switcher, the comparison's pipeline). Here rather than in an onchange attribute: the
// Content-Security-Policy runs no inline script.
for (const select of document.querySelectorAll("select[data-submit-on-change]")) {
  select.addEventListener("change", () => select.form.submit());
}
