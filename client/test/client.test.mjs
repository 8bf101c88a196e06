// End-to-end tests of wspub.js against a real hub (testserver/harness.mjs). Run from client/:
// node --test test/
import { test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { TIMEOUT, addr, control, open, q, sleep, stats, subscribe, until } from "../testserver/harness.mjs";

test("1. subscribe: ready resolves and the channel's messages arrive as {type, channel, data}", { timeout: TIMEOUT }, async (t) => {
  const { c, states } = open(t);
  assert.equal(c.state, "connecting");
  const { sub, got } = subscribe(c, "task:1");
  await sub.ready;
  assert.equal(c.state, "open");
  assert.deepEqual(states, [{ state: "open" }]);

  await control(`/publish?channel=task:1&type=progress&data=${q('{"percent":40}')}`);
  await until(() => got.length === 1, "the message");
  assert.deepEqual(got[0], { type: "progress", channel: "task:1", data: { percent: 40 } });
});

test("2. batched frames: 200 messages published at once all arrive, in order", { timeout: TIMEOUT }, async (t) => {
  const frames = [];
  class CountingWebSocket extends WebSocket {
    constructor(...args) {
      super(...args);
      this.on("message", (data) => frames.push(String(data)));
    }
  }
  const { c } = open(t, { WebSocket: CountingWebSocket });
  const { sub, got } = subscribe(c, "batch:1");
  await sub.ready;

  await control("/publish?channel=batch:1&type=tick&n=200");
  await until(() => got.length === 200, "200 messages");
  assert.deepEqual(got.map((m) => m.data.i), [...Array(200).keys()]);
  assert.ok(got.every((m) => m.type === "tick" && m.channel === "batch:1"));
  // The test proves the "\n" splitting only if the hub did batch.
  assert.ok(frames.some((f) => f.includes("\n")), `no batched frame among ${frames.length}`);
});

test("3. reconnect after 1001 and 1013: reconnecting, then open, resubscribed, backoff within its cap", { timeout: TIMEOUT }, async (t) => {
  const backoff = { min: 50, max: 200 };
  const { c, states } = open(t, { backoff });
  const { sub, got } = subscribe(c, "task:3");
  const acks = [];
  c.on("subscribed", (msg) => acks.push(msg));
  await sub.ready;

  for (const code of [1001, 1013]) {
    states.length = 0;
    const before = acks.length;
    await control(`/close?code=${code}&reason=test`);
    await until(() => c.state === "open" && acks.length > before, `reopen after ${code}`);
    assert.deepEqual(states.map((s) => s.state), ["reconnecting", "open"]);
    const { code: closeCode, reason, delay, attempt } = states[0];
    assert.equal(closeCode, code);
    assert.equal(reason, "test");
    assert.ok(delay >= 0 && delay <= Math.min(backoff.max, backoff.min * 2 ** attempt), `delay ${delay} attempt ${attempt}`);
    assert.equal(acks.at(-1).channel, "task:3");
    assert.equal(typeof acks.at(-1).id, "string"); // the client's own resubscribe

    const n = got.length;
    await control(`/publish?channel=task:3&type=after&data=${code}`);
    await until(() => got.length === n + 1, `the message after ${code}`);
    assert.deepEqual(got.at(-1), { type: "after", channel: "task:3", data: code });
  }
  assert.equal(got.length, 2);
});

test("4. no reconnect after 1008 or c.close()", { timeout: TIMEOUT }, async (t) => {
  await t.test("server closes with 1008", async (t) => {
    const { c, states } = open(t, { backoff: { min: 10, max: 20 } });
    await until(() => c.state === "open", "open");
    await control(`/close?code=1008&reason=${q("logged out")}`);
    await until(() => c.state === "closed", "closed");
    await sleep(200); // several backoff periods
    assert.deepEqual(states, [{ state: "open" }, { state: "closed", code: 1008, reason: "logged out" }]);
  });

  await t.test("c.close()", async (t) => {
    let calls = 0;
    const { c, states } = open(t, { token: () => (calls++, "good"), backoff: { min: 10, max: 20 } });
    const { sub } = subscribe(c, "task:4");
    await sub.ready;
    c.close();
    assert.equal(c.state, "closed");
    c.close(); // twice is fine
    await until(async () => (await stats()).connections === 0, "the server to see the close");
    await sleep(200);
    assert.equal(calls, 1);
    assert.deepEqual(states, [{ state: "open" }, { state: "closed", code: 1000, reason: "" }]);
    assert.throws(() => c.send("x"), { code: "closed" });
    await assert.rejects(c.publish("chat:1", 1), { code: "closed" });
    await assert.rejects(c.subscribe("task:4", () => {}).ready, { code: "closed" });
  });
});

test("5. token as subprotocol: \"good\" is accepted, \"bad\" retried with backoff, token function called each time", { timeout: TIMEOUT }, async (t) => {
  await t.test("good", async (t) => {
    const { c } = open(t, { token: "good" });
    const { sub, got } = subscribe(c, "task:5");
    await sub.ready;
    await control("/publish?channel=task:5&type=hello");
    await until(() => got.length === 1, "the message");
    assert.ok((await stats()).tokens.good >= 1);
  });

  await t.test("bad", async (t) => {
    const before = (await stats()).tokens.bad ?? 0;
    let calls = 0;
    const backoff = { min: 20, max: 80 };
    const { c, states } = open(t, { token: async () => (calls++, "bad"), backoff });
    await until(() => calls >= 4, "4 token calls");
    assert.equal(c.state, "reconnecting");
    assert.ok(!states.some((s) => s.state === "open"));
    const retries = states.filter((s) => s.state === "reconnecting");
    assert.ok(retries.length >= 3);
    retries.forEach((s, i) => {
      assert.equal(s.code, 1006); // the handshake failed (HTTP 401)
      assert.equal(s.attempt, i);
      assert.ok(s.delay >= 0 && s.delay <= Math.min(backoff.max, backoff.min * 2 ** i), `delay ${s.delay} attempt ${i}`);
    });
    assert.ok((await stats()).tokens.bad - before >= 3, "the server saw the token on each attempt");
  });
});

test("6. forbidden subscribe: ready rejects with \"forbidden\", c.on(\"error\") gets the reply, no retry", { timeout: TIMEOUT }, async (t) => {
  const { c, errors } = open(t, { subscribeRetry: 100 });
  const { sub, got } = subscribe(c, "secret:6");
  const err = await sub.ready.then(() => assert.fail("ready resolved"), (e) => e);
  assert.ok(err instanceof Error);
  assert.equal(err.code, "forbidden");
  assert.equal(errors.length, 1);
  assert.equal(errors[0].type, "error");
  assert.equal(errors[0].code, "forbidden");
  assert.equal(typeof errors[0].message, "string");
  assert.equal(errors[0].id, err.id);
  assert.deepEqual(err.reply, errors[0]);

  await sleep(350); // several subscribeRetry periods: a dead subscription is not retried
  assert.equal(errors.length, 1);
  sub.unsubscribe(); // harmless
  assert.equal(got.length, 0);
});

test("7. client publish: resolves, reaches other subscribers; forbidden channels reject", { timeout: TIMEOUT }, async (t) => {
  const { c: b } = open(t);
  const { sub, got } = subscribe(b, "chat:1");
  await sub.ready;

  const { c: a, errors } = open(t);
  assert.equal(a.state, "connecting");
  await a.publish("chat:1", { text: "hi" }); // queued until open
  await until(() => got.length === 1, "the message at the other client");
  assert.deepEqual(got[0], { type: "publish", channel: "chat:1", data: { text: "hi" } });

  await assert.rejects(a.publish("secret:x", { text: "psst" }), { code: "forbidden" });
  await assert.rejects(a.publish("task:7", 1), { code: "forbidden" });
  assert.deepEqual(errors.map((e) => e.code), ["forbidden", "forbidden"]);
  assert.equal(got.length, 1);
});

test("8. c.send: a type without handler gets unknown_type with the id send returned", { timeout: TIMEOUT }, async (t) => {
  const { c, errors } = open(t);
  const id = c.send("action_clicked", { action: "buy" }, { channel: "task:8" });
  assert.equal(typeof id, "string");
  await until(() => errors.length === 1, "the error reply");
  assert.equal(errors[0].code, "unknown_type");
  assert.equal(errors[0].id, id);
  const id2 = c.send("action_clicked");
  assert.notEqual(id2, id);
  await until(() => errors.length === 2, "the second error reply");
  assert.equal(errors[1].id, id2);
});

test("9. pong timeout: the client closes with 4000 and reconnects", { timeout: TIMEOUT }, async (t) => {
  const { c, states } = open(t, { pingInterval: 200, pongTimeout: 200, backoff: { min: 10, max: 50 } }, "/ws-mute");
  await until(() => states.filter((s) => s.state === "open").length >= 2, "a second open");
  assert.deepEqual(states.slice(0, 3).map((s) => s.state), ["open", "reconnecting", "open"]);
  assert.equal(states[1].code, 4000);
  assert.equal(states[1].reason, "pong timeout");
  await until(async () => (await stats()).muteCloses.includes(4000), "the server to get close 4000");
  c.close();
});

test("10. unsubscribe: the channel's messages no longer reach fn", { timeout: TIMEOUT }, async (t) => {
  const { c } = open(t);
  const { sub, got } = subscribe(c, "task:10");
  const control10 = subscribe(c, "control:10");
  const unsubscribed = [];
  c.on("unsubscribed", (msg) => unsubscribed.push(msg));
  await Promise.all([sub.ready, control10.sub.ready]);
  await control("/publish?channel=task:10&type=one");
  await until(() => got.length === 1, "the first message");

  sub.unsubscribe();
  await until(() => unsubscribed.length === 1, "unsubscribed");
  assert.equal(unsubscribed[0].channel, "task:10");
  await control("/publish?channel=task:10&type=two");
  await control("/publish?channel=control:10&type=marker");
  await until(() => control10.got.length === 1, "the marker"); // queued after "two"
  assert.deepEqual(got.map((m) => m.type), ["one"]);
});

test("11. server-side subscription: messages reach c.on handlers only", { timeout: TIMEOUT }, async (t) => {
  const { c, errors } = open(t);
  const acks = [];
  const notices = [];
  c.on("subscribed", (msg) => acks.push(msg));
  c.on("notice", (msg) => notices.push(msg));
  await until(() => c.state === "open", "open");
  await until(async () => (await stats()).connections === 1, "one connection");
  await control("/subscribe?channel=user:11");
  await until(() => acks.length === 1, "subscribed");
  assert.deepEqual(acks[0], { type: "subscribed", channel: "user:11" });
  await control(`/publish?channel=user:11&type=notice&data=${q('"hello"')}`);
  await until(() => notices.length === 1, "the notice");
  assert.deepEqual(notices[0], { type: "notice", channel: "user:11", data: "hello" });
  assert.deepEqual(errors, []);
});

/** A WebSocket whose handshakes carry the Origin of a page elsewhere, as a browser's would. */
const PAGE = "http://127.0.0.1:18301";
class ElsewhereWebSocket extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols, { origin: PAGE });
  }
}

