// wspub.js against a real hub (testserver/harness.mjs) in the situations of a real front-end app: many
// subscriptions under the hub's default rate limit, temporary and final subscribe errors,
// unsubscribing early, bad data, server-side unsubscribes, a bounded outbox, stuck
// handshakes, throwing handlers, the page's lifecycle events and debug logging.
// Run from client/: node --test test/
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { TIMEOUT, addr, control, open, q, sleep, stats, subscribe, until } from "../testserver/harness.mjs";

let runs = 0;
/** A tag unique to this test run, so that notes recorded by the server can be told apart. */
const tag = () => `${process.pid}-${++runs}`;

/** The notes the server recorded with this tag, in order. */
async function notes(run) {
  return ((await stats()).notes ?? []).filter((n) => n.run === run);
}

/** Waits until the hub has exactly n subscriptions (of every connection). */
const subscriptions = (n, what) => until(async () => (await stats()).subscriptions === n, what, 20_000);

test("256 subscriptions and 50 queued sends at connect, on default rate limits: all acked and delivered, no rate_limited, also after a reconnect", { timeout: 90_000 }, async (t) => {
  await subscriptions(0, "no subscriptions of earlier tests");
  const before = await stats();
  const run = tag();
  const { c, states, errors } = open(t);
  const subs = [];
  for (let i = 0; i < 256; i++) subs.push(subscribe(c, `many:${run}:${i}`));
  for (let i = 0; i < 50; i++) c.send("note", { run, i });
  await Promise.all(subs.map((s) => s.sub.ready));
  await until(async () => (await notes(run)).length === 50, "50 notes", 30_000);
  assert.deepEqual((await notes(run)).map((n) => n.i), [...Array(50).keys()]);
  await subscriptions(256, "256 subscriptions on the hub"); // at most 20 s on a hub without welcome
  await control(`/publish?channel=${q(`many:${run}:255`)}&type=tick`);
  await until(() => subs[255].got.length === 1, "a message on the last channel");

  // The hub restarts (1012): every subscription again, and 50 more sends queued meanwhile.
  await control("/close?code=1012&reason=restart");
  await until(() => c.state === "reconnecting", "reconnecting");
  for (let i = 50; i < 100; i++) c.send("note", { run, i });
  await until(() => c.state === "open", "open again", 10_000);
  await subscriptions(256, "256 subscriptions after the reconnect");
  await until(async () => (await notes(run)).length === 100, "100 notes", 30_000);
  assert.deepEqual((await notes(run)).map((n) => n.i), [...Array(100).keys()]);
  await control(`/publish?channel=${q(`many:${run}:0`)}&type=tick`);
  await until(() => subs[0].got.length === 1, "a message on the first channel");

  const after = await stats();
  assert.equal(after.rateLimited, before.rateLimited, "no rate_limited reply");
  assert.equal(after.policyCloses, before.policyCloses, "no 1008");
  assert.deepEqual(errors, []);
  assert.deepEqual(states.map((s) => s.state), ["open", "reconnecting", "open"]);
});

test("temporary subscribe errors are retried with backoff; refusals are final and reported, also after a reconnect", { timeout: TIMEOUT }, async (t) => {
  const run = tag();
  const { c, errors } = open(t, { backoff: { min: 20, max: 100 } });
  const flaky = subscribe(c, `flaky:${run}`);
  await flaky.sub.ready; // after two "internal" replies
  assert.deepEqual(errors.map((e) => [e.code, e.channel]), [["internal", `flaky:${run}`], ["internal", `flaky:${run}`]]);

  const secret = subscribe(c, `secret:${run}`);
  await assert.rejects(secret.sub.ready, { name: "WspubError", code: "forbidden" });
  await sleep(300);
  assert.equal(errors.filter((e) => e.code === "forbidden").length, 1, "no retry after a refusal");

  // Allowed once: after the reconnect, the resubscribe is refused, and that is reported.
  const once = subscribe(c, `once:${run}`);
  await once.sub.ready;
  errors.length = 0;
  await control("/close?code=1012");
  await until(() => errors.some((e) => e.code === "forbidden"), "the refusal after the reconnect");
  assert.equal(errors.find((e) => e.code === "forbidden").channel, `once:${run}`);
  await control(`/publish?channel=${q(`once:${run}`)}&type=tick`);
  await control(`/publish?channel=${q(`flaky:${run}`)}&type=tick`);
  await until(() => flaky.got.length === 1, "flaky's message after the reconnect");
  assert.equal(once.got.length, 0);
});

