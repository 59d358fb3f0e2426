// The run page's live feed: a WebSocket that reconnects, and the bookkeeping that makes the
// page whole again after a gap. Every log and metric event numbers its items (first..first+n-1
// per step attempt); the channel layer may drop events, so a stream that sees a number it did
// not expect, or a socket that reconnects, refetches the missing range over REST
// (docs/reliability.md R9). The database, not the socket, is the truth.

/** A WebSocket to `path` that reconnects with back-off until closed for good. */
export class LiveSocket {
  constructor(path, { onEvent, onOpen, onState }) {
    this.url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;
    this.onEvent = onEvent;
    this.onOpen = onOpen;
    this.onState = onState || (() => {});
    this.opened = 0;
    this.delay = 500;
    this.stopped = false;
    this.connect();
  }

  connect() {
    this.onState("connecting");
    const socket = new WebSocket(this.url);
    this.socket = socket;
    socket.onopen = () => {
      this.delay = 500;
      this.opened += 1;
      this.onState("open");
      this.onOpen(this.opened > 1);
    };
    socket.onmessage = (message) => {
      try {
        this.onEvent(JSON.parse(message.data));
      } catch (exc) {
        console.error("could not apply a live event", exc);
      }
    };
    socket.onclose = (event) => {
      if (this.stopped) return;
      // 4403: membership revoked or signed out; 4404: not a member. Retrying cannot help.
      if (event.code === 4403 || event.code === 4404) {
        this.onState("denied");
        return;
      }
      this.onState("reconnecting");
      setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, 5000);
    };
  }

  close() {
    this.stopped = true;
    if (this.socket) this.socket.close();
  }
}

/**
 * One numbered stream (a step attempt's log lines): applies items in order exactly once.
 * `fetchAfter(index)` resolves with {items: [{index, ...}], more}; `apply(items)` draws them.
 * Items numbered from SYSTEM_BASE on are the server's own notes: applied, never counted.
 */
export class NumberedStream {
  static SYSTEM_BASE = 2_000_000_000;

  constructor(fetchAfter, apply) {
    this.fetchAfter = fetchAfter;
    this.apply = apply;
    this.next = 1;
    this.pending = [];
    this.busy = null;
    this.seen = new Set(); // system items, by index
  }

  /** Items that arrived live, numbered from `first`. */
  offer(first, items) {
    if (this.busy) {
      this.pending.push([first, items]);
      return;
    }
    if (first > this.next) {
      this.pending.push([first, items]);
      this.refill();
      return;
    }
    const fresh = items.slice(this.next - first).map((item, i) => ({ ...item, index: this.next + i }));
    if (fresh.length) {
      this.next += fresh.length;
      this.apply(fresh);
    }
  }

  /** Fetch everything after what was applied, then replay what arrived meanwhile. */
  refill() {
    if (this.busy) return this.busy;
    this.busy = (async () => {
      try {
        for (let round = 0; round < 100; round += 1) {
          const page = await this.fetchAfter(this.next - 1);
          const fresh = [];
          for (const item of page.items) {
            if (item.index >= NumberedStream.SYSTEM_BASE) {
              if (!this.seen.has(item.index)) fresh.push(item);
              this.seen.add(item.index);
            } else if (item.index >= this.next) {
              fresh.push(item);
              this.next = item.index + 1;
            }
          }
          if (fresh.length) this.apply(fresh);
          if (!page.more) break;
        }
      } catch (exc) {
        // The server is away (a restart): keep what arrived and try again shortly.
        console.warn("could not fetch missing items; retrying", exc);
        this.busy = null;
        setTimeout(() => this.refill(), 1000);
        return;
      }
      this.busy = null;
      const waiting = this.pending.sort((a, b) => a[0] - b[0]);
      this.pending = [];
      for (const [first, items] of waiting) this.offer(first, items);
    })();
    return this.busy;
  }
}
