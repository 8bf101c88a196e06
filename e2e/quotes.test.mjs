// examples/quotes in a real browser: ticking symbols adds rows whose prices keep
// changing; unticking one removes its row and its quotes stop arriving.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";

import { harness, recordMessages, skipReason, text, until, waitState } from "./lib.mjs";

const h = harness();
const INTERVAL = 100; // ms between two quotes of a symbol (-interval)

const row = (sym) => `#quotes tbody tr[data-symbol="${sym}"]`;
const ts = async (page, sym) => Number(await page.locator(row(sym)).getAttribute("data-ts"));

describe("quotes example", { skip: skipReason || false, timeout: 60_000 }, () => {
  let srv;
  before(async () => { srv = await h.start("quotes", ["-interval", `${INTERVAL}ms`]); });

  test("ticked symbols stream changing prices; an unticked one goes and stops", async () => {
    const page = await h.page();
    const msgs = recordMessages(page);
    await page.goto(srv.url);
    await waitState(page, "open");
    await page.waitForSelector('#symbols[data-loaded="true"]');
    assert.deepEqual(
      await page.locator("#symbols li").evaluateAll((els) => els.map((e) => e.dataset.symbol)),
      ["AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "TSLA"]);
    assert.equal(await page.locator("#quotes tbody tr").count(), 0, "nothing subscribed on load");
    assert.equal(await page.isVisible("#quotes-empty"), true);

    await page.check("#toggle-AAPL");
    await page.check("#toggle-MSFT");
    for (const sym of ["AAPL", "MSFT"]) {
      await page.waitForSelector(`${row(sym)}[data-ready="true"]:not([data-ts=""])`);
      assert.match(await text(page, `${row(sym)} .price`), /^\d+\.\d\d$/);
      assert.match(await text(page, `${row(sym)} .change`), /^[+-]?\d+\.\d\d$/);
      assert.match(await text(page, `${row(sym)} .change-pct`), /^[+-]?\d+\.\d\d%$/);
      assert.match(await text(page, `${row(sym)} .time`), /^\d\d:\d\d:\d\d\.\d{3}$/);
    }
    assert.equal(await page.isHidden("#quotes-empty"), true);
    // Rows in the server's order, whatever the order of the clicks.
    assert.deepEqual(
      await page.locator("#quotes tbody tr").evaluateAll((els) => els.map((e) => e.dataset.symbol)), ["AAPL", "MSFT"]);

    // Updates keep coming: data-ts increases several times, and the prices move.
    for (const sym of ["AAPL", "MSFT"]) {
      const first = await ts(page, sym);
      const price = await text(page, `${row(sym)} .price`);
      await page.waitForFunction(([sel, t0]) => Number(document.querySelector(sel).dataset.ts) >= t0 + 3 * 100,
        [row(sym), first]);
      await page.waitForFunction(([sel, p0]) => document.querySelector(`${sel} .price`).textContent !== p0,
        [row(sym), price]);
    }
    await h.screenshot(page, "quotes");

    // Untick MSFT: its row goes at once, and once the server has confirmed the
    // unsubscribe MSFT's quotes stop arriving (while AAPL's keep coming).
    await page.uncheck("#toggle-MSFT");
    await page.waitForSelector(row("MSFT"), { state: "detached" });
    const ack = await until(() => msgs.find((m) => m.type === "unsubscribed" && m.channel === "quote:MSFT"),
      "the server's unsubscribed reply for quote:MSFT");
    const aaplAtAck = await ts(page, "AAPL");
    await page.waitForFunction(([sel, t0]) => Number(document.querySelector(sel).dataset.ts) >= t0 + 8 * 100,
      [row("AAPL"), aaplAtAck]);
    // PROTOCOL.md: a quote published just as the client unsubscribes may still arrive
    // right after the "unsubscribed" reply (one, at once); none may come later.
    const late = msgs.filter((m) => m.channel === "quote:MSFT" && m.type === "quote" && m.at > ack.at);
    assert.ok(late.length <= 1 && late.every((m) => m.at - ack.at < 300),
      `MSFT quotes after its unsubscribe was confirmed: ${JSON.stringify(late)}`);
    const aaplAfter = msgs.filter((m) => m.channel === "quote:AAPL" && m.at > ack.at);
    assert.ok(aaplAfter.length >= 5, `AAPL quotes after the unsubscribe of MSFT: ${aaplAfter.length}`);
    assert.equal(await page.locator(row("MSFT")).count(), 0);
    assert.deepEqual(
      await page.locator("#quotes tbody tr").evaluateAll((els) => els.map((e) => e.dataset.symbol)), ["AAPL"]);
    assert.equal(await page.isChecked("#toggle-MSFT"), false);
    assert.equal(await page.locator("#errors .error").count(), 0, await text(page, "#errors"));
  });
});