test("unsubscribing before the answer: ready rejects with unsubscribed, the hub keeps no subscription", { timeout: TIMEOUT }, async (t) => {
  await subscriptions(0, "no subscriptions of earlier tests");
  const { c, errors } = open(t);
  const early = c.subscribe("early:1", () => {});
  early.unsubscribe(); // before the socket opened
  await assert.rejects(early.ready, { name: "WspubError", code: "unsubscribed" });
  await until(() => c.state === "open", "open");
  const late = c.subscribe("early:2", () => {});
  await Promise.resolve(); // the subscribe is written (a microtask), its answer cannot have come
  late.unsubscribe();
  await assert.rejects(late.ready, { code: "unsubscribed" });
  const kept = subscribe(c, "early:3");
  await kept.sub.ready;
  await subscriptions(1, "only early:3");
  assert.deepEqual(errors, []);
});

test("send() with data JSON cannot encode throws at the call; the connection is unharmed", { timeout: TIMEOUT }, async (t) => {
  const run = tag();
  const { c, states } = open(t);
  const cycle = {};
  cycle.self = cycle;
  assert.throws(() => c.send("note", { n: 1n }), { name: "WspubError", code: "invalid_data" });
  assert.throws(() => c.send("note", cycle), { code: "invalid_data" });
  await assert.rejects(c.publish("chat:1", { n: 1n }), { code: "invalid_data" });
  c.send("note", { run, i: 0 });
  await until(async () => (await notes(run)).length === 1, "the good note");
  assert.equal(c.state, "open");
  assert.deepEqual(states.map((s) => s.state), ["open"]);
});

test("a server-side unsubscribe (Hub.Unsubscribe) ends the subscription: no more messages, no resubscribe after a reconnect", { timeout: TIMEOUT }, async (t) => {
  await subscriptions(0, "no subscriptions of earlier tests");
  const run = tag();
  const { c } = open(t);
  const gone = subscribe(c, `srv:${run}`);
  const kept = subscribe(c, `kept:${run}`);
  await gone.sub.ready;
  await kept.sub.ready;
  const unsubscribed = [];
  c.on("unsubscribed", (m) => unsubscribed.push(m.channel));
  await control(`/unsubscribe?channel=${q(`srv:${run}`)}`);
  await until(() => unsubscribed.length === 1, "the unsubscribed message");
  await control("/close?code=1012");
  await until(() => c.state === "reconnecting", "reconnecting");
  await until(() => c.state === "open", "open again");
  await subscriptions(1, `only kept:${run} after the reconnect`);
  await sleep(200);
  assert.equal((await stats()).subscriptions, 1);
  await control(`/publish?channel=${q(`srv:${run}`)}&type=tick`);
  await control(`/publish?channel=${q(`kept:${run}`)}&type=tick`);
  await until(() => kept.got.length === 1, "kept's message");
  assert.equal(gone.got.length, 0);
});

