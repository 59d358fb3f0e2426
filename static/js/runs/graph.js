// The run's graph as SVG, laid out by dagre (left to right, as data flows), each node coloured
// by its step's state. Read-only: a click selects the step.

const { dagre } = window;
const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 160;
const HEIGHT = 48;
// A queued step's short label, by the API's `waiting_kind`; the node's tooltip has the sentence.
const WAITING_LABELS = { worker: "waiting for a worker", lost_attempt: "lost attempt stopping" };

function el(name, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

export class RunGraph {
  constructor(container, graph, { onSelect }) {
    this.container = container;
    this.onSelect = onSelect;
    this.nodes = new Map(); // id -> <g>
    this.draw(graph);
  }

  draw({ nodes, edges }) {
    const g = new dagre.graphlib.Graph();
    g.setGraph({ rankdir: "LR", nodesep: 24, ranksep: 60, marginx: 12, marginy: 12 });
    g.setDefaultEdgeLabel(() => ({}));
    for (const node of nodes) g.setNode(node.id, { width: WIDTH, height: HEIGHT });
    const seen = new Set();
    for (const edge of edges) {
      const key = `${edge.from}->${edge.to}`;
      if (seen.has(key) || !g.hasNode(edge.from) || !g.hasNode(edge.to)) continue;
      seen.add(key);
      g.setEdge(edge.from, edge.to);
    }
    dagre.layout(g);
    const { width, height } = g.graph();
    const svg = el("svg", { viewBox: `0 0 ${Math.max(width, 10)} ${Math.max(height, 10)}`,
      width: Math.max(width, 10), height: Math.max(height, 10), role: "img",
      "aria-label": "The run's steps" });
    const defs = el("defs", {}, svg);
    const marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5,
      markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, defs);
    el("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow" }, marker);
    for (const e of g.edges()) {
      const points = g.edge(e).points;
      const d = points.map((p, i) => `${i ? "L" : "M"} ${p.x} ${p.y}`).join(" ");
      el("path", { d, class: "edge", "marker-end": "url(#arrow)" }, svg);
    }
    for (const node of nodes) {
      const placed = g.node(node.id);
      const group = el("g", {
        class: "node", "data-node": node.id, tabindex: 0,
        transform: `translate(${placed.x - WIDTH / 2}, ${placed.y - HEIGHT / 2})`,
      }, svg);
      el("rect", { width: WIDTH, height: HEIGHT, rx: 6 }, group);
      const title = el("text", { x: 10, y: 20, class: "title" }, group);
      title.textContent = node.id.length > 20 ? `${node.id.slice(0, 19)}…` : node.id;
      const state = el("text", { x: 10, y: 38, class: "state" }, group);
      state.textContent = "";
      group.dataset.title = `${node.id} (${node.component})`;
      el("title", {}, group).textContent = group.dataset.title;
      group.addEventListener("click", () => this.onSelect(node.id));
      group.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") this.onSelect(node.id);
      });
      this.nodes.set(node.id, group);
    }
    this.container.replaceChildren(svg);
  }

  /** `waiting`: what a queued step waits for (the API's sentence), or null; `waitingKind`:
   * the API's word for it, which picks the node's short label. */
  setState(nodeId, state, attempt, waiting = null, waitingKind = null) {
    const group = this.nodes.get(nodeId);
    if (!group) return;
    group.dataset.state = state;
    const classes = ["node", `state-${state}`];
    if (waiting) classes.push("waiting");
    if (group.classList.contains("selected")) classes.push("selected");
    group.setAttribute("class", classes.join(" "));
    const label = waiting ? (WAITING_LABELS[waitingKind] ?? "waiting") : state;
    group.querySelector("text.state").textContent = attempt > 1 ? `${label} · attempt ${attempt}` : label;
    group.querySelector("title").textContent = waiting ? `${nodeId}: ${waiting}` : group.dataset.title;
  }

  select(nodeId) {
    for (const [id, group] of this.nodes) group.classList.toggle("selected", id === nodeId);
  }
}
