// Compute targets with their workers (online, lost), slots in use, queue depth and the steps
// running now. Drawn from the page's data at load, then refreshed every few seconds.

import { get } from "../api.js";

const data = JSON.parse(document.getElementById("compute-data").textContent);
const box = document.querySelector('[data-testid="targets"]');
const updated = document.querySelector('[data-testid="compute-updated"]');

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function ago(iso) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 90 ? `${s} s ago` : `${Math.round(s / 60)} min ago`;
}

function figure(label, value, testid) {
  return h("div", {}, h("strong", { text: String(value), "data-testid": testid }), label);
}

function drawTarget(t) {
  const hardware = Object.entries(t.hardware || {}).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ");
  const workers = h("table", {}, h("tr", {}, ...["Worker", "State", "Slots in use", "Last seen"].map((x) => h("th", { text: x }))));
  for (const w of t.workers) {
    workers.append(h("tr", { "data-worker": w.hostname },
      h("td", { text: w.hostname }),
      h("td", {}, h("span", { class: `worker-state ${w.state}`, text: w.state })),
      h("td", { text: `${w.busy} / ${w.slots}` }),
      h("td", { text: ago(w.last_seen_at) })));
  }
  if (!t.workers.length) workers.append(h("tr", {}, h("td", { colspan: 4, class: "muted", text: "No worker has announced itself." })));
  const running = h("table", {}, h("tr", {}, ...["Run", "Pipeline", "Step", "Worker", "Running for"].map((x) => h("th", { text: x }))));
  for (const s of t.running) {
    running.append(h("tr", {},
      h("td", {}, h("a", { href: s.url, text: `#${s.run}` })),
      h("td", { text: s.pipeline }), h("td", { text: s.attempt > 1 ? `${s.node} (attempt ${s.attempt})` : s.node }),
      h("td", { text: s.worker || "—" }), h("td", { text: s.started_at ? ago(s.started_at).replace(" ago", "") : "—" })));
  }
  if (!t.running.length) running.append(h("tr", {}, h("td", { colspan: 5, class: "muted", text: "Nothing running." })));
  return h("section", { class: "card target", "data-target": t.name },
    h("h2", {}, t.name, t.is_default
      ? h("span", { class: "tag", "data-testid": "default-target", title: "New steps of this workspace run here unless their author picks another target.", text: "default" })
      : null),
    t.description ? h("p", { class: "muted", text: t.description }) : null,
    hardware ? h("p", { class: "small", text: hardware }) : null,
    h("div", { class: "figures" },
      figure("workers online", `${t.online} / ${t.workers.length}`, "online"),
      figure("slots in use", `${t.busy} / ${t.slots}`, "slots"),
      figure("queued steps", t.queued, "queued"),
      figure("running steps", t.running.length, "running"),
      figure("max concurrency", t.max_concurrency, "max")),
    h("h3", { text: "Workers" }), workers,
    h("h3", { text: "Running now" }), running);
}

function draw(targets) {
  box.replaceChildren(...(targets.length ? targets.map(drawTarget)
    : [h("section", { class: "card muted", text: "This workspace has no compute targets yet." })]));
  updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
  document.body.dataset.computeReady = "1";
}

async function refresh() {
  try {
    draw((await get(data.statusUrl)).targets);
  } catch (exc) {
    updated.textContent = `could not refresh: ${exc.message}`;
  }
  setTimeout(refresh, data.refreshEveryS * 1000);
}

draw(data.targets);
setTimeout(refresh, data.refreshEveryS * 1000);
