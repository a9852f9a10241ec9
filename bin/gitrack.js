#!/usr/bin/env node
// The installed command: runs the compiled CLI (npm run build makes dist/).
import { main } from "../dist/reconciler/cli/main.js";

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`gitrack: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
