// Live events of one stream over the WebSocket API, reconnecting by itself: after every
// (re)connection it asks `catch_up` from the last chat `seq` it delivered, so no message
// is lost across a dropped connection or API Gateway's 2-hour limit, and none is
// delivered twice.
import type { ClientAction, ServerMessage } from "./generated/live.js";

/** What the helper needs of a WebSocket: the browser's, or `ws` in Node. */
export interface WebSocketLike {
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: unknown) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type LiveStatus = "connecting" | "open" | "closed";

export interface LiveEventsOptions {
  /** The WebSocket API: `ws://127.0.0.1:3001` locally, a deployment's `WebSocketUrl`. */
  url: string;
  /** The user's JWT, or a function returning the current one (read at every connect). */
  token: string | (() => string | Promise<string>);
  streamId: string;
  /** Every server message, once; chat messages may arrive out of `seq` order around a catch-up. */
  onEvent: (event: ServerMessage) => void;
  onStatus?: (status: LiveStatus) => void;
  /** The last chat `seq` the caller already has (default 0: the whole history). */
  since?: number;
  /** Defaults to the global `WebSocket`. */
  WebSocket?: new (url: string) => WebSocketLike;
  /** First reconnect delay, doubled per failed attempt up to 30 s (default 1000 ms). */
  reconnectDelayMs?: number;
  /** Pings keep API Gateway from closing an idle connection after 10 minutes (default 5 min). */
  pingIntervalMs?: number;
}

const MAX_RECONNECT_DELAY_MS = 30_000;

export class LiveEvents {
  readonly #options: LiveEventsOptions;
  #socket: WebSocketLike | undefined;
  #stopped = false;
  #attempt = 0;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #pingTimer: ReturnType<typeof setInterval> | undefined;
  /** Every chat seq up to here was delivered (or hidden); catch_up resumes here. */
  #contiguousSeq: number;
  /** Delivered seqs above `#contiguousSeq` (live messages that overtook a catch-up). */
  readonly #deliveredAbove = new Set<number>();
  /** The highest live `sequence` seen: live events at or below it are repeats. */
  #lastSequence: bigint | undefined;

  constructor(options: LiveEventsOptions) {
    this.#options = options;
    this.#contiguousSeq = options.since ?? 0;
    void this.#connect();
  }

  /** The chat `seq` a reconnect will catch up from. */
  get lastSeq(): number {
    return this.#contiguousSeq;
  }

  /** Sends an action; false when not connected. */
  send(action: ClientAction): boolean {
    if (!this.#socket || this.#status !== "open") return false;
    this.#socket.send(JSON.stringify(action));
    return true;
  }

  /** Drops the connection as a network failure would; the helper reconnects and catches up. */
  reconnect(): void {
    this.#socket?.close(4000, "reconnect");
  }

  /** Closes for good. */
  close(): void {
    this.#stopped = true;
    clearTimeout(this.#reconnectTimer);
    clearInterval(this.#pingTimer);
    this.#socket?.close(1000, "closed by the client");
  }

  #status: LiveStatus = "connecting";

  #setStatus(status: LiveStatus): void {
    this.#status = status;
    this.#options.onStatus?.(status);
  }

  async #connect(): Promise<void> {
    if (this.#stopped) return;
    this.#setStatus("connecting");
    const { token, streamId, url } = this.#options;
    const jwt = typeof token === "function" ? await token() : token;
    const separator = url.includes("?") ? "&" : "?";
    const Socket = this.#options.WebSocket ?? (globalThis.WebSocket as unknown as new (url: string) => WebSocketLike);
    const socket = new Socket(
      `${url}${separator}token=${encodeURIComponent(jwt)}&stream_id=${encodeURIComponent(streamId)}`,
    );
    this.#socket = socket;
    socket.onopen = () => {
      this.#attempt = 0;
      this.#setStatus("open");
      this.send({ action: "catch_up", since: this.#contiguousSeq });
      this.#pingTimer = setInterval(
        () => this.send({ action: "ping" }),
        this.#options.pingIntervalMs ?? 5 * 60_000,
      );
    };
    socket.onmessage = (event) => this.#receive(event.data);
    socket.onerror = () => {};
    socket.onclose = () => {
      if (this.#socket !== socket) return;
      clearInterval(this.#pingTimer);
      this.#setStatus("closed");
      if (this.#stopped) return;
      const delay = Math.min(
        (this.#options.reconnectDelayMs ?? 1000) * 2 ** this.#attempt,
        MAX_RECONNECT_DELAY_MS,
      );
      this.#attempt += 1;
      this.#reconnectTimer = setTimeout(() => void this.#connect(), delay);
    };
  }

  #receive(raw: unknown): void {
    const text = typeof raw === "string" ? raw : new TextDecoder().decode(raw as ArrayBuffer);
    const parsed = JSON.parse(text) as ServerMessage | ServerMessage[];
    for (const event of Array.isArray(parsed) ? parsed : [parsed]) {
      if (event.sequence !== null) {
        const sequence = BigInt(event.sequence);
        if (this.#lastSequence !== undefined && sequence <= this.#lastSequence) continue;
        this.#lastSequence = sequence;
      }
      if (event.type === "chat.message") {
        const seq = event.data.seq;
        if (seq <= this.#contiguousSeq || this.#deliveredAbove.has(seq)) continue;
        this.#deliveredAbove.add(seq);
        this.#advance(this.#contiguousSeq);
      } else if (event.type === "chat.history") {
        // Seqs up to last_seq are all read now, hidden ones included.
        this.#advance(event.data.last_seq);
        if (event.data.has_more) this.send({ action: "catch_up", since: this.#contiguousSeq });
      }
      this.#options.onEvent(event);
    }
  }

  #advance(to: number): void {
    this.#contiguousSeq = Math.max(this.#contiguousSeq, to);
    for (const seq of this.#deliveredAbove) {
      if (seq <= this.#contiguousSeq) this.#deliveredAbove.delete(seq);
    }
    while (this.#deliveredAbove.delete(this.#contiguousSeq + 1)) this.#contiguousSeq += 1;
  }
}
