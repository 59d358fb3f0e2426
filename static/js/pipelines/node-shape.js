// How a step looks on the canvas: an X6 node with a title, its component, and typed ports
// (inputs on the left, outputs on the right). Port ids are "in:<name>" and "out:<name>", so an
// input and an output may share a name.

import { portsOf } from "./components.js";

const { Graph } = window.X6;

export const SHAPE = "pipeline-step";
export const WIDTH = 220;
const HEADER = 44;
const PORT_GAP = 22;

export const TYPE_COLORS = {
  any: "#8a94a6", file: "#2f6fde", folder: "#1f8a9d", table: "#1f9d55", model: "#8e44ad",
  json: "#d98b1c", text: "#6b7385", image: "#c0392b",
};

Graph.registerNode(SHAPE, {
  inherit: "rect",
  width: WIDTH,
  height: 60,
  markup: [
    { tagName: "rect", selector: "body" },
    { tagName: "rect", selector: "stripe" },
    { tagName: "text", selector: "title" },
    { tagName: "text", selector: "subtitle" },
  ],
  attrs: {
    body: { refWidth: "100%", refHeight: "100%", rx: 6, ry: 6, fill: "#fff",
            stroke: "#aab3c5", strokeWidth: 1.5 },
    stripe: { width: 5, refHeight: "100%", rx: 2, fill: "#2f6fde" },
    title: { refX: 14, refY: 16, fontSize: 13, fontWeight: 600, fill: "#1d2330",
             textAnchor: "start", textVerticalAnchor: "middle" },
    subtitle: { refX: 14, refY: 33, fontSize: 11, fill: "#6b7385",
                textAnchor: "start", textVerticalAnchor: "middle" },
  },
  ports: {
    groups: {
      in: {
        position: "absolute",
        label: { position: { name: "right", args: { x: 10 } } },
        attrs: {
          circle: { r: 6, magnet: "passive", stroke: "#fff", strokeWidth: 2 },
          text: { fontSize: 11, fill: "#3b4354" },
        },
      },
      out: {
        position: "absolute",
        label: { position: { name: "left", args: { x: -10 } } },
        attrs: {
          circle: { r: 6, magnet: true, stroke: "#fff", strokeWidth: 2 },
          text: { fontSize: 11, fill: "#3b4354" },
        },
      },
    },
  },
});

export const portId = (kind, name) => `${kind === "inputs" ? "in" : "out"}:${name}`;
export const portName = (id) => (id || "").replace(/^(in|out):/, "");

function portItems(ports) {
  const items = [];
  ports.inputs.forEach((p, i) => items.push(portItem("inputs", p, i, 0)));
  ports.outputs.forEach((p, i) => items.push(portItem("outputs", p, i, WIDTH)));
  return items;
}

function portItem(kind, port, index, x) {
  const type = port.type || "any";
  const label = `${port.name}${port.optional ? "?" : ""} · ${type}`;
  return {
    id: portId(kind, port.name),
    group: kind === "inputs" ? "in" : "out",
    args: { x, y: HEADER + 10 + index * PORT_GAP },
    attrs: {
      circle: { fill: TYPE_COLORS[type] || TYPE_COLORS.any, "data-type": type },
      text: { text: label },
    },
  };
}

function heightFor(ports) {
  return Math.max(60, HEADER + Math.max(ports.inputs.length, ports.outputs.length) * PORT_GAP + 8);
}

function titleOf(id, data, component) {
  return {
    title: data.label || (component ? component.title : data.component),
    subtitle: `${id} · ${data.component}${component ? "" : " (unknown)"}`,
  };
}

/** X6 node metadata for a spec node (its data is the spec node without id and position). */
export function nodeMetadata(id, data, component, position) {
  const ports = portsOf(data, component);
  const text = titleOf(id, data, component);
  return {
    id,
    shape: SHAPE,
    x: position ? Number(position.x) : 0,
    y: position ? Number(position.y) : 0,
    width: WIDTH,
    height: heightFor(ports),
    data,
    attrs: {
      title: { text: text.title },
      subtitle: { text: text.subtitle },
      stripe: { fill: component ? categoryColor(component.category) : "#d64545" },
    },
    ports: { items: portItems(ports) },
  };
}

/** Bring a node's label, size and ports in line with its data (after an edit or an undo). */
export function syncNode(node, component) {
  const data = node.getData() || {};
  const ports = portsOf(data, component);
  const text = titleOf(node.id, data, component);
  const quiet = { ignoreHistory: true };
  if (node.attr("title/text") !== text.title) node.attr("title/text", text.title, quiet);
  const wanted = portItems(ports);
  const current = node.getPorts();
  const same = wanted.length === current.length && wanted.every((p, i) =>
    p.id === current[i].id && p.attrs.text.text === (current[i].attrs?.text?.text));
  if (!same) {
    // Edges on ports that no longer exist go with them (part of the same undoable change).
    const keep = new Set(wanted.map((p) => p.id));
    for (const edge of node.model ? node.model.getConnectedEdges(node) : []) {
      const port = edge.getSourceCellId() === node.id ? edge.getSourcePortId()
        : edge.getTargetPortId();
      if (!keep.has(port)) edge.remove();
    }
    node.prop("ports/items", wanted, { rewrite: true });
  }
  const size = node.getSize();
  const height = heightFor(ports);
  if (size.height !== height) node.resize(WIDTH, height);
}

const CATEGORY_COLORS = ["#2f6fde", "#1f9d55", "#8e44ad", "#d98b1c", "#1f8a9d", "#c0392b"];

function categoryColor(category) {
  let hash = 0;
  for (const ch of category || "") hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return CATEGORY_COLORS[hash % CATEGORY_COLORS.length];
}

Graph.registerEdge("pipeline-edge", {
  inherit: "edge",
  attrs: {
    line: { stroke: "#8a94a6", strokeWidth: 2,
            targetMarker: { name: "block", width: 8, height: 6 } },
  },
  connector: { name: "smooth" },
  zIndex: -1,
});
