// Bundles the page scripts into the folder given (dist/ by default), which ibackup-server
// embeds with include_bytes!. `scripts/web` runs this; `scripts/web --check` fails when
// dist/ is not what the sources and the locked packages make.
import { build } from "esbuild";

await build({
  entryPoints: ["src/link.js", "src/app.js", "src/save-worker.js"],
  bundle: true,
  format: "esm",
  target: ["chrome110", "firefox115", "safari16"],
  minify: true,
  legalComments: "eof",
  outdir: process.argv[2] ?? "dist",
  logLevel: "warning",
});
