#!/usr/bin/env node
// The installed command: runs the compiled CLI (npm run build makes dist/).
import v8 from "node:v8";

// Loading a large site repository allocates many short-lived objects; a
// larger young generation halves the time spent in scavenges (measured on
// 10,000 machines: about 0.2 s of a 2.2 s validate).
v8.setFlagsFromString("--max-semi-space-size=32");
const { main } = await import("../dist/reconciler/cli/main.js");

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`gitrack: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
