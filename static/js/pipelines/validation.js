// Validation as you edit: the server's validator judges the spec a moment after each change;
// its errors mark their nodes, ports and edges on the canvas and list in the Problems panel,
// where a click selects the node. document.body.dataset.validation says where it stands:
// pending, valid, invalid or failed (the server could not be asked).

import { post } from "../api.js";
import { viewClass } from "./canvas.js";

const AFTER_MS = 350;
const CYCLE = /the graph has a cycle: (.+)$/;

/** The nodes an error concerns: its node, and for a cycle every node on it. */
export function nodesOf(error) {
  const nodes = new Set(error.node ? [error.node] : []);
  const cycle = CYCLE.exec(error.message || "");
  if (cycle) for (const id of cycle[1].split(" -> ")) nodes.add(id.trim());
  return nodes;
}

export function createValidation({ url, graph, tools, list, count }) {
  let timer = null;
  let asked = 0;
  let lastKey = null;
  let marked = [];
  let lastState = "pending";

  const state = (value) => { document.body.dataset.validation = value; };

  function clearMarks() {
    for (const undo of marked) undo();
    marked = [];
  }

  function markCell(cell, messages) {
    viewClass(graph, cell, "has-error", true);
    const view = graph.findViewByCell(cell);
    if (view && view.container) view.container.dataset.errors = messages.join("\n");
    marked.push(() => {
      viewClass(graph, cell, "has-error", false);
      const v = graph.findViewByCell(cell);
      if (v && v.container) delete v.container.dataset.errors;
    });
  }

  function markPort(cell, portId) {
    const view = graph.findViewByCell(cell);
    const el = view && view.container.querySelector(`[port="${CSS.escape(portId)}"]`);
    if (!el) return;
    el.classList.add("port-error");
    marked.push(() => el.classList.remove("port-error"));
  }

  function show(errors, edgeCells) {
    clearMarks();
    const byNode = new Map();
    for (const error of errors) {
      for (const id of nodesOf(error)) {
        if (!byNode.has(id)) byNode.set(id, []);
        byNode.get(id).push(error.message);
      }
      const edge = /^edges\[(\d+)\]/.exec(error.field || "");
      if (edge && edgeCells[Number(edge[1])]) {
        markCell(edgeCells[Number(edge[1])], [error.message]);
      }
      const input = /^inputs\.([A-Za-z0-9_]+)$/.exec(error.field || "");
      if (input && error.node && graph.getCellById(error.node)) {
        markPort(graph.getCellById(error.node), `in:${input[1]}`);
      }
    }
    for (const [id, messages] of byNode) {
      const cell = graph.getCellById(id);
      if (cell) markCell(cell, messages);
    }
    renderList(errors, edgeCells);
    lastState = errors.length ? "invalid" : "valid";
    state(lastState);
  }

  function renderList(errors, edgeCells) {
    list.replaceChildren();
    count.textContent = errors.length ? String(errors.length) : "";
    count.hidden = !errors.length;
    if (!errors.length) {
      const ok = document.createElement("p");
      ok.className = "ok";
      ok.textContent = "No problems found.";
      list.append(ok);
      return;
    }
    for (const error of errors) {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "problem";
      if (error.node) button.dataset.node = error.node;
      const where = [error.node, error.field].filter(Boolean).join(" · ");
      button.innerHTML = `<span class="problem-where"></span><span class="problem-message"></span>`;
      button.querySelector(".problem-where").textContent = where || "pipeline";
      button.querySelector(".problem-message").textContent = error.message;
      button.addEventListener("click", () => {
        const edge = /^edges\[(\d+)\]/.exec(error.field || "");
        const cell = (error.node && graph.getCellById(error.node))
          || (edge && edgeCells[Number(edge[1])]) || null;
        if (!cell) return;
        tools.select(cell);
        graph.centerCell(cell);
      });
      li.append(button);
      list.append(li);
    }
  }

  async function ask(spec, edgeCells, key) {
    const mine = ++asked;
    try {
      const reply = await post(url, { spec });
      if (mine !== asked) return; // an answer to an older spec
      lastKey = key;
      show(reply.errors || [], edgeCells);
    } catch (exc) {
      if (mine !== asked) return;
      // A 400 with errors is the validator's answer too, for servers that answer so.
      if (exc.errors && exc.errors.length) {
        lastKey = key;
        show(exc.errors, edgeCells);
      } else {
        renderList([{ node: null, field: null,
                      message: `Could not validate: ${exc.message}` }], []);
        state("failed");
      }
    }
  }

  return {
    /** Validate soon, unless only positions changed since the last answer. */
    schedule({ spec, edgeCells }) {
      const key = JSON.stringify({ ...spec, nodes: spec.nodes.map(({ position, ...n }) => n) });
      clearTimeout(timer);
      if (key === lastKey) {
        asked += 1; // an answer still on its way is about another spec
        state(lastState);
        return;
      }
      state("pending");
      timer = setTimeout(() => ask(spec, edgeCells, key), AFTER_MS);
    },
    show,
  };
}
