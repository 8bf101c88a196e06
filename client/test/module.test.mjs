// Tests of wspub.js without a server: its syntax, its exports against wspub.d.ts, and
// behaviour driven through a fake WebSocket (URL resolution, subprotocols, frame
// parsing, subscribe retries, timers).
import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as wspub from "../wspub.js";

const jsPath = fileURLToPath(new URL("../wspub.js", import.meta.url));
const dts = readFileSync(new URL("../wspub.d.ts", import.meta.url), "utf8");
const js = readFileSync(jsPath, "utf8");

/** A WebSocket the test drives by hand. */
class FakeWebSocket {
  static sockets = [];
  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.readyState = 0;
    this.sent = [];
    this.closed = null;
    this.onopen = this.onmessage = this.onerror = this.onclose = null;
    FakeWebSocket.sockets.push(this);
  }
  send(text) {
    assert.equal(this.readyState, 1, "send on a socket that is not open");
    this.sent.push(JSON.parse(text));
  }
  close(code, reason) {
    this.readyState = 3;
    this.closed = { code, reason };
  }
  // Server side:
  // Opens the socket and sends the hub's welcome (null: none, like a hub before it).
  open(welcome = { conn: "c1", limits: {} }) {
    this.readyState = 1;
    this.onopen?.({});
    if (welcome) this.frame(JSON.stringify({ type: "welcome", data: welcome }));
  }
  frame(data) {
    this.onmessage?.({ data });
  }
  drop(code, reason = "") {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

/** Polls until cond() is true, for at most ms. */
async function until(cond, what, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const clients = [];
function connect(url = "ws://example.test/ws", options = {}) {
  // The preflight's fetch fails: these tests reach no network.
  const fetch = () => Promise.reject(new TypeError("no network in these tests"));
  const c = wspub.connect(url, { WebSocket: FakeWebSocket, fetch, ...options });
  clients.push(c);
  return c;
}
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  FakeWebSocket.sockets.length = 0;
  delete globalThis.location;
});

