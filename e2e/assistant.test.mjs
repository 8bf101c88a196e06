// examples/assistant in a real browser: an answer streams in chunk by chunk, ends with
// recommended actions whose click the server confirms; a stalled answer ends in a
// stream error.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";

import { harness, skipReason, text, waitState } from "./lib.mjs";

const h = harness();

// A whole answer is about 22 chunks: 200 ms + 21 × 70 ms ≈ 1.7 s, well within the 4 s
// deadline, which is what a prompt containing "timeout" runs into.
const ARGS = ["-think", "200ms", "-chunk", "70ms", "-answer-timeout", "4s"];

/**
 * Records, on every DOM change of the last .turn, its data-state and the length of its
 * .answer, in window.__samples.
 */
function recordAnswer(page) {
  return page.evaluate(() => {
    window.__samples = [];
    new MutationObserver(() => {
      const turn = document.querySelector("#turns .turn:last-child");
      if (!turn) return;
      const answer = turn.querySelector(".answer");
      window.__samples.push({ state: turn.dataset.state, len: answer.textContent.length, chunks: Number(answer.dataset.chunks) });
    }).observe(document.getElementById("turns"), { subtree: true, childList: true, characterData: true, attributes: true });
  });
}

describe("assistant example", { skip: skipReason || false, timeout: 60_000 }, () => {
  let srv;
  before(async () => { srv = await h.start("assistant", ARGS); });

  test("an answer streams, then actions; a click is confirmed; a stall shows the stream error", async () => {
    const page = await h.page();
    await page.goto(srv.url);
    await waitState(page, "open");
    await page.waitForSelector("#ask:enabled");

    // Ask; the answer grows progressively.
    await recordAnswer(page);
    const prompt = "Should I buy AAPL?";
    await page.fill("#prompt", prompt);
    await page.click("#ask");
    const turn = page.locator("#turns .turn").first();
    await turn.waitFor();
    assert.equal(await turn.locator(".prompt").textContent(), prompt);
    assert.equal(await page.isDisabled("#ask"), true, "Ask is disabled while an answer streams");
    await page.waitForSelector('#turns .turn[data-state="done"]');
    const answer = await turn.locator(".answer").textContent();
    assert.match(answer, /^Here is how I would look into “Should I buy AAPL\?”\. /);
    assert.match(await turn.getAttribute("data-answer"), /^a-[0-9a-f]{12}$/);
    assert.equal(await text(page, "#turns .turn .status"), "done");
    const samples = await page.evaluate(() => window.__samples);
    const states = [...new Set(samples.map((s) => s.state))];
    assert.deepEqual(states, ["sent", "thinking", "writing", "done"], "the states the turn went through");
    const partial = new Set(samples.filter((s) => s.state === "writing" && s.len > 0 && s.len < answer.length).map((s) => s.len));
    assert.ok(partial.size >= 2, `intermediate lengths of .answer before done: ${[...partial]}`);
    assert.ok(Number(await turn.locator(".answer").getAttribute("data-chunks")) >= 10);

    // Recommended actions, then a click and its confirmation.
    await page.waitForFunction(() => document.querySelectorAll("#turns .turn .actions button.action").length === 3);
    assert.deepEqual(await turn.locator("button.action").evaluateAll((bs) => bs.map((b) => b.dataset.action)),
      ["run_backtest", "show_chart", "explain_more"]);
    assert.deepEqual(await turn.locator("button.action").allTextContents(), ["Run backtest", "Show chart", "Explain more"]);
    await page.waitForSelector("#ask:enabled");
    await turn.locator('button.action[data-action="run_backtest"]').click();
    const notice = turn.locator('.notice[data-action="run_backtest"]');
    await notice.waitFor();
    assert.equal(await notice.textContent(), "Run backtest: queued (this example runs nothing).");
    assert.equal(await turn.locator('button.action[data-action="run_backtest"]').getAttribute("data-clicked"), "true");
    await h.screenshot(page, "assistant");

    // A prompt containing "timeout": a few chunks, then the stall and its stream error.
    await page.fill("#prompt", "show me a timeout");
    await page.press("#prompt", "Enter");
    const stalled = page.locator("#turns .turn").nth(1);
    await stalled.waitFor();
    await page.waitForSelector('#turns .turn:nth-child(2)[data-state="error"]', { timeout: 10_000 });
    const err = stalled.locator(".stream-error");
    assert.equal(await err.getAttribute("data-code"), "timeout");
    assert.match(await err.textContent(), /^timeout: /);
    assert.equal(await stalled.locator(".status").textContent(), "failed");
    assert.equal(await stalled.locator(".answer").getAttribute("data-chunks"), "3", "chunks before the stall");
    assert.ok((await stalled.locator(".answer").textContent()).length > 0);
    assert.equal(await stalled.locator("button.action").count(), 0, "no actions after a failed answer");
    await page.waitForSelector("#ask:enabled");
    assert.equal(await page.locator("#errors .error").count(), 0, await text(page, "#errors"));
    assert.equal(await page.locator("#conn-state").getAttribute("data-state"), "open");
  });
});
