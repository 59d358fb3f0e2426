// Which edges may be drawn: from an output port to an input port of another node, between
// types that fit ("any" fits every type), one edge per input. The server's validator has the
// last word; these rules refuse the obvious mistakes while the user draws, and say why.

import { portName } from "./node-shape.js";

export const typesFit = (from, to) => from === to || from === "any" || to === "any";

function portInfo(cell, portId) {
  const port = cell && cell.isNode() ? cell.getPort(portId) : null;
  if (!port) return null;
  return { name: portName(portId), type: port.attrs?.circle?.["data-type"] || "any",
           group: port.group };
}

/** True while dragging over a magnet the edge could structurally end on. */
export function canEndOn({ sourceCell, targetCell, sourceMagnet, targetMagnet }) {
  if (!targetMagnet || !sourceMagnet || sourceCell === targetCell) return false;
  return sourceMagnet.getAttribute("port-group") === "out"
    && targetMagnet.getAttribute("port-group") === "in";
}

/** Why this finished edge may not stay, naming nodes and ports; null when it may. */
export function connectionProblem(graph, edge) {
  const source = edge.getSourceCell();
  const target = edge.getTargetCell();
  if (!source || !target) return null; // a dangling edge is dropped by X6 itself
  const from = portInfo(source, edge.getSourcePortId());
  const to = portInfo(target, edge.getTargetPortId());
  if (!from || !to) return `Connect an output port to an input port.`;
  const start = `${source.id}.${from.name}`;
  const end = `${target.id}.${to.name}`;
  if (from.group !== "out" || to.group !== "in") {
    return `Cannot connect ${start} to ${end}: edges go from an output to an input.`;
  }
  if (source.id === target.id) {
    return `Cannot connect ${start} to ${end}: a node cannot feed itself.`;
  }
  if (!typesFit(from.type, to.type)) {
    return `Cannot connect ${start} (${from.type}) to ${end} (${to.type}): ` +
      `the port types do not match.`;
  }
  const other = graph.getEdges().find((e) => e !== edge && e.getTargetCellId() === target.id
    && e.getTargetPortId() === edge.getTargetPortId());
  if (other) {
    return `Cannot connect ${start} to ${end}: that input already takes ` +
      `${other.getSourceCellId()}.${portName(other.getSourcePortId())}; an input takes one edge.`;
  }
  return null;
}
