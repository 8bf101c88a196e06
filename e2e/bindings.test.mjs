// The npm package and its bindings, as a Vite app uses them: client/ is packed with npm
// pack (in a copy, so that its dist/ is not left in the checkout), the Vite app of
// e2e/bindings (a committed package.json and package-lock.json, installed with npm ci in
// a temporary directory) gets the tarball with npm install --no-save and client/README.md's
// Vue and React examples (its vue and jsx code blocks, from internal/docs/docserver, the
// extractor of every other docs test), its types are checked with tsc (src/types.tsx),
// and it is built with NODE_ENV=development, so that React's StrictMode mounts twice.
// Each page is served by client/testserver, next to its
// hub, and driven in Chromium: subscribe and receive, close the panel (the hub's Stats
// show the unsubscribe), open it again, and after the hub closes every connection
// (1001), the client reconnects, resubscribes and receives again.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cpSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import { promisify } from "node:util";

import { buildGo, harness, repoRoot, skipReason, tempDir, until } from "./lib.mjs";

const run = promisify(execFile);
const h = harness();

const clientDir = join(repoRoot, "client");
const appDir = join(repoRoot, "e2e", "bindings");

/** Runs a command in dir; its output is in the error if it fails. */
async function sh(dir, cmd, args, env = {}) {
  try {
    return (await run(cmd, args, { cwd: dir, env: { ...process.env, ...env }, maxBuffer: 64 << 20 })).stdout;
  } catch (err) {
    throw new Error(`${cmd} ${args.join(" ")} (in ${dir}) failed:\n${err.stdout}\n${err.stderr}`);
  }
}
const npm = (dir, ...args) => sh(dir, "npm", [...args, "--no-audit", "--no-fund", "--loglevel=error"]);

/**
 * Packs the package from a copy of what it is made of (package.json, its lockfile, the
 * build script and the files it ships), after npm ci there, and returns the tarball's path.
 */
async function pack(work) {
  const dir = join(work, "client");
  const pkg = JSON.parse(readFileSync(join(clientDir, "package.json"), "utf8"));
  mkdirSync(dir, { recursive: true });
  for (const f of ["package.json", "package-lock.json", "build.mjs", "README.md",
    ...pkg.files.filter((f) => !f.startsWith("dist"))]) {
    cpSync(join(clientDir, f), join(dir, f), { recursive: true });
  }
  await npm(dir, "ci");
  const [packed] = JSON.parse(await npm(dir, "pack", "--json", "--pack-destination", work));
  return { tgz: join(work, packed.filename), files: packed.files.map((f) => f.path).sort() };
}

/**
 * client/README.md's Vue and React examples: {vue: {"App.vue": code, ...}, react: {...}},
 * each block named by its first line (<!-- Name.vue --> or // Name.jsx).
 */
async function readmeExamples() {
  const docs = await h.start("docserver", ["-root", repoRoot],
    { bin: buildGo("docserver", "internal/docs", "./docserver") });
  const snippets = await (await fetch(`${docs.url}snippets`)).json();
  await docs.stop();
  const out = { vue: {}, react: {}, ts: [] };
  for (const s of snippets) {
    if (s.lang === "ts") out.ts.push(s); // every Markdown file's TypeScript: type-checked
    if (s.file !== "client/README.md" || (s.lang !== "vue" && s.lang !== "jsx")) continue;
    const name = /^\s*(?:<!--|\/\/)\s*([\w-]+\.(?:vue|jsx))\b/.exec(s.code)?.[1];
    assert.ok(name, `client/README.md:${s.line}: a ${s.lang} block must name its file on its first line`);
    out[s.lang === "vue" ? "vue" : "react"][name] = s.code;
  }
  assert.ok(out.vue["App.vue"], "client/README.md has no Vue example (a vue block <!-- App.vue -->)");
  assert.ok(out.react["App.jsx"], "client/README.md has no React example (a jsx block // App.jsx)");
  assert.ok(out.ts.some((s) => s.file === "client/README.md"), "client/README.md has no ts block");
  return out;
}

const stats = async (srv) => (await fetch(`${srv.url}stats`)).json();
const post = async (srv, path) => {
  const r = await fetch(`${srv.url}${path}`, { method: "POST" });
  assert.equal(r.status, 200, `POST ${path}: ${await r.text()}`);
};
const publish = (srv, percent) =>
  post(srv, `publish?channel=task:42&type=progress&data=${encodeURIComponent(JSON.stringify({ percent }))}`);

