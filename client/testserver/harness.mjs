// The harness of the tests against a real hub (outside test/, where node --test would run
// it as a test file): client/testserver, built with the Go
// toolchain (or the binary named by WSPUB_TESTSERVER), started before the tests of the
// importing file and driven through its control endpoints.
import { after, before } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { connect } from "../wspub.js";

export const TIMEOUT = 15_000; // per test
const repo = fileURLToPath(new URL("../..", import.meta.url));
let server; // the test server's process
let buildDir = null;
export let addr; // host:port

before(async () => {
  let bin = process.env.WSPUB_TESTSERVER;
  if (!bin) {
    buildDir = mkdtempSync(join(tmpdir(), "wspub-testserver-"));
    bin = join(buildDir, "testserver");
    execFileSync("go", ["build", "-o", bin, "./client/testserver"], { cwd: repo, stdio: "inherit", timeout: 300_000 });
  }
  // -exit-on-eof: the server exits with this process even if after() never runs.
  server = spawn(bin, ["-exit-on-eof"], { stdio: ["pipe", "pipe", "inherit"] });
  const lines = createInterface({ input: server.stdout });
  addr = await new Promise((resolve, reject) => {
    lines.once("line", resolve);
    server.once("exit", (code) => reject(new Error(`testserver exited with ${code}`)));
  });
  lines.close();
}, { timeout: 300_000 });

after(async () => {
  if (server && server.exitCode === null) {
    const exited = new Promise((resolve) => server.once("exit", resolve));
    server.stdin.end();
    server.kill();
    await exited;
  }
  if (buildDir) rmSync(buildDir, { recursive: true, force: true });
});

/** A POST to a control endpoint of the test server; returns its body. */
export async function control(path) {
  const res = await fetch(`http://${addr}${path}`, { method: "POST" });
  const body = await res.text();
  assert.equal(res.status, 200, `${path}: ${body}`);
  return body;
}

export async function stats() {
  const res = await fetch(`http://${addr}/stats`);
  return res.json();
}

export const q = encodeURIComponent;

/** Polls until cond() is true, for at most ms. */
export async function until(cond, what, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Connects a client to the test server's hub (or another path), records its state
 * changes and server error replies, and closes it when the test ends.
 */
export function open(t, options = {}, path = "/ws", url = `ws://${addr}${path}`) {
  const c = connect(url, { WebSocket, ...options });
  const states = [];
  const errors = [];
  c.onState((state, detail) => states.push({ state, ...detail }));
  c.on("error", (msg) => errors.push(msg));
  t.after(() => c.close());
  return { c, states, errors };
}

/** Collects the messages a subscription receives. */
export function subscribe(c, channel) {
  const got = [];
  const sub = c.subscribe(channel, (msg) => got.push(msg));
  return { sub, got };
}