test("the outbox: bounded in count and age, send({onlyIfOpen}), flushed after the \"open\" handlers' own sends", { timeout: TIMEOUT }, async (t) => {
  const run = tag();
  // The token takes 400 ms: everything sent meanwhile waits in the outbox.
  const slow = () => sleep(400).then(() => "good");
  const { c, errors } = open(t, { token: slow, outbox: { max: 3 } });
  assert.equal(c.send("note", { run, i: -1 }, { onlyIfOpen: true }), null);
  const dropped = c.publish("chat:1", "x"); // the oldest: dropped first
  for (let i = 0; i < 5; i++) c.send("note", { run, i });
  await assert.rejects(dropped, { name: "WspubError", code: "dropped" });
  assert.deepEqual(errors.map((e) => e.code), ["client_send_dropped", "client_send_dropped", "client_send_dropped"]);
  c.onState((state) => {
    if (state === "open") c.send("note", { run, i: "hello" });
  });
  await until(async () => (await notes(run)).length === 4, "4 notes");
  await sleep(100);
  assert.deepEqual((await notes(run)).map((n) => n.i), ["hello", 2, 3, 4]);
  assert.equal(typeof c.send("note", { run, i: 5 }, { onlyIfOpen: true }), "string");

  // maxAge: what waited longer is dropped when its turn comes. The token comes after
  // 1.6 s; the first note is then older than 1.5 s, the second younger.
  const run2 = tag();
  const aged = open(t, { token: () => sleep(1600).then(() => "good"), outbox: { maxAge: 1500 } });
  aged.c.send("note", { run: run2, i: 0 });
  await sleep(1600);
  aged.c.send("note", { run: run2, i: 1 });
  await until(async () => (await notes(run2)).length === 1, "the young note");
  await sleep(100);
  assert.deepEqual((await notes(run2)).map((n) => n.i), [1]);
  assert.deepEqual(aged.errors.map((e) => e.code), ["client_send_dropped"]);
});

test("connectTimeout: a handshake that never completes is given up and retried", { timeout: TIMEOUT }, async (t) => {
  const sockets = [];
  const hang = createServer((s) => sockets.push(s)); // accepts TCP, never answers HTTP
  await new Promise((resolve) => hang.listen(0, "127.0.0.1", resolve));
  t.after(() => {
    for (const s of sockets) s.destroy();
    hang.close();
  });
  const { c, states } = open(t, { connectTimeout: 200, backoff: { min: 10, max: 20 } }, "", `ws://127.0.0.1:${hang.address().port}/ws`);
  await until(() => states.length >= 2, "two attempts given up", 3000);
  assert.deepEqual(states.slice(0, 2).map((s) => [s.state, s.code, s.reason]), [
    ["reconnecting", 1006, "connect timeout"],
    ["reconnecting", 1006, "connect timeout"],
  ]);
  assert.equal(c.state, "reconnecting");
  assert.ok(sockets.length >= 2);
});

test("two subscriptions to one channel send one subscribe; each gets the messages; the channel stays until both unsubscribe", { timeout: TIMEOUT }, async (t) => {
  await subscriptions(0, "no subscriptions of earlier tests");
  const lines = [];
  const { c } = open(t, { debug: (...args) => lines.push(args) });
  const a = subscribe(c, "twice:1");
  const b = subscribe(c, "twice:1");
  await Promise.all([a.sub.ready, b.sub.ready]);
  const c3 = subscribe(c, "twice:1"); // already acked: ready at once
  await c3.sub.ready;
  const subscribes = lines.filter(([, what, text]) => what === "send" && JSON.parse(text).type === "subscribe");
  assert.equal(subscribes.length, 1, JSON.stringify(subscribes));
  await control("/publish?channel=twice:1&type=tick");
  await until(() => a.got.length === 1 && b.got.length === 1 && c3.got.length === 1, "the message, three times");
  a.sub.unsubscribe();
  c3.sub.unsubscribe();
  await sleep(100);
  assert.equal((await stats()).subscriptions, 1);
  b.sub.unsubscribe();
  await subscriptions(0, "the unsubscribe");
  assert.ok(lines.every(([prefix]) => prefix === "wspub:"));
  assert.ok(lines.some(([, what]) => what === "state"), "debug logs the states");
});

