// Metric charts with plotly: one chart per metric key, steps on the x-axis, one trace per step
// (or per run on the comparison page). The full series stay here; what plotly draws is
// downsampled past MAX_RAW points (each bucket keeps its minimum and maximum, so spikes stay
// visible), smoothed on request, and extended in place with Plotly.extendTraces while a
// series is small enough to draw raw.

const { Plotly } = window;

const MAX_RAW = 4000; // drawn as they are up to here
const BUCKETS = 1500; // past it: a min and a max per bucket, about 3,000 points per trace
const REDRAW_EVERY_MS = 700; // a downsampled or smoothed chart redraws at most this often

/** Keep the extremes: per bucket, its minimum and maximum points, in x order. */
export function downsample(xs, ys, buckets = BUCKETS) {
  const n = xs.length;
  if (n <= buckets * 2) return { x: xs.slice(), y: ys.slice() };
  const x = [];
  const y = [];
  const size = n / buckets;
  for (let b = 0; b < buckets; b += 1) {
    const start = Math.floor(b * size);
    const end = Math.min(n, Math.floor((b + 1) * size));
    if (start >= end) continue;
    let lo = start;
    let hi = start;
    for (let i = start + 1; i < end; i += 1) {
      if (ys[i] < ys[lo]) lo = i;
      if (ys[i] > ys[hi]) hi = i;
    }
    for (const i of lo <= hi ? [lo, hi] : [hi, lo]) {
      if (x.length && x[x.length - 1] === xs[i] && y[y.length - 1] === ys[i]) continue;
      x.push(xs[i]);
      y.push(ys[i]);
    }
  }
  if (x[x.length - 1] !== xs[n - 1]) {
    x.push(xs[n - 1]);
    y.push(ys[n - 1]);
  }
  return { x, y };
}

/** Exponential moving average with TensorBoard's debiasing (weight 0 = the raw values). */
export function smooth(ys, weight) {
  if (!weight) return ys;
  const out = new Array(ys.length);
  let last = 0;
  let debias = 1;
  for (let i = 0; i < ys.length; i += 1) {
    last = last * weight + (1 - weight) * ys[i];
    debias *= weight;
    out[i] = last / (1 - debias);
  }
  return out;
}

export class MetricCharts {
  constructor(container, { emptyText = "No metrics yet." } = {}) {
    this.container = container;
    this.emptyText = emptyText;
    this.charts = new Map(); // key -> {div, traces: Map name -> {x, y, drawn}, order: [], ...}
    this.smoothing = 0;
    this.logScale = false;
    this.frame = null;
  }

  clear() {
    for (const chart of this.charts.values()) Plotly.purge(chart.div);
    this.charts.clear();
    this.container.replaceChildren(emptyNote(this.emptyText));
  }

  keys() {
    return [...this.charts.keys()];
  }

  /** Points held for a key (all traces), whatever is drawn. */
  pointCount(key) {
    const chart = this.charts.get(key);
    if (!chart) return 0;
    let n = 0;
    for (const t of chart.traces.values()) n += t.x.length;
    return n;
  }

  /** Points plotly currently draws for a key. */
  drawnCount(key) {
    const chart = this.charts.get(key);
    if (!chart || !chart.div.data) return 0;
    return chart.div.data.reduce((n, t) => n + (t.x ? t.x.length : 0), 0);
  }

  setSeries(key, name, xs, ys) {
    const chart = this.chart(key);
    const trace = this.trace(chart, name);
    trace.x = xs.slice();
    trace.y = ys.slice();
    chart.full = true;
    this.schedule(chart);
  }

  extend(key, name, xs, ys) {
    const chart = this.chart(key);
    const trace = this.trace(chart, name);
    for (let i = 0; i < xs.length; i += 1) {
      trace.x.push(xs[i]);
      trace.y.push(ys[i]);
    }
    trace.pending.push([xs, ys]);
    this.schedule(chart);
  }

  length(key, name) {
    const chart = this.charts.get(key);
    const trace = chart && chart.traces.get(name);
    return trace ? trace.x.length : 0;
  }

