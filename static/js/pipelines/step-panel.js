// The panel of the selected step: label, compute target, reuse, retries, timeout, the
// parameters its component's schema describes, and (for components with dynamic ports, such
// as python-script) its own typed input and output ports. Every edit is one undoable change.

import { PORT_TYPES } from "./components.js";
import { syncNode } from "./node-shape.js";
import { renderSchemaForm } from "./schema-form.js";

const APPLY_AFTER_MS = 400;
const PORT_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

export function createStepPanel(root, {
  graph, tools, catalog, computeTargets, readOnly, onDelete,
}) {
  let node = null;
  let form = null;
  const pending = new Map(); // option -> timer of an edit waiting for a pause in typing
  const commits = new Map(); // option -> applies its field's current text

  function update(patch) {
    if (!node || readOnly) return;
    const data = { ...node.getData(), ...patch };
    for (const [key, value] of Object.entries(patch)) if (value === undefined) delete data[key];
    const component = catalog.get(data.component);
    graph.batchUpdate("edit-step", () => {
      node.setData(data, { overwrite: true, fromPanel: true });
      syncNode(node, component);
    });
  }

  function setPorts(ports) {
    update({ ports: structuredClone(ports) });
    render(); // the list of ports is drawn from the data
  }

  function later(key, fn) {
    clearTimeout(pending.get(key));
    pending.set(key, setTimeout(() => { pending.delete(key); fn(); }, APPLY_AFTER_MS));
  }

  function flush() {
    if (form) form.flush();
    for (const [key, timer] of pending) {
      clearTimeout(timer);
      pending.delete(key);
      commits.get(key)?.();
    }
  }

  function field(labelText, input, help) {
    const wrap = document.createElement("div");
    wrap.className = "field";
    const label = document.createElement("label");
    const caption = document.createElement("span");
    caption.className = "field-label";
    caption.textContent = labelText;
    if (input.type === "checkbox") label.append(input, caption);
    else label.append(caption, input);
    wrap.append(label);
    if (help) {
      const small = document.createElement("small");
      small.className = "muted";
      small.textContent = help;
      wrap.append(small);
    }
    return wrap;
  }

  function textInput(key, value, parse, attrs = {}) {
    const input = document.createElement("input");
    Object.assign(input, { type: "text", value: value ?? "", ...attrs });
    input.dataset.option = key;
    input.disabled = readOnly;
    const commit = () => update({ [key]: parse(input.value) });
    commits.set(key, commit);
    input.addEventListener("change", () => { clearTimeout(pending.get(key)); commit(); });
    input.addEventListener("input", () => later(key, commit));
    return input;
  }

  const wholeNumber = (text) => (text.trim() === "" ? undefined
    : /^\d+$/.test(text.trim()) ? Number(text.trim()) : text);

  function render() {
    commits.clear();
    form = null;
    root.replaceChildren();
    const selected = tools.selected();
    if (!node) {
      const hint = document.createElement("p");
      hint.className = "muted";
      hint.textContent = selected.length > 1 ? `${selected.length} items selected.`
        : selected.length === 1 ? "An edge is selected. Press Delete to remove it."
          : "Select a step to edit it, or drag a component from the palette.";
      root.append(hint);
      return;
    }
    const data = node.getData() || {};
    const component = catalog.get(data.component);
    const head = document.createElement("header");
    head.className = "step-head";
    head.innerHTML = `<h2></h2><code class="step-id"></code> <span class="muted"></span>
      <p class="muted step-description"></p>`;
    head.querySelector("h2").textContent = data.label || (component ? component.title
      : data.component);
    head.querySelector(".step-id").textContent = node.id;
    head.querySelector("span").textContent = data.component;
    head.querySelector("p").textContent = component ? component.description
      : "This component is not in the workspace's palette.";
    root.append(head);

    root.append(field("Label", textInput("label", data.label, (t) => t.trim() || undefined,
      { placeholder: component ? component.title : "" })));

    const params = document.createElement("fieldset");
    params.className = "params";
    params.innerHTML = `<legend>Parameters</legend>
      <small class="muted">Refer to a pipeline parameter as \${name}.</small><div></div>`;
    form = renderSchemaForm(params.querySelector("div"), component ? component.params_schema
      : {}, data.params || {}, (next) => update({ params: next }), { readOnly });
    root.append(params);

    if (!component || component.dynamic_ports) root.append(portsEditor(data));

    root.append(runSettings(data));

    if (!readOnly) {
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "danger";
      remove.textContent = "Delete step";
      remove.addEventListener("click", () => onDelete([node]));
      root.append(remove);
    }
  }

  function runSettings(data) {
    const settings = document.createElement("fieldset");
    settings.className = "run-settings";
    settings.innerHTML = "<legend>Run settings</legend>";
    const compute = document.createElement("select");
    compute.dataset.option = "compute";
    compute.disabled = readOnly;
    const names = computeTargets.map((t) => t.name);
    const currentCompute = data.compute || "local";
    if (!names.includes(currentCompute)) names.unshift(currentCompute);
    for (const name of names) {
      const target = computeTargets.find((t) => t.name === name);
      const label = !target ? `${name} (not in this workspace)` : target.is_default ? `${name} (default)` : name;
      compute.append(new Option(label, name));
    }
    compute.value = currentCompute;
    compute.addEventListener("change", () => update({ compute: compute.value }));
    settings.append(field("Compute target", compute));

    const reuse = document.createElement("input");
    reuse.type = "checkbox";
    reuse.dataset.option = "allow_reuse";
    reuse.checked = data.allow_reuse !== false;
    reuse.disabled = readOnly;
    reuse.addEventListener("change", () => update({ allow_reuse: reuse.checked }));
    settings.append(field("Reuse an identical earlier result", reuse));

    const row = document.createElement("div");
    row.className = "field-row";
    row.append(
      field("Retries", textInput("retries", data.retries ?? 0, wholeNumber,
        { inputMode: "numeric" }), "0 to 10"),
      field("Timeout (s)", textInput("timeout_s", data.timeout_s ?? 3600, wholeNumber,
        { inputMode: "numeric" })),
    );
    settings.append(row);
    return settings;
  }

  function portsEditor(data) {
    const ports = { inputs: [...(data.ports?.inputs || [])],
                    outputs: [...(data.ports?.outputs || [])] };
    const box = document.createElement("fieldset");
    box.className = "ports-editor";
    box.innerHTML = `<legend>Ports</legend>`;
    for (const kind of ["inputs", "outputs"]) {
      const section = document.createElement("div");
      section.className = "ports-kind";
      section.dataset.kind = kind;
      const title = document.createElement("h4");
      title.textContent = kind === "inputs" ? "Inputs" : "Outputs";
      section.append(title);
      ports[kind].forEach((port, index) => {
        const line = document.createElement("div");
        line.className = "port-line";
        line.dataset.port = port.name;
        const name = document.createElement("code");
        name.textContent = port.name;
        const type = typeSelect(port.type || "any");
        type.addEventListener("change", () => {
          ports[kind][index] = { ...port, type: type.value };
          setPorts(ports);
        });
        line.append(name, type);
        if (kind === "inputs") {
          const optional = document.createElement("input");
          optional.type = "checkbox";
          optional.checked = Boolean(port.optional);
          optional.title = "Optional: the step may run without this input";
          optional.disabled = readOnly;
          optional.addEventListener("change", () => {
            ports[kind][index] = { ...port, optional: optional.checked };
            setPorts(ports);
          });
          const lab = document.createElement("label");
          lab.className = "inline";
          lab.append(optional, " optional");
          line.append(lab);
        }
        if (!readOnly) {
          const remove = document.createElement("button");
          remove.type = "button";
          remove.className = "link";
          remove.textContent = "Remove";
          remove.dataset.action = "remove-port";
          remove.addEventListener("click", () => {
            ports[kind].splice(index, 1);
            setPorts(ports);
          });
          line.append(remove);
        }
        section.append(line);
      });
      if (!readOnly) {
        const add = document.createElement("form");
        add.className = "port-add";
        add.dataset.kind = kind;
        add.innerHTML = `<input name="name" placeholder="name" required
          pattern="[A-Za-z_][A-Za-z0-9_]{0,63}" aria-label="New ${kind.slice(0, -1)} name">`;
        const type = typeSelect("any");
        type.name = "type";
        const button = document.createElement("button");
        button.type = "submit";
        button.textContent = "Add";
        add.append(type, button);
        add.addEventListener("submit", (event) => {
          event.preventDefault();
          const input = add.elements.name;
          const name = input.value.trim();
          const taken = ports[kind].some((p) => p.name === name);
          if (!PORT_NAME.test(name) || taken) {
            input.setCustomValidity(taken ? `There is already an ${kind.slice(0, -1)} ${name}.`
              : "Letters, digits and _, starting with a letter or _.");
            input.reportValidity();
            return;
          }
          input.setCustomValidity("");
          ports[kind].push({ name, type: type.value });
          setPorts(ports);
        });
        section.append(add);
      }
      box.append(section);
    }
    return box;
  }

  function typeSelect(value) {
    const select = document.createElement("select");
    select.setAttribute("aria-label", "Port type");
    select.disabled = readOnly;
    for (const t of PORT_TYPES) select.append(new Option(t, t));
    select.value = value;
    return select;
  }

  graph.on("selection:changed", () => {
    flush();
    const selected = tools.selected();
    node = selected.length === 1 && selected[0].isNode() ? selected[0] : null;
    render();
  });
  graph.on("cell:change:data", ({ cell, options }) => {
    // The panel's own edits are already on screen; undo, redo and imports are not.
    if (cell === node && !(options && options.fromPanel)) render();
  });
  graph.on("node:removed", ({ node: removed }) => {
    if (removed === node) { node = null; render(); }
  });
  render();
  return { flush, refresh: render };
}
