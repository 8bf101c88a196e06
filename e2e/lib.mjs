// Harness of the browser tests: builds the example binaries, runs them on free loopback
// ports, drives Debian's Chromium with playwright-core, and cleans everything up.
//
//	const h = harness();                          // registers after() / afterEach() hooks
//	const srv = await h.start("quotes", ["-interval", "100ms"]);
//	const page = await h.page();                  // a fresh browser context, 1000x700
//	await page.goto(srv.url);
//
// When a test fails, the output of every server the file started and the console of
// every page it opened are printed; nothing is printed for a passing test.

import { execFile, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { get as httpGet } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, afterEach } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { chromium } from "playwright-core";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Chromium's executable: $CHROMIUM, else Debian's /usr/bin/chromium. */
export const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";

/**
 * Why the browser tests cannot run here, or "" if they can. Without Chromium the tests
 * skip, as the repository's broker tests do without their services, except under CI=true
 * where they fail.
 */
export const skipReason = existsSync(chromiumPath) || process.env.CI === "true"
  ? ""
  : `no Chromium at ${chromiumPath} (apt-get install chromium, or set CHROMIUM)`;

/**
 * Where screenshots go: $E2E_SCREENSHOT_DIR (scripts/screenshots sets it to
 * examples/screenshots to refresh the committed ones), else a temporary directory that
 * is removed when the test process exits, so that running the tests leaves the checkout
 * as it was.
 */
const keepScreenshots = Boolean(process.env.E2E_SCREENSHOT_DIR);
export const screenshotDir = keepScreenshots
  ? resolve(process.env.E2E_SCREENSHOT_DIR)
  : join(tmpdir(), `wspub-e2e-screenshots-${process.pid}`);

export const VIEWPORT = { width: 1000, height: 700 };
const WAIT_TIMEOUT = 10_000; // default timeout of every page wait
const READY_TIMEOUT = 15_000; // a server must answer GET / within it
const STOP_TIMEOUT = 5_000; // SIGTERM, then SIGKILL after it

const CHROMIUM_ARGS = [
  "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--no-first-run",
];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const run = promisify(execFile);

// ---- binaries ----------------------------------------------------------------------

let binDir = null;
const builds = new Map(); // binary name -> Promise<path>

/** A temporary directory of this test process, removed when it exits. */
export function tempDir() {
  binDir ??= mkdtempSync(join(tmpdir(), "wspub-e2e-bin-"));
  return binDir;
}

/**
 * Builds the Go package pkg of the module in dir (relative to the repository's root)
 * once per test process, as the binary name, and returns its path.
 */
export function buildGo(name, dir, pkg) {
  if (!builds.has(name)) {
    builds.set(name, (async () => {
      const out = join(tempDir(), name);
      try {
        await run("go", ["build", "-o", out, pkg], { cwd: join(repoRoot, dir), maxBuffer: 16 << 20 });
      } catch (err) {
        throw new Error(`go build of ${pkg} in ${dir} failed:\n${err.stderr || err.message}`);
      }
      return out;
    })());
  }
  return builds.get(name);
}

/**
 * Builds examples/<name> once per test process and returns the binary's path. Examples
 * with a go.mod of their own (auth) are built from their directory.
 */
export function buildExample(name) {
  const dir = join("examples", name);
  return existsSync(join(repoRoot, dir, "go.mod"))
    ? buildGo(name, dir, ".")
    : buildGo(name, ".", `./examples/${name}`);
}

/** A free TCP port on 127.0.0.1 (listen on port 0, read it, close). */
export function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", rej);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

/**
 * GET url with a connection of its own (no keep-alive, so nothing outlives the test
 * process's work); resolves with the status, or 0 on any error.
 */
export function getStatus(url, timeout = 1000) {
  return new Promise((res) => {
    const req = httpGet(url, { agent: false, timeout }, (r) => { r.resume(); r.on("end", () => res(r.statusCode)); });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", () => res(0));
  });
}

// ---- servers -----------------------------------------------------------------------

