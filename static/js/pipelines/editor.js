// The pipeline editor page: wires the canvas, palette, panels, validation, save, run and
// publish together. Server data arrives in the "editor-data" json_script; changes go through
// the REST API (api.js). Tests wait on document.body.dataset: editorReady, saved, validation.

import { createCanvas } from "./canvas.js";
import { Catalog, newNodeData, newNodeId } from "./components.js";
import { exportSpec, readSpecFile } from "./import-export.js";
import { autoLayout } from "./layout.js";
import { nodeMetadata } from "./node-shape.js";
import { createParametersPanel } from "./pipeline-parameters.js";
import { createPalette } from "./palette.js";
import { createPublishDialog } from "./publish-dialog.js";
import { createRunDialog } from "./run-dialog.js";
import { createSaver } from "./save.js";
import { bindShortcuts } from "./shortcuts.js";
import { graphToSpec, hasAllPositions, specToCells } from "./spec-graph.js";
import { createStepPanel } from "./step-panel.js";
import { createValidation } from "./validation.js";
import { createVersionsPanel } from "./versions-panel.js";

const data = JSON.parse(document.getElementById("editor-data").textContent);
const pipeline = data.pipeline;
const readOnly = !data.canEdit;
const base = `/api/pipelines/${pipeline.id}/`;
const urls = {
  pipeline: base,
  validate: `${base}validate/`,
  versions: `${base}versions/`,
  plan: `${base}plan/`,
  runs: `${base}runs/`,
  endpoints: "/api/endpoints/",
  // ?workspace= picks ours where another of the user's workspaces has an endpoint so named.
  endpoint: (name) => `/api/endpoints/${encodeURIComponent(name)}/?workspace=${data.workspace}`,
};
const catalog = new Catalog(data.components);
const $ = (selector) => document.querySelector(selector);

// --- messages --------------------------------------------------------------------------------

const toastBox = $("#editor-message");
let toastTimer = null;
function toast(text, kind = "info") {
  toastBox.textContent = text;
  toastBox.dataset.kind = kind;
  toastBox.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { toastBox.hidden = true; }, kind === "error" ? 8000 : 4000);
}

// --- canvas and panels -----------------------------------------------------------------------

const { graph, tools, startDrag } = createCanvas($("#canvas"), {
  catalog, readOnly, onRefused: (message) => toast(message, "error"),
});

function removeCells(cells) {
  if (readOnly || !cells.length) return;
  graph.removeCells(cells);
}

const stepPanel = createStepPanel($("#step-panel"), {
  graph, tools, catalog, computeTargets: data.computeTargets, readOnly, onDelete: removeCells,
});
const parametersPanel = createParametersPanel($("#parameters-panel"), {
  initial: pipeline.spec.parameters || {}, readOnly, onChange: () => changed(),
});
const current = () => graphToSpec(graph, parametersPanel.get());

const validation = createValidation({
  url: urls.validate, graph, tools, list: $("#problems"), count: $("#problem-count"),
});
const versionsPanel = createVersionsPanel($("#versions"), $("#endpoints"), {
  versions: data.versions, endpoints: data.endpoints,
});

const saver = createSaver({
  url: urls.pipeline,
  revision: pipeline.revision,
  indicator: $("#save-state"),
  banner: $("#editor-banner"),
  currentSpec: current,
  beforeSave: () => stepPanel.flush(),
  onSaved: (reply) => {
    if (Array.isArray(reply.errors)) validation.show(reply.errors, current().edgeCells);
  },
  onExport: () => exportSpec(current().spec, pipeline.name),
});

async function ensureSaved() {
  if (readOnly) return false;
  const ok = await saver.save();
  if (!ok) toast("The draft could not be saved; see the message at the top.", "error");
  return ok;
}

// --- tracking changes ------------------------------------------------------------------------

let pendingChange = null;
function changed() {
  // Many model events arrive per gesture; look once they have settled.
  if (pendingChange) return;
  pendingChange = setTimeout(() => {
    pendingChange = null;
    const snapshot = current();
    saver.changed(JSON.stringify(snapshot.spec));
    validation.schedule(snapshot);
    updateHistoryButtons();
  }, 30);
}
for (const event of ["cell:added", "cell:removed", "cell:changed", "model:reseted"]) {
  graph.on(event, changed);
}

// --- tabs ------------------------------------------------------------------------------------

function showTab(name) {
  for (const tab of document.querySelectorAll("[data-tab]")) {
    tab.setAttribute("aria-selected", String(tab.dataset.tab === name));
  }
  for (const panel of document.querySelectorAll("[data-panel]")) {
    panel.hidden = panel.dataset.panel !== name;
  }
}
for (const tab of document.querySelectorAll("[data-tab]")) {
  tab.addEventListener("click", () => showTab(tab.dataset.tab));
}
graph.on("selection:changed", ({ added }) => {
  if (added.some((cell) => cell.isNode())) showTab("step");
});

