// examples/progress in a real browser: a job started from the page runs to 100%, and two
// jobs started at once both finish.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";

import { harness, skipReason, text, waitState } from "./lib.mjs";

const h = harness();

describe("progress example", { skip: skipReason || false, timeout: 60_000 }, () => {
  let srv;
  // 150 ms per update: a job takes 3 s (20 updates), slow enough to be seen mid-progress.
  before(async () => { srv = await h.start("progress", ["-tick", "150ms"]); });

  test("Start runs a job to 100%; two concurrent jobs both finish", async () => {
    const page = await h.page();
    await page.goto(srv.url);
    await waitState(page, "open");
    assert.equal(await text(page, "#conn-state"), "open");

    // One job.
    await page.fill("#symbol", "AAPL");
    await page.click("#start");
    const first = page.locator("#jobs .job").first();
    await first.waitFor();
    const id = await first.getAttribute("data-job-id");
    assert.match(id, /^[0-9a-f]{16}$/);
    const card = `#jobs .job[data-job-id="${id}"]`;
    assert.equal(await text(page, `${card} .symbol`), "AAPL");
    await page.waitForSelector(`${card}[data-status="running"]`);
    await page.waitForFunction((sel) => Number(document.querySelector(`${sel} progress`).value) > 0, card);
    await page.waitForSelector(`${card}[data-status="done"]`, { timeout: 15_000 });
    assert.equal(await text(page, `${card} .percent`), "100%");
    assert.equal(await page.locator(`${card} progress`).evaluate((p) => p.value), 100);
    assert.equal(await text(page, `${card} .status`), "done");
    assert.equal(await text(page, `${card} .step`), "writing report");

    // Two jobs at once: the second is submitted before the first card exists.
    await page.fill("#symbol", "msft");
    await page.click("#start");
    await page.fill("#symbol", "NVDA");
    await page.click("#start");
    await page.waitForFunction(() => document.querySelectorAll("#jobs .job").length === 3);
    const ids = await page.locator("#jobs .job").evaluateAll((els) => els.map((e) => e.dataset.jobId));
    const others = ids.filter((x) => x !== id);
    assert.equal(others.length, 2);
    assert.deepEqual(
      (await page.locator("#jobs .job .symbol").allTextContents()).slice(0, 2).sort(), ["MSFT", "NVDA"]);

    // Both running at the same time, mid-way: the screenshot.
    await page.waitForFunction((jobIds) => jobIds.every((j) => {
      const el = document.querySelector(`.job[data-job-id="${j}"]`);
      const v = Number(el.querySelector("progress").value);
      return el.dataset.status === "running" && v >= 40 && v <= 85;
    }), others, { timeout: 15_000 });
    await h.screenshot(page, "progress");

    for (const j of others) {
      await page.waitForSelector(`.job[data-job-id="${j}"][data-status="done"]`, { timeout: 15_000 });
      assert.equal(await text(page, `.job[data-job-id="${j}"] .percent`), "100%");
    }
    assert.equal(await page.locator("#errors .error").count(), 0, await text(page, "#errors"));
    assert.equal(await page.locator("#conn-state").getAttribute("data-state"), "open");
  });
});
