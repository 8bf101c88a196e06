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
  /**
   * With "reconnecting" and no delay: the client is not retrying until the page's event
   * ("online" after it went offline, "pageshow" after a pagehide closed the socket).
   */
  waiting?: "online" | "pageshow";
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
   * Sent as a subprotocol beside "wspub.v1" (read it on the server with
   * wspub.SubprotocolToken): "bearer.<token>" when the token is all RFC 7230 token
   * characters, else "bearer64.<base64url of its UTF-8, no padding>", so any token works.
   * A function is called before every connection attempt, so it can refresh the token
   * (after a close 4001 the client reconnects at once for a new one); an empty result
   * connects without a token.
   */
  token?: string | (() => string | null | undefined | Promise<string | null | undefined>);
  /** Extra subprotocols to offer. */
  protocols?: string[];
  /** Milliseconds between application-level pings; 0 disables them. Default: 25000. */
  pingInterval?: number;
  /** Milliseconds to wait for a pong before closing (4000) and reconnecting. Default: 10000. */
  pongTimeout?: number;
  /** Milliseconds a socket may stay connecting before it is given up (1006 "connect timeout"). Default: 10000. */
  connectTimeout?: number;
  /** Reconnect delays: random(0, min(max, min * 2 ** attempt)) ms. Default: {min: 500, max: 30000}. */
  backoff?: { min?: number; max?: number };
  /**
   * Milliseconds after which an unanswered subscribe is sent again, doubled at each try
   * up to backoff.max. Default: 5000.
   */
  subscribeRetry?: number;
  /** Default timeout of c.request, ms; 0: none. Default: 10000. */
  requestTimeout?: number;
  /**
   * Bounds of the messages (send, publish, request) waiting to be sent: at most max (the
   * oldest is dropped), none older than maxAge ms when its turn comes. A dropped message
   * is reported to c.on("error") as client_send_dropped; its publish or request rejects
   * with code "dropped". Default: {max: 100, maxAge: 30000}.
   */
  outbox?: { max?: number; maxAge?: number };
  /**
   * Where the page's events come from: "online", "pagehide", "pageshow" on it,
   * "visibilitychange" on its document, navigator.onLine; null ignores the page.
   * Default: globalThis (the window in a browser; nothing in node).
   */
  lifecycle?: LifecycleTarget | null;
  /** Called with what the client does (states, messages sent and received, limits). Default: none. */
  debug?: (...args: unknown[]) => void;
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

/** The part of a window the client listens to (tests pass an EventTarget). */
export interface LifecycleTarget {
  addEventListener(type: string, fn: (event: any) => void): void;
  removeEventListener(type: string, fn: (event: any) => void): void;
  document?: {
    readonly visibilityState: string;
    addEventListener(type: string, fn: (event: any) => void): void;
    removeEventListener(type: string, fn: (event: any) => void): void;
  };
  navigator?: { readonly onLine: boolean };
}

/** Any message from the server. Unknown keys may appear in later protocol revisions. */
export interface Message<T = unknown> {
  type: string;
  channel?: string;
  data?: T;
  id?: string;
  [key: string]: unknown;
}

/** A message published to a channel, as subscribe's fn receives it. */
export interface ChannelMessage<T = unknown> extends Message<T> {
  channel: string;
  data: T;
}

/** The client's own error codes in c.on("error") messages. */
export type ClientErrorCode =
  | "client_parse_error"
  | "client_token_error"
  | "client_connect_error"
  | "client_handler_error"
  | "client_send_dropped";

/**
 * An error reply of the server ({type: "error", code, message, id}), or an error of the
 * client itself, which has no id and a code starting with "client_":
 * "client_parse_error" (a line that is not a JSON message), "client_token_error" (the
 * token function threw), "client_connect_error" (the WebSocket constructor threw),
 * "client_handler_error" (an application callback threw: error is what it threw),
 * "client_send_dropped" (a message left the outbox unsent: outbox.max or maxAge).
 */
