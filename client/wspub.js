// wspub.js: the browser client of wspub, one ES module without dependencies or build
// step. It speaks the wire protocol of PROTOCOL.md: subscriptions that survive
// reconnects, application-level pings, batched frames, client publish, requests and
// custom messages, paced by the limits the hub announces. Serve it with
// wspub.ClientHandler() and import it:
//
//	import { connect } from "/wspub.js";
//	const c = connect("/ws", { token: () => getToken() });
//	const sub = c.subscribe("task:42", (msg) => render(msg.data));
//
// The library never prints: problems reach c.on("error"), c.onState and options.debug.

const SUBPROTOCOL = "wspub.v1";
const OPEN = 1; // WebSocket.OPEN
// Close codes after which a retry would be refused too: the client stops ("closed").
const FINAL_CODES = new Set([1003, 1008]);
// The identity expired: the client reconnects at once with a new token.
const EXPIRED = 4001;
// Error replies to a subscribe that no retry can cure; every other code (rate_limited,
// internal, ...) is temporary and retried with backoff.
const REFUSALS = new Set(["forbidden", "invalid_channel", "too_many_subscriptions"]);
// Replies of the protocol itself; every other message with a channel goes to that
// channel's subscriptions.
const REPLY_TYPES = new Set(["subscribed", "unsubscribed", "published", "pong", "error", "welcome"]);
// A connection that stayed open this long resets the backoff.
const STABLE_MS = 5000;
// A hub older than the welcome message sends none: after this long the client takes the
// default limits and subscribes one channel per message.
const WELCOME_WAIT = 1000; // ms
// The hub's default limits (Options.MessageRate, MessageBurst), for a hub without welcome.
const DEFAULT_LIMITS = { messageRate: 20, messageBurst: 50 };
// The client stays this far below the announced rate and burst, so that timers that fire
// late or early never bring it over.
const RATE_MARGIN = 0.9;
const BURST_MARGIN = 0.8;
// After this many attempts in a row that never opened (and every as many after), the
// client asks the hub why with a body-less POST of its URL: a page cannot read the HTTP
// status of a refused handshake, but the hub answers a plain request with its refusal
// (PROTOCOL.md).
const PREFLIGHT_AFTER = 3;
const PREFLIGHT_TIMEOUT = 5000; // ms
// Refusals of a wspub hub that no retry can cure (403 origin not allowed, 501 mounted
// behind middleware): the client stops ("closed"), with the server's text as the reason.
const FINAL_STATUSES = new Set([403, 501]);
// The characters of an RFC 7230 token: a token of only these is sent as bearer.<token>.
const TCHARS = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * What the client's promises reject with and what it throws: code is the server's error
 * code (with its reply) or one of the client's own (README.md, "Errors").
 */
export class WspubError extends Error {
  constructor(code, message, reply) {
    super(message || code);
    this.name = "WspubError";
    this.code = code;
    if (reply) {
      this.id = reply.id;
      this.reply = reply;
    }
  }
}

