// The run page: graph, step details, logs, metric charts, timeline and parameters, live over
// /ws/runs/<id>/. The page's data, the REST API and the live events give a run and a step in
// one shape (runs/serializers.py), so each simply replaces what the page holds. What the socket
// misses is fetched from the REST API. The one poll: while a step is queued the run is read
// again now and then, since whether a worker can take it changes with worker heartbeats, which
// send no event (its `waiting` sentence says so): every few seconds while a step waits for a
// worker, seldom while the queued ones wait for a slot.
// Readiness flags for tests: body.dataset.runReady ("1" once drawn and loaded) and
// body.dataset.live ("open" while the socket is up).

import { get, post } from "../api.js";
import { MetricCharts } from "./charts.js";
import { Gantt } from "./gantt.js";
import { RunGraph } from "./graph.js";
import { LiveSocket } from "./live.js";
import { LogPane } from "./logs.js";
import { StepPanel } from "./step-panel.js";

const data = JSON.parse(document.getElementById("run-data").textContent);
const urls = data.urls;
const $ = (id) => document.querySelector(`[data-testid="${id}"]`);
const FINISHED = new Set(["succeeded", "failed", "canceled"]);
const WAITING_REFRESH_MS = 5000; // a step waits for a worker: show when one comes
const QUEUED_REFRESH_MS = 30000; // steps wait for a busy worker's slot: show if it goes

const { steps: initialSteps, ...run } = data.run;
const steps = new Map(initialSteps.map((s) => [s.node, s]));
const artifacts = data.artifacts;
let selected = null;

const graph = new RunGraph($("run-graph"), data.graph, { onSelect: select });
const panel = new StepPanel($("step-panel"), urls);
const gantt = new Gantt($("gantt"), { onSelect: select });
const logs = new LogPane({
  pane: $("log-pane"), search: $("log-search"), follow: $("log-follow"), count: $("log-count"),
  title: $("log-step"), download: $("log-download"),
}, { logs: `${urls.api}steps/{node}/logs/`, download: urls.log });
const charts = new MetricCharts($("charts"));
const metrics = metricFeed(charts);

// --- Drawing the run -------------------------------------------------------------------------

function drawRun() {
  const badge = $("run-status");
  badge.textContent = run.canceling && !FINISHED.has(run.status) ? `${run.status} (canceling)` : run.status;
  badge.className = `status status-${run.status}`;
  badge.dataset.status = run.status;
  const started = run.started_at ? new Date(run.started_at) : null;
  const finished = run.finished_at ? new Date(run.finished_at) : null;
  const parts = [`triggered by ${run.trigger_label}`, `created ${new Date(run.created_at).toLocaleString()}`];
  if (started) parts.push(`took ${((finished || new Date()) - started) / 1000}s`.replace(/(\.\d)\d*s/, "$1 s"));
  if (run.rerun_of) parts.push(`rerun of #${run.rerun_of}`);
  if (run.tags.length) parts.push(`tags: ${run.tags.join(", ")}`);
  $("run-meta").textContent = parts.join(" · ");
  $("cancel").disabled = FINISHED.has(run.status) || run.canceling;
  $("rerun").disabled = !FINISHED.has(run.status);
  $("rerun-failed").disabled = !FINISHED.has(run.status) || run.status === "succeeded";
}

function drawParameters() {
  const table = $("run-parameters");
  const names = Object.keys(run.parameters || {}).sort();
  if (!names.length) {
    table.innerHTML = '<tr><td class="muted">This run has no parameters.</td></tr>';
    return;
  }
  table.replaceChildren(...names.map((name) => {
    const row = document.createElement("tr");
    const th = document.createElement("th");
    th.textContent = name;
    const td = document.createElement("td");
    td.textContent = JSON.stringify(run.parameters[name]);
    row.append(th, td);
    return row;
  }));
}

function drawStep(step) {
  graph.setState(step.node, step.state, step.attempt, step.waiting, step.waiting_kind);
}

function drawSteps() {
  for (const step of steps.values()) drawStep(step);
  gantt.draw([...steps.values()]);
  if (selected) panel.show(steps.get(selected), artifacts);
  watchQueued();
}