test("a throw while dialing is a failed attempt, never an unhandled rejection", { timeout: TIMEOUT }, async (t) => {
  const unhandled = [];
  const onUnhandled = (err) => unhandled.push(err);
  process.on("unhandledRejection", onUnhandled);
  t.after(() => process.off("unhandledRejection", onUnhandled));
  let calls = 0;
  const weird = () => (++calls === 1 ? { toString() { throw new Error("no string for you"); } } : "good");
  const { c, states, errors } = open(t, { token: weird, backoff: { min: 10, max: 20 } });
  await until(() => c.state === "open", "open on the second attempt");
  assert.deepEqual(errors.map((e) => e.code), ["client_connect_error"]);
  assert.deepEqual(states.map((s) => s.state), ["reconnecting", "open"]);
  assert.deepEqual(unhandled, []);
});

test("a handler that throws reaches c.on(\"error\") as client_handler_error; the other handlers and the connection go on", { timeout: TIMEOUT }, async (t) => {
  const { c, errors } = open(t);
  const boom = new Error("boom");
  c.subscribe("throw:1", () => { throw boom; });
  const other = subscribe(c, "throw:1");
  c.onState(() => { throw new Error("state handler"); });
  await other.sub.ready;
  await control("/publish?channel=throw:1&type=tick&n=2");
  await until(() => other.got.length === 2, "both messages");
  const thrown = errors.filter((e) => e.code === "client_handler_error");
  assert.equal(thrown.filter((e) => e.error === boom).length, 2);
  assert.ok(thrown.some((e) => e.error.message === "state handler"));

  // Without an error handler nothing is thrown either (node would end the process).
  const quiet = open(t, { lifecycle: null });
  quiet.c.on("error", () => {})(); // registered and removed: no error handler
  let calls = 0;
  await quiet.c.subscribe("throw:1", () => { calls++; throw boom; }).ready;
  await control("/publish?channel=throw:1&type=tick");
  await until(() => calls === 1, "the throwing handler ran");
  await sleep(50);
  assert.equal(quiet.c.state, "open");
});

/** A window and document for the lifecycle option, driven by the test. */
function fakePage() {
  const page = new EventTarget();
  page.document = Object.assign(new EventTarget(), { visibilityState: "visible" });
  page.navigator = { onLine: true };
  page.fire = (target, type) => target.dispatchEvent(new Event(type));
  return page;
}

test("page lifecycle: no retries while offline, at once on online; at once when a hidden page becomes visible", { timeout: TIMEOUT }, async (t) => {
  const page = fakePage();
  // Backoff so long that only the page's events can bring the connection back in time.
  const { c, states } = open(t, { lifecycle: page, backoff: { min: 60_000, max: 60_000 } });
  const sub = subscribe(c, "life:1");
  await sub.sub.ready;

  page.navigator.onLine = false;
  page.fire(page, "offline");
  await control("/close?code=1012");
  await until(() => c.state === "reconnecting", "reconnecting");
  assert.equal(states.at(-1).waiting, "online");
  assert.equal(states.at(-1).delay, undefined);
  page.navigator.onLine = true;
  page.fire(page, "online");
  await until(() => c.state === "open", "open at once after online");

  await control("/close?code=1012");
  await until(() => c.state === "reconnecting", "reconnecting");
  assert.ok(states.at(-1).delay >= 0);
  page.document.visibilityState = "hidden";
  page.fire(page.document, "visibilitychange");
  await sleep(100);
  assert.equal(c.state, "reconnecting");
  page.document.visibilityState = "visible";
  page.fire(page.document, "visibilitychange");
  await until(() => c.state === "open", "open at once when visible");
  await control("/publish?channel=life:1&type=tick");
  await until(() => sub.got.length === 1, "resubscribed");
});

