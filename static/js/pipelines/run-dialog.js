// The Run dialog: a form for the pipeline's parameters, the plan for those values (which
// steps will be reused and which will run, and why, and which would wait for a worker), then
// the run itself and its page.

import { post } from "../api.js";
import { parseDefault } from "./pipeline-parameters.js";

const PLAN_AFTER_MS = 300;

export function createRunDialog(dialog, { urls, runUrl, getParameters, ensureSaved }) {
  const fieldset = dialog.querySelector("[data-role=parameters]");
  const planBox = dialog.querySelector("[data-role=plan]");
  const warningBox = dialog.querySelector("[data-role=warnings]");
  const errorBox = dialog.querySelector("[data-role=error]");
  const start = dialog.querySelector("[data-action=start-run]");
  let definitions = {};
  let timer = null;
  let asked = 0;

  function values() {
    const out = {};
    for (const [name, def] of Object.entries(definitions)) {
      const input = fieldset.querySelector(`[data-run-param="${CSS.escape(name)}"]`);
      if (!input) continue;
      if (def.type === "bool") out[name] = input.checked;
      else if (input.value !== "") out[name] = parseDefault(def.type, input.value);
    }
    return out;
  }

  function showError(message, errors = []) {
    const lines = errors.map((e) => [e.node, e.field].filter(Boolean).join(" · ") + ": "
      + e.message);
    errorBox.textContent = [message, ...lines].join("\n");
    errorBox.hidden = false;
  }

  function renderForm() {
    fieldset.querySelectorAll(".field").forEach((f) => f.remove());
    const names = Object.keys(definitions);
    fieldset.hidden = names.length === 0;
    for (const name of names) {
      const def = definitions[name] || {};
      const wrap = document.createElement("div");
      wrap.className = "field";
      const label = document.createElement("label");
      const caption = document.createElement("span");
      caption.className = "field-label";
      caption.textContent = `${name} (${def.type})${def.default === undefined ? " *" : ""}`;
      const input = document.createElement("input");
      input.dataset.runParam = name;
      if (def.type === "bool") {
        input.type = "checkbox";
        input.checked = Boolean(def.default);
        label.append(input, caption);
      } else {
        input.type = "text";
        input.value = def.default === undefined ? "" : String(def.default);
        input.required = def.default === undefined;
        label.append(caption, input);
      }
      input.addEventListener("input", () => {
        clearTimeout(timer);
        timer = setTimeout(plan, PLAN_AFTER_MS);
      });
      wrap.append(label);
      if (def.description) {
        const help = document.createElement("small");
        help.className = "muted";
        help.textContent = def.description;
        wrap.append(help);
      }
      fieldset.append(wrap);
    }
  }

  async function plan() {
    const mine = ++asked;
    start.disabled = true;
    errorBox.hidden = true;
    dialog.dataset.plan = "pending";
    planBox.innerHTML = `<p class="muted">Working out the plan…</p>`;
    renderWarnings([]);
    try {
      const reply = await post(urls.plan, { parameters: values() });
      if (mine !== asked) return;
      renderWarnings(reply.warnings || []);
      renderPlan(reply.steps || []);
      start.disabled = false;
      dialog.dataset.plan = "ready";
    } catch (exc) {
      if (mine !== asked) return;
      planBox.replaceChildren();
      showError(exc.message, exc.errors);
      dialog.dataset.plan = "failed";
    }
  }

  /** What would not stop the run but would stall it: the run may still start. */
  function renderWarnings(warnings) {
    warningBox.replaceChildren(...warnings.map((w) => {
      const li = document.createElement("li");
      li.dataset.node = w.node || "";
      li.textContent = w.message;
      return li;
    }));
    warningBox.hidden = !warnings.length;
  }

  function renderPlan(steps) {
    const table = document.createElement("table");
    table.innerHTML = "<thead><tr><th>Step</th><th>Will</th><th>Why</th></tr></thead>"
      + "<tbody></tbody>";
    const body = table.querySelector("tbody");
    for (const step of steps) {
      const tr = document.createElement("tr");
      tr.dataset.node = step.node;
      tr.dataset.action = step.action;
      tr.innerHTML = `<td><code></code></td><td><span class="status"></span></td><td></td>`;
      tr.querySelector("code").textContent = step.node;
      const badge = tr.querySelector(".status");
      badge.textContent = step.action === "reuse" ? "reuse" : "run";
      badge.classList.add(step.action === "reuse" ? "status-reused" : "status-queued");
      tr.lastElementChild.textContent = step.reason || "";
      body.append(tr);
    }
    const summary = document.createElement("p");
    const reused = steps.filter((s) => s.action === "reuse").length;
    summary.className = "muted";
    summary.textContent = `${steps.length - reused} to run, ${reused} reused.`;
    planBox.replaceChildren(table, summary);
  }

  start.addEventListener("click", async () => {
    start.disabled = true;
    errorBox.hidden = true;
    try {
      const run = await post(urls.runs, { parameters: values() });
      dialog.dataset.started = String(run.id);
      window.location.assign(runUrl(run.id));
    } catch (exc) {
      showError(exc.message, exc.errors);
      start.disabled = false;
    }
  });

  return {
    async open() {
      if (!(await ensureSaved())) return;
      definitions = getParameters();
      renderForm();
      dialog.showModal();
      plan();
    },
  };
}
