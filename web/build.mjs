// Bundles the page scripts into the folder given (dist/ by default), which ibackup-server
// embeds with include_bytes!. `scripts/web` runs this; `scripts/web --check` fails when
// dist/ is not what the sources and the locked packages make.
import { chmod, copyFile } from "node:fs/promises";
import { build } from "esbuild";

const outdir = process.argv[2] ?? "dist";

await build({
  entryPoints: ["src/link.js", "src/app.js", "src/save-worker.js"],
  bundle: true,
  format: "esm",
  target: ["chrome110", "firefox115", "safari16"],
  minify: true,
  legalComments: "eof",
  outdir,
  logLevel: "warning",
});
// The zstd compressor the page loads on its first upload (web/src/blob.js).
await copyFile("node_modules/@bokuweb/zstd-wasm/dist/web/zstd.wasm", `${outdir}/zstd.wasm`);
await chmod(`${outdir}/zstd.wasm`, 0o644);