/** Names of the members of an interface of wspub.d.ts. */
function members(name) {
  const m = dts.match(new RegExp(`export interface ${name}\\b[^{]*\\{([\\s\\S]*?)\\n\\}`));
  assert.ok(m, `interface ${name} in wspub.d.ts`);
  const body = m[1].replace(/\/\*[\s\S]*?\*\//g, "");
  return [...new Set([...body.matchAll(/^\s*(?:readonly\s+)?(\w+)\??(?:[(:]|<[^>]*>\()/gm)].map((x) => x[1]))].sort();
}

test("wspub.js passes node --check", { timeout: 10_000 }, () => {
  const r = spawnSync(process.execPath, ["--check", jsPath], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
});

test("exports match wspub.d.ts", { timeout: 10_000 }, () => {
  assert.deepEqual(Object.keys(wspub).sort(), ["WspubError", "connect"]);
  assert.equal(typeof wspub.connect, "function");
  assert.match(dts, /^export function connect\(url: string \| URL, options\?: ConnectOptions\): Client;$/m);
  const declared = [...dts.matchAll(/^export (?:function|const|class) (\w+)/gm)].map((m) => m[1]);
  assert.deepEqual(declared.sort(), ["WspubError", "connect"]);

  const c = connect();
  assert.deepEqual(Object.getOwnPropertyNames(c).sort(), members("Client"));
  const sub = c.subscribe("a", () => {});
  assert.deepEqual(Object.keys(sub).sort(), members("Subscription"));
  const read = [...new Set([...js.matchAll(/options\.(\w+)/g)].map((m) => m[1]))].sort();
  assert.deepEqual(read, members("ConnectOptions"));
});

test("without WebSocket, or with a relative URL outside a page, connect throws TypeError", { timeout: 10_000 }, () => {
  assert.throws(() => wspub.connect("ws://example.test/ws"), TypeError); // node 20 has no WebSocket
  assert.throws(() => connect("/ws"), TypeError);
});

test("URLs resolve against the page, ws: or wss: by its protocol", { timeout: 10_000 }, () => {
  globalThis.location = { href: "https://app.example.test/page/index.html" };
  connect("/ws");
  connect("ws");
  globalThis.location = { href: "http://localhost:8080/" };
  connect("/ws");
  connect("wss://other.example.test/ws");
  assert.deepEqual(FakeWebSocket.sockets.map((s) => s.url), [
    "wss://app.example.test/ws",
    "wss://app.example.test/page/ws",
    "ws://localhost:8080/ws",
    "wss://other.example.test/ws",
  ]);
});

test("subprotocols: wspub.v1, bearer.<token>, then the extra ones", { timeout: 10_000 }, () => {
  connect(undefined, { token: "abc", protocols: ["x", "wspub.v1"] }); // no repeats: a SyntaxError in browsers
  connect();
  assert.deepEqual(FakeWebSocket.sockets.map((s) => s.protocols), [["wspub.v1", "bearer.abc", "x"], ["wspub.v1"]]);
});

test("a frame's lines are messages; a bad line is a client_parse_error and the others still arrive", { timeout: 10_000 }, () => {
  const c = connect();
  const all = [];
  const errors = [];
  c.on("*", (m) => all.push(m));
  c.on("error", (m) => errors.push(m));
  const got = [];
  c.subscribe("a", (m) => got.push(m));
  const s = FakeWebSocket.sockets[0];
  s.open();
  s.frame('{"type":"x","channel":"a","data":1}\nnot json\n[1]\n{"type":"y","channel":"a","data":2}\n');
  assert.deepEqual(got.map((m) => m.data), [1, 2]);
  assert.deepEqual(errors.map((e) => [e.type, e.code]), [["error", "client_parse_error"], ["error", "client_parse_error"]]);
  assert.deepEqual(all.map((m) => m.type), ["welcome", "x", "error", "error", "y"]);
  assert.equal(c.state, "open");
});

test("an unanswered subscribe is sent again with a new id; the ack stops it", { timeout: 10_000 }, async () => {
  const c = connect(undefined, { subscribeRetry: 20 });
  const sub = c.subscribe("a", () => {});
  const s = FakeWebSocket.sockets[0];
  assert.deepEqual(s.sent, []); // not open yet
  s.open();
  const subscribes = () => s.sent.filter((m) => m.type === "subscribe");
  await until(() => subscribes().length >= 2, "a second subscribe");
  const sent = subscribes();
  assert.equal(new Set(sent.map((m) => m.id)).size, sent.length);
  s.frame(JSON.stringify({ type: "subscribed", channel: "a", id: sent.at(-1).id }));
  await sub.ready;
  const n = s.sent.length;
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(s.sent.length, n);
});

test("a pong timeout closes with 4000; close() leaves no timer", { timeout: 10_000 }, async () => {
  const c = connect(undefined, { pingInterval: 10, pongTimeout: 10, backoff: { min: 1000, max: 1000 } });
  const states = [];
  c.onState((state, detail) => states.push([state, detail?.code]));
  const s = FakeWebSocket.sockets[0];
  s.open();
  assert.ok(process.getActiveResourcesInfo().includes("Timeout"));
  await until(() => s.closed !== null, "the pong timeout");
  assert.deepEqual(s.sent.map((m) => m.type), ["ping"]);
  assert.deepEqual(s.closed, { code: 4000, reason: "pong timeout" });
  assert.deepEqual(states, [["open", undefined], ["reconnecting", 4000]]);
  c.close();
  assert.deepEqual(states.at(-1), ["closed", 1000]);
  assert.deepEqual(process.getActiveResourcesInfo().filter((r) => r === "Timeout"), []);
});

test("a publish whose connection drops rejects with connection_lost; queued ones wait for the next open", { timeout: 10_000 }, async () => {
  const c = connect(undefined, { backoff: { min: 0, max: 0 } });
  const s = FakeWebSocket.sockets[0];
  s.open();
  const sent = c.publish("chat:1", 1);
  s.drop(1006);
  await assert.rejects(sent, { code: "connection_lost" });
  const queued = c.publish("chat:1", 2);
  await new Promise((r) => setTimeout(r, 10));
  const s2 = FakeWebSocket.sockets[1];
  s2.open();
  const [msg] = s2.sent;
  assert.deepEqual({ ...msg, id: undefined }, { type: "publish", channel: "chat:1", data: 2, id: undefined });
  s2.frame(JSON.stringify({ type: "published", channel: "chat:1", id: msg.id }));
  await queued;
});

test("tokens that are not RFC 7230 tokens are sent as bearer64.<base64url of their UTF-8>", { timeout: 10_000 }, () => {
  const tokens = ["eyJh.b-c_d", "a/b+c==", "with space", "naïve✓"];
  for (const token of tokens) connect(undefined, { token });
  const sent = FakeWebSocket.sockets.map((s) => s.protocols[1]);
  assert.equal(sent[0], "bearer.eyJh.b-c_d");
  for (const [i, p] of sent.slice(1).entries()) {
    assert.match(p, /^bearer64\.[A-Za-z0-9_-]+$/);
    assert.equal(Buffer.from(p.slice("bearer64.".length), "base64url").toString("utf8"), tokens[i + 1]);
  }
});

test("the welcome's limits pace what is sent: a burst within messageBurst, subscribes batched by maxChannels", { timeout: 10_000 }, async () => {
  const c = connect(undefined, { pingInterval: 0 });
  for (let i = 0; i < 5; i++) c.subscribe("ch" + i, () => {});
  for (let i = 0; i < 10; i++) c.send("note", i);
  const s = FakeWebSocket.sockets[0];
  s.open({ conn: "c1", limits: { messageRate: 20, messageBurst: 5, maxChannels: 2 } });
  // floor(5 * 0.8) = 4 at once: three subscribes of at most 2 channels, one note.
  assert.deepEqual(s.sent.map((m) => m.channels ?? m.data), [["ch0", "ch1"], ["ch2", "ch3"], ["ch4"], 0]);
  await until(() => s.sent.length === 13, "the rest, paced");
  assert.deepEqual(s.sent.slice(3).map((m) => m.data), [...Array(10).keys()]);
});

test("without a welcome the client waits 1 s, then subscribes one channel per message at the default pace", { timeout: 10_000 }, async () => {
  const c = connect(undefined, { pingInterval: 0 });
  c.subscribe("a", () => {});
  c.subscribe("b", () => {});
  const s = FakeWebSocket.sockets[0];
  s.open(null);
  assert.equal(c.state, "connecting");
  await until(() => c.state === "open", "open after the wait", 2000);
  assert.deepEqual(s.sent.map((m) => [m.type, m.channel, m.channels]), [["subscribe", "a", undefined], ["subscribe", "b", undefined]]);
});

test("an unanswered subscribe is retried ever more slowly; a temporary error after a backoff delay", { timeout: 10_000 }, async () => {
  const c = connect(undefined, { subscribeRetry: 20, backoff: { min: 20, max: 1000 } });
  c.subscribe("a", () => {});
  const s = FakeWebSocket.sockets[0];
  const times = [];
  const send = s.send.bind(s);
  s.send = (text) => { times.push(Date.now()); send(text); };
  s.open();
  await until(() => times.length >= 4, "4 subscribes");
  const gaps = times.slice(1).map((t, i) => t - times[i]);
  assert.ok(gaps[0] >= 18 && gaps[1] >= 38 && gaps[2] >= 78, `gaps ${gaps}`);
  s.frame(JSON.stringify({ type: "error", code: "rate_limited", message: "slow down", id: s.sent.at(-1).id }));
  const n = s.sent.length;
  await until(() => s.sent.length > n, "a retry after rate_limited");
});

test("request: resolves with the reply of its id; rejects on an error reply, timeout, abort, a lost connection and close", { timeout: 10_000 }, async () => {
  const c = connect(undefined, { backoff: { min: 0, max: 0 }, pingInterval: 0 });
  const s = FakeWebSocket.sockets[0];
  const queued = c.request("ask", { q: 1 }); // before open: waits in the outbox
  s.open();
  const [ask] = s.sent;
  assert.deepEqual({ ...ask, id: undefined }, { type: "ask", data: { q: 1 }, id: undefined });
  s.frame(JSON.stringify({ type: "other", id: "999" }) + "\n" + JSON.stringify({ type: "answer", data: { a: 2 }, id: ask.id }));
  assert.deepEqual(await queued, { type: "answer", data: { a: 2 }, id: ask.id });

  const refused = c.request("ask");
  s.frame(JSON.stringify({ type: "error", code: "forbidden", message: "no", id: s.sent.at(-1).id }));
  await assert.rejects(refused, (err) => err instanceof wspub.WspubError && err.code === "forbidden" && err.reply.message === "no");

  await assert.rejects(c.request("ask", null, { timeout: 20 }), { code: "timeout" });
  const abort = new AbortController();
  const aborted = c.request("ask", null, { signal: abort.signal });
  abort.abort();
  await assert.rejects(aborted, { code: "aborted" });
  await assert.rejects(c.request("ask", null, { signal: abort.signal }), { code: "aborted" });

  const lost = c.request("ask");
  s.drop(1006);
  await assert.rejects(lost, { code: "connection_lost" });
  const closed = c.request("ask"); // queued for the next connection
  c.close();
  await assert.rejects(closed, { code: "closed" });
  await assert.rejects(c.request("ask"), { code: "closed" });
});

test("debug gets what the client does; errors are WspubError instances with their code", { timeout: 10_000 }, () => {
  const lines = [];
  const c = connect(undefined, { debug: (...args) => lines.push(args.slice(0, 2).join(" ")) });
  c.subscribe("a", () => {});
  FakeWebSocket.sockets[0].open();
  assert.ok(lines.includes("wspub: dial"), lines.join("\n"));
  assert.ok(lines.includes("wspub: receive"));
  assert.ok(lines.includes("wspub: state"));
  const err = new wspub.WspubError("timeout", "late");
  assert.ok(err instanceof Error);
  assert.deepEqual([err.name, err.code, err.message], ["WspubError", "timeout", "late"]);
});

test("a rate_limited reply to a batch subscribe retries all its channels; an unechoed invalid_channel is the next name's", { timeout: 10_000 }, async () => {
  const c = connect(undefined, { pingInterval: 0, backoff: { min: 10, max: 20 } });
  const subs = ["a", "b", "c"].map((ch) => c.subscribe(ch, () => {}));
  const s = FakeWebSocket.sockets[0];
  s.open();
  const [batch] = s.sent;
  assert.deepEqual(batch.channels, ["a", "b", "c"]);
  s.frame(JSON.stringify({ type: "error", code: "rate_limited", message: "slow down", id: batch.id }));
  await until(() => s.sent.length === 2, "the batch again");
  const again = s.sent[1];
  assert.deepEqual(again.channels, ["a", "b", "c"]);
  s.frame([
    { type: "subscribed", channel: "a", id: again.id },
    { type: "error", code: "invalid_channel", message: "too long", id: again.id },
    { type: "subscribed", channel: "c", id: again.id },
  ].map((m) => JSON.stringify(m)).join("\n"));
  await subs[0].ready;
  await assert.rejects(subs[1].ready, { code: "invalid_channel" });
  await subs[2].ready;
});
