// examples/chat in a real browser: alice and bob in room:general see each other's lines,
// stamped with the server-side identity, and each other's typing hints; a non-admin is
// refused room:admins.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";

import { harness, skipReason, text, waitState } from "./lib.mjs";

const h = harness();
const GENERAL = "room:general";

const line = (user, txt) => `#messages .messages[data-room="${GENERAL}"] li.chat[data-user="${user}"]:has-text("${txt}")`;

async function login(url, name) {
  const page = await h.page(name);
  await page.goto(url);
  await waitState(page, "closed"); // logged out
  assert.equal(await page.isHidden("#chat"), true);
  await page.fill("#user-name", name);
  await page.click("#login");
  await waitState(page, "open");
  await page.waitForSelector(`#rooms .room[data-room="${GENERAL}"][data-joined="true"][data-active="true"]`);
  assert.equal(await text(page, "#me"), name);
  assert.equal(await page.isHidden("#login-form"), true);
  return page;
}

describe("chat example", { skip: skipReason || false, timeout: 60_000 }, () => {
  let srv;
  before(async () => { srv = await h.start("chat"); });

  test("two users chat in room:general, see typing hints; room:admins is forbidden", async () => {
    const alice = await login(srv.url, "alice");
    const bob = await login(srv.url, "bob");

    // alice types: bob sees the hint. Then she sends: bob sees her line, and the hint goes.
    await alice.fill("#text", "hi bob");
    await bob.waitForSelector('#typing[data-user="alice"]');
    assert.equal(await text(bob, "#typing"), "alice is typing…");
    assert.equal(await alice.locator("#typing").getAttribute("data-user"), null, "one's own hint is not shown");
    await alice.press("#text", "Enter");
    const fromAlice = bob.locator(line("alice", "hi bob"));
    await fromAlice.waitFor();
    assert.equal(await fromAlice.locator(".user").textContent(), "alice");
    assert.equal(await fromAlice.locator(".text").textContent(), "hi bob");
    assert.match(await fromAlice.getAttribute("data-id"), /^m\d+$/);
    assert.equal(await fromAlice.getAttribute("data-mine"), null);
    await bob.waitForSelector("#typing:not([data-user])", { state: "attached" });
    // alice gets her own line back, marked as hers.
    await alice.locator(`${line("alice", "hi bob")}[data-mine="true"]`).waitFor();
    assert.equal(await alice.inputValue("#text"), "");

    // bob answers.
    await bob.fill("#text", "hey alice! lunch?");
    await bob.click("#send");
    await alice.locator(line("bob", "hey alice! lunch?")).waitFor();

    // bob starts typing again: alice sees it (the screenshot).
    await bob.fill("#text", "one more thing");
    await alice.waitForSelector('#typing[data-user="bob"]');
    assert.equal(await text(alice, "#typing"), "bob is typing…");
    assert.deepEqual(
      await alice.locator(`#messages .messages[data-room="${GENERAL}"] li.chat .user`).allTextContents(),
      ["alice", "bob"]);
    await h.screenshot(alice, "chat");

    // The name on a line is the server's: a "user" the client adds to a say is ignored.
    // bob's page opens a raw connection as bob, joins the room and claims to be admin.
    const reply = await bob.evaluate(async (room) => {
      const ws = new WebSocket(`ws://${location.host}/ws`, ["wspub.v1", "bearer.bob"]);
      const lines = [];
      ws.onmessage = (ev) => lines.push(...String(ev.data).split("\n"));
      const until = async (what, pred) => {
        for (const end = Date.now() + 5000; !pred();) {
          if (Date.now() > end) throw new Error(`no ${what} in ${JSON.stringify(lines)}`);
          await new Promise((r) => setTimeout(r, 20));
        }
      };
      await new Promise((res, rej) => { ws.onopen = res; ws.onerror = rej; });
      ws.send(JSON.stringify({ type: "subscribe", channel: room, id: "1" }));
      await until("subscribed", () => lines.some((l) => l.includes('"subscribed"')));
      ws.send(JSON.stringify({ type: "say", data: { room, text: "I am the admin", user: "admin" }, id: "2" }));
      await until("chat line", () => lines.some((l) => l.includes("I am the admin")));
      ws.close();
      return { protocol: ws.protocol, line: JSON.parse(lines.find((l) => l.includes("I am the admin"))) };
    }, GENERAL);
    assert.equal(reply.protocol, "wspub.v1", "only wspub.v1 is echoed, never the token");
    assert.equal(reply.line.data.user, "bob");
    await alice.locator(line("bob", "I am the admin")).waitFor();
    assert.equal(await alice.locator('li.chat[data-user="admin"]').count(), 0);

    // alice (not admin) tries room:admins: forbidden, shown on the room and in #errors.
    await alice.click('#rooms .room[data-room="room:admins"] .join');
    const err = alice.locator('#errors .error[data-code="forbidden"]');
    await err.waitFor();
    assert.equal(await err.textContent(), "forbidden: room:admins is for admin only");
    await alice.waitForSelector('#rooms .room[data-room="room:admins"][data-error="forbidden"][data-joined="false"]');
    // ... and she is still in room:general and connected.
    assert.equal(await alice.locator(`#rooms .room[data-room="${GENERAL}"]`).getAttribute("data-joined"), "true");
    assert.equal(await alice.locator("#conn-state").getAttribute("data-state"), "open");
    assert.equal(await bob.locator("#errors .error").count(), 0, await text(bob, "#errors"));
  });
});