test("page lifecycle: pagehide closes the socket (back/forward cache), pageshow reconnects and resubscribes", { timeout: TIMEOUT }, async (t) => {
  await until(async () => (await stats()).connections === 0, "no connections of earlier tests");
  const page = fakePage();
  const { c, states } = open(t, { lifecycle: page });
  const sub = subscribe(c, "life:2");
  await sub.sub.ready;
  page.fire(page, "pagehide");
  assert.equal(c.state, "reconnecting");
  assert.deepEqual(states.at(-1), { state: "reconnecting", code: 1000, reason: "pagehide", attempt: 0, waiting: "pageshow" });
  await until(async () => (await stats()).connections === 0, "the hub saw the close");
  await sleep(200);
  assert.equal(c.state, "reconnecting", "no retry while hidden");
  page.fire(page, "pageshow");
  await until(() => c.state === "open", "open after pageshow");
  await control("/publish?channel=life:2&type=tick");
  await until(() => sub.got.length === 1, "resubscribed");
  c.close();
  page.fire(page, "pageshow"); // the listeners are gone with the client
  await sleep(100);
  assert.equal(c.state, "closed");
});

test("identity expiry (4001): the client reconnects at once with a new token and keeps its subscriptions, expiry after expiry", { timeout: TIMEOUT }, async (t) => {
  let calls = 0;
  // "expiring" lives 1 s on the hub: the connection is closed with 4001 every second.
  const { c, states, errors } = open(t, { token: () => (calls++, "expiring"), backoff: { min: 5000, max: 5000 } });
  const { sub, got } = subscribe(c, "expiry:1");
  await sub.ready;
  for (let n = 1; n <= 3; n++) {
    await until(() => states.filter((s) => s.code === 4001).length === n, `expiry ${n}`, 3000);
    await until(() => c.state === "open", `open after expiry ${n}`, 3000);
    await control("/publish?channel=expiry:1&type=tick");
    await until(() => got.length === n, `the message after expiry ${n}`);
  }
  const expiries = states.filter((s) => s.code === 4001);
  assert.ok(expiries.every((s) => s.state === "reconnecting" && s.delay === 0 && s.reason === "identity expired"), JSON.stringify(expiries));
  assert.ok(!states.some((s) => s.state === "closed"));
  assert.ok(calls >= 4, `the token function was called ${calls} times`);
  assert.deepEqual(errors, []);
});

test("tokens of any characters (base64 with / + =, spaces, non-ASCII) reach the hub as they are", { timeout: TIMEOUT }, async (t) => {
  for (const token of ["any:eyJhbGciOi/Jz+dW==", "any:with space", "any:naïve ✓"]) {
    const { c } = open(t, { token });
    await until(() => c.state === "open", `open with ${token}`);
    assert.ok((await stats()).tokens[token] >= 1, `the hub read ${token}`);
    c.close();
  }
});

test("request: resolves with the handler's Conn.Reply; rejects on its error reply, timeout, abort and a lost connection", { timeout: TIMEOUT }, async (t) => {
  const { c } = open(t, { backoff: { min: 10, max: 20 } });
  const queued = c.request("echo", { q: 1 }); // before open
  const reply = await queued;
  assert.deepEqual({ ...reply, id: undefined }, { type: "echoed", data: { q: 1 }, id: undefined });
  const many = await Promise.all([...Array(30).keys()].map((i) => c.request("echo", i)));
  assert.deepEqual(many.map((m) => m.data), [...Array(30).keys()]);

  await assert.rejects(c.request("refuse"), (err) => err.name === "WspubError" && err.code === "refused" && err.reply.message === "no, thanks");
  await assert.rejects(c.request("nobody-handles-this"), { code: "unknown_type" });
  await assert.rejects(c.request("note", { run: "none" }, { timeout: 100 }), { code: "timeout" }); // note has no reply
  const abort = new AbortController();
  const aborted = c.request("note", { run: "none" }, { signal: abort.signal });
  setTimeout(() => abort.abort(), 20);
  await assert.rejects(aborted, { code: "aborted" });
  const lost = c.request("note", { run: "none" });
  await sleep(50);
  await control("/close?code=1012");
  await assert.rejects(lost, { code: "connection_lost" });
  await until(() => c.state === "open", "open again");
  assert.equal((await c.request("echo", "after")).data, "after");
});
