// The pipeline spec <-> the X6 graph. A node's X6 data is its spec node without id and
// position (so fields the editor does not show, such as env, survive a round trip); the X6
// cell id is the node id; edges join "out:<port>" to "in:<port>".

import { nodeMetadata, portId, portName } from "./node-shape.js";

const NODE_ORDER = ["component", "label", "params", "compute", "allow_reuse", "retries",
  "timeout_s", "continue_on_failure", "env", "secrets", "ports"];

/** X6 cells for a spec; nodes without a position are placed at 0,0 (lay them out after). */
export function specToCells(graph, spec, catalog) {
  const nodes = Array.isArray(spec.nodes) ? spec.nodes : [];
  const edges = Array.isArray(spec.edges) ? spec.edges : [];
  const inferred = inferPorts(edges);
  const cells = [];
  for (const raw of nodes) {
    if (!raw || typeof raw !== "object" || typeof raw.id !== "string") continue;
    const { id, position, ...data } = raw;
    const component = catalog.get(data.component);
    // A node of an unknown component keeps the ports its edges name, so no edge is lost.
    if (!component && !data.ports && inferred.has(id)) data.ports = inferred.get(id);
    cells.push(graph.createNode(nodeMetadata(id, data, component, position)));
  }
  const ids = new Set(cells.map((c) => c.id));
  for (const raw of edges) {
    const ends = edgeEnds(raw);
    if (!ends || !ids.has(ends.from.node) || !ids.has(ends.to.node)) continue;
    cells.push(graph.createEdge({
      shape: "pipeline-edge",
      source: { cell: ends.from.node, port: portId("outputs", ends.from.port) },
      target: { cell: ends.to.node, port: portId("inputs", ends.to.port) },
    }));
  }
  return cells;
}

export function hasAllPositions(spec) {
  return (spec.nodes || []).every((n) => n && n.position && Number.isFinite(+n.position.x)
    && Number.isFinite(+n.position.y));
}

function edgeEnds(raw) {
  if (!raw || typeof raw.from !== "string" || typeof raw.to !== "string") return null;
  const split = (text) => {
    const dot = text.indexOf(".");
    return dot > 0 ? { node: text.slice(0, dot), port: text.slice(dot + 1) } : null;
  };
  const from = split(raw.from);
  const to = split(raw.to);
  return from && to ? { from, to } : null;
}

function inferPorts(edges) {
  const found = new Map();
  const at = (id) => {
    if (!found.has(id)) found.set(id, { inputs: [], outputs: [] });
    return found.get(id);
  };
  for (const raw of edges) {
    const ends = edgeEnds(raw);
    if (!ends) continue;
    const out = at(ends.from.node).outputs;
    if (!out.some((p) => p.name === ends.from.port)) out.push({ name: ends.from.port });
    const inp = at(ends.to.node).inputs;
    if (!inp.some((p) => p.name === ends.to.port)) inp.push({ name: ends.to.port });
  }
  return found;
}

/** The spec the graph shows, with the pipeline parameters. */
export function graphToSpec(graph, parameters) {
  const nodes = graph.getNodes().map((node) => {
    const data = node.getData() || {};
    const spec = { id: node.id };
    for (const key of NODE_ORDER) if (data[key] !== undefined) spec[key] = data[key];
    for (const [key, value] of Object.entries(data)) if (!(key in spec)) spec[key] = value;
    const { x, y } = node.getPosition();
    spec.position = { x: Math.round(x), y: Math.round(y) };
    return spec;
  });
  const edges = [];
  for (const edge of graph.getEdges()) {
    const source = edge.getSourceCellId();
    const target = edge.getTargetCellId();
    if (!source || !target || !edge.getSourcePortId() || !edge.getTargetPortId()) continue;
    edges.push({ from: `${source}.${portName(edge.getSourcePortId())}`,
                 to: `${target}.${portName(edge.getTargetPortId())}`, cell: edge });
  }
  return {
    spec: { parameters: structuredClone(parameters), nodes,
            edges: edges.map(({ from, to }) => ({ from, to })) },
    edgeCells: edges.map((e) => e.cell),
  };
}
