import { createHash } from "node:crypto";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { renderBootScript, renderFile, renderKernelCmdline } from "../../renderers/bootscript.js";
import { BUILTIN_BOOTENV_NAMES, builtinBootEnvDir } from "../../renderers/builtin.js";
import type { RenderContext } from "../../renderers/context.js";
import { templateParamRefs, templateUnknownRefs } from "../../renderers/engine.js";
import { loadBootEnvFile, type LoadedBootEnv } from "./load-bootenv.js";
import { sampleContext } from "./sample-context.js";

const load = (name: string) => loadBootEnvFile(join(builtinBootEnvDir(), `${name}.yaml`));

/** The context the model would build for the sample machine booting `env`. */
function contextFor(env: LoadedBootEnv, machineParams: Record<string, unknown> = {}): RenderContext {
  const base = sampleContext();
  const t = env.templates;
  return {
    ...base,
    params: { ...env.params, ...machineParams },
    bootEnv: { name: t.name, purpose: t.purpose, kernel: t.kernel, initrds: t.initrds },
    urls: {
      ...base.urls,
      kernel: t.kernel ? `http://10.77.0.1:8080/cache/${t.kernel.sha256}/linux` : undefined,
      initrds: t.initrds.map((i) => `http://10.77.0.1:8080/cache/${i.sha256}/${i.url.split("/").pop()}`),
    },
  };
}

function allTemplates(env: LoadedBootEnv) {
  const t = env.templates;
  return [t.cmdline, t.script, ...(t.files ?? []).map((f) => f.template)].filter((x) => x !== undefined);
}

describe("builtinBootEnvDir", () => {
  it("holds exactly the documented built-ins as BootEnv documents named after their file", () => {
    const files = readdirSync(builtinBootEnvDir()).filter((f) => f.endsWith(".yaml")).sort();
    expect(files).toEqual([...BUILTIN_BOOTENV_NAMES].map((n) => `${n}.yaml`).sort());
    for (const name of BUILTIN_BOOTENV_NAMES) {
      const env = load(name);
      expect(env.doc.apiVersion).toBe("gitrack/v1");
      expect(env.doc.kind).toBe("BootEnv");
      expect(env.doc.metadata.name).toBe(name);
    }
  });

  it("uses only names from the render context and params that are optional or have defaults", () => {
    for (const name of BUILTIN_BOOTENV_NAMES) {
      const env = load(name);
      for (const tpl of allTemplates(env)) {
        expect(templateUnknownRefs(tpl)).toEqual([]);
        const unset = templateParamRefs(tpl).filter((r) => !r.optional && !(r.param in env.params));
        expect(unset, `${name}: params used without default`).toEqual([]);
      }
    }
  });
});

describe("local", () => {
  it("boots the local disk", () => {
    const env = load("local");
    expect(env.templates.purpose).toBe("local");
    const script = renderBootScript(env.templates, contextFor(env));
    expect(script).toMatch(/^#!ipxe\n/);
    expect(script).toMatch(/^sanboot --no-describe --drive 0x80 \|\| exit$/m);
  });
});

describe("discovery", () => {
  it("reports what iPXE sees to the events URL as a GET with query parameters, then exits", () => {
    const env = load("discovery");
    expect(env.templates.purpose).toBe("discovery");
    expect(env.templates.kernel).toBeUndefined();
    const ctx = contextFor(env);
    const script = renderBootScript(env.templates, ctx);
    const lines = script.trimEnd().split("\n");
    expect(lines[0]).toBe("#!ipxe");
    const fetch = lines.find((l) => l.startsWith("imgfetch "));
    expect(fetch).toBeDefined();
    const url = new URL(fetch!.split(" ")[3]!.replace(/\$\{[^}]+\}/g, "X"));
    expect(`${url.origin}${url.pathname}`).toBe(ctx.urls.events);
    expect(url.searchParams.get("phase")).toBe("Discovered");
    for (const key of ["mac", "ip", "uuid", "serial", "manufacturer", "product"]) expect(url.searchParams.has(key)).toBe(true);
    expect(lines.at(-1)).toBe("exit");
  });

  it("uses only commands that Debian's iPXE build has", () => {
    const env = load("discovery");
    const script = renderBootScript(env.templates, contextFor(env));
    const commands = script
      .split("\n")
      .filter((l) => l.trim() !== "" && !l.startsWith("#"))
      .map((l) => l.trim().split(/\s+/)[0]);
    const ipxe = "/usr/lib/ipxe/ipxe.efi";
    const strings = existsSync(ipxe) ? readFileSync(ipxe).toString("latin1") : "";
    for (const c of new Set(commands)) {
      expect(["echo", "imgfetch", "imgfree", "sleep", "exit"]).toContain(c);
      if (strings) expect(strings.includes(`${c}\0`), `${c} in ${ipxe}`).toBe(true);
    }
  });
});

