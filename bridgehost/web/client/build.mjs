// Build the chat page into bridgehost/web/static/chat (or --outdir DIR).
// The output is a pure function of the sources and package-lock.json:
// content-hashed file names, no timestamps, no absolute paths.
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

/** The name, version, licence and licence text of every npm package bundled into the page. */
async function licenses(inputs) {
  const packages = new Set();
  for (const input of inputs) {
    const m = /^node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (m) packages.add(m[1]);
  }
  const parts = ["Third-party software bundled into this page (from package-lock.json):\n"];
  for (const name of [...packages].sort()) {
    const dir = join(here, "node_modules", name);
    const meta = JSON.parse(await readFile(join(dir, "package.json"), "utf8"));
    let text = "";
    for (const file of ["LICENSE", "LICENSE.md", "LICENSE.txt", "license"]) {
      try {
        text = await readFile(join(dir, file), "utf8");
        break;
      } catch {
        // try the next name
      }
    }
    parts.push(`\n== ${name} ${meta.version} (${meta.license})\n\n${text.trim()}\n`);
  }
  return parts.join("");
}

const here = dirname(fileURLToPath(import.meta.url));
const flag = process.argv.indexOf("--outdir");
const outdir = resolve(flag >= 0 ? process.argv[flag + 1] : join(here, "..", "static", "chat"));

await rm(outdir, { recursive: true, force: true });
await mkdir(outdir, { recursive: true });

const result = await esbuild.build({
  absWorkingDir: here,
  entryPoints: { app: "src/main.ts", style: "src/style.css" },
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2022", "chrome100", "firefox100", "safari15"],
  entryNames: "[name]-[hash]",
  outdir,
  metafile: true,
  sourcemap: false,
  legalComments: "none",
  charset: "utf8",
  logLevel: "warning",
});

const names = {};
for (const [file, out] of Object.entries(result.metafile.outputs)) {
  if (out.entryPoint === "src/main.ts" && file.endsWith(".js")) names["app.js"] = basename(file);
  if (out.entryPoint === "src/style.css" && file.endsWith(".css")) names["app.css"] = basename(file);
}
if (!names["app.js"] || !names["app.css"]) throw new Error(`build outputs not found: ${JSON.stringify(names)}`);

const html = (await readFile(join(here, "src", "index.html"), "utf8")).replace(
  /\{\{(app\.js|app\.css)\}\}/g,
  (_, key) => names[key],
);
await writeFile(join(outdir, "index.html"), html);
await writeFile(join(outdir, "icon.svg"), await readFile(join(here, "src", "icon.svg")));
await writeFile(join(outdir, "licenses.txt"), await licenses(Object.keys(result.metafile.inputs)));
console.log(`built ${names["app.js"]} ${names["app.css"]} into ${outdir}`);
