// The pipeline's parameters: name, type, default and description. Steps refer to them as
// ${name}; a parameter without a default must be given when the pipeline runs.

const TYPES = ["string", "int", "float", "bool"];
const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

export function parseDefault(type, text) {
  const trimmed = text.trim();
  if (type === "int" && /^[-+]?\d+$/.test(trimmed)) return Number(trimmed);
  if (type === "float" && trimmed !== "" && !Number.isNaN(Number(trimmed))) return Number(trimmed);
  if (type === "bool" && (trimmed === "true" || trimmed === "false")) return trimmed === "true";
  return text; // left as written; the validator names what is wrong
}

export function createParametersPanel(root, { initial, readOnly, onChange }) {
  let params = structuredClone(initial || {});
  const list = root.querySelector("[data-role=list]");
  const addForm = root.querySelector("[data-role=add]");

  const changed = () => {
    onChange(structuredClone(params));
    render();
  };

  function render() {
    list.replaceChildren();
    const names = Object.keys(params);
    if (!names.length) {
      const p = document.createElement("p");
      p.className = "muted";
      p.textContent = "No parameters yet. Add one, then use ${name} in a step's parameters.";
      list.append(p);
    }
    for (const name of names) list.append(row(name, params[name] || {}));
  }

  function row(name, def) {
    const box = document.createElement("div");
    box.className = "param-row";
    box.dataset.parameter = name;
    box.innerHTML = `<div class="param-head"><code></code>
      <select aria-label="Type"></select>
      <button type="button" class="link" data-action="remove">Remove</button></div>
      <label class="param-default"><span class="field-label">Default</span>
        <input type="text" data-role="default"></label>
      <label><span class="field-label">Description</span>
        <input type="text" data-role="description"></label>`;
    box.querySelector("code").textContent = "${" + name + "}";
    const type = box.querySelector("select");
    for (const t of TYPES) type.append(new Option(t, t));
    type.value = TYPES.includes(def.type) ? def.type : "string";
    const dflt = box.querySelector("[data-role=default]");
    dflt.value = def.default === undefined ? "" : String(def.default);
    dflt.placeholder = "none: required at run time";
    const description = box.querySelector("[data-role=description]");
    description.value = def.description || "";
    for (const el of box.querySelectorAll("input, select, button")) el.disabled = readOnly;

    const commit = () => {
      const next = { type: type.value };
      if (dflt.value !== "") next.default = parseDefault(type.value, dflt.value);
      if (description.value.trim()) next.description = description.value.trim();
      if (JSON.stringify(next) === JSON.stringify(params[name])) return;
      params[name] = next;
      onChange(structuredClone(params));
    };
    type.addEventListener("change", commit);
    dflt.addEventListener("change", commit);
    dflt.addEventListener("input", commit);
    description.addEventListener("change", commit);
    box.querySelector("[data-action=remove]").addEventListener("click", () => {
      delete params[name];
      changed();
    });
    return box;
  }

  if (readOnly) addForm.hidden = true;
  const typeSelect = addForm.elements.type;
  for (const t of TYPES) typeSelect.append(new Option(t, t));
  addForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const input = addForm.elements.name;
    const name = input.value.trim();
    if (!NAME.test(name) || name in params) {
      input.setCustomValidity(name in params ? `There is already a parameter ${name}.`
        : "Letters, digits and _, starting with a letter or _.");
      input.reportValidity();
      return;
    }
    input.setCustomValidity("");
    const def = { type: typeSelect.value };
    const text = addForm.elements.default.value;
    if (text !== "") def.default = parseDefault(typeSelect.value, text);
    params[name] = def;
    addForm.reset();
    changed();
  });

  render();
  return {
    get: () => structuredClone(params),
    set(next) { params = structuredClone(next || {}); render(); },
  };
}
