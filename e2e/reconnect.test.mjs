// Reconnecting in a real browser: the server process is killed (SIGKILL) mid-stream and
// started again on the same port; the page goes reconnecting → open by itself,
// resubscribes and receives updates again.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { connStates, freePort, harness, recordConnStates, recordMessages, skipReason, text, waitState } from "./lib.mjs";

const h = harness();
// How long the page may take to come back: the server is down for well under a second,
// so at most a few backoff attempts (full jitter, 0.5 s doubling) are made meanwhile.
const RECONNECT_TIMEOUT = 20_000;

describe("reconnect after a server crash", { skip: skipReason || false, timeout: 90_000 }, () => {
  test("quotes: rows update again after the server is killed and restarted", async () => {
    const port = await freePort();
    const args = ["-interval", "100ms"];
    const srv = await h.start("quotes", args, { port });
    const page = await h.page("quotes");
    const msgs = recordMessages(page);
    await page.goto(srv.url);
    await waitState(page, "open");
    await page.waitForSelector('#symbols[data-loaded="true"]');
    await page.check("#toggle-AAPL");
    const row = '#quotes tbody tr[data-symbol="AAPL"]';
    await page.waitForSelector(`${row}[data-ready="true"]:not([data-ts=""])`);
    const t0 = Number(await page.locator(row).getAttribute("data-ts"));
    await page.waitForFunction(([sel, t]) => Number(document.querySelector(sel).dataset.ts) > t, [row, t0]);
    await recordConnStates(page);

    // Crash mid-stream.
    await srv.kill("SIGKILL");
    await waitState(page, "reconnecting");
    const tsAtCrash = Number(await page.locator(row).getAttribute("data-ts"));
    assert.match(await text(page, "#conn-state"), /^reconnecting\b/);

    // Same port, new process: the page reconnects and resubscribes by itself.
    await h.start("quotes", args, { port });
    await waitState(page, "open", RECONNECT_TIMEOUT);
    await page.waitForFunction(([sel, t]) => Number(document.querySelector(sel).dataset.ts) > t, [row, tsAtCrash]);
    const t1 = Number(await page.locator(row).getAttribute("data-ts"));
    await page.waitForFunction(([sel, t]) => Number(document.querySelector(sel).dataset.ts) >= t + 300, [row, t1]);

    const states = await connStates(page);
    assert.deepEqual(states.filter((s, i) => i === 0 || s !== states[i - 1]).slice(0, 3), ["open", "reconnecting", "open"], `states: ${states}`);
    assert.equal(states.at(-1), "open");
    const sockets = [...new Set(msgs.map((m) => m.socket))];
    assert.ok(sockets.length >= 2, "a new WebSocket after the crash");
    const last = sockets.at(-1);
    assert.ok(msgs.some((m) => m.socket === last && m.type === "subscribed" && m.channel === "quote:AAPL"),
      "resubscribed to quote:AAPL on the new connection");
    assert.ok(msgs.filter((m) => m.socket === last && m.type === "quote" && m.channel === "quote:AAPL").length >= 3);
    assert.equal(await page.locator(row).getAttribute("data-ready"), "true");
    assert.equal(await page.isChecked("#toggle-AAPL"), true);
    assert.equal(await page.locator("#errors .error").count(), 0, await text(page, "#errors"));
  });

  test("progress: a job cut by the crash is reported; a job started after the restart completes", async () => {
    const port = await freePort();
    const args = ["-tick", "100ms"];
    const srv = await h.start("progress", args, { port });
    const page = await h.page("progress");
    const msgs = recordMessages(page);
    await page.goto(srv.url);
    await waitState(page, "open");

    await page.click("#start");
    const cut = page.locator("#jobs .job").first();
    await cut.waitFor();
    const cutID = await cut.getAttribute("data-job-id");
    await page.waitForFunction((id) => {
      const el = document.querySelector(`.job[data-job-id="${id}"]`);
      return el.dataset.status === "running" && Number(el.querySelector("progress").value) >= 10;
    }, cutID);
    await recordConnStates(page);

    await srv.kill("SIGKILL");
    await waitState(page, "reconnecting");
    await h.start("progress", args, { port });
    await waitState(page, "open", RECONNECT_TIMEOUT);

    // The page resubscribes to the job's channel and, once confirmed, catches up with
    // GET /jobs/{id}: the new process never heard of the job, so the card says so.
    await page.waitForSelector(`.job[data-job-id="${cutID}"][data-status="error"]`);
    assert.match(await text(page, `.job[data-job-id="${cutID}"] .step`), /no such job/);
    assert.match(await text(page, "#errors .error"), /no such job/);
    const last = Math.max(...msgs.map((m) => m.socket));
    assert.ok(msgs.some((m) => m.socket === last && m.type === "subscribed" && m.channel === `task:${cutID}`),
      "resubscribed to the job's channel on the new connection");

    // A new job on the restarted server runs to the end.
    await page.fill("#symbol", "TSLA");
    await page.click("#start");
    await page.waitForFunction((id) => document.querySelector("#jobs .job").dataset.jobId !== id, cutID);
    const fresh = await page.locator("#jobs .job").first().getAttribute("data-job-id");
    await page.waitForSelector(`.job[data-job-id="${fresh}"][data-status="done"]`, { timeout: 15_000 });
    assert.equal(await text(page, `.job[data-job-id="${fresh}"] .percent`), "100%");
    assert.equal(await text(page, `.job[data-job-id="${fresh}"] .symbol`), "TSLA");
    const states = await connStates(page);
    assert.deepEqual(states.slice(0, 3), ["open", "reconnecting", "open"], `states: ${states}`);
  });
});