/** A fetch that records its calls and sends the Origin a browser would, of the page elsewhere. */
function fetchFromElsewhere() {
  const calls = [];
  const f = (url, init) => {
    calls.push({ url, init });
    return fetch(url, { ...init, headers: { Origin: PAGE } });
  };
  return { fetch: f, calls };
}

test("12. a page of another origin: after 3 refused handshakes the preflight reads the 403 and the client closes, naming OriginPatterns", { timeout: TIMEOUT }, async (t) => {
  const { fetch: f, calls } = fetchFromElsewhere();
  const { c, states } = open(t, { WebSocket: ElsewhereWebSocket, fetch: f, backoff: { min: 10, max: 20 } }, "/ws-strict");
  await until(() => c.state === "closed", "closed");
  assert.deepEqual(states.map((s) => s.state), ["reconnecting", "reconnecting", "closed"]);
  const { code, reason, status } = states.at(-1);
  assert.equal(code, 1006);
  assert.equal(status, 403);
  assert.equal(reason, `wspub: origin "${PAGE}" not allowed; add "127.0.0.1:18301" to Options.OriginPatterns`);
  assert.equal(calls.length, 1);
  assert.equal(calls[0].url, `http://${addr}/ws-strict`);
  assert.equal(calls[0].init.method, "POST", "browsers omit Origin from a same-origin GET");
  assert.equal(calls[0].init.credentials, "omit");
  await sleep(100); // several backoff periods: no attempt after closed
  assert.equal(states.length, 3);
});

