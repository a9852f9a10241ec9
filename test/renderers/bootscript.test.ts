import { describe, expect, it } from "vitest";
import { renderBootScript, renderFile, renderKernelCmdline, type BootEnvTemplates } from "../../renderers/bootscript.js";
import { TemplateError } from "../../renderers/engine.js";
import { sampleContext } from "./sample-context.js";

const tpl = (source: string, line = 5) => ({ source, file: "envs/x.yaml", line, col: 3 });

const installer: BootEnvTemplates = {
  name: "x-installer",
  purpose: "install",
  kernel: { url: "http://deb.example/linux", sha256: "a".repeat(64) },
  initrds: [{ url: "http://deb.example/initrd.gz", sha256: "b".repeat(64) }],
  cmdline: tpl("auto=true hostname={{ machine.name }}\n  url={{ urls.files }}preseed.cfg"),
  files: [{ name: "preseed.cfg", template: tpl("d-i netcfg/get_hostname string {{ machine.name }}\n"), contentType: "text/plain" }],
};

describe("renderBootScript", () => {
  it("writes the kernel with initrd= names and the rendered command line, then each initrd, then boot", () => {
    const script = renderBootScript(installer, sampleContext());
    const lines = script.trimEnd().split("\n");
    expect(lines[0]).toBe("#!ipxe");
    expect(lines).toContain(
      "kernel http://10.77.0.1:8080/cache/aaaa/linux initrd=initrd.gz auto=true hostname=r1-n01 url=http://10.77.0.1:8080/boot/tok123/files/preseed.cfg",
    );
    expect(lines).toContain("initrd http://10.77.0.1:8080/cache/bbbb/initrd.gz");
    expect(lines.at(-1)).toBe("boot");
    expect(lines.findIndex((l) => l.startsWith("kernel "))).toBeLessThan(lines.findIndex((l) => l.startsWith("initrd ")));
  });

  it("gives two initrds with the same file name distinct image names", () => {
    const ctx = sampleContext();
    ctx.urls.initrds = ["http://h/a/initrd.img", "http://h/b/initrd.img"];
    const script = renderBootScript(installer, ctx);
    expect(script).toMatch(/^kernel \S+ initrd=initrd\.img initrd=initrd1-initrd\.img /m);
    expect(script).toMatch(/^initrd http:\/\/h\/a\/initrd\.img$/m);
    expect(script).toMatch(/^initrd --name initrd1-initrd\.img http:\/\/h\/b\/initrd\.img$/m);
  });

  it("boots the local disk for purpose local, falling back to exit", () => {
    const script = renderBootScript({ name: "local", purpose: "local", initrds: [] }, sampleContext());
    expect(script.split("\n")[0]).toBe("#!ipxe");
    expect(script).toMatch(/^sanboot --no-describe --drive 0x80 \|\| exit$/m);
    expect(script).not.toMatch(/^kernel/m);
  });

  it("uses a custom script template instead of the generated script", () => {
    const env = { ...installer, script: tpl("#!ipxe\nchain {{ urls.base }}/other/{{ machine.mac }}") };
    expect(renderBootScript(env, sampleContext())).toBe("#!ipxe\nchain http://10.77.0.1:8080/other/52:54:00:12:34:56\n");
  });

  it("reports an error in the command line template at its place in the file", () => {
    const env = { ...installer, cmdline: tpl("a\nb={{ params.missing }}", 40) };
    expect(() => renderBootScript(env, sampleContext())).toThrow(TemplateError);
    try {
      renderBootScript(env, sampleContext());
    } catch (err) {
      expect((err as TemplateError).line).toBe(41);
    }
  });
});

describe("renderKernelCmdline", () => {
  it("joins a multi-line command line into one line", () => {
    expect(renderKernelCmdline(installer, sampleContext())).toBe(
      "auto=true hostname=r1-n01 url=http://10.77.0.1:8080/boot/tok123/files/preseed.cfg",
    );
  });

  it("is empty when the BootEnv has no command line", () => {
    expect(renderKernelCmdline({ ...installer, cmdline: undefined }, sampleContext())).toBe("");
  });
});

describe("renderFile", () => {
  it("renders a named file for the machine with its content type", () => {
    expect(renderFile(installer, "preseed.cfg", sampleContext())).toEqual({
      body: "d-i netcfg/get_hostname string r1-n01\n",
      contentType: "text/plain",
    });
  });

  it("returns undefined for a file the BootEnv does not have", () => {
    expect(renderFile(installer, "ks.cfg", sampleContext())).toBeUndefined();
  });
});
