// Step logs: one numbered stream per step attempt, filled live and from REST, shown for the
// chosen step with a search filter. The pane draws at most SHOWN lines (the newest, or the
// newest matches); the whole log is a download.

import { get } from "../api.js";
import { NumberedStream } from "./live.js";

const KEEP = 50_000; // lines held per stream
const SHOWN = 2_000;

export class LogPane {
  constructor({ pane, search, follow, count, title, download }, urls) {
    this.pane = pane;
    this.searchInput = search;
    this.follow = follow;
    this.count = count;
    this.title = title;
    this.download = download;
    this.urls = urls;
    this.streams = new Map(); // "node:attempt" -> {stream, lines}
    this.node = null;
    this.attempt = 0;
    this.frame = null;
    search.addEventListener("input", () => this.render());
  }

  key(node, attempt) {
    return `${node}:${attempt}`;
  }

  open(node, attempt) {
    const key = this.key(node, attempt);
    let entry = this.streams.get(key);
    if (entry) return entry;
    entry = { lines: [], stream: null };
    entry.stream = new NumberedStream(
      async (after) => {
        const page = await get(`${this.urls.logs.replace("{node}", encodeURIComponent(node))}?after=${after}&attempt=${attempt}`);
        return { items: page.lines, more: page.more };
      },
      (lines) => {
        for (const line of lines) entry.lines.push(line);
        if (entry.lines.length > KEEP) entry.lines.splice(0, entry.lines.length - KEEP);
        if (this.node === node && this.attempt === attempt) this.schedule();
      },
    );
    this.streams.set(key, entry);
    return entry;
  }

  /** Lines that arrived over the socket. */
  offer(node, attempt, first, lines) {
    this.open(node, attempt).stream.offer(first, lines);
  }

  /** Show a step's log (its latest attempt), fetching what is not here yet. */
  show(node, attempt) {
    this.node = node;
    this.attempt = attempt;
    this.title.textContent = attempt > 1 ? `${node} · attempt ${attempt}` : node;
    this.download.href = this.urls.download.replace("{node}", encodeURIComponent(node));
    const entry = this.streams.get(this.key(node, attempt));
    if (!entry || !entry.loaded) {
      const opened = this.open(node, attempt);
      opened.loaded = true;
      if (attempt > 0) opened.stream.refill();
    }
    this.render();
  }

  /** After a reconnect: fetch whatever each stream may have missed. */
  catchUp() {
    for (const entry of this.streams.values()) entry.stream.refill();
  }

  schedule() {
    if (this.frame !== null) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = null;
      this.render();
    });
  }

  render() {
    const entry = this.node ? this.streams.get(this.key(this.node, this.attempt)) : null;
    const lines = entry ? entry.lines : [];
    const needle = this.searchInput.value.trim().toLowerCase();
    const matching = needle ? lines.filter((l) => l.text.toLowerCase().includes(needle)) : lines;
    const shown = matching.slice(-SHOWN);
    const fragment = document.createDocumentFragment();
    for (const line of shown) {
      const row = document.createElement("div");
      row.className = `line ${line.stream}`;
      if (needle) {
        const at = line.text.toLowerCase().indexOf(needle);
        row.append(line.text.slice(0, at));
        const mark = document.createElement("mark");
        mark.textContent = line.text.slice(at, at + needle.length);
        row.append(mark, line.text.slice(at + needle.length));
      } else {
        row.textContent = line.text;
      }
      fragment.appendChild(row);
    }
    this.pane.replaceChildren(fragment);
    this.pane.dataset.lines = String(lines.length);
    const hidden = matching.length - shown.length;
    this.count.textContent = needle
      ? `${matching.length} of ${lines.length} lines match${hidden ? ` (the last ${SHOWN} shown)` : ""}`
      : `${lines.length} lines${hidden ? ` (the last ${SHOWN} shown; download for all)` : ""}`;
    if (this.follow.checked) this.pane.scrollTop = this.pane.scrollHeight;
  }
}