test("13. behind http.TimeoutHandler: the preflight reads the 501 and the client closes", { timeout: TIMEOUT }, async (t) => {
  const { c, states } = open(t, { backoff: { min: 10, max: 20 } }, "/ws-timeout"); // globalThis.fetch
  await until(() => c.state === "closed", "closed");
  const last = states.at(-1);
  assert.equal(last.code, 1006);
  assert.equal(last.status, 501);
  assert.match(last.reason, /^wspub: the ResponseWriter cannot be hijacked; .*http\.TimeoutHandler/);
  assert.equal(states.filter((s) => s.state === "reconnecting").length, 2);
});

test("14. a rejected token: the preflight finds the hub (426) and the client keeps retrying, saying so", { timeout: TIMEOUT }, async (t) => {
  const backoff = { min: 10, max: 20 };
  const { c, states } = open(t, { token: "bad", backoff });
  await until(() => states.length >= 5, "5 reconnecting states");
  assert.equal(c.state, "reconnecting");
  assert.ok(states.every((s) => s.state === "reconnecting" && s.code === 1006));
  assert.deepEqual(states.slice(0, 2).map((s) => s.status), [undefined, undefined]);
  for (const s of states.slice(2)) { // the third failure and after, until an open
    assert.equal(s.status, 426);
    assert.match(s.reason, /refuses the handshake itself/);
  }
  states.slice(0, 5).forEach((s, i) => assert.equal(s.attempt, i)); // the backoff goes on as before
});

