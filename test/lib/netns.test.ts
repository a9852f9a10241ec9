import { describe, expect, it } from "vitest";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { canUseNetns, createVethPair } from "./netns.js";

describe.skipIf(!canUseNetns())("test namespaces", () => {
  it("joins two namespaces with a veth pair and removes both afterwards", async () => {
    const pair = createVethPair("nt", { serverAddr: "10.231.0.1/24", clientAddr: "10.231.0.2/24" });
    try {
      const out = pair.client.run("ping", ["-c", "1", "-W", "2", "10.231.0.1"]);
      expect(out).toMatch(/1 received/);
    } finally {
      await pair.destroy();
    }
    const left = execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
    expect(left).not.toContain(pair.server.name);
    expect(left).not.toContain(pair.client.name);
  });
});

describe.skipIf(!canUseNetns())("test namespaces when the process ends early", () => {
  // As when `npm run bench | head` closes the pipe: the next write to stdout
  // fails with EPIPE, an uncaught error, and no finally block runs.
  it("a process that dies of EPIPE with a veth pair and a child still up leaves neither behind", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gitrack-netns-"));
    try {
      const script = join(dir, "early.ts");
      writeFileSync(
        script,
        [
          `import { createVethPair } from ${JSON.stringify(fileURLToPath(new URL("./netns.ts", import.meta.url)))};`,
          `const pair = createVethPair("ne", { serverAddr: "10.232.0.1/24", clientAddr: "10.232.0.2/24" });`,
          `const sleeper = pair.server.spawn("sleep", ["300"]);`,
          `process.stderr.write(JSON.stringify({ names: [pair.server.name, pair.client.name], pid: sleeper.pid }) + "\\n");`,
          `setInterval(() => process.stdout.write("x".repeat(65536)), 5);`,
        ].join("\n"),
      );
      const child = spawn(process.execPath, ["--import", "tsx", script], { stdio: ["ignore", "pipe", "pipe"] });
      let err = "";
      child.stderr.on("data", (d: Buffer) => (err += d.toString()));
      // Read one chunk, then close our end of the pipe.
      await new Promise<void>((resolve) => child.stdout.once("data", () => resolve()));
      child.stdout.destroy();
      const code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
      expect(code).not.toBe(0);
      expect(err).toMatch(/EPIPE/);
      const { names, pid } = JSON.parse(err.split("\n")[0]!) as { names: string[]; pid: number };
      const left = execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
      for (const n of names) expect(left).not.toContain(n);
      // Gone, or a zombie waiting for whoever inherited it to reap it.
      const state = () => {
        try {
          return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]![0];
        } catch {
          return "gone";
        }
      };
      let s = state();
      for (let i = 0; i < 50 && s !== "gone" && s !== "Z"; i++) {
        await new Promise((r) => setTimeout(r, 100));
        s = state();
      }
      expect(["gone", "Z"]).toContain(s);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
