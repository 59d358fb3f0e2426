// Run comparison: the chosen runs' metrics overlaid, one chart per key, a trace per run and
// step. Parameters are compared on the server (the table above, differences marked).

import { get } from "../api.js";
import { MetricCharts } from "./charts.js";

const data = JSON.parse(document.getElementById("compare-data").textContent);
const $ = (id) => document.querySelector(`[data-testid="${id}"]`);
const charts = new MetricCharts($("charts"), { emptyText: "These runs logged no metrics." });

$("smoothing").addEventListener("input", (event) => charts.setSmoothing(Number(event.target.value)));
$("log-scale").addEventListener("change", (event) => charts.setLogScale(event.target.checked));

async function load() {
  const found = await Promise.all(data.runs.map((run) => get(data.metrics.replace("{id}", run.id))));
  charts.clear();
  found.forEach((result, i) => {
    const run = data.runs[i];
    const nodes = new Set(result.series.map((s) => s.node));
    for (const s of result.series) {
      // One trace per run, named by the step only where a run logs a key from several steps.
      const sameKey = result.series.filter((o) => o.key === s.key);
      const label = sameKey.length > 1 || nodes.size > 1 ? `${run.label} ${s.node}` : run.label;
      const name = s.attempt > 1 ? `${label} (attempt ${s.attempt})` : label;
      charts.setSeries(s.key, name, s.steps.map((x, j) => x ?? j + 1), s.values);
    }
  });
}

load().then(() => {
  document.body.dataset.compareReady = "1";
}, (exc) => {
  $("charts").textContent = `Could not load the metrics: ${exc.message}`;
});
window.comparePage = { charts };