/**
 * Opens a connection to a wspub hub and keeps it open: it reconnects with exponential
 * backoff and full jitter after every close but the final ones (1003, 1008, c.close()),
 * at once with a new token after 4001, and resubscribes every subscription after each
 * reconnect.
 *
 * @param {string | URL} url "ws://host/ws", or a path like "/ws" resolved against the
 *   page (ws: or wss: by the page's protocol)
 * @param {ConnectOptions} [options] see wspub.d.ts and README.md
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
  const connectTimeout = options.connectTimeout ?? 10000;
  const backoffMin = options.backoff?.min ?? 500;
  const backoffMax = options.backoff?.max ?? 30000;
  const subscribeRetry = options.subscribeRetry ?? 5000;
  const requestTimeout = options.requestTimeout ?? 10000;
  const outboxMax = options.outbox?.max ?? 100;
  const outboxAge = options.outbox?.maxAge ?? 30000;
  const fetchFn = options.fetch === undefined ? globalThis.fetch : options.fetch; // null: no preflight
  const page = options.lifecycle === undefined ? globalThis : options.lifecycle; // null: none
  const debug = options.debug;
  const log = (...args) => debug && debug("wspub:", ...args);

  let state = "connecting";
  let ws = null; // the socket of the current attempt or connection
  let dialing = false; // between dial() and the socket (the token function may take long)
  let live = false; // the socket is open and the welcome (or its wait) is over
  let suspended = false; // the page is hidden (pagehide) until pageshow
  let attempt = 0; // reconnects since the last connection that stayed open STABLE_MS
  let openedAt = 0;
  let lastID = 0;
  let timers = {}; // of the current socket: connect, welcome, ping, pong, pump
  let reconnectTimer = null;
  let failures = 0; // attempts in a row whose socket closed before it opened
  let finding = null; // {status, reason}: what the last preflight learned, until an open
  let preflight = null; // {abort, timer} of the preflight under way
  // The pacer: a token bucket at the hub's announced rate, and what waits for it.
  let rate = 0, burst = 0, tokens = 0, stamp = 0, maxChannels = 1, batch = false;
  let pingDue = false;
  const needSub = new Set(); // channels to subscribe on this connection
  const needUnsub = new Set(); // channels to unsubscribe on this connection
  const stateFns = new Set();
  const handlers = new Map(); // type -> Set of fn
  const channels = new Map(); // channel -> {subs, id, acked, tries, timer}
  const subIDs = new Map(); // id of a subscribe in flight -> its channels
  const waiting = new Map(); // id -> {resolve, reject, any, timer, written} of a publish or request
  let outbox = []; // [{id, text, at}] of send, publish and request, oldest first
  let reporting = false;
  const offs = []; // removes the page's event listeners

  const nextID = () => String(++lastID);
  const isOpen = () => ws !== null && ws.readyState === OPEN;
  const offline = () => page?.navigator?.onLine === false;

  function setState(next, detail) {
    state = next;
    log("state", next, detail);
    for (const fn of [...stateFns]) call(fn, next, detail);
  }

  function emit(msg) {
    const fns = [...(handlers.get(msg.type) || []), ...(handlers.get("*") || [])];
    for (const fn of fns) call(fn, msg);
  }

  /** Reports a problem of the client itself to c.on("error") as {type: "error", code, message}. */
  function problem(code, message, error) {
    log(code, message);
    const msg = { type: "error", code, message };
    if (error !== undefined) msg.error = error;
    emit(msg);
  }

  /**
   * Runs a callback of the application. A throw goes to c.on("error") as a
   * client_handler_error; without such a handler, to reportError where there is one (a
   * browser shows it as uncaught), never as an exception that could end node.
   */
  function call(fn, ...args) {
    try {
      fn(...args);
    } catch (err) {
      log("handler threw", err);
      if (!reporting && handlers.get("error")?.size) {
        reporting = true; // a throwing error handler is not reported again
        try {
          problem("client_handler_error", "wspub: a handler threw: " + errText(err), err);
        } finally {
          reporting = false;
        }
      } else if (typeof reportError === "function") {
        reportError(err); // eslint-disable-line no-undef
      }
    }
  }

  /** One connection attempt; whatever it throws becomes a failed attempt. */
  function dial() {
    reconnectTimer = null;
    if (dialing || ws !== null || state === "closed") return;
    dialing = true;
    attemptOnce().catch((err) => {
      dialing = false;
      if (state === "closed" || ws !== null) return;
      problem("client_connect_error", "wspub: " + errText(err), err);
      retry(1006, "cannot connect");
    });
  }

  /** Gets a token, opens a socket, wires its events. */
  async function attemptOnce() {
    let token = options.token;
    if (typeof token === "function") {
      try {
        token = await token();
      } catch (err) {
        dialing = false;
        if (state === "closed") return;
        problem("client_token_error", "wspub: the token function failed: " + errText(err), err);
        retry(1006, "no token");
        return;
      }
    }
    if (state === "closed" || suspended) { // c.close() or pagehide while waiting for the token
      dialing = false;
      return;
    }
    const protocols = [SUBPROTOCOL];
    if (token) protocols.push(tokenProtocol(String(token)));
    if (options.protocols) protocols.push(...options.protocols);
    log("dial", target);
    const s = new WS(target, [...new Set(protocols)]); // a repeated protocol is a SyntaxError
    dialing = false;
    ws = s;
    s.onopen = () => opened(s);
    s.onmessage = (ev) => received(s, ev.data);
    s.onerror = () => {}; // a close event follows, with the code
    s.onclose = (ev) => {
      if (s === ws) lost(ev.code, ev.reason || "");
    };
    timers.connect = setTimeout(() => {
      if (s !== ws) return;
      lost(1006, "connect timeout");
      try {
        s.close();
      } catch {} // eslint-disable-line no-empty
    }, connectTimeout);
  }

  function opened(s) {
    if (s !== ws) return;
    clearTimeout(timers.connect);
    openedAt = Date.now();
    failures = 0;
    finding = null;
    timers.welcome = setTimeout(() => start(null), WELCOME_WAIT);
  }

  /**
   * The welcome came (limits) or its wait is over (null): sets the pacer to the hub's
   * limits, resubscribes, announces "open", then sends what the outbox holds, after
   * whatever the "open" handlers sent.
   */
  function start(limits) {
    clearTimeout(timers.welcome);
    live = true;
    pace(limits);
    tokens = burst;
    for (const name of channels.keys()) needSub.add(name);
    if (pingInterval > 0) {
      timers.ping = setInterval(() => {
        pingDue = true;
        pump();
      }, pingInterval);
    }
    const queued = outbox;
    outbox = [];
    pump(); // the subscribes first
    setState("open");
    outbox.push(...queued);
    pump();
  }

  /** Sets the pacer to the hub's limits (null: the defaults, one channel per subscribe). */
  function pace(limits) {
    batch = limits !== null;
    const lim = (key) => (limits && key in limits ? limits[key] ?? Infinity : DEFAULT_LIMITS[key] ?? Infinity);
    maxChannels = batch ? Math.max(1, lim("maxChannels")) : 1;
    rate = lim("messageRate") * RATE_MARGIN;
    burst = Math.max(1, Math.floor(lim("messageBurst") * BURST_MARGIN));
    tokens = Math.min(tokens, burst);
    stamp = Date.now();
    log("limits", limits, { rate, burst, maxChannels });
  }

  /**
   * Writes what waits, as fast as the token bucket allows: unsubscribes, subscribes (as
   * many channels per message as the hub takes), the ping, then the outbox.
   */
  function pump() {
    clearTimeout(timers.pump);
    while (live && isOpen()) {
      const now = Date.now();
      tokens = Math.min(burst, tokens + ((now - stamp) * rate) / 1000 || 0);
      stamp = now;
      const more = needUnsub.size || needSub.size || pingDue || outbox.length;
      if (!more) return;
      if (tokens < 1) {
        timers.pump = setTimeout(pump, Math.ceil(((1 - tokens) * 1000) / rate));
        return;
      }
      let msg;
      if (needUnsub.size) msg = channelsMessage("unsubscribe", needUnsub);
      else if (needSub.size) msg = channelsMessage("subscribe", needSub);
      else if (pingDue) {
        pingDue = false;
        if (timers.pong) continue; // one ping at a time
        msg = JSON.stringify({ type: "ping", id: nextID() });
        timers.pong = setTimeout(() => {
          const s = ws;
          lost(4000, "pong timeout");
          try {
            s.close(4000, "pong timeout");
          } catch {} // eslint-disable-line no-empty
        }, pongTimeout);
      } else {
        const item = outbox.shift();
        if (Date.now() - item.at > outboxAge) {
          drop(item, "it waited longer than outbox.maxAge");
          continue;
        }
        const pending = waiting.get(item.id);
        if (pending) pending.written = true;
        msg = item.text;
      }
      tokens--;
      log("send", msg);
      ws.send(msg);
    }
  }

  /** A subscribe or unsubscribe of the next channels of set (one without a welcome). */
  function channelsMessage(type, set) {
    const names = [...set].slice(0, maxChannels);
    const id = nextID();
    for (const name of names) {
      set.delete(name);
      const ch = channels.get(name);
      if (type === "subscribe" && ch) {
        ch.id = id;
        clearTimeout(ch.timer);
        // Unanswered: sent again, ever more slowly.
        ch.timer = setTimeout(() => resubscribe(ch), Math.min(backoffMax, subscribeRetry * 2 ** ch.tries++));
      }
    }
    if (type === "subscribe") subIDs.set(id, names);
    return JSON.stringify(batch ? { type, channels: names, id } : { type, channel: names[0], id });
  }

  /** Subscribes ch again; those whose timers fire together go out together. */
  function resubscribe(ch) {
    ch.id = null;
    if (channels.get(ch.name) !== ch) return;
    needSub.add(ch.name);
    timers.soon ??= setTimeout(() => {
      timers.soon = null;
      pump();
    }, 0);
  }

  /** Splits a frame on "\n" and handles each line as one message. */
  function received(s, data) {
    if (typeof data !== "string") return; // the server sends text frames only
    for (const line of data.split("\n")) {
      if (s !== ws) return; // a handler closed the client
      if (line === "") continue;
      log("receive", line);
      let msg = null;
      try {
        msg = JSON.parse(line);
      } catch {} // eslint-disable-line no-empty
      if (msg === null || typeof msg !== "object" || typeof msg.type !== "string") {
        problem("client_parse_error", "wspub: not a message: " + line.slice(0, 200));
        continue;
      }
      receive(msg);
    }
  }

  function receive(msg) {
    const { type, id } = msg;
    if (type === "welcome") {
      const limits = msg.data?.limits || {};
      if (live) pace(limits); // late: the defaults were used meanwhile
      else start(limits);
    }
    if (type === "pong") {
      clearTimeout(timers.pong);
      timers.pong = null;
    }
    const pending = id !== undefined && waiting.get(id);
    if (pending && (pending.any || type === "published" || type === "error")) {
      settle(id, type === "error" ? new WspubError(msg.code, msg.message, msg) : null, pending.any ? msg : undefined);
    }
    if (id !== undefined && subIDs.has(id) && (type === "subscribed" || type === "error")) {
      // Replies come in the order of the subscribe's channels. One without channel is
      // for the next name (an invalid name too long to echo) or, rate_limited, for all.
      const names = subIDs.get(id);
      const mine = typeof msg.channel === "string" ? [msg.channel] : msg.code === "invalid_channel" ? names.slice(0, 1) : names;
      if (mine.length === 1) msg.channel ??= mine[0]; // an error reply names the channel it refuses
      const delay = Math.random(); // one backoff delay for all of them: retried together
      for (const name of mine) {
        const ch = channels.get(name);
        if (ch && ch.id === id) subscribeAnswered(ch, msg, delay);
      }
      const rest = names.filter((n) => !mine.includes(n));
      if (rest.length) subIDs.set(id, rest);
      else subIDs.delete(id);
    }
    if (type === "unsubscribed" && id === undefined && channels.has(msg.channel)) {
      // Hub.Unsubscribe: the server ended the subscription; it is not renewed.
      endChannel(channels.get(msg.channel), new WspubError("unsubscribed", "wspub: the server unsubscribed " + msg.channel));
    }
    if (typeof msg.channel === "string" && !REPLY_TYPES.has(type)) {
      for (const sub of [...(channels.get(msg.channel)?.subs || [])]) call(sub.fn, msg);
    }
    emit(msg);
  }

  function subscribeAnswered(ch, msg, random) {
    clearTimeout(ch.timer);
    ch.id = null;
    if (msg.type === "subscribed") {
      ch.acked = true;
      ch.tries = 0;
      for (const sub of ch.subs) sub.resolve();
    } else if (REFUSALS.has(msg.code)) {
      endChannel(ch, new WspubError(msg.code, msg.message, msg));
    } else { // temporary (rate_limited, internal): again after a backoff delay
      const cap = Math.min(backoffMax, backoffMin * 2 ** Math.min(ch.tries++, 30));
      ch.timer = setTimeout(() => resubscribe(ch), cap / 2 + (random * cap) / 2);
    }
  }

  /** Ends every subscription of a channel: their ready rejects with err (if still pending). */
  function endChannel(ch, err) {
    clearTimeout(ch.timer);
    channels.delete(ch.name);
    needSub.delete(ch.name);
    for (const sub of ch.subs) {
      sub.dead = true;
      sub.reject(err);
    }
  }

  /** Settles the publish or request of id: rejects with err, or resolves with value. */
  function settle(id, err, value) {
    const p = waiting.get(id);
    if (!p) return;
    waiting.delete(id);
    clearTimeout(p.timer);
    p.done?.();
    if (err) {
      outbox = outbox.filter((item) => item.id !== id);
      p.reject(err);
    } else p.resolve(value);
  }

  /** Puts a message in the outbox: it goes out when open, paced, oldest first. */
  function enqueue(id, text) {
    outbox.push({ id, text, at: Date.now() });
    while (outbox.length > outboxMax) drop(outbox.shift(), "the outbox is full (outbox.max)");
    pump();
  }

  function drop(item, why) {
    problem("client_send_dropped", `wspub: message ${item.id} was not sent: ${why}`);
    settle(item.id, new WspubError("dropped", "wspub: not sent: " + why));
  }

  /** Forgets the current socket and everything that lived only as long as it. */
  function dropSocket(code) {
    if (ws !== null) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      ws.onerror = () => {}; // an error after this point must not be unhandled (node's ws)
      ws = null;
    }
    live = false;
    pingDue = false;
    clearTimeout(timers.connect);
    clearTimeout(timers.welcome);
    clearInterval(timers.ping);
    clearTimeout(timers.pong);
    clearTimeout(timers.pump);
    clearTimeout(timers.soon);
    timers = {};
    needSub.clear();
    needUnsub.clear();
    subIDs.clear();
    for (const ch of channels.values()) {
      clearTimeout(ch.timer);
      ch.id = null;
      ch.acked = false;
      ch.tries = 0;
    }
    for (const [id, p] of waiting) {
      if (p.written) settle(id, new WspubError(code, "wspub: the connection closed before the reply"));
    }
  }

  /** The socket closed (or was given up on) with code and reason. */
  function lost(code, reason) {
    const neverOpened = openedAt === 0;
    dropSocket("connection_lost");
    if (FINAL_CODES.has(code)) finish(code, reason);
    else if (code === EXPIRED && !neverOpened) { // a new token, at once
      openedAt = 0;
      attempt = 0;
      setState("reconnecting", { code, reason, delay: 0, attempt: 0 });
      dial();
    } else if (neverOpened && ++failures % PREFLIGHT_AFTER === 0 && typeof fetchFn === "function") ask(code, reason);
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

  /**
   * Schedules the next attempt after a random delay in [0, min(max, min*2^attempt)]; none
   * while the page is offline or hidden (the page's events wake it).
   */
  function retry(code, reason) {
    if (openedAt !== 0 && Date.now() - openedAt >= STABLE_MS) attempt = 0;
    openedAt = 0;
    const detail = finding ? { code, reason: finding.reason, status: finding.status } : { code, reason };
    if (offline() || suspended) {
      setState("reconnecting", { ...detail, attempt, waiting: suspended ? "pageshow" : "online" });
      return;
    }
    const cap = Math.min(backoffMax, backoffMin * 2 ** Math.min(attempt, 30));
    const delay = Math.round(Math.random() * cap);
    reconnectTimer = setTimeout(dial, delay);
    setState("reconnecting", { ...detail, delay, attempt: attempt++ });
  }

  /** The page is back (online, visible, shown): a connection that died is retried at once. */
  function wake(why) {
    if (state !== "reconnecting" || ws !== null || dialing || preflight !== null || suspended || offline()) return;
    log("wake", why);
    clearTimeout(reconnectTimer);
    attempt = 0;
    dial();
  }

  /** pagehide: closes the socket so that the page may enter the back/forward cache. */
  function suspend() {
    if (state === "closed") return;
    suspended = true;
    clearTimeout(reconnectTimer);
    const s = ws;
    if (s === null) return;
    dropSocket("connection_lost");
    try {
      s.close(1000, "pagehide");
    } catch {} // eslint-disable-line no-empty
    openedAt = 0;
    setState("reconnecting", { code: 1000, reason: "pagehide", attempt, waiting: "pageshow" });
  }

  if (page && typeof page.addEventListener === "function") {
    const listen = (target, type, fn) => {
      target?.addEventListener?.(type, fn);
      offs.push(() => target?.removeEventListener?.(type, fn));
    };
    listen(page, "online", () => wake("online"));
    listen(page, "pagehide", suspend);
    listen(page, "pageshow", () => {
      suspended = false;
      wake("pageshow");
    });
    listen(page.document, "visibilitychange", () => {
      if (page.document.visibilityState === "visible") wake("visible");
    });
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
    for (const off of offs.splice(0)) off();
    dropSocket("closed");
    state = "closed";
    for (const id of [...waiting.keys()]) settle(id, closedError());
    outbox = [];
    for (const ch of [...channels.values()]) endChannel(ch, closedError());
    setState("closed", status === undefined ? { code, reason } : { code, reason, status });
  }

  /** Encodes a message of the application, so that bad data throws at the call. */
  function encode(msg) {
    try {
      return JSON.stringify(msg);
    } catch (err) {
      const e = new WspubError("invalid_data", "wspub: the data cannot be sent as JSON: " + errText(err));
      e.cause = err;
      throw e;
    }
  }

  /** A promise of the reply to a message with id; any: whatever reply (a request). */
  function expect(make, any, timeout, signal) {
    return new Promise((resolve, reject) => {
      if (state === "closed") throw closedError();
      if (signal?.aborted) throw abortedError();
      const id = nextID();
      const text = encode(make(id));
      const p = { resolve, reject, any, written: false };
      if (timeout > 0) p.timer = setTimeout(() => settle(id, new WspubError("timeout", "wspub: no reply in time")), timeout);
      if (signal) {
        const onAbort = () => settle(id, abortedError());
        signal.addEventListener("abort", onAbort);
        p.done = () => signal.removeEventListener("abort", onAbort);
      }
      waiting.set(id, p);
      enqueue(id, text);
    });
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
      const sub = { fn, resolve, reject, dead: false };
      if (state === "closed") {
        sub.dead = true;
        reject(closedError());
      } else {
        let ch = channels.get(channel);
        if (!ch) {
          ch = { name: channel, subs: new Set(), id: null, acked: false, tries: 0, timer: null };
          channels.set(channel, ch);
          if (live) {
            needSub.add(channel);
            queueMicrotask(pump); // subscribes of one task go out together
          }
        }
        ch.subs.add(sub);
        if (ch.acked) resolve();
      }
      return {
        channel,
        ready,
        unsubscribe() {
          if (sub.dead) return;
          sub.dead = true;
          reject(new WspubError("unsubscribed", "wspub: unsubscribed before the server's answer"));
          const ch = channels.get(channel);
          ch.subs.delete(sub);
          if (ch.subs.size > 0) return;
          endChannel(ch);
          if (live && (ch.acked || ch.id !== null)) {
            needUnsub.add(channel);
            queueMicrotask(pump);
          }
        },
      };
    },

    on(type, fn) {
      if (!handlers.has(type)) handlers.set(type, new Set());
      handlers.get(type).add(fn);
      return () => handlers.get(type)?.delete(fn);
    },

    send(type, data, { channel, onlyIfOpen } = {}) {
      if (state === "closed") throw closedError();
      if (onlyIfOpen && state !== "open") return null;
      const id = nextID();
      enqueue(id, encode({ type, data, channel, id }));
      return id;
    },

    publish(channel, data) {
      return expect((id) => ({ type: "publish", channel, data, id }), false, 0);
    },

    request(type, data, { channel, timeout = requestTimeout, signal } = {}) {
      return expect((id) => ({ type, data, channel, id }), true, timeout, signal);
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

/**
 * The subprotocol of a token: bearer.<token> when it is an RFC 7230 token (what a
 * subprotocol may be), else bearer64.<base64url of its UTF-8, no padding>, so that any
 * token (a base64 JWT with / + =, a space, non-ASCII) can be sent.
 */
function tokenProtocol(token) {
  if (TCHARS.test(token)) return "bearer." + token;
  let bin = "";
  for (const b of new TextEncoder().encode(token)) bin += String.fromCharCode(b);
  return "bearer64." + btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
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

function closedError() {
  return new WspubError("closed", "wspub: the client is closed");
}

function abortedError() {
  return new WspubError("aborted", "wspub: the request was aborted");
}

function errText(err) {
  return err instanceof Error ? err.message : String(err);
}
