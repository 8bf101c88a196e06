// The documentation's code, run: the README Quickstart pasted into a new Go module and
// watched in Chromium, and every browser snippet (js and html code blocks of README.md,
// PROTOCOL.md, client/README.md and the other Markdown files) executed in a page next to
// a real hub. The snippets come from internal/docs/docserver, which uses the same
// extractor as the Go test that compiles the Go snippets (internal/docs).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import { promisify } from "node:util";

import { buildGo, harness, repoRoot, skipReason, tempDir, until } from "./lib.mjs";

const run = promisify(execFile);
const h = harness();

const getJSON = async (url) => (await fetch(url)).json();

/**
 * Watches a page: its uncaught errors and console.error lines in errors, every console
 * line in lines.
 */
function watch(page) {
  const errors = [], lines = [];
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    lines.push(m.text());
    if (m.type() === "error") errors.push(`console.error: ${m.text()}`);
  });
  return { errors, lines };
}

/** Resolves with the values of #bar once it has shown two different ones. */
async function barMoves(page) {
  const seen = new Set();
  await until(async () => {
    seen.add(await page.locator("#bar").evaluate((b) => b.value));
    return seen.size >= 2;
  }, "the progress bar never moved");
  return [...seen];
}

describe("documentation", { skip: skipReason || false, timeout: 180_000 }, () => {
  let docs, snippets;
  before(async () => {
    docs = await h.start("docserver", ["-root", repoRoot, "-tick", "100ms"],
      { bin: buildGo("docserver", "internal/docs", "./docserver") });
    snippets = await getJSON(`${docs.url}snippets`);
  });

  test("the Quickstart, pasted into a new module, serves a page whose bar fills, and stops on Ctrl-C", async () => {
    const quick = snippets.filter((s) => s.file === "README.md" && s.lang === "go" && /^package main\b/m.test(s.code));
    assert.equal(quick.length, 1, "README.md has one complete program, the Quickstart");
    const dir = join(tempDir(), "quickstart");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "main.go"), quick[0].code);
    const go = (...args) => run("go", args, { cwd: dir, env: { ...process.env, GOWORK: "off" }, maxBuffer: 16 << 20 });
    // As the README says: go mod init and go get; until the module is published, go get
    // is a replace of the checkout and go mod tidy.
    await go("mod", "init", "example.com/live");
    await go("mod", "edit", "-replace", `github.com/wspub/wspub=${repoRoot}`);
    await go("mod", "tidy");
    await go("vet", ".");
    await go("build", "-o", "quickstart", ".");

    const srv = await h.start("quickstart", [], { bin: join(dir, "quickstart") });
    const page = await h.page("quickstart");
    const { errors } = watch(page);
    await page.goto(srv.url);
    assert.equal(await page.title(), "wspub quickstart", "the page is rendered as HTML");
    await page.waitForFunction(() => document.getElementById("state").textContent === "open");
    const values = await barMoves(page);
    assert.ok(values.some((v) => v > 0), `bar values ${values}`);
    assert.match(await page.locator("#percent").textContent(), /^\d+ %$/);
    // The same picture every time: the bar at 50 %.
    await page.waitForFunction(() => document.getElementById("percent").textContent === "50 %");
    await h.screenshot(page, "quickstart");

    // Ctrl-C: exit status 0, and the page is told the server went away (1001).
    srv.proc.kill("SIGINT");
    const { code } = await srv.exited;
    assert.equal(code, 0, `exit status after SIGINT:\n${srv.output}`);
    await page.waitForFunction(() => document.getElementById("state").textContent === "reconnecting");
    assert.match(srv.output, /open http:\/\/127\.0\.0\.1:\d+/);
    assert.match(srv.output, /websocket_disconnected .*code=1001 reason="going away"/, "the hub shut down, not only the HTTP server");
    assert.deepEqual(errors, []);
  });

  test("every browser snippet runs and connects to the hub", async () => {
    const browserSnippets = snippets.filter((s) => s.lang === "js" || s.lang === "html");
    assert.ok(browserSnippets.length >= 5, `only ${browserSnippets.length} browser snippets found`);
    for (const s of browserSnippets) {
      const where = `${s.file}:${s.line}`;
      const page = await h.page(where.replace(/[^\w.-]/g, "_"));
      const { errors, lines } = watch(page);
      const before = (await getJSON(`${docs.url}stats`)).connections;
      await page.goto(`${docs.url}snippet/${s.n}`);
      await until(async () => (await getJSON(`${docs.url}stats`)).connections > before,
        `${where}: the snippet never connected to the hub`);

      const has = async (id) => (await page.locator(`#${id}`).count()) > 0;
      if (await has("state")) {
        await page.waitForFunction(() => document.getElementById("state").textContent === "open", null,
          { timeout: 10_000 }).catch(() => { throw new Error(`${where}: #state never showed "open"`); });
      }
      if (await has("bar")) await barMoves(page);
      if (await has("buy")) {
        const clicks = (await getJSON(`${docs.url}stats`)).clicks;
        await page.click("#buy");
        await until(async () => (await getJSON(`${docs.url}stats`)).clicks > clicks, `${where}: the click never reached the hub`);
        if (await has("answer")) {
          await page.waitForFunction(() => document.getElementById("answer").textContent === "Buying at the market price.");
        }
      }
      if (/ws\.onmessage/.test(s.code) && /console\.log/.test(s.code)) {
        // A raw-WebSocket snippet that logs what it receives: the subscribe's reply and
        // the channel's messages, split one per line.
        await until(() => lines.some((l) => /^subscribed task:42 /.test(l)), `${where}: no subscribed reply logged`);
        await until(() => lines.some((l) => /^progress task:42 \{"percent":\d+/.test(l)), `${where}: no progress message logged`);
      }
      assert.deepEqual(errors, [], `${where} raised errors`);
      await page.context().close();
      await until(async () => (await getJSON(`${docs.url}stats`)).connections <= before,
        `${where}: the page's connection did not end when the page closed`);
    }
  });
});