  setSmoothing(weight) {
    this.smoothing = weight;
    for (const chart of this.charts.values()) {
      chart.full = true;
      this.schedule(chart);
    }
  }

  setLogScale(on) {
    this.logScale = on;
    for (const chart of this.charts.values()) {
      if (chart.drawn) Plotly.relayout(chart.div, { "yaxis.type": on ? "log" : "linear" });
    }
  }

  chart(key) {
    let chart = this.charts.get(key);
    if (chart) return chart;
    if (!this.charts.size) this.container.replaceChildren();
    const div = document.createElement("div");
    div.className = "chart";
    div.dataset.key = key;
    // Charts sorted by key, so a reload draws them in the same places.
    const after = [...this.charts.keys()].filter((k) => k > key).sort()[0];
    this.container.insertBefore(div, after ? this.charts.get(after).div : null);
    chart = { key, div, traces: new Map(), drawn: false, full: true, lastFull: 0 };
    this.charts.set(key, chart);
    return chart;
  }

  trace(chart, name) {
    let trace = chart.traces.get(name);
    if (!trace) {
      trace = { name, x: [], y: [], pending: [], index: chart.traces.size };
      chart.traces.set(name, trace);
      chart.full = true; // a new trace: plotly must learn of it
    }
    return trace;
  }

  schedule(chart) {
    chart.dirty = true;
    if (this.frame === null) {
      this.frame = requestAnimationFrame(() => {
        this.frame = null;
        this.flush();
      });
    }
  }

  flush() {
    const now = performance.now();
    for (const chart of this.charts.values()) {
      if (!chart.dirty) continue;
      const big = [...chart.traces.values()].some((t) => t.x.length > MAX_RAW);
      if (!chart.full && !big && !this.smoothing && chart.drawn) {
        this.extendInPlace(chart);
        chart.dirty = false;
        continue;
      }
      if (now - chart.lastFull < REDRAW_EVERY_MS && chart.drawn) {
        // Too soon after the last full redraw: try again shortly.
        setTimeout(() => this.schedule(chart), REDRAW_EVERY_MS - (now - chart.lastFull));
        continue;
      }
      this.redraw(chart);
      chart.lastFull = now;
      chart.dirty = false;
      chart.full = false;
    }
  }

  extendInPlace(chart) {
    const xs = [];
    const ys = [];
    const indexes = [];
    for (const trace of chart.traces.values()) {
      if (!trace.pending.length) continue;
      xs.push(trace.pending.flatMap(([x]) => x));
      ys.push(trace.pending.flatMap(([, y]) => y));
      indexes.push(trace.index);
      trace.pending = [];
    }
    if (indexes.length) Plotly.extendTraces(chart.div, { x: xs, y: ys }, indexes);
  }

  redraw(chart) {
    const data = [...chart.traces.values()].map((trace) => {
      trace.pending = [];
      const ys = smooth(trace.y, this.smoothing);
      const drawn = trace.x.length > MAX_RAW ? downsample(trace.x, ys) : { x: trace.x.slice(), y: ys.slice() };
      // Markers while a series is short, so a single point shows.
      const mode = drawn.x.length <= 30 ? "lines+markers" : "lines";
      return { type: "scatter", mode, name: trace.name, x: drawn.x, y: drawn.y, marker: { size: 5 } };
    });
    const layout = {
      title: { text: chart.key },
      height: 300,
      margin: { l: 55, r: 20, t: 40, b: 40 },
      xaxis: { title: { text: "step" } },
      yaxis: { type: this.logScale ? "log" : "linear" },
      showlegend: true,
      legend: { orientation: "h", y: -0.2 },
      uirevision: chart.key, // keep the user's zoom across redraws
    };
    Plotly.react(chart.div, data, layout, { displaylogo: false, responsive: true });
    chart.drawn = true;
  }
}

function emptyNote(text) {
  const p = document.createElement("p");
  p.className = "muted";
  p.textContent = text;
  return p;
}