/** One running example process. */
export class Server {
  constructor(name, bin, port, args) {
    this.name = name;
    this.port = port;
    this.url = `http://127.0.0.1:${port}/`;
    this.output = "";
    this.proc = spawn(bin, ["-addr", `127.0.0.1:${port}`, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    const collect = (chunk) => { this.output += chunk; };
    this.proc.stdout.setEncoding("utf8").on("data", collect);
    this.proc.stderr.setEncoding("utf8").on("data", collect);
    this.exitStatus = null;
    this.exited = new Promise((res) => {
      this.proc.on("exit", (code, signal) => { this.exitStatus = { code, signal }; res(this.exitStatus); });
      this.proc.on("error", (err) => { this.output += `spawn error: ${err.message}\n`; this.exitStatus = { code: -1 }; res(this.exitStatus); });
    });
  }

  get running() { return this.exitStatus === null; }

  /** Resolves once GET / answers 200; rejects if the process exits first or on timeout. */
  async ready() {
    const deadline = Date.now() + READY_TIMEOUT;
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`${this.name} exited (${JSON.stringify(this.exitStatus)}) before serving:\n${this.output}`);
      if (await getStatus(this.url) === 200) return;
      await sleep(50);
    }
    throw new Error(`${this.name} did not answer GET ${this.url} within ${READY_TIMEOUT} ms:\n${this.output}`);
  }

  /** Sends signal (default SIGKILL) and waits for the process to exit. */
  async kill(signal = "SIGKILL") {
    if (this.running) this.proc.kill(signal);
    await this.exited;
  }

  /** SIGTERM, then SIGKILL if it has not exited after STOP_TIMEOUT. */
  async stop() {
    if (!this.running) return;
    this.proc.kill("SIGTERM");
    let timer;
    const t = new Promise((r) => { timer = setTimeout(() => r("timeout"), STOP_TIMEOUT); });
    const first = await Promise.race([this.exited, t]);
    clearTimeout(timer);
    if (first === "timeout") {
      this.output += `[e2e] no exit ${STOP_TIMEOUT} ms after SIGTERM: SIGKILL\n`;
      await this.kill("SIGKILL");
    }
  }
}

// A test process that is interrupted must not leave its servers running.
const liveServers = new Set();
process.on("exit", () => {
  for (const s of liveServers) if (s.running) s.proc.kill("SIGKILL");
  if (binDir) rmSync(binDir, { recursive: true, force: true });
  if (!keepScreenshots) rmSync(screenshotDir, { recursive: true, force: true });
});
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.once(sig, () => {
    for (const s of liveServers) if (s.running) s.proc.kill("SIGKILL");
    process.exit(sig === "SIGINT" ? 130 : 143);
  });
}

// ---- the harness -------------------------------------------------------------------

/**
 * Returns the helpers of one test file and registers its hooks: after every failed test
 * the logs are printed; after the file, pages, the browser and the servers are closed.
 */
