// A published version, read-only: its graph, the settings of a clicked step, and
// "restore as draft" (the version's spec becomes the pipeline's draft, then the editor opens).

import { patch } from "../api.js";
import { createCanvas } from "./canvas.js";
import { Catalog } from "./components.js";
import { autoLayout } from "./layout.js";
import { hasAllPositions, specToCells } from "./spec-graph.js";

const data = JSON.parse(document.getElementById("version-data").textContent);
const spec = data.version.spec;
const catalog = new Catalog(data.components);
const { graph } = createCanvas(document.getElementById("canvas"), { catalog, readOnly: true });
graph.resetCells(specToCells(graph, spec, catalog));
if (!hasAllPositions(spec)) autoLayout(graph, { history: false });
if (graph.getNodes().length) graph.zoomToFit({ padding: 40, maxScale: 1 });

const nodeBox = document.getElementById("node-json");
graph.on("node:click", ({ node }) => {
  const raw = (spec.nodes || []).find((n) => n.id === node.id);
  nodeBox.textContent = JSON.stringify(raw, null, 2);
  nodeBox.classList.remove("muted");
});
document.getElementById("parameters-json").textContent =
  JSON.stringify(spec.parameters || {}, null, 2);

const restore = document.querySelector("[data-action=restore]");
restore.disabled = !data.canEdit;
restore.addEventListener("click", async () => {
  const ok = confirm(`Replace the current draft of ${data.pipeline.name} with version `
    + `${data.version.number}? The draft's unpublished changes are lost.`);
  if (!ok) return;
  restore.disabled = true;
  try {
    await patch(`/api/pipelines/${data.pipeline.id}/`,
      { spec, revision: data.pipeline.revision });
    window.location.assign(data.editorUrl);
  } catch (exc) {
    const banner = document.getElementById("version-banner");
    banner.querySelector(".banner-text").textContent = exc.status === 409
      ? "The draft changed since this page opened; reload the page and try again."
      : `Could not restore: ${exc.message}`;
    banner.hidden = false;
    restore.disabled = false;
  }
});
document.body.dataset.versionReady = "1";
