// The canvas: an X6 graph with pan and zoom, selection, snaplines, undo/redo and
// drag-and-drop from the palette. Edges are drawn from an output port to an input port and
// checked by connection-rules.js; a refused edge is removed and `onRefused` says why.

import { canEndOn, connectionProblem } from "./connection-rules.js";
import { syncNode } from "./node-shape.js";

const X6 = window.X6;

export function createCanvas(container, { catalog, readOnly = false, onRefused = () => {} }) {
  const graph = new X6.Graph({
    container,
    autoResize: true,
    background: { color: "#fbfcfd" },
    grid: { visible: true, size: 10, type: "dot", args: { color: "#d5dae3" } },
    panning: { enabled: true, eventTypes: ["leftMouseDown"] },
    mousewheel: { enabled: true, zoomAtMousePosition: true, minScale: 0.25, maxScale: 2.5,
                  modifiers: null, factor: 1.1 },
    interacting: readOnly ? { nodeMovable: false, edgeMovable: false, magnetConnectable: false,
                              edgeLabelMovable: false, arrowheadMovable: false,
                              vertexMovable: false, vertexAddable: false,
                              vertexDeletable: false } : { edgeLabelMovable: false },
    connecting: {
      snap: { radius: 24 },
      allowBlank: false,
      allowLoop: false,
      allowNode: false,
      allowEdge: false,
      allowMulti: "withPort",
      highlight: true,
      anchor: "center",
      connectionPoint: "anchor",
      createEdge() {
        return this.createEdge({ shape: "pipeline-edge" });
      },
      validateMagnet: ({ magnet }) => !readOnly && magnet.getAttribute("port-group") === "out",
      validateConnection: (args) => canEndOn(args),
      validateEdge: ({ edge }) => {
        const problem = connectionProblem(graph, edge);
        if (problem) onRefused(problem);
        return !problem;
      },
    },
    highlighting: {
      magnetAvailable: { name: "className", args: { className: "port-available" } },
      magnetAdsorbed: { name: "className", args: { className: "port-adsorbed" } },
    },
  });

  const selection = new X6.Selection({
    enabled: true, multiple: true, rubberband: true, modifiers: "shift", movable: !readOnly,
    showNodeSelectionBox: false, showEdgeSelectionBox: false, pointerEvents: "none",
  });
  graph.use(selection);
  graph.use(new X6.Snapline({ enabled: !readOnly }));
  const history = new X6.History({
    enabled: !readOnly,
    stackSize: 200,
    // Derived looks (titles redrawn after an undo, layout on open) are not user changes.
    beforeAddCommand: (event, args) => !(args && args.options && args.options.ignoreHistory),
  });
  graph.use(history);

  // After undo/redo the data may say other ports or another label than the view shows.
  graph.on("cell:change:data", ({ cell }) => {
    if (cell.isNode()) syncNode(cell, catalog.get((cell.getData() || {}).component));
  });

  graph.on("selection:changed", ({ added, removed }) => {
    for (const cell of removed) viewClass(graph, cell, "is-selected", false);
    for (const cell of added) viewClass(graph, cell, "is-selected", true);
  });

  const dnd = readOnly ? null : new X6.Dnd({
    target: graph,
    scaled: true,
    // The node built for the drag already carries its final id and data.
    getDragNode: (node) => node.clone({ keepId: true }),
    getDropNode: (node) => node.clone({ keepId: true }),
    validateNode: (node) => !graph.hasCell(node.id),
  });

  // The UMD build of X6 does not add the plugins' shortcuts (graph.undo(), graph.select(),
  // ...) to Graph, so the editor goes through these.
  const tools = {
    selected: () => selection.getSelectedCells(),
    select(cells) {
      selection.clean();
      selection.select(cells);
    },
    clearSelection: () => selection.clean(),
    undo: () => history.undo(),
    redo: () => history.redo(),
    canUndo: () => history.canUndo(),
    canRedo: () => history.canRedo(),
    /** Run `fn` with history off, then forget everything before (a fresh document). */
    fresh(fn) {
      history.disable();
      try { fn(); } finally {
        if (!readOnly) history.enable();
        history.clean();
      }
    },
  };

  return {
    graph,
    tools,
    /** Start dragging a new node (from a palette mousedown). */
    startDrag(node, event) {
      if (dnd) dnd.start(node, event);
    },
  };
}

/** Add or remove a CSS class on a cell's view (looks only; not part of the model). */
export function viewClass(graph, cell, name, on) {
  const view = graph.findViewByCell(cell);
  if (view && view.container) view.container.classList.toggle(name, on);
}
