// The WebSocket API: one connection per open stream page, reconnecting on its own.
// After a drop it asks `catch_up` from the last chat `seq` it saw and tells the page
// to re-read the state; chat messages are de-duplicated by `seq`, other events by
// their `sequence`, so nothing shows twice.

const RETRY_MAX_MS = 10_000;
// API Gateway closes a connection idle for 10 minutes.
const KEEPALIVE_MS = 5 * 60_000;

export class LiveSocket {
  /**
   * @param {object} o
   * @param {string} o.wsUrl the WebSocket API's base URL
   * @param {string} o.token the caller's JWT (browsers cannot set headers on sockets)
   * @param {string} o.streamId
   * @param {(event: object) => void} o.onEvent each new event, once
   * @param {(state: string, detail?: string) => void} o.onState connecting, open, closed, refused
   * @param {() => void} o.onReconnect after a reconnect: re-read what events only update
   */
  constructor({ wsUrl, token, streamId, onEvent, onState, onReconnect }) {
    Object.assign(this, { wsUrl, token, streamId, onEvent, onState, onReconnect });
    this.lastSeq = 0;
    this.seenSeqs = new Set();
    this.seenSequences = new Set();
    this.retries = 0;
    this.opened = false;
    this.stopped = false;
    this.socket = null;
  }

  /** Records chat messages read over HTTP so their events are not shown again. */
  markSeen(seq) {
    this.seenSeqs.add(seq);
    this.lastSeq = Math.max(this.lastSeq, seq);
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.keepalive);
    if (this.socket) this.socket.close(1000, 'left');
  }

  send(action) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(action));
      return true;
    }
    return false;
  }

  connect() {
    const q = new URLSearchParams({ token: this.token, stream_id: this.streamId });
    this.onState('connecting');
    const socket = new WebSocket(`${this.wsUrl}/?${q}`);
    this.socket = socket;
    socket.onopen = () => {
      const reconnect = this.opened;
      this.opened = true;
      this.retries = 0;
      this.onState('open');
      clearInterval(this.keepalive);
      this.keepalive = setInterval(() => this.send({ action: 'ping' }), KEEPALIVE_MS);
      if (reconnect) {
        this.send({ action: 'catch_up', since: this.lastSeq });
        this.onReconnect();
      }
    };
    socket.onmessage = (message) => {
      let parsed;
      try {
        parsed = JSON.parse(message.data);
      } catch {
        return;
      }
      for (const event of Array.isArray(parsed) ? parsed : [parsed]) this.deliver(event);
    };
    socket.onclose = (close) => {
      if (this.socket !== socket) return;
      this.socket = null;
      clearInterval(this.keepalive);
      if (this.stopped) {
        this.onState('closed');
        return;
      }
      // A refusal at connect (never opened) is final: wrong token, stream not visible.
      if (!this.opened && this.retries >= 2) {
        this.onState('refused', close.reason || `code ${close.code}`);
        return;
      }
      const delay = Math.min(RETRY_MAX_MS, 500 * 2 ** this.retries);
      this.retries += 1;
      this.onState('reconnecting');
      this.timer = setTimeout(() => this.connect(), delay);
    };
  }

  deliver(event) {
    if (event.type === 'chat.message' && event.data) {
      const seq = event.data.seq;
      if (this.seenSeqs.has(seq)) return;
      this.markSeen(seq);
    } else if (event.type === 'chat.history' && event.data) {
      this.lastSeq = Math.max(this.lastSeq, event.data.last_seq || 0);
      if (event.data.has_more) this.send({ action: 'catch_up', since: this.lastSeq });
    } else if (event.sequence != null) {
      if (this.seenSequences.has(event.sequence)) return;
      this.seenSequences.add(event.sequence);
    }
    this.onEvent(event);
  }
}
