// Tokens in a real browser: the token travels as the subprotocol "bearer.<token>"; a bad
// one is refused at the handshake, a good one connects.
//   - examples/notifications: the token is the user's name (alice, bob, carol).
//   - examples/auth: a JWT from POST /login; a notification on user:<me>; private:admin
//     refused (forbidden) to anyone but admin.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";

import { harness, skipReason, text, waitState } from "./lib.mjs";

const h = harness();

/**
 * In page, opens a raw WebSocket offering ["wspub.v1", "bearer." + token] (no token
 * subprotocol when token is null) and reports whether it opened, the negotiated
 * subprotocol and the close code.
 */
function rawConnect(page, token) {
  return page.evaluate((tok) => new Promise((resolve) => {
    const protocols = tok === null ? ["wspub.v1"] : ["wspub.v1", "bearer." + tok];
    const ws = new WebSocket(`ws://${location.host}/ws`, protocols);
    let opened = false, protocol = "";
    ws.onopen = () => { opened = true; protocol = ws.protocol; ws.close(1000); };
    ws.onclose = (ev) => resolve({ opened, protocol, code: ev.code });
  }), token);
}

/**
 * In page, runs the browser client (/wspub.js) with token until it is open or has been
 * refused `attempts` times, and reports the states it went through.
 */
function clientConnect(page, token, attempts = 3) {
  return page.evaluate(async ([tok, n]) => {
    const { connect } = await import("/wspub.js");
    const c = connect("/ws", { token: tok, backoff: { min: 20, max: 50 }, pingInterval: 0 });
    const states = [];
    const codes = [];
    await new Promise((resolve) => {
      c.onState((state, detail) => {
        states.push(state);
        if (state === "reconnecting") codes.push(detail.code);
        if (state === "open" || codes.length >= n) resolve();
      });
    });
    const seen = [...states];
    c.close();
    return { states: seen, codes };
  }, [token, attempts]);
}

describe("notifications: the user name as token", { skip: skipReason || false, timeout: 60_000 }, () => {
  let srv;
  before(async () => { srv = await h.start("notifications"); });

  test("an unknown user cannot connect; a known one can", async () => {
    const page = await h.page("notifications");
    await page.goto(`${srv.url}?user=carol`);
    await waitState(page, "open");
    assert.equal(await text(page, "#current-user"), "carol");

    for (const bad of ["mallory", "", "Alice", null]) {
      const r = await rawConnect(page, bad);
      assert.deepEqual(r, { opened: false, protocol: "", code: 1006 }, `token ${JSON.stringify(bad)}`);
    }
    const good = await rawConnect(page, "bob");
    assert.deepEqual(good, { opened: true, protocol: "wspub.v1", code: 1000 }, "only wspub.v1 is echoed, never the token");

    // The browser client: refused handshakes are retried (1006) and never open ...
    const refused = await clientConnect(page, "mallory");
    assert.deepEqual(refused.codes, [1006, 1006, 1006]);
    assert.ok(!refused.states.includes("open"), `states: ${refused.states}`);
    // ... a known user opens.
    const ok = await clientConnect(page, "alice");
    assert.equal(ok.states.at(-1), "open", `states: ${ok.states}`);

    // And through the page's own login selector.
    await page.selectOption("#user", "bob");
    await page.waitForSelector('#current-user[data-user="bob"]');
    await waitState(page, "open");
    assert.equal(await page.locator("#errors .error").count(), 0, await text(page, "#errors"));
  });
});

describe("auth: JWT login", { skip: skipReason || false, timeout: 60_000 }, () => {
  let srv;
  before(async () => { srv = await h.start("auth", ["-tick", "300ms"]); });

  async function login(name) {
    const page = await h.page(`auth-${name}`);
    await page.goto(srv.url);
    await waitState(page, "closed");
    await page.fill("#user", name);
    await page.click('#login-form button[type="submit"]');
    await waitState(page, "open");
    assert.equal(await text(page, "#conn-state"), `open as ${name}`);
    assert.equal(await text(page, "#me"), name);
    assert.equal(await text(page, "#my-channel"), `user:${name}`);
    // The server subscribes every connection to user:<name> itself (OnConnect).
    await page.locator("#messages li", { hasText: `subscribed to user:${name}` }).waitFor();
    return page;
  }

  test("log in, receive a notification, get forbidden for private:admin", async () => {
    const alice = await login("alice");
    const admin = await login("admin");

    // admin notifies alice: it arrives on user:alice.
    await admin.fill("#notify-user", "alice");
    await admin.fill("#notify-text", "welcome aboard");
    await admin.click('#notify-form button[type="submit"]');
    await admin.locator("#notify-result", { hasText: "sent to user:alice" }).waitFor();
    await alice.locator("#messages li", { hasText: "from admin: welcome aboard" }).waitFor();
    assert.equal(await admin.locator("#messages li", { hasText: "welcome aboard" }).count(), 0, "user:alice only");

    // alice may not subscribe to private:admin ...
    await alice.click("#sub-admin");
    const refusal = alice.locator("#admin-log li.error");
    await refusal.waitFor();
    assert.match(await refusal.textContent(), /forbidden: private:admin is for the admin user only$/);
    // ... admin may, and gets the ticks.
    await admin.click("#sub-admin");
    await admin.locator("#admin-log li", { hasText: "subscribed: ticks will appear here" }).waitFor();
    await admin.locator("#admin-log li", { hasText: /tick #\d+: 2 connections, 2 users/ }).first().waitFor();
    await h.screenshot(alice, "auth");

    // A tampered token is refused at the handshake; the one /login issued is accepted.
    const r = await alice.evaluate(async () => {
      const res = await fetch("/login", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ user: "eve" }) });
      const { token } = await res.json();
      const [head, body, sig] = token.split(".");
      const claims = JSON.parse(atob(body.replace(/-/g, "+").replace(/_/g, "/")));
      claims.sub = "admin";
      const forged = [head, btoa(JSON.stringify(claims)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_"), sig].join(".");
      const tryToken = (tok) => new Promise((resolve) => {
        const ws = new WebSocket(`ws://${location.host}/ws`, ["wspub.v1", "bearer." + tok]);
        let opened = false;
        ws.onopen = () => { opened = true; ws.close(1000); };
        ws.onclose = (ev) => resolve({ opened, code: ev.code });
      });
      return { forged: await tryToken(forged), garbage: await tryToken("not-a-jwt"), genuine: await tryToken(token) };
    });
    assert.deepEqual(r, { forged: { opened: false, code: 1006 }, garbage: { opened: false, code: 1006 }, genuine: { opened: true, code: 1000 } });
    assert.equal(await alice.locator("#conn-state").getAttribute("data-state"), "open");
  });
});