// --- palette ---------------------------------------------------------------------------------

function nodeFor(component, position) {
  const taken = new Set(graph.getNodes().map((n) => n.id));
  const id = newNodeId(component, taken);
  return graph.createNode(nodeMetadata(id, newNodeData(component, data.computeTargets),
    component, position));
}

/** Where a clicked component goes: the middle of the view, moved down past other steps. */
function freeSpot() {
  const area = graph.getGraphArea();
  const spot = { x: Math.round(area.center.x - 110), y: Math.round(area.center.y - 30) };
  const taken = (y) => graph.getNodes().some((n) => {
    const box = n.getBBox();
    return box.x < spot.x + 220 && spot.x < box.x + box.width
      && box.y < y + 70 && y < box.y + box.height;
  });
  while (taken(spot.y)) spot.y += 40;
  return spot;
}

createPalette($("#palette"), {
  components: data.components,
  onDragStart: (component, event) => {
    if (!readOnly) startDrag(nodeFor(component), event);
  },
  onPick: (component) => {
    if (readOnly) return;
    graph.addNode(nodeFor(component, freeSpot()));
  },
});
let loading = false;
graph.on("node:added", ({ node }) => {
  // A new step (dropped, clicked, or back by undo) is selected, ready to be configured.
  if (!loading) tools.select(node);
});

// --- loading ---------------------------------------------------------------------------------

function load(spec, { undoable }) {
  loading = true;
  const cells = specToCells(graph, spec, catalog);
  const place = () => {
    if (!hasAllPositions(spec)) autoLayout(graph, { history: undoable });
  };
  if (undoable) {
    graph.batchUpdate("import", () => {
      graph.removeCells(graph.getCells());
      graph.addCell(cells);
      place();
    });
  } else {
    tools.fresh(() => {
      graph.resetCells(cells);
      place();
    });
  }
  parametersPanel.set(spec.parameters || {});
  loading = false;
  fit();
}

function fit() {
  if (graph.getNodes().length) graph.zoomToFit({ padding: 40, maxScale: 1 });
  else graph.zoomTo(1);
}

// --- toolbar ---------------------------------------------------------------------------------

const actions = {
  save: () => ensureSaved().then((ok) => ok && toast("Saved.")),
  undo: () => tools.undo(),
  redo: () => tools.redo(),
  layout: () => { autoLayout(graph); fit(); },
  "zoom-in": () => graph.zoom(0.2),
  "zoom-out": () => graph.zoom(-0.2),
  fit,
  import: () => $("#import-file").click(),
  export: () => exportSpec(current().spec, pipeline.name),
  run: () => { toastBox.hidden = true; runDialog.open(); },
  publish: () => { toastBox.hidden = true; publishDialog.open(); },
};
for (const button of document.querySelectorAll(".editor-toolbar [data-action]")) {
  button.addEventListener("click", () => actions[button.dataset.action]());
  if (readOnly && !["zoom-in", "zoom-out", "fit", "export"].includes(button.dataset.action)) {
    button.disabled = true;
  }
}

function updateHistoryButtons() {
  if (readOnly) return;
  $(".editor-toolbar [data-action=undo]").disabled = !tools.canUndo();
  $(".editor-toolbar [data-action=redo]").disabled = !tools.canRedo();
}
graph.on("history:change", updateHistoryButtons);

$("#import-file").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  event.target.value = "";
  if (!file) return;
  try {
    load(await readSpecFile(file), { undoable: true });
    toast(`Imported ${file.name}. Save to keep it as the draft.`);
  } catch (exc) {
    toast(exc.message, "error");
  }
});

bindShortcuts({
  save: actions.save,
  remove: () => removeCells(tools.selected()),
  undo: () => tools.undo(),
  redo: () => tools.redo(),
});

// --- run and publish -------------------------------------------------------------------------

const runDialog = createRunDialog($("#run-dialog"), {
  urls,
  runUrl: (id) => data.runUrl.replace(data.idPlaceholder, String(id)),
  getParameters: () => parametersPanel.get(),
  ensureSaved,
});
const publishDialog = createPublishDialog($("#publish-dialog"), {
  pipeline, origin: data.origin, urls, endpoints: data.endpoints, ensureSaved,
  getParameters: () => parametersPanel.get(),
  onPublished: (version) => {
    versionsPanel.added({
      number: version.number, message: version.message, created_at: version.created_at,
      created_by: version.created_by, url: data.versionUrl.replace(data.idPlaceholder,
        String(version.number)),
    });
  },
});

// --- start -----------------------------------------------------------------------------------

load(pipeline.spec, { undoable: false });
saver.setBaseline();
validation.schedule(current());
updateHistoryButtons();
// For tests and for the curious: the spec as the editor has it now.
window.pipelineEditor = { graph, tools, spec: () => current().spec, save: () => saver.save() };
document.body.dataset.editorReady = "1";
