// Types of wspub.js, the browser client of wspub (see README.md beside this file and
// PROTOCOL.md at the root of the repository).

/** The client's connection state. */
export type State = "connecting" | "open" | "reconnecting" | "closed";

/**
 * What onState gets with "reconnecting" and "closed": the close code and reason of the
 * connection (1006 when the handshake failed or the socket broke; 4000 "pong timeout"
 * when the client gave up on a silent server). With "reconnecting", also the delay
 * before the next attempt (ms) and the backoff exponent of that delay: delay is in
 * [0, min(backoff.max, backoff.min * 2 ** attempt)]. "open" has no detail.
 *
 * status is set once a preflight (a body-less POST of the hub's URL, after 3 attempts in a
 * row that never opened) has learned something, and reason is then what it learned: with
 * "closed", the HTTP status and text of a refusal no retry can cure (403: the page's
 * origin is not in the server's OriginPatterns; 501: the hub is mounted behind
 * middleware); with "reconnecting", 426 (the hub is there and refuses the handshake
 * itself: a token or capacity), 503 (shutting down), or the status of an answer that is
 * not a wspub hub's (404: a wrong URL), kept until the connection opens.
 */
export interface StateDetail {
  code: number;
  reason: string;
  delay?: number;
  attempt?: number;
  status?: number;
}

/** The part of the WebSocket API the client uses: the browser's, or node's `ws` package. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: any) => void) | null;
  onmessage: ((event: { data: any }) => void) | null;
  onerror: ((event: any) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
}

export interface ConnectOptions {
  /**
   * Sent as the subprotocol "bearer.<token>" beside "wspub.v1" (read it on the server
   * with wspub.SubprotocolToken). A function is called before every connection attempt,
   * so it can refresh the token; an empty result connects without a token.
   */
  token?: string | (() => string | null | undefined | Promise<string | null | undefined>);
  /** Extra subprotocols to offer. */
  protocols?: string[];
  /** Milliseconds between application-level pings; 0 disables them. Default: 25000. */
  pingInterval?: number;
  /** Milliseconds to wait for a pong before closing (4000) and reconnecting. Default: 10000. */
  pongTimeout?: number;
  /** Reconnect delays: random(0, min(max, min * 2 ** attempt)) ms. Default: {min: 500, max: 30000}. */
  backoff?: { min?: number; max?: number };
  /** Milliseconds after which an unanswered subscribe is sent again. Default: 5000. */
  subscribeRetry?: number;
  /** The WebSocket constructor. Default: globalThis.WebSocket (node 20 has none: pass `ws`). */
  WebSocket?: new (url: string, protocols?: string | string[]) => WebSocketLike;
  /**
   * The fetch of the preflight, called as fetch(url, {method: "POST", credentials: "omit",
   * cache: "no-store", signal}) (again with "GET" after a 405 that is not the hub's); null
   * turns the preflight off. Default: globalThis.fetch.
   */
  fetch?: ((url: string, init: { method: string; credentials: string; cache: string; signal: AbortSignal }) =>
    Promise<{ status: number; text(): Promise<string> }>) | null;
}

/** Any message from the server. Unknown keys may appear in later protocol revisions. */
export interface Message {
  type: string;
  channel?: string;
  data?: unknown;
  id?: string;
  [key: string]: unknown;
}

/** A message published to a channel, as subscribe's fn receives it. */
export interface ChannelMessage extends Message {
  channel: string;
}

/**
 * An error reply of the server ({type: "error", code, message, id}), or an error of the
 * client itself, which has no id and a code starting with "client_":
 * "client_parse_error" (a line that is not a JSON message), "client_token_error" (the
 * token function threw), "client_connect_error" (the WebSocket constructor threw).
 */
export interface ErrorMessage extends Message {
  type: "error";
  code: string;
  message: string;
}

/**
 * What a subscribe's ready or a publish rejects with. code is the server's error code
 * ("forbidden", "too_many_subscriptions", "invalid_channel", ...), and reply its error
 * reply; or "closed" (the client is closed) or "connection_lost" (the connection ended
 * before the reply: a publish may or may not have happened).
 */
export interface WspubError extends Error {
  name: "WspubError";
  code: string;
  id?: string;
  reply?: ErrorMessage;
}

export interface Subscription {
  readonly channel: string;
  /**
   * Resolves on the server's first "subscribed" reply; rejects (WspubError) on an error
   * reply, after which the subscription is dead and not retried.
   */
  readonly ready: Promise<void>;
  /** Sends unsubscribe (if open and no other subscription is on the channel) and forgets it. */
  unsubscribe(): void;
}

export interface Client {
  readonly state: State;
  /** Calls fn(state, detail) on every change of state (and on every reconnect attempt); returns off(). */
  onState(fn: (state: State, detail?: StateDetail) => void): () => void;
  /**
   * Subscribes to channel: fn gets every message published to it. The subscribe is sent
   * now or when the connection opens, again after every reconnect, and retried every
   * subscribeRetry until answered.
   */
  subscribe(channel: string, fn: (msg: ChannelMessage) => void): Subscription;
  /** Calls fn for every message of that type, with or without channel ("*": all); returns off(). */
  on(type: "error", fn: (msg: ErrorMessage) => void): () => void;
  on(type: string, fn: (msg: Message) => void): () => void;
  /**
   * Sends a custom message {type, data, channel?, id} (now, or when the connection opens)
   * and returns its id; the server's error reply, if any, carries it. Throws once closed.
   */
  send(type: string, data?: unknown, options?: { channel?: string }): string;
  /** Publishes to a channel (the server must allow it); resolves on "published". */
  publish(channel: string, data?: unknown): Promise<void>;
  /** Closes with 1000 and never reconnects. */
  close(): void;
}

/**
 * Connects to a wspub hub and keeps the connection open. url is "ws://host/ws" or a path
 * like "/ws", resolved against the page (ws: or wss: by the page's protocol).
 */
export function connect(url: string | URL, options?: ConnectOptions): Client;