export function harness() {
  const servers = [];
  const pages = []; // {label, page, log: string[]}
  let browser = null;

  const h = {
    servers,

    /**
     * Builds and starts examples/<name> with -addr 127.0.0.1:<port> and args, and waits
     * until it serves. opts.port: a fixed port (to restart a server on the same one);
     * otherwise a free one is picked (and picked again if it was taken meanwhile).
     * opts.bin: a binary to run (a Promise of its path) instead of the example's.
     */
    async start(name, args = [], opts = {}) {
      const bin = await (opts.bin ?? buildExample(name));
      for (let attempt = 0; ; attempt++) {
        const port = opts.port ?? await freePort();
        const srv = new Server(name, bin, port, args);
        servers.push(srv);
        liveServers.add(srv);
        srv.exited.then(() => liveServers.delete(srv));
        try {
          await srv.ready();
          return srv;
        } catch (err) {
          await srv.kill();
          if (opts.port === undefined && attempt < 2 && /address already in use/.test(srv.output)) continue;
          throw err;
        }
      }
    },

    /** The file's Chromium, launched on first use (playwright gives it a fresh temporary profile). */
    async browser() {
      if (!browser) {
        if (!existsSync(chromiumPath)) throw new Error(`no Chromium at ${chromiumPath}: apt-get install chromium, or set CHROMIUM`);
        browser = await chromium.launch({
          executablePath: chromiumPath,
          headless: true,
          args: CHROMIUM_ARGS,
          timeout: 30_000,
        });
      }
      return browser;
    },

    /** A page in a browser context of its own (its own cookies and storage), 1000x700. */
    async page(label = `page${pages.length + 1}`) {
      const b = await h.browser();
      const context = await b.newContext({ viewport: VIEWPORT, deviceScaleFactor: 1 });
      context.setDefaultTimeout(WAIT_TIMEOUT);
      const page = await context.newPage();
      const log = [];
      const stamp = () => new Date().toISOString().slice(11, 23);
      page.on("console", (m) => log.push(`${stamp()} console.${m.type()}: ${m.text()}`));
      page.on("pageerror", (e) => log.push(`${stamp()} pageerror: ${e.message}`));
      page.on("requestfailed", (r) => log.push(`${stamp()} requestfailed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`));
      page.on("websocket", (ws) => {
        log.push(`${stamp()} websocket open ${ws.url()}`);
        ws.on("close", () => log.push(`${stamp()} websocket closed ${ws.url()}`));
        ws.on("socketerror", (e) => log.push(`${stamp()} websocket error ${e}`));
      });
      pages.push({ label, page, log });
      return page;
    },

    /** Saves page's viewport as <screenshotDir>/<name>.png. */
    async screenshot(page, name) {
      mkdirSync(screenshotDir, { recursive: true });
      await page.screenshot({ path: join(screenshotDir, `${name}.png`), animations: "disabled", caret: "hide" });
    },
  };

  afterEach(async (t) => {
    if (t.passed !== false) return; // node >= 20.12 reports it; older ones never print
    const out = [`\n===== logs of failed test "${t.name}" =====`];
    for (const s of servers) out.push(`--- server ${s.name} :${s.port} (${s.running ? "running" : `exited ${JSON.stringify(s.exitStatus)}`}) ---\n${s.output}`);
    for (const p of pages) {
      let shot = "";
      if (!p.page.isClosed()) {
        const file = join(tmpdir(), `wspub-e2e-${p.label}-${Date.now()}.png`);
        try { await p.page.screenshot({ path: file, timeout: 5000 }); shot = ` (screenshot: ${file})`; } catch { /* closed */ }
        try { out.push(`--- page ${p.label} ${p.page.url()}${shot}; body text:\n${(await p.page.innerText("body", { timeout: 2000 })).slice(0, 3000)}`); } catch { /* closed */ }
      }
      out.push(`--- page ${p.label} console ---\n${p.log.join("\n")}`);
    }
    console.error(out.join("\n"));
  });

  // The servers are stopped first, while the pages are still connected: a graceful
  // shutdown (SIGTERM) with live browser clients must end with exit status 0 in time.
  after(async () => {
    const running = servers.filter((s) => s.running);
    await Promise.all(running.map((s) => s.stop()));
    for (const p of pages) await p.page.context().close().catch(() => {});
    if (browser) await browser.close().catch(() => {});
    const bad = running.filter((s) => s.exitStatus.code !== 0);
    if (bad.length > 0) {
      throw new Error(bad.map((s) => `${s.name} :${s.port} did not exit cleanly on SIGTERM (${JSON.stringify(s.exitStatus)}):\n${s.output}`).join("\n"));
    }
  });

  return h;
}

// ---- page helpers ------------------------------------------------------------------

/** Waits until the page's #conn-state has data-state=state. */
export function waitState(page, state, timeout) {
  return page.waitForSelector(`#conn-state[data-state="${state}"]`, { state: "attached", timeout });
}

/** The text of selector's first match, trimmed. */
export async function text(page, selector) {
  return (await page.locator(selector).first().textContent())?.trim() ?? "";
}

/**
 * Records every value data-state of #conn-state takes from now on, in window.__states
 * (read them with connStates(page)).
 */
export async function recordConnStates(page) {
  await page.evaluate(() => {
    const el = document.getElementById("conn-state");
    window.__states = [el.dataset.state];
    new MutationObserver(() => {
      if (window.__states.at(-1) !== el.dataset.state) window.__states.push(el.dataset.state);
    }).observe(el, { attributes: true, attributeFilter: ["data-state"] });
  });
}

export const connStates = (page) => page.evaluate(() => window.__states);

/**
 * Collects the messages the page receives on its WebSockets (one entry per line of a
 * frame, parsed): returns the live array. Call before page.goto.
 */
export function recordMessages(page) {
  const msgs = [];
  let socket = 0;
  page.on("websocket", (ws) => {
    const n = ++socket;
    ws.on("framereceived", ({ payload }) => {
      for (const line of String(payload).split("\n")) {
        if (line.trim() === "") continue;
        try { msgs.push({ socket: n, at: Date.now(), ...JSON.parse(line) }); } catch { msgs.push({ socket: n, at: Date.now(), raw: line }); }
      }
    });
  });
  return msgs;
}

/** Polls fn (node side) until it returns a truthy value, or throws msg after timeout ms. */
export async function until(fn, msg, timeout = WAIT_TIMEOUT) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms: ${msg}`);
    await sleep(25);
  }
}
