import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { renderBootScript, renderFile } from "../../renderers/bootscript.js";
import { templateParamRefs, templateUnknownRefs } from "../../renderers/engine.js";
import { loadBootEnvFile } from "./load-bootenv.js";
import { sampleContext } from "./sample-context.js";

describe("renderers/README.md", () => {
  it("has a 'Writing your own BootEnv' example that renders a kernel line and a kickstart reporting Installed", () => {
    const readme = readFileSync(new URL("../../renderers/README.md", import.meta.url), "utf8");
    const section = readme.slice(readme.indexOf("## Writing your own BootEnv"));
    const yaml = section.match(/```yaml\n([\s\S]*?)```/)?.[1];
    expect(yaml).toBeDefined();
    const file = join(mkdtempSync(join(tmpdir(), "gitrack-readme-")), "example.yaml");
    writeFileSync(file, yaml!.replace(/<64 hex digits[^>]*>/g, "c".repeat(64)));
    const env = loadBootEnvFile(file);
    const ctx = { ...sampleContext(), params: { ...env.params } };

    const script = renderBootScript(env.templates, ctx);
    expect(script).toMatch(/^kernel \S+ initrd=\S+ inst\.repo=http:\/\/mirror\.lab\/\S+ inst\.ks=\S+ks\.cfg ip=dhcp$/m);
    const ks = renderFile(env.templates, "ks.cfg", ctx)!.body;
    expect(ks).toContain("network --hostname=r1-n01.lab.example");
    expect(ks).toContain(`--data '{"phase":"Installed"}' '${ctx.urls.events}'`);
    for (const t of [env.templates.cmdline!, ...env.templates.files!.map((f) => f.template)]) {
      expect(templateUnknownRefs(t)).toEqual([]);
      expect(templateParamRefs(t).filter((r) => !r.optional && !(r.param in env.params))).toEqual([]);
    }
  });
});
