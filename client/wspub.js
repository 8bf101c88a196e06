// wspub.js: the browser client of wspub, one ES module without dependencies or build
// step. It speaks the wire protocol of PROTOCOL.md: subscriptions that survive
// reconnects, application-level pings, batched frames, client publish and custom
// messages. Serve it with wspub.ClientHandler() and import it:
//
//	import { connect } from "/wspub.js";
//	const c = connect("/ws", { token: () => getToken() });
//	const sub = c.subscribe("task:42", (msg) => render(msg.data));
//
// The library never prints: problems reach c.on("error") and c.onState.

const SUBPROTOCOL = "wspub.v1";
const OPEN = 1; // WebSocket.OPEN
// Close codes after which a retry would be refused too: the client stops ("closed").
const FINAL_CODES = new Set([1003, 1008]);
// Replies of the protocol itself; every other message with a channel goes to that
// channel's subscriptions.
const REPLY_TYPES = new Set(["subscribed", "unsubscribed", "published", "pong", "error"]);
// A connection that stayed open this long resets the backoff.
const STABLE_MS = 5000;
// After this many attempts in a row that never opened (and every as many after), the
// client asks the hub why with a body-less POST of its URL: a page cannot read the HTTP
// status of a refused handshake, but the hub answers a plain request with its refusal
// (PROTOCOL.md).
const PREFLIGHT_AFTER = 3;
const PREFLIGHT_TIMEOUT = 5000; // ms
// Refusals of a wspub hub that no retry can cure (403 origin not allowed, 501 mounted
// behind middleware): the client stops ("closed"), with the server's text as the reason.
const FINAL_STATUSES = new Set([403, 501]);

/**
 * Opens a connection to a wspub hub and keeps it open: it reconnects with exponential
 * backoff and full jitter after every close but the final ones (1003, 1008, c.close()),
 * and resubscribes every subscription after each reconnect.
 *
 * @param {string | URL} url "ws://host/ws", or a path like "/ws" resolved against the
 *   page (ws: or wss: by the page's protocol)
 * @param {ConnectOptions} [options] token, protocols, pingInterval, pongTimeout, backoff,
 *   subscribeRetry, WebSocket, fetch: see wspub.d.ts and README.md
 * @returns {Client}
 */
