// A form generated from a component's params_schema (JSON Schema): numbers, strings,
// booleans, choices (enum), lists of strings, code (`format: code`) and, where the schema
// allows other keys, a JSON object of the rest. Any text field also takes a `${name}`
// reference to a pipeline parameter. `onChange(params)` gets the whole new params object.

import { codeEditor } from "./code-editor.js";

const NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;
const APPLY_AFTER_MS = 400;

function typeOf(prop) {
  const type = Array.isArray(prop.type) ? prop.type.find((t) => t !== "null") : prop.type;
  if (prop.enum) return "enum";
  if (type === "string" && prop.format === "code") return "code";
  if (type === "array" && (!prop.items || prop.items.type === "string")) return "lines";
  return type || "json";
}

function parseValue(kind, text) {
  if (kind === "number" || kind === "integer") {
    if (NUMBER.test(text.trim())) return Number(text.trim());
    return text; // a ${reference}, or a mistake the validator will name
  }
  if (kind === "lines") return text.split("\n").map((l) => l.trim()).filter(Boolean);
  if (kind === "json") return JSON.parse(text);
  return text;
}

function showValue(kind, value) {
  if (value === undefined || value === null) return "";
  if (kind === "lines" && Array.isArray(value)) return value.join("\n");
  if (kind === "json" || (typeof value === "object")) return JSON.stringify(value, null, 2);
  return String(value);
}

function requiredNames(schema) {
  return new Set(schema.required || []);
}

export function renderSchemaForm(container, schema, values, onChange, { readOnly = false } = {}) {
  container.replaceChildren();
  const properties = (schema && schema.properties) || {};
  const required = requiredNames(schema || {});
  let current = { ...values };
  const timers = new Map();
  const flushers = [];

  const apply = (name, value, remove) => {
    const next = { ...current };
    if (remove) delete next[name];
    else next[name] = value;
    if (JSON.stringify(next) === JSON.stringify(current)) return;
    current = next;
    onChange(next);
  };

  const wire = (input, name, read) => {
    const commit = () => {
      clearTimeout(timers.get(name));
      timers.delete(name);
      let result;
      try {
        result = read();
        input.setCustomValidity("");
      } catch (exc) {
        input.setCustomValidity(exc.message);
        input.reportValidity();
        return;
      }
      apply(name, result.value, result.remove);
    };
    input.addEventListener("change", commit);
    input.addEventListener("input", () => {
      clearTimeout(timers.get(name));
      timers.set(name, setTimeout(commit, APPLY_AFTER_MS));
    });
    flushers.push(() => { if (timers.has(name)) commit(); });
  };

  for (const [name, prop] of Object.entries(properties)) {
    const kind = typeOf(prop);
    const field = document.createElement("div");
    field.className = `field field-${kind}`;
    const label = document.createElement("label");
    const caption = document.createElement("span");
    caption.className = "field-label";
    caption.textContent = (prop.title || name) + (required.has(name) ? " *" : "");
    label.append(caption);
    let input;
    if (kind === "boolean") {
      input = document.createElement("input");
      input.type = "checkbox";
      input.checked = Boolean(current[name] ?? prop.default);
      label.prepend(input);
      wire(input, name, () => ({ value: input.checked }));
    } else if (kind === "enum") {
      input = document.createElement("select");
      const blank = new Option(prop.default !== undefined ? `(default: ${prop.default})` : "—", "");
      input.append(blank, ...prop.enum.map((v) => new Option(String(v), JSON.stringify(v))));
      input.value = current[name] === undefined ? "" : JSON.stringify(current[name]);
      wire(input, name, () => (input.value === "" ? { remove: true }
        : { value: JSON.parse(input.value) }));
    } else if (kind === "code" || kind === "lines" || kind === "json" || kind === "object"
               || kind === "array") {
      input = document.createElement("textarea");
      input.rows = kind === "code" ? 12 : 3;
      input.value = showValue(kind, current[name]);
      const as = kind === "object" || kind === "array" ? "json" : kind;
      if (as === "lines") input.placeholder = "one per line";
      wire(input, name, () => (input.value.trim() === "" ? { remove: true }
        : { value: parseValue(as, input.value) }));
    } else {
      input = document.createElement("input");
      input.type = "text";
      if (kind === "number" || kind === "integer") input.inputMode = "decimal";
      input.value = showValue(kind, current[name]);
      if (prop.default !== undefined) input.placeholder = `default: ${prop.default}`;
      wire(input, name, () => (input.value === "" ? { remove: true }
        : { value: parseValue(kind, input.value) }));
    }
    input.dataset.param = name;
    input.disabled = readOnly;
    if (kind !== "boolean") label.append(input);
    field.append(label);
    if (prop.description) {
      const help = document.createElement("small");
      help.className = "muted";
      help.textContent = prop.description;
      field.append(help);
    }
    container.append(field);
    if (kind === "code") codeEditor(input, { readOnly }); // it needs the textarea in place
  }

  const known = new Set(Object.keys(properties));
  const others = Object.fromEntries(Object.entries(current).filter(([k]) => !known.has(k)));
  // Other keys get a field where the schema invites them, or where the node already has some.
  if ((schema && schema.additionalProperties === true) || Object.keys(others).length) {
    const field = document.createElement("div");
    field.className = "field field-json";
    field.innerHTML = `<label><span class="field-label">Other parameters (JSON object)</span>
      <textarea rows="3" data-param="__other__" spellcheck="false"></textarea></label>
      <small class="muted">Given to the step as they are, e.g. {"alpha": "\${alpha}"}.</small>`;
    const area = field.querySelector("textarea");
    area.value = Object.keys(others).length ? JSON.stringify(others, null, 2) : "";
    area.disabled = readOnly;
    const commit = () => {
      let parsed = {};
      try {
        parsed = area.value.trim() ? JSON.parse(area.value) : {};
        if (typeof parsed !== "object" || Array.isArray(parsed) || parsed === null) {
          throw new Error("Write a JSON object, like {\"alpha\": 0.5}.");
        }
        area.setCustomValidity("");
      } catch (exc) {
        area.setCustomValidity(exc.message);
        area.reportValidity();
        return;
      }
      const next = Object.fromEntries(Object.entries(current).filter(([k]) => known.has(k)));
      Object.assign(next, parsed);
      if (JSON.stringify(next) !== JSON.stringify(current)) {
        current = next;
        onChange(next);
      }
    };
    area.addEventListener("change", commit);
    container.append(field);
  }

  /** Apply edits still waiting for their typing pause (before a save, say). */
  return { flush: () => flushers.forEach((f) => f()) };
}