describe("the Vue and React bindings, packed and built with Vite", { skip: skipReason || false, timeout: 300_000 }, () => {
  let dist;
  const testserver = buildGo("testserver", ".", "./client/testserver");

  before(async () => {
    const work = join(tempDir(), "bindings");
    const app = join(work, "app");
    cpSync(appDir, app, { recursive: true, filter: (src) => !src.includes("node_modules") });
    const [examples, packed] = await Promise.all([readmeExamples(), pack(work), npm(app, "ci")]);
    for (const f of ["package/package.json", "package/wspub.js", "package/wspub.d.ts", "package/vue.js",
      "package/vue.d.ts", "package/react.js", "package/react.d.ts", "package/dist/wspub.min.js"]) {
      assert.ok(packed.files.includes(f.slice("package/".length)), `the tarball has no ${f}: ${packed.files}`);
    }
    assert.ok(!packed.files.some((f) => f.startsWith("test/") || f === "build.mjs"), `the tarball ships ${packed.files}`);
    await npm(app, "install", "--no-save", packed.tgz);
    // The package's types, found through its exports: src/types.tsx uses every binding,
    // and every ts block of the docs is a module of its own with the names it takes for
    // granted (a client c, a progress element bar).
    const { ts, ...bindings } = examples;
    mkdirSync(join(app, "src", "docs"), { recursive: true });
    for (const [i, s] of ts.entries()) {
      writeFileSync(join(app, "src", "docs", `block${i}.ts`),
        `// ${s.file}:${s.line}\nimport { connect } from "@wspub/client";\n` +
        `const c = connect("/ws");\nconst bar = document.createElement("progress");\n` +
        `void c; void bar;\n${s.code}\nexport {};\n`);
    }
    await sh(app, join(app, "node_modules", ".bin", "tsc"), ["-p", "."]);
    for (const [binding, files] of Object.entries(bindings)) {
      mkdirSync(join(app, "src", binding), { recursive: true });
      for (const [name, code] of Object.entries(files)) writeFileSync(join(app, "src", binding, name), code);
    }
    await sh(app, join(app, "node_modules", ".bin", "vite"), ["build"], { NODE_ENV: "development" });
    dist = join(app, "dist");
    assert.deepEqual(readdirSync(dist).filter((f) => f.endsWith(".html")).sort(), ["react.html", "vue.html"]);
  });

  for (const binding of ["vue", "react"]) {
    test(`${binding}: subscribe, receive, unmount unsubscribes, a reconnect resubscribes`, async () => {
      const srv = await h.start(`testserver-${binding}`, ["-static", dist], { bin: testserver });
      const page = await h.page(binding);
      const errors = [];
      page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
      page.on("console", (m) => { if (m.type() === "error" || m.type() === "warning") errors.push(`console.${m.type()}: ${m.text()}`); });
      await page.goto(`${srv.url}${binding}.html`);
      const state = () => page.locator("#state").textContent();
      const percent = () => page.locator("#percent").textContent();

      // Mounted: one connection (StrictMode's discarded mount opened none), one
      // subscription, and the page says it is ready.
      await until(async () => await state() === "open", "#state never showed open");
      await until(async () => (await stats(srv)).subscriptions === 1, "the hub never saw the subscribe");
      await page.waitForSelector("#percent");
      assert.equal(await percent(), "waiting");
      let s = await stats(srv);
      assert.equal(s.connections, 1);
      assert.deepEqual(s.tokens, { "": 1 }, "one handshake");

      await publish(srv, 42);
      await until(async () => await percent() === "42 %", "the published message never showed");
      assert.equal(await page.locator("#task progress").evaluate((p) => p.value), 42);

      // Close the panel: the component unmounts and unsubscribes; the connection stays.
      await page.click("#toggle");
      await until(async () => (await stats(srv)).subscriptions === 0, "no unsubscribe after the panel closed");
      assert.equal(await page.locator("#task").count(), 0);
      assert.equal((await stats(srv)).connections, 1);

      // Open it again: a new subscription with fresh state.
      await page.click("#toggle");
      await until(async () => (await stats(srv)).subscriptions === 1, "no subscribe after the panel opened");
      await page.waitForSelector("#percent");
      await publish(srv, 50);
      await until(async () => await percent() === "50 %", "no message after the panel opened again");

      // The hub closes every connection with 1001: the client reconnects and
      // resubscribes by itself, and the panel receives again.
      await post(srv, "close?code=1001&reason=restart");
      await until(async () => (await stats(srv)).tokens[""] === 2, "the client never reconnected");
      await until(async () => (await stats(srv)).subscriptions === 1, "no resubscribe after the reconnect");
      await until(async () => await state() === "open", "#state never showed open again");
      await publish(srv, 77);
      await until(async () => await percent() === "77 %", "no message after the reconnect");
      s = await stats(srv);
      assert.equal(s.connections, 1);
      assert.equal(s.subscriptions, 1);

      assert.deepEqual(errors, [], `the ${binding} page logged errors`);
      await page.context().close();
      await until(async () => (await stats(srv)).connections === 0, "the connection outlived the page");
    });
  }
});
