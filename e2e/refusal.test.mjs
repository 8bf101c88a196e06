// What a page sees when the hub refuses it: a browser cannot read the HTTP status of a
// refused WebSocket handshake (it sees close 1006), so after three of them wspub.js asks
// the hub with a plain GET, whose refusal the hub lets a page of any origin read (CORS).
// Here a page served by one quotes server connects to the hub of another, on another
// port: another origin, which that hub's OriginPatterns (none) does not allow.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { harness, skipReason } from "./lib.mjs";

const h = harness();

describe("a hub refusing the page's origin", { skip: skipReason || false, timeout: 90_000 }, () => {
  test("the client ends closed, its reason naming OriginPatterns and the pattern to add", async () => {
    const [pageSrv, hubSrv] = await Promise.all([h.start("quotes"), h.start("quotes")]);
    const page = await h.page("elsewhere");
    await page.goto(pageSrv.url);
    const hubURL = `ws://127.0.0.1:${hubSrv.port}/ws`;
    const states = await page.evaluate(async (url) => {
      const { connect } = await import("/wspub.js");
      const states = [];
      await new Promise((resolve) => {
        setTimeout(resolve, 20_000); // a bound, not a wait: the states so far fail the test
        const c = connect(url, { backoff: { min: 50, max: 200 } });
        c.onState((state, detail) => {
          states.push({ state, ...detail });
          if (state === "closed") resolve();
        });
      });
      return states;
    }, hubURL);

    assert.deepEqual(states.map((s) => s.state), ["reconnecting", "reconnecting", "closed"], JSON.stringify(states));
    const closed = states.at(-1);
    assert.equal(closed.code, 1006);
    assert.equal(closed.status, 403);
    const origin = `http://127.0.0.1:${pageSrv.port}`;
    assert.equal(closed.reason,
      `wspub: origin "${origin}" not allowed; add "127.0.0.1:${pageSrv.port}" to Options.OriginPatterns`);
    // The page's own hub, same origin, is not affected.
    await page.waitForSelector('#conn-state[data-state="open"]', { state: "attached" });
  });
});