let waitingTimer = null;
let waitingDue = Infinity;
/** While a step is queued, read the run again now and then: a worker may come or go. A read
 * already due sooner stands, so that a stream of events cannot put it off. */
function watchQueued() {
  const queued = [...steps.values()].filter((s) => s.state === "queued");
  if (!queued.length) {
    clearTimeout(waitingTimer);
    waitingTimer = null;
    waitingDue = Infinity;
    return;
  }
  const due = Date.now() + (queued.some((s) => s.waiting) ? WAITING_REFRESH_MS : QUEUED_REFRESH_MS);
  if (waitingTimer !== null && waitingDue <= due) return;
  clearTimeout(waitingTimer);
  waitingDue = due;
  waitingTimer = setTimeout(() => {
    waitingTimer = null;
    waitingDue = Infinity;
    refresh();
  }, due - Date.now());
}

function select(node) {
  selected = node;
  graph.select(node);
  const step = steps.get(node);
  panel.show(step, artifacts);
  logs.show(node, step.attempt);
}

function firstInteresting() {
  const order = ["running", "failed", "queued", "succeeded"];
  for (const state of order) {
    const found = [...steps.values()].find((s) => s.state === state);
    if (found) return found.node;
  }
  return steps.size ? steps.keys().next().value : null;
}

// --- Live events -----------------------------------------------------------------------------

/** Hold `fresh` (a step from the API or an event) in place of the step it describes. */
function putStep(fresh) {
  const held = steps.get(fresh.node);
  if (!held) return false;
  steps.set(fresh.node, fresh);
  if (fresh.attempt !== held.attempt && selected === fresh.node) logs.show(fresh.node, fresh.attempt);
  return true;
}

function onEvent(event) {
  const { type, ...fresh } = event;
  if (type === "step") {
    if (!putStep(fresh)) return;
    drawStep(fresh);
    gantt.draw([...steps.values()]);
    if (selected === fresh.node) panel.show(fresh, artifacts);
    watchQueued();
    learnArtifacts().then((learned) => {
      if (learned && selected === fresh.node) panel.show(steps.get(fresh.node), artifacts);
    }, (exc) => console.warn("could not read the run's artifacts", exc));
  } else if (type === "run") {
    Object.assign(run, fresh);
    drawRun();
    // Step events carry no number, so a lost one shows only here: read the run once it ends.
    if (FINISHED.has(run.status)) refreshSoon();
  } else if (type === "log") {
    logs.offer(event.node, event.attempt, event.first, event.lines);
  } else if (type === "metric") {
    metrics.offer(event.node, event.attempt, event.first, event.points);
  }
}

let refreshTimer = null;
function refreshSoon() {
  if (refreshTimer === null) refreshTimer = setTimeout(refresh, 300);
}

/** Read the run and its steps again (on (re)connecting, at the run's end, for queued steps). */
async function refresh() {
  refreshTimer = null;
  try {
    const { steps: freshSteps, ...fresh } = await get(urls.api);
    Object.assign(run, fresh);
    for (const s of freshSteps) putStep(s);
    await learnArtifacts();
    drawRun();
    drawSteps();
  } catch (exc) {
    console.warn("could not refresh the run", exc);
    watchQueued();
  }
}

let learning = null;
let learnAgain = false;
/** Read the artifacts the steps name that the page does not know yet; resolves true if it read
 * any. Calls while a read is under way join it, and it reads once more for them. */
function learnArtifacts() {
  if (learning) {
    learnAgain = true;
    return learning;
  }
  learning = (async () => {
    let learned = false;
    do {
      learnAgain = false;
      learned = (await readMissingArtifacts()) || learned;
    } while (learnAgain);
    return learned;
  })().finally(() => {
    learning = null;
  });
  return learning;
}

const askedFor = new Set(); // digests read for once: one the API does not list is not asked again
async function readMissingArtifacts() {
  const wanted = new Set();
  for (const s of steps.values()) {
    for (const d of [...Object.values(s.inputs || {}), ...Object.values(s.outputs || {})]) {
      if (!artifacts[d] && !askedFor.has(d)) wanted.add(d);
    }
  }
  if (!wanted.size) return false;
  const page = await get(`/api/artifacts/?run=${run.id}&limit=200`);
  for (const d of wanted) askedFor.add(d);
  for (const a of page.results || page) artifacts[a.digest] = a;
  return true;
}

