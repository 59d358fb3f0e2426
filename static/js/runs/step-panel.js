// The chosen step's details: state, why it ran (or which run it reused), where it ran, its
// parameters, fingerprint, exit code and traceback, earlier attempts, and its input and
// output artifacts with size, digest, download and a preview of text, CSV, JSON and images.

import { get } from "../api.js";

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

export function formatBytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${i ? v.toFixed(1) : v} ${units[i]}`;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

export class StepPanel {
  constructor(container, urls) {
    this.container = container;
    this.urls = urls;
    this.node = null;
  }

  show(step, artifacts) {
    const rows = [
      ["State", h("span", { class: `status status-${step.state}`, "data-testid": "step-state", text: step.state })],
      ["Component", step.component],
      ["Attempt", String(step.attempt)],
      ["Compute target", step.compute_target || "—"],
      ["Worker", step.worker || "—"],
      ["Exit code", step.exit_code === null || step.exit_code === undefined ? "—" : String(step.exit_code)],
      ["Started", when(step.started_at)],
      ["Finished", when(step.finished_at)],
      ["Why it ran", this.reason(step)],
      ["Fingerprint", h("code", { class: "digest", text: step.fingerprint || "—" })],
    ];
    const table = h("table", { class: "kv" });
    for (const [label, value] of rows) table.append(h("tr", {}, h("th", { text: label }), h("td", {}, value)));
    this.node = step.node;
    const parts = [h("h2", { text: `Step ${step.node}` })];
    if (step.waiting) parts.push(h("p", { class: "waiting-note", "data-testid": "step-waiting", text: step.waiting }));
    parts.push(table);
    // A queued step's only error is the reconciler's note that it waits, said above already.
    if (step.error && !step.waiting) parts.push(h("p", { class: "error", "data-testid": "step-error", text: step.error }));
    if (step.traceback) parts.push(h("details", { open: "" }, h("summary", { text: "Traceback" }), h("pre", { class: "traceback", text: step.traceback })));
    parts.push(h("h3", { text: "Parameters" }), h("pre", { class: "json", "data-testid": "step-params", text: JSON.stringify(step.params || {}, null, 2) }));
    parts.push(this.artifactTable(step, artifacts));
    if (step.attempts && step.attempts.length) {
      const list = h("ul", { class: "attempts" });
      for (const a of step.attempts) list.append(h("li", { text: `attempt ${a.attempt}: ${a.error || "failed"} (exit ${a.exit_code ?? "—"}, ${a.worker || "no worker"})` }));
      parts.push(h("h3", { text: "Earlier attempts" }), list);
    }
    // Redrawn on every change of the step: an open preview of the same step stays open.
    const kept = this.node === step.node && this.shown === step.node ? this.previewBox() : null;
    parts.push(kept || h("div", { class: "preview", "data-testid": "artifact-preview" }));
    this.container.replaceChildren(...parts);
    this.shown = step.node;
  }

  reason(step) {
    if (step.state === "reused" && step.reused_from_run) {
      return h("span", {}, "reused the outputs of ",
        h("a", { href: this.urls.page.replace("{id}", step.reused_from_run), text: `run #${step.reused_from_run}` }));
    }
    return step.reason || "—";
  }

  artifactTable(step, artifacts) {
    const entries = [
      ...Object.entries(step.inputs || {}).map(([port, digest]) => ["in", port, digest]),
      ...Object.entries(step.outputs || {}).map(([port, digest]) => ["out", port, digest]),
    ];
    const section = h("div", { class: "artifacts", "data-testid": "artifacts" }, h("h3", { text: "Artifacts" }));
    if (!entries.length) {
      section.append(h("p", { class: "muted", text: "None yet." }));
      return section;
    }
    const table = h("table", {}, h("tr", {}, ...["", "Port", "Size", "Digest", ""].map((t) => h("th", { text: t }))));
    for (const [direction, port, digest] of entries) {
      const known = artifacts[digest] || {};
      table.append(h("tr", { "data-digest": digest },
        h("td", { class: "muted", text: direction }),
        h("td", { text: port }),
        h("td", { text: formatBytes(known.size) }),
        h("td", {}, h("code", { class: "digest", title: digest, text: `${digest.slice(0, 19)}…` })),
        h("td", { class: "row-actions" },
          h("a", { class: "button", href: this.urls.download.replace("{digest}", digest), download: "", text: "Download" }),
          h("button", { type: "button", text: "Preview", onclick: () => this.files(digest) }))));
    }
    section.append(table);
    return section;
  }

  previewBox() {
    return this.container.querySelector(".preview");
  }

  async files(digest) {
    const box = this.previewBox();
    box.replaceChildren(h("p", { class: "muted", text: "Loading…" }));
    try {
      const found = await get(this.urls.artifact.replace("{digest}", digest));
      if (found.files.length === 1) {
        await this.preview(digest, found.files[0].path);
        return;
      }
      const list = h("ul", { class: "files" });
      for (const file of found.files) {
        list.append(h("li", {}, h("button", { type: "button", class: "link", text: file.path, onclick: () => this.preview(digest, file.path) }),
          h("span", { class: "muted", text: ` ${formatBytes(file.size)}` })));
      }
      box.replaceChildren(h("h3", { text: `Files of ${digest.slice(0, 19)}…` }), list);
    } catch (exc) {
      box.replaceChildren(h("p", { class: "error", text: exc.message }));
    }
  }

  async preview(digest, path) {
    const box = this.previewBox();
    const url = `${this.urls.artifact.replace("{digest}", digest)}?path=${encodeURIComponent(path)}`;
    try {
      const found = await get(url);
      const head = h("h3", {}, `Preview of ${path || digest.slice(0, 19)}`,
        h("a", { class: "button small", href: `${this.urls.download.replace("{digest}", digest)}${path ? `?path=${encodeURIComponent(path)}` : ""}`, download: "", text: "Download file" }));
      let body;
      if (found.kind === "image") {
        body = h("img", { alt: path, src: `${this.urls.image.replace("{digest}", digest)}?path=${encodeURIComponent(path)}` });
      } else if (found.kind === "csv") {
        const table = h("table", { class: "csv" });
        found.rows.forEach((row, i) => table.append(h("tr", {}, ...row.map((cell) => h(i ? "td" : "th", { text: cell })))));
        body = h("div", { class: "scroll" }, table);
      } else if (found.kind === "binary") {
        body = h("p", { class: "muted", text: "A binary file: download it to open it." });
      } else {
        body = h("pre", { class: "json", text: found.text });
      }
      const extra = found.truncated ? h("p", { class: "muted small", text: "Only the beginning is shown." }) : null;
      box.replaceChildren(head, body, extra || "");
      box.dataset.kind = found.kind;
    } catch (exc) {
      box.replaceChildren(h("p", { class: "error", text: exc.message }));
    }
  }
}
