// Builds the minified files of the package into dist/ with esbuild (npm run build, and
// npm pack before it packs), or reports their sizes (npm run size, which builds them in a
// temporary directory): each file minified, and gzipped (level 9), as a page would load
// it. The bindings' builds import vue or react and the core
// (./wspub.min.js) instead of carrying them, so a binding's size is its own.
//
//	node build.mjs [--size] [--outdir DIR]
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const size = args.includes("--size");
const outdir = args.includes("--outdir") ? args[args.indexOf("--outdir") + 1]
  : size ? mkdtempSync(join(tmpdir(), "wspub-client-size-")) : join(here, "dist");
const GOAL = 5 * 1024; // the core's goal, minified and gzipped (issue H)

// What is built: the source, and its name in dist/.
const entries = [
  { name: "core", src: "wspub.js", out: "wspub.min.js" },
  { name: "vue binding", src: "vue.js", out: "vue.min.js" },
  { name: "react binding", src: "react.js", out: "react.min.js" },
];

// The bindings' import of ./wspub.js becomes one of ./wspub.min.js, beside them.
const coreExternal = {
  name: "core-external",
  setup(b) {
    b.onResolve({ filter: /^\.\/wspub\.js$/ }, () => ({ path: "./wspub.min.js", external: true }));
  },
};

mkdirSync(outdir, { recursive: true });
const rows = [];
for (const e of entries) {
  const outfile = join(outdir, e.out);
  await build({
    entryPoints: [join(here, e.src)],
    outfile,
    bundle: true,
    format: "esm",
    target: "es2020",
    minify: true,
    legalComments: "none",
    external: ["vue", "react"],
    plugins: e.src === "wspub.js" ? [] : [coreExternal],
    logLevel: "warning",
  });
  const min = readFileSync(outfile);
  rows.push({ name: e.name, file: basename(outfile), min: min.length, gz: gzipSync(min, { level: 9 }).length });
}

if (size) {
  const kb = (n) => `${(n / 1024).toFixed(2)} KB`;
  console.log("minified and gzipped (level 9):");
  for (const r of rows) console.log(`  ${r.name.padEnd(14)} ${kb(r.gz).padStart(9)}  (${kb(r.min)} minified)  ${r.file}`);
  const core = rows[0].gz;
  console.log(core <= GOAL
    ? `the core is within its goal of ${kb(GOAL)}`
    : `the core is ${kb(core - GOAL)} over its goal of ${kb(GOAL)}`);
  if (!args.includes("--outdir")) rmSync(outdir, { recursive: true, force: true });
}
