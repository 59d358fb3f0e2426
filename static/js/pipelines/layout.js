// Auto-layout with dagre: steps flow left to right in ranks, as data flows.

const { dagre } = window;

/** Move every node to its dagre position; one undoable change. */
export function autoLayout(graph, { history = true } = {}) {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "LR", nodesep: 40, ranksep: 90, marginx: 40, marginy: 40 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const node of graph.getNodes()) {
    const { width, height } = node.getSize();
    g.setNode(node.id, { width, height });
  }
  for (const edge of graph.getEdges()) {
    const source = edge.getSourceCellId();
    const target = edge.getTargetCellId();
    if (source && target) g.setEdge(source, target);
  }
  dagre.layout(g);
  const options = history ? {} : { ignoreHistory: true };
  graph.batchUpdate("layout", () => {
    for (const node of graph.getNodes()) {
      const placed = g.node(node.id);
      const { width, height } = node.getSize();
      node.position(Math.round(placed.x - width / 2), Math.round(placed.y - height / 2), options);
    }
  });
}