test("15. a wrong URL: the preflight finds no wspub hub (404) and the client keeps retrying, saying so", { timeout: TIMEOUT }, async (t) => {
  const { c, states } = open(t, { backoff: { min: 10, max: 20 } }, "/nothing-here");
  await until(() => states.length >= 4, "4 reconnecting states");
  assert.equal(c.state, "reconnecting");
  const s = states[2];
  assert.equal(s.status, 404);
  assert.equal(s.reason, `wspub: not a wspub hub at http://${addr}/nothing-here (HTTP 404)`);
  assert.equal(states[3].status, 404);
});

test("16. a preflight that fails (network, CORS) changes nothing", { timeout: TIMEOUT }, async (t) => {
  let calls = 0;
  const fail = async () => {
    calls++;
    throw new TypeError("fetch failed");
  };
  const { c, states } = open(t, { token: "bad", fetch: fail, backoff: { min: 10, max: 20 } });
  await until(() => calls >= 2 && states.length >= 7, "two preflights");
  assert.equal(c.state, "reconnecting");
  assert.ok(states.every((s) => s.state === "reconnecting" && s.status === undefined && s.reason === ""));
});

test("17. a router that allows the hub's path only for GET (405): the preflight asks again with a GET", { timeout: TIMEOUT }, async (t) => {
  const methods = [];
  const getOnly = (url, init) => {
    methods.push(init.method);
    return init.method === "GET" ? fetch(url, init) : Promise.resolve(new Response("Method Not Allowed\n", { status: 405 }));
  };
  const { c, states } = open(t, { token: "bad", fetch: getOnly, backoff: { min: 10, max: 20 } });
  await until(() => states.length >= 3, "3 reconnecting states");
  assert.equal(c.state, "reconnecting");
  assert.deepEqual(methods, ["POST", "GET"]);
  assert.equal(states[2].status, 426);
});

test("18. a preflight whose fetch never answers, ignoring its signal, is given up after 5 s; the retries go on", { timeout: TIMEOUT }, async (t) => {
  let calls = 0;
  const hang = () => { calls++; return new Promise(() => {}); };
  const { c, states } = open(t, { token: "bad", fetch: hang, backoff: { min: 10, max: 20 } });
  await until(() => calls === 1 && states.length === 2, "the first preflight");
  await until(() => states.length >= 3, "a retry after the preflight gave up", 8000);
  assert.equal(c.state, "reconnecting");
  assert.equal(states[2].status, undefined, "nothing was learned");
});

test("19. closed clients leave no timers behind", { timeout: TIMEOUT }, async () => {
  // Every client of the tests above has been closed by its test's after hook.
  await sleep(50);
  const timers = process.getActiveResourcesInfo().filter((r) => r === "Timeout");
  assert.deepEqual(timers, []);
});