export interface ErrorMessage extends Message {
  type: "error";
  code: ServerErrorCode | ClientErrorCode | (string & {});
  message: string;
  /** What a handler threw (client_handler_error), or the token function, or the constructor. */
  error?: unknown;
}

/** Error codes of the hub (PROTOCOL.md); applications may send their own. */
export type ServerErrorCode =
  | "invalid_message"
  | "unknown_type"
  | "invalid_channel"
  | "forbidden"
  | "too_many_subscriptions"
  | "rate_limited"
  | "message_too_large"
  | "internal";

/**
 * Codes of a WspubError: the server's error codes, or the client's: "closed" (the client
 * is closed), "connection_lost" (the connection ended before the reply: a publish or
 * request may or may not have happened), "unsubscribed" (the subscription ended before
 * the server's answer: by sub.unsubscribe() or the server's Hub.Unsubscribe), "timeout",
 * "aborted" (a request's signal), "dropped" (left the outbox unsent), "invalid_data"
 * (data that JSON.stringify cannot encode).
 */
export type WspubErrorCode =
  | ServerErrorCode
  | "closed"
  | "connection_lost"
  | "unsubscribed"
  | "timeout"
  | "aborted"
  | "dropped"
  | "invalid_data"
  | (string & {});

/** What the client's promises reject with, and what send throws. */
export class WspubError extends Error {
  constructor(code: WspubErrorCode, message?: string, reply?: ErrorMessage);
  name: "WspubError";
  code: WspubErrorCode;
  /** The id of the message the server's error reply answers. */
  id?: string;
  /** The server's error reply, when there is one. */
  reply?: ErrorMessage;
}

export interface Subscription {
  readonly channel: string;
  /**
   * Resolves on the server's first "subscribed" reply. Rejects (WspubError) on a refusal
   * (forbidden, invalid_channel, too_many_subscriptions: the subscription is then dead),
   * with "unsubscribed" when it ends before the answer, with "closed" when the client is
   * closed. Temporary errors (rate_limited, internal) are retried, not rejected.
   */
  readonly ready: Promise<void>;
  /** Forgets it; sends unsubscribe once no other subscription is on the channel. */
  unsubscribe(): void;
}

export interface RequestOptions {
  channel?: string;
  /** Milliseconds until it rejects with "timeout"; 0: none. Default: requestTimeout. */
  timeout?: number;
  /** Rejects it with "aborted" when the signal aborts. */
  signal?: AbortSignal;
}

export interface Client {
  readonly state: State;
  /** Calls fn(state, detail) on every change of state (and on every reconnect attempt); returns off(). */
  onState(fn: (state: State, detail?: StateDetail) => void): () => void;
  /**
   * Subscribes to channel: fn gets every message published to it. The subscribe is sent
   * when the connection opens (several channels per message where the hub allows it),
   * again after every reconnect, and retried with backoff until answered. Subscriptions
   * of one channel share one subscribe.
   */
  subscribe<T = unknown>(channel: string, fn: (msg: ChannelMessage<T>) => void): Subscription;
  /** Calls fn for every message of that type, with or without channel ("*": all); returns off(). */
  on(type: "error", fn: (msg: ErrorMessage) => void): () => void;
  on<T = unknown>(type: string, fn: (msg: Message<T>) => void): () => void;
  /**
   * Sends a custom message {type, data, channel?, id} (now, or when the connection opens,
   * within the outbox's bounds) and returns its id; the server's error reply, if any,
   * carries it. With onlyIfOpen, returns null and sends nothing unless the state is
   * "open". Throws (WspubError) once closed, or at once when data cannot be encoded.
   */
  send(type: string, data?: unknown, options?: { channel?: string; onlyIfOpen?: boolean }): string | null;
  /**
   * Sends {type, data, channel?, id} and resolves with the server's reply to it (the
   * message with that id, from Conn.Reply); rejects (WspubError) on an error reply, on
   * timeout (default: requestTimeout), when signal aborts, when the connection it was
   * sent on ends ("connection_lost") and when the client closes.
   */
  request<T = unknown>(type: string, data?: unknown, options?: RequestOptions): Promise<Message<T>>;
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