export function connect(url, options = {}) {
  const WS = options.WebSocket || globalThis.WebSocket;
  if (typeof WS !== "function") {
    throw new TypeError("wspub: no WebSocket in this environment; pass options.WebSocket");
  }
  const target = resolveURL(url);
  const pingInterval = options.pingInterval ?? 25000;
  const pongTimeout = options.pongTimeout ?? 10000;
  const backoffMin = options.backoff?.min ?? 500;
  const backoffMax = options.backoff?.max ?? 30000;
  const subscribeRetry = options.subscribeRetry ?? 5000;
  const fetchFn = options.fetch === undefined ? globalThis.fetch : options.fetch; // null: no preflight

  let state = "connecting";
  let ws = null; // the socket of the current attempt or connection
  let attempt = 0; // reconnects since the last connection that stayed open STABLE_MS
  let openedAt = 0;
  let lastID = 0;
  let pingTimer = null;
  let pongTimer = null; // set while a ping waits for its pong
  let reconnectTimer = null;
  let failures = 0; // attempts in a row whose socket closed before it opened
  let finding = null; // {status, reason}: what the last preflight learned, until an open
  let preflight = null; // {abort, timer} of the preflight under way
  const stateFns = new Set();
  const handlers = new Map(); // type -> Set of fn
  const subs = new Map(); // channel -> Set of subscription records
  const replies = new Map(); // id -> {sub} or {resolve, reject}, for this connection only
  let outbox = []; // [message, pending reply] sent while not open, flushed on open

  const nextID = () => String(++lastID);
  const isOpen = () => ws !== null && ws.readyState === OPEN;
  const write = (msg) => ws.send(JSON.stringify(msg));

  function setState(next, detail) {
    state = next;
    for (const fn of [...stateFns]) call(fn, next, detail);
  }

  function emit(msg) {
    const fns = [...(handlers.get(msg.type) || []), ...(handlers.get("*") || [])];
    for (const fn of fns) call(fn, msg);
  }

  /** One connection attempt: get a token, open a socket, wire its events. */
  async function dial() {
    reconnectTimer = null;
    let token = options.token;
    if (typeof token === "function") {
      try {
        token = await token();
      } catch (err) {
        if (state === "closed") return;
        emit(errorMessage("client_token_error", "wspub: the token function failed: " + errText(err)));
        retry(1006, "no token");
        return;
      }
      if (state === "closed") return; // c.close() while waiting for the token
    }
    const protocols = [SUBPROTOCOL];
    if (token) protocols.push("bearer." + token);
    if (options.protocols) protocols.push(...options.protocols);
    let s;
    try {
      s = new WS(target, [...new Set(protocols)]); // a repeated protocol is a SyntaxError
    } catch (err) { // e.g. a token that is not a valid subprotocol
      emit(errorMessage("client_connect_error", "wspub: " + errText(err)));
      retry(1006, "cannot connect");
      return;
    }
    ws = s;
    s.onopen = () => opened(s);
    s.onmessage = (ev) => received(s, ev.data);
    s.onerror = () => {}; // a close event follows, with the code
    s.onclose = (ev) => {
      if (s === ws) lost(ev.code, ev.reason || "");
    };
  }

  function opened(s) {
    if (s !== ws) return;
    openedAt = Date.now();
    failures = 0;
    finding = null;
    for (const set of subs.values()) for (const sub of set) sendSubscribe(sub);
    const queued = outbox;
    outbox = [];
    for (const [msg, pending] of queued) post(msg, pending);
    if (pingInterval > 0) pingTimer = setInterval(ping, pingInterval);
    setState("open");
  }

  function ping() {
    if (pongTimer !== null || !isOpen()) return; // one ping at a time
    write({ type: "ping", id: nextID() });
    pongTimer = setTimeout(() => {
      const s = ws;
      lost(4000, "pong timeout");
      try {
        s.close(4000, "pong timeout");
      } catch {} // eslint-disable-line no-empty
    }, pongTimeout);
  }

  /** Splits a frame on "\n" and handles each line as one message. */
  function received(s, data) {
    if (typeof data !== "string") return; // the server sends text frames only
    for (const line of data.split("\n")) {
      if (s !== ws) return; // a handler closed the client
      if (line === "") continue;
      let msg = null;
      try {
        msg = JSON.parse(line);
      } catch {} // eslint-disable-line no-empty
      if (msg === null || typeof msg !== "object" || typeof msg.type !== "string") {
        emit(errorMessage("client_parse_error", "wspub: not a message: " + line.slice(0, 200)));
        continue;
      }
      receive(msg);
    }
  }

  function receive(msg) {
    if (msg.type === "pong") {
      clearTimeout(pongTimer);
      pongTimer = null;
    }
    const pending = msg.id !== undefined && replies.get(msg.id);
    if (pending && ["subscribed", "published", "error"].includes(msg.type)) {
      replies.delete(msg.id);
      settle(pending, msg);
    }
    if (typeof msg.channel === "string" && !REPLY_TYPES.has(msg.type)) {
      for (const sub of [...(subs.get(msg.channel) || [])]) call(sub.fn, msg);
    }
    emit(msg);
  }

  function settle(pending, msg) {
    const sub = pending.sub;
    if (!sub) {
      if (msg.type === "error") pending.reject(failure(msg.code, msg.message, msg));
      else pending.resolve();
    } else if (!sub.dead && msg.type === "subscribed") {
      clearTimeout(sub.retry);
      sub.resolve();
    } else if (!sub.dead) { // refused: the subscription is dead
      removeSub(sub);
      sub.reject(failure(msg.code, msg.message, msg));
    }
  }

  /** Sends a subscribe for sub, and again every subscribeRetry until it is answered. */
  function sendSubscribe(sub) {
    clearTimeout(sub.retry);
    if (!isOpen()) return; // resubscribed on open
    const id = nextID();
    replies.set(id, { sub });
    write({ type: "subscribe", channel: sub.channel, id });
    sub.retry = setTimeout(() => sendSubscribe(sub), subscribeRetry);
  }

  function removeSub(sub) {
    sub.dead = true;
    clearTimeout(sub.retry);
    const set = subs.get(sub.channel);
    if (!set) return;
    set.delete(sub);
    if (set.size === 0) subs.delete(sub.channel);
  }

  /** Sends msg now, or when the connection opens; pending waits for its reply. */
  function post(msg, pending) {
    if (!isOpen()) {
      outbox.push([msg, pending]);
      return;
    }
    if (pending) replies.set(msg.id, pending);
    write(msg);
  }

  /** Forgets the current socket and everything that lived only as long as it. */
  function dropSocket(code) {
    if (ws !== null) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      ws.onerror = () => {}; // an error after this point must not be unhandled (node's ws)
      ws = null;
    }
    clearInterval(pingTimer);
    clearTimeout(pongTimer);
    pingTimer = pongTimer = null;
    for (const set of subs.values()) for (const sub of set) clearTimeout(sub.retry);
    for (const pending of replies.values()) {
      if (pending.reject) pending.reject(failure(code, "wspub: the connection closed before the reply"));
    }
    replies.clear();
  }

  /** The socket closed (or was given up on) with code and reason. */
  function lost(code, reason) {
    const neverOpened = openedAt === 0;
    dropSocket("connection_lost");
    if (FINAL_CODES.has(code)) finish(code, reason);
    else if (neverOpened && ++failures % PREFLIGHT_AFTER === 0 && typeof fetchFn === "function") ask(code, reason);
    else retry(code, reason);
  }

  /**
   * The preflight: a body-less POST of the hub's URL (ws: -> http:), without credentials,
   * which a wspub hub answers with the refusal a handshake of this page gets before
   * authentication (CORS-readable from any origin). A POST, because browsers send a
   * same-origin GET without its Origin header, and the hub refuses every request that is
   * not an upgrade alike; a router that allows only GET (405, not from the hub) is asked
   * again with a GET. A 403 or 501 of a wspub hub stops the client; any other answer is
   * reported in the next "reconnecting" details; a failed request (network, CORS,
   * timeout) changes nothing.
   */
  async function ask(code, reason) {
    const url = target.replace(/^ws/, "http");
    const abort = new AbortController();
    const p = { abort, timer: 0 };
    // Raced against fetchFn, so that a fetch (or a body) that ignores the signal cannot
    // hold the client.
    const timeout = new Promise((_, reject) => {
      p.timer = setTimeout(() => { abort.abort(); reject(new Error("preflight timeout")); }, PREFLIGHT_TIMEOUT);
    });
    preflight = p;
    let found = null;
    try {
      const once = async (method) => {
        const res = await fetchFn(url, { method, credentials: "omit", cache: "no-store", signal: abort.signal });
        return { status: res.status, text: String(await res.text()).trim() };
      };
      let res = await Promise.race([timeout, once("POST")]);
      if (res.status === 405 && !res.text.startsWith("wspub: ")) res = await Promise.race([timeout, once("GET")]);
      const { status, text } = res;
      if (!text.startsWith("wspub: ")) {
        found = { status, reason: `wspub: not a wspub hub at ${url} (HTTP ${status})` };
      } else if (status === 426) {
        found = { status: 426, reason: "wspub: the hub answers at this URL but refuses the handshake itself (no or a rejected token, too many connections, or a proxy that drops the Upgrade header: see the server's log)" };
      } else {
        found = { status, reason: text.slice(0, 500), final: FINAL_STATUSES.has(status) };
      }
    } catch {} // eslint-disable-line no-empty
    clearTimeout(p.timer);
    if (preflight !== p) return; // the client was closed meanwhile
    preflight = null;
    if (found?.final) {
      finish(code, found.reason, found.status);
      return;
    }
    if (found) finding = { status: found.status, reason: found.reason };
    retry(code, reason);
  }

  /** Schedules the next attempt after a random delay in [0, min(max, min*2^attempt)]. */
  function retry(code, reason) {
    if (openedAt !== 0 && Date.now() - openedAt >= STABLE_MS) attempt = 0;
    openedAt = 0;
    const cap = Math.min(backoffMax, backoffMin * 2 ** Math.min(attempt, 30));
    const delay = Math.round(Math.random() * cap);
    reconnectTimer = setTimeout(dial, delay);
    const detail = finding ? { code, reason: finding.reason, status: finding.status } : { code, reason };
    setState("reconnecting", { ...detail, delay, attempt: attempt++ });
  }

  /** Stops for good: state "closed", nothing pending survives. */
  function finish(code, reason, status) {
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    if (preflight !== null) {
      clearTimeout(preflight.timer);
      preflight.abort.abort();
      preflight = null;
    }
    dropSocket("closed");
    for (const [, pending] of outbox) if (pending) pending.reject(closedError());
    outbox = [];
    for (const set of subs.values()) {
      for (const sub of set) {
        sub.dead = true;
        sub.reject(closedError());
      }
    }
    subs.clear();
    setState("closed", status === undefined ? { code, reason } : { code, reason, status });
  }

  const client = {
    /** @type {"connecting" | "open" | "reconnecting" | "closed"} */
    get state() {
      return state;
    },

    onState(fn) {
      stateFns.add(fn);
      return () => stateFns.delete(fn);
    },

    subscribe(channel, fn) {
      let resolve, reject;
      const ready = new Promise((res, rej) => ((resolve = res), (reject = rej)));
      ready.catch(() => {}); // refusals also reach c.on("error"): never an unhandled rejection
      const sub = { channel, fn, resolve, reject, retry: null, dead: false };
      if (state === "closed") {
        sub.dead = true;
        reject(closedError());
      } else {
        if (!subs.has(channel)) subs.set(channel, new Set());
        subs.get(channel).add(sub);
        sendSubscribe(sub);
      }
      return {
        channel,
        ready,
        unsubscribe() {
          if (sub.dead) return;
          removeSub(sub);
          if (!subs.has(channel) && isOpen()) write({ type: "unsubscribe", channel, id: nextID() });
        },
      };
    },

    on(type, fn) {
      if (!handlers.has(type)) handlers.set(type, new Set());
      handlers.get(type).add(fn);
      return () => handlers.get(type)?.delete(fn);
    },

    send(type, data, { channel } = {}) {
      if (state === "closed") throw closedError();
      const id = nextID();
      const msg = { type, data, channel, id };
      post(msg);
      return id;
    },

    publish(channel, data) {
      return new Promise((resolve, reject) => {
        if (state === "closed") throw closedError();
        post({ type: "publish", channel, data, id: nextID() }, { resolve, reject });
      });
    },

    close() {
      if (state === "closed") return;
      const s = ws;
      finish(1000, "");
      if (s) {
        try {
          s.close(1000);
        } catch {} // eslint-disable-line no-empty
      }
    },
  };

  dial();
  return client;
}