describe("debian-12", () => {
  const pkgDir = "/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64";

  it("pins the kernel and initrd to the hashes of the installed debian-installer-12-netboot-amd64 files", () => {
    const env = load("debian-12");
    const sha = (f: string) => createHash("sha256").update(readFileSync(join(pkgDir, f))).digest("hex");
    expect(env.templates.kernel?.sha256).toBe(sha("linux"));
    expect(env.templates.initrds.map((i) => i.sha256)).toEqual([sha("initrd.gz")]);
    expect(env.templates.kernel?.url).toMatch(/\/images\/netboot\/debian-installer\/amd64\/linux$/);
    expect(env.templates.initrds[0]?.url).toMatch(/\/images\/netboot\/debian-installer\/amd64\/initrd\.gz$/);
  });

  it("names the installer version of the installed package in its URLs", () => {
    const version = readFileSync("/var/lib/dpkg/status", "utf8")
      .split("\n\n")
      .find((p) => p.startsWith("Package: debian-installer-12-netboot-amd64\n"))
      ?.match(/^Version: (.+)$/m)?.[1];
    const env = load("debian-12");
    expect(env.templates.kernel?.url).toContain(`/installer-amd64/${version}/images/`);
  });

  it("boots the installer with the preseed URL on the kernel line", () => {
    const env = load("debian-12");
    const ctx = contextFor(env);
    const script = renderBootScript(env.templates, ctx);
    const kernel = script.split("\n").find((l) => l.startsWith("kernel "))!;
    expect(kernel.startsWith(`kernel ${ctx.urls.kernel} initrd=initrd.gz `)).toBe(true);
    expect(kernel).toContain(`auto=true priority=critical url=${ctx.urls.files}preseed.cfg`);
    expect(kernel).toContain("hostname=r1-n01 ");
    expect(script).toContain(`\ninitrd ${ctx.urls.initrds[0]}\nboot\n`);
    expect(renderKernelCmdline(env.templates, ctx)).not.toMatch(/\s{2,}|\{|\}/);
  });

  it("renders a preseed with the machine's hostname, defaults and an Installed callback", () => {
    const env = load("debian-12");
    const ctx = contextFor(env);
    const file = renderFile(env.templates, "preseed.cfg", ctx);
    expect(file?.contentType).toBe("text/plain");
    const body = file!.body;
    expect(body).toMatch(/^d-i netcfg\/get_hostname string r1-n01$/m);
    expect(body).toMatch(/^d-i mirror\/http\/hostname string deb\.debian\.org$/m);
    expect(body).toMatch(/^d-i debian-installer\/locale string en_US\.UTF-8$/m);
    expect(body).toMatch(/^d-i passwd\/root-password-crypted password !$/m);
    expect(body).toContain(`--data '{"phase":"Installed"}' '${ctx.urls.events}'`);
    expect(body).not.toContain("authorized_keys");
  });

  it("lets machine params override the defaults in the preseed", () => {
    const env = load("debian-12");
    const ctx = contextFor(env, { mirror: "mirror.lab", rootPasswordHash: "$6$x$y", sshAuthorizedKey: "ssh-ed25519 AAAA op@lab", installDisk: "/dev/sda" });
    const body = renderFile(env.templates, "preseed.cfg", ctx)!.body;
    expect(body).toMatch(/^d-i mirror\/http\/hostname string mirror\.lab$/m);
    expect(body).toMatch(/^d-i passwd\/root-password-crypted password \$6\$x\$y$/m);
    expect(body).toContain("echo 'ssh-ed25519 AAAA op@lab' >> /target/root/.ssh/authorized_keys");
    expect(body).toMatch(/^d-i partman-auto\/disk string \/dev\/sda$/m);
  });
});
