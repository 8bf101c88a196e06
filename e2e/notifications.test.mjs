// examples/notifications in a real browser: alice and bob, each in a browser context of
// their own; a notification reaches its addressee only, a broadcast reaches everyone.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";

import { harness, skipReason, text, waitState } from "./lib.mjs";

const h = harness();

const items = (page) => page.locator("#notifications li");
const badge = async (page) => Number(await page.locator("#badge").getAttribute("data-count"));

async function openAs(url, user) {
  const page = await h.page(user);
  await page.goto(`${url}?user=${user}`);
  await waitState(page, "open");
  await page.waitForSelector(`#current-user[data-user="${user}"]`);
  assert.equal(await page.inputValue("#user"), user);
  assert.equal(await items(page).count(), 0);
  assert.equal(await page.isVisible("#notifications-empty"), true);
  assert.equal(await page.isHidden("#badge"), true);
  return page;
}

describe("notifications example", { skip: skipReason || false, timeout: 60_000 }, () => {
  let srv;
  before(async () => { srv = await h.start("notifications"); });

  test("alice notifies bob; a broadcast reaches both", async () => {
    const alice = await openAs(srv.url, "alice");
    const bob = await openAs(srv.url, "bob");

    // alice → bob.
    await alice.selectOption("#notify-user", "bob");
    await alice.fill("#notify-text", "lunch at noon?");
    await alice.click("#notify-send");
    const first = bob.locator('#notifications li[data-type="notification"]').first();
    await first.waitFor();
    assert.equal(await first.locator(".from").textContent(), "alice");
    assert.equal(await first.locator(".text").textContent(), "lunch at noon?");
    assert.match(await first.locator(".time").textContent(), /^\d\d:\d\d:\d\d$/);
    assert.equal(await first.getAttribute("class"), "unread");
    await bob.waitForSelector('#badge[data-count="1"]:not([hidden])');
    assert.equal(await text(bob, "#badge"), "1");
    await alice.waitForFunction(() => document.getElementById("notify-text").value === ""); // sent
    assert.equal(await items(alice).count(), 0, "a notification to bob reaches bob only");

    // A second one: the badge counts up, newest first.
    await alice.fill("#notify-text", "or 1pm");
    await alice.press("#notify-text", "Enter");
    await bob.waitForSelector('#badge[data-count="2"]');
    assert.deepEqual(await bob.locator("#notifications li .text").allTextContents(), ["or 1pm", "lunch at noon?"]);

    // bob broadcasts: both get the announcement.
    await bob.fill("#broadcast-text", "deploy at 5pm");
    await bob.click("#broadcast-send");
    for (const [page, count] of [[bob, 3], [alice, 1]]) {
      const a = page.locator('#notifications li[data-type="announcement"]').first();
      await a.waitFor();
      assert.equal(await a.locator(".from").textContent(), "announcement");
      assert.equal(await a.locator(".text").textContent(), "deploy at 5pm");
      await page.waitForSelector(`#badge[data-count="${count}"]`);
      assert.equal(await badge(page), count);
    }
    assert.equal(await items(alice).count(), 1);
    await h.screenshot(bob, "notifications");

    // Mark all read: the badge goes, the items stay.
    await bob.click("#mark-read");
    await bob.waitForSelector("#badge[hidden]", { state: "attached" });
    assert.equal(await badge(bob), 0);
    assert.equal(await bob.locator("#notifications li.unread").count(), 0);
    assert.equal(await items(bob).count(), 3);
    for (const page of [alice, bob]) {
      assert.equal(await page.locator("#errors .error").count(), 0, await text(page, "#errors"));
      assert.equal(await page.locator("#conn-state").getAttribute("data-state"), "open");
    }
  });
});