/** Resolves a URL or path against the page, with ws: or wss: for http: or https:. */
function resolveURL(url) {
  let u;
  try {
    u = new URL(String(url), globalThis.location?.href);
  } catch {
    throw new TypeError(`wspub: cannot resolve ${JSON.stringify(String(url))}; outside a page, give a ws:// or wss:// URL`);
  }
  if (u.protocol === "http:") u.protocol = "ws:";
  else if (u.protocol === "https:") u.protocol = "wss:";
  return u.href;
}

/** Runs a callback of the application; a throw is reported like an event listener's. */
function call(fn, ...args) {
  try {
    fn(...args);
  } catch (err) {
    queueMicrotask(() => {
      throw err;
    });
  }
}

/** An error of the client itself for c.on("error"), shaped like the server's replies. */
function errorMessage(code, message) {
  return { type: "error", code, message };
}

/**
 * What a subscribe's ready or a publish rejects with: an Error with the code of the
 * server's error reply (and the reply itself), or a code of the client: "closed" (the
 * client is closed), "connection_lost" (the connection ended before the reply came).
 */
function failure(code, message, reply) {
  const err = new Error(message || code);
  err.name = "WspubError";
  err.code = code;
  if (reply) {
    err.id = reply.id;
    err.reply = reply;
  }
  return err;
}

function closedError() {
  return failure("closed", "wspub: the client is closed");
}

function errText(err) {
  return err instanceof Error ? err.message : String(err);
}
