// A timeline (Gantt) of the steps: one row per step, a bar from start to finish (to now while
// it runs), coloured by state. Redrawn on step events, and each second while a step runs.

const SVG = "http://www.w3.org/2000/svg";
const ROW = 26;
const LABEL = 140;

function el(name, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

function seconds(ms) {
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} m ${Math.round(s % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} m`;
}

export class Gantt {
  constructor(container, { onSelect }) {
    this.container = container;
    this.onSelect = onSelect;
    this.timer = null;
  }

  draw(steps) {
    const rows = steps.filter((s) => s.started_at);
    if (!rows.length) {
      this.container.innerHTML = '<p class="muted">No step has started yet.</p>';
      this.stopTicking();
      return;
    }
    const now = Date.now();
    const starts = rows.map((s) => Date.parse(s.started_at));
    const ends = rows.map((s) => (s.finished_at ? Date.parse(s.finished_at) : now));
    const t0 = Math.min(...starts);
    const span = Math.max(Math.max(...ends) - t0, 1);
    const width = Math.max(this.container.clientWidth, 400);
    const plot = width - LABEL - 70;
    const svg = el("svg", { width, height: rows.length * ROW + 24, class: "gantt-svg" });
    rows.forEach((step, i) => {
      const y = i * ROW + 4;
      const label = el("text", { x: 0, y: y + 15, class: "label" }, svg);
      label.textContent = step.node;
      const x = LABEL + ((starts[i] - t0) / span) * plot;
      const w = Math.max(((ends[i] - starts[i]) / span) * plot, 2);
      const bar = el("rect", { x, y, width: w, height: ROW - 8, rx: 3,
        class: `bar state-${step.state}`, "data-node": step.node }, svg);
      el("title", {}, bar).textContent = `${step.node}: ${step.state}, ${seconds(ends[i] - starts[i])}`;
      bar.addEventListener("click", () => this.onSelect(step.node));
      const text = el("text", { x: x + w + 4, y: y + 14, class: "duration" }, svg);
      text.textContent = seconds(ends[i] - starts[i]);
    });
    const axis = el("text", { x: LABEL, y: rows.length * ROW + 18, class: "axis" }, svg);
    axis.textContent = `0 s … ${seconds(span)}`;
    this.container.replaceChildren(svg);
    if (rows.some((s) => !s.finished_at)) this.startTicking(steps);
    else this.stopTicking();
  }

  startTicking(steps) {
    this.latest = steps;
    if (this.timer === null) this.timer = setInterval(() => this.draw(this.latest), 1000);
  }

  stopTicking() {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}