/** Metric points of the run: one numbered stream per step attempt, reloaded on gaps. */
function metricFeed(target) {
  const next = new Map(); // "node:attempt" -> the next point index expected
  let loading = null;
  let pending = [];
  const name = (node, attempt) => (attempt > 1 ? `${node} (attempt ${attempt})` : node);

  function apply(node, attempt, first, points) {
    const key = `${node}:${attempt}`;
    const expected = next.get(key) || 1;
    if (first > expected) return false;
    const fresh = points.slice(expected - first);
    if (!fresh.length) return true;
    next.set(key, first + points.length);
    const byKey = new Map();
    for (const p of fresh) {
      if (!byKey.has(p.key)) byKey.set(p.key, [[], []]);
      byKey.get(p.key)[0].push(p.step);
      byKey.get(p.key)[1].push(p.value);
    }
    for (const [metric, [xs, ys]] of byKey) {
      const have = target.length(metric, name(node, attempt));
      target.extend(metric, name(node, attempt), xs.map((x, i) => x ?? have + i + 1), ys);
    }
    return true;
  }

  async function reload() {
    if (loading) {
      loading.again = true;
      return loading.done;
    }
    loading = { again: false };
    loading.done = (async () => {
      do {
        loading.again = false;
        try {
          const found = await get(`${urls.api}metrics/`);
          target.clear();
          next.clear();
          for (const s of found.series) {
            const trace = name(s.node, s.attempt);
            target.setSeries(s.key, trace, s.steps.map((x, i) => x ?? i + 1), s.values);
            const key = `${s.node}:${s.attempt}`;
            next.set(key, (next.get(key) || 1) + s.values.length);
          }
        } catch (exc) {
          console.warn("could not load the metrics; retrying", exc);
          await new Promise((resolve) => setTimeout(resolve, 1000));
          loading.again = true;
        }
      } while (loading.again);
      loading = null;
      const waiting = pending.sort((a, b) => a[2] - b[2]);
      pending = [];
      for (const args of waiting) offer(...args);
    })();
    return loading.done;
  }

  function offer(node, attempt, first, points) {
    if (loading) {
      pending.push([node, attempt, first, points]);
      return;
    }
    if (!apply(node, attempt, first, points)) {
      pending.push([node, attempt, first, points]);
      reload();
    }
  }

  return { offer, reload };
}

// --- Buttons -----------------------------------------------------------------------------------

function showError(message) {
  const box = $("run-error");
  box.textContent = message;
  box.hidden = !message;
}

$("cancel").addEventListener("click", async () => {
  try {
    Object.assign(run, await post(`${urls.api}cancel/`));
    drawRun();
  } catch (exc) {
    showError(`Could not cancel: ${exc.message}`);
  }
});

for (const [id, fromFailed] of [["rerun", false], ["rerun-failed", true]]) {
  $(id).addEventListener("click", async () => {
    try {
      const fresh = await post(`${urls.api}rerun/`, { from_failed: fromFailed });
      location.assign(urls.page.replace("{id}", fresh.id));
    } catch (exc) {
      showError(`Could not rerun: ${exc.message}`);
    }
  });
}

$("smoothing").addEventListener("input", (event) => charts.setSmoothing(Number(event.target.value)));
$("log-scale").addEventListener("change", (event) => charts.setLogScale(event.target.checked));

// --- Start -------------------------------------------------------------------------------------

drawRun();
drawParameters();
drawSteps();
const first = firstInteresting();
if (first) select(first);

const metricsLoaded = metrics.reload();
new LiveSocket(urls.socket, {
  onEvent,
  onOpen: (reconnected) => {
    // Whatever happened before the socket opened (or while it was down) is in the database.
    refresh();
    if (reconnected) {
      logs.catchUp();
      metrics.reload();
    }
  },
  onState: (state) => {
    document.body.dataset.live = state;
    const dot = $("live");
    dot.textContent = { open: "live", connecting: "connecting", reconnecting: "reconnecting…", denied: "no access" }[state];
    dot.dataset.state = state;
  },
});
metricsLoaded.then(() => {
  document.body.dataset.runReady = "1";
});

window.runPage = { charts, logs, steps, run, select };
