// The browser client follows the page's lifecycle in a real Chromium: while the page is
// offline a lost connection waits for the network instead of retrying, and it reconnects
// at once when the network is back; a page that becomes visible reconnects a connection
// that died meanwhile without waiting for its backoff; an identity that expires (close
// 4001) is renewed with a new token at once, the subscription kept.
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, test } from "node:test";

import { buildGo, harness, repoRoot, skipReason, tempDir, until } from "./lib.mjs";

const h = harness();

const PAGE = `<!doctype html>
<title>lifecycle</title>
<script type="module">
  import { connect } from "./wspub.js";
  window.states = [];
  window.received = 0;
  const [ms, token] = location.hash.slice(1).split(",");
  const backoff = { min: Number(ms), max: Number(ms) };
  window.tokens = 0;
  window.c = connect("/ws", { backoff, token: token ? () => { window.tokens++; return token; } : undefined });
  c.onState((state, detail) => states.push({ state, at: Date.now(), waiting: detail?.waiting, delay: detail?.delay }));
  c.subscribe("lc:1", () => { window.received++; });
</script>`;

describe("the client and the page's lifecycle", { skip: skipReason || false, timeout: 60_000 }, () => {
  let srv;
  before(async () => {
    const dir = join(tempDir(), "lifecycle");
    mkdirSync(dir, { recursive: true });
    copyFileSync(join(repoRoot, "client", "wspub.js"), join(dir, "wspub.js"));
    writeFileSync(join(dir, "index.html"), PAGE);
    srv = await h.start("testserver", ["-static", dir], { bin: buildGo("testserver", ".", "./client/testserver") });
  });

  const post = async (path) => assert.equal((await fetch(`${srv.url}${path}`, { method: "POST" })).status, 200);
  const stats = async () => (await fetch(`${srv.url}stats`)).json();

  test("offline: no attempt until online, then at once; resubscribed", async () => {
    const page = await h.page("offline");
    let sockets = 0;
    page.on("websocket", () => { sockets++; });
    await page.goto(`${srv.url}#100`); // a backoff of at most 100 ms: many attempts if it retried
    await page.waitForFunction(() => window.c.state === "open");
    await until(async () => (await stats()).subscriptions === 1, "subscribed");

    await page.context().setOffline(true);
    await page.waitForFunction(() => navigator.onLine === false);
    await post("close?code=1012&reason=restart"); // the server goes away while the page is offline
    await page.waitForFunction(() => window.states.some((s) => s.waiting === "online"));
    const during = sockets;
    await new Promise((r) => setTimeout(r, 1500)); // fifteen backoff periods
    assert.equal(sockets, during, "no connection attempt while offline");

    await page.context().setOffline(false);
    await page.waitForFunction(() => window.c.state === "open", null, { timeout: 3000 });
    await until(async () => (await stats()).subscriptions === 1, "resubscribed");
    await post(`publish?channel=lc:1&type=update&data=${encodeURIComponent("{}")}`);
    await page.waitForFunction(() => window.received >= 1);
  });

  test("a page shown again reconnects a connection that died while it was hidden, before its backoff", async () => {
    const page = await h.page("visibility");
    await page.goto(`${srv.url}#20000`); // a backoff of up to 20 s
    await page.waitForFunction(() => window.c.state === "open");
    // Full jitter: close until the next attempt is at least 3 s away.
    let last;
    for (let i = 0; ; i++) {
      const n = await page.evaluate(() => window.states.length);
      await post("close?code=1012&reason=restart");
      await page.waitForFunction((k) => window.states.length > k && window.c.state === "reconnecting", n);
      last = await page.evaluate(() => window.states.at(-1));
      if (last.delay >= 3000) break;
      assert.ok(i < 10, "ten short delays in a row");
      await page.waitForFunction(() => window.c.state === "open", null, { timeout: 5000 });
    }
    await page.evaluate(() => {
      Object.defineProperty(document, "visibilityState", { value: "visible", configurable: true });
      document.dispatchEvent(new Event("visibilitychange"));
    });
    await page.waitForFunction(() => window.c.state === "open", null, { timeout: 2000 });
    const opened = await page.evaluate(() => window.states.at(-1).at);
    assert.ok(opened - last.at < last.delay, `open ${opened - last.at} ms after the close, the backoff was ${last.delay} ms`);
  });

  test("an expiring identity: every 4001 reconnects at once with a new token, the subscription kept", async () => {
    const page = await h.page("refresh");
    // "expiring" identities end 1 s after their handshake; the backoff (20 s) never comes.
    await page.goto(`${srv.url}#20000,expiring`);
    await page.waitForFunction(() => window.c.state === "open");
    await page.waitForFunction(() => window.tokens >= 4, null, { timeout: 8000 }); // three expiries
    await page.waitForFunction(() => window.c.state === "open");
    const states = await page.evaluate(() => window.states);
    assert.ok(!states.some((s) => s.state === "closed"), JSON.stringify(states));
    await until(async () => (await stats()).subscriptions >= 1, "subscribed again");
    // Delivery is at-most-once and the identity ends every second: publish until one
    // arrives between two expiries.
    const before = await page.evaluate(() => window.received);
    await until(async () => {
      await post(`publish?channel=lc:1&type=update&data=${encodeURIComponent("{}")}`);
      return page.evaluate((n) => window.received > n, before);
    }, "a message after the renewals");
  });
});
