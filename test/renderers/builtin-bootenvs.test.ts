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

describe("rocky-8", () => {
  /** The lines of a kickstart grouped by section: "" for the command section, then "%packages", "%post", …. */
  function sections(ks: string): Array<{ header: string; lines: string[] }> {
    const out = [{ header: "", lines: [] as string[] }];
    let open: { header: string; lines: string[] } | undefined;
    for (const line of ks.split("\n")) {
      if (line === "%end") {
        expect(open, "%end without an open section").toBeDefined();
        open = undefined;
      } else if (line.startsWith("%")) {
        expect(open, `${line} opened inside ${open?.header}`).toBeUndefined();
        open = { header: line, lines: [] };
        out.push(open);
      } else {
        (open ?? out[0]!).lines.push(line);
      }
    }
    expect(open, `${open?.header} is never closed`).toBeUndefined();
    return out;
  }
  const section = (ks: string, name: string) => sections(ks).find((s) => s.header.split(" ")[0] === name);

  it("pins vmlinuz and initrd.img of one point release, the same tree the repo defaults name", () => {
    const env = load("rocky-8");
    const tree = /^https:\/\/dl\.rockylinux\.org\/vault\/rocky\/(\d+\.\d+)\/BaseOS\/x86_64\/os/;
    const kernel = env.templates.kernel!.url;
    const initrd = env.templates.initrds[0]!.url;
    expect(kernel).toMatch(/\/images\/pxeboot\/vmlinuz$/);
    expect(initrd).toMatch(/\/images\/pxeboot\/initrd\.img$/);
    expect(env.templates.initrds).toHaveLength(1);
    const version = kernel.match(tree)?.[1];
    expect(version).toBe("8.7");
    // Anaconda's install.img comes from inst.repo: one version bump has to move all three.
    expect(kernel.replace(/\/images\/pxeboot\/vmlinuz$/, "")).toBe(env.params.repo);
    expect(initrd.replace(/\/images\/pxeboot\/initrd\.img$/, "")).toBe(env.params.repo);
    expect(env.params.appstreamRepo).toBe(String(env.params.repo).replace("/BaseOS/", "/AppStream/"));
    // The values of Rocky Linux 8.7's .treeinfo [checksums] (build_timestamp 1668116065).
    expect(env.templates.kernel!.sha256).toBe("2bb7fffa71be0e42ba9ffecc1dfadbcd8e5c0befd34dcf8b425a7796da1d408f");
    expect(env.templates.initrds[0]!.sha256).toBe("0ba8f9c3df197d913dbf5023857107d98a55dea9ff28a35eae979e08e473023b");
  });

  it("boots Anaconda with the kickstart and the install tree on the kernel line", () => {
    const env = load("rocky-8");
    const ctx = contextFor(env);
    const script = renderBootScript(env.templates, ctx);
    const kernel = script.split("\n").find((l) => l.startsWith("kernel "))!;
    expect(kernel.startsWith(`kernel ${ctx.urls.kernel} initrd=initrd.img inst.ks=`)).toBe(true);
    expect(kernel.match(/initrd=/g)).toHaveLength(1);
    expect(kernel).toContain(` inst.ks=${ctx.urls.files}ks.cfg `);
    expect(kernel).toContain(` inst.repo=${env.params.repo} `);
    expect(kernel).toContain(" ip=dhcp ");
    expect(kernel).toMatch(/ inst\.text$/);
    expect(script).toContain(`\ninitrd ${ctx.urls.initrds[0]}\nboot\n`);
    expect(renderKernelCmdline(env.templates, ctx)).not.toMatch(/\s{2,}|\{|\}/);

    const mirrored = contextFor(env, { repo: "http://mirror.lab/rocky/8.7/BaseOS/x86_64/os", kernelArgs: "console=ttyS0,115200n8" });
    const cmdline = renderKernelCmdline(env.templates, mirrored);
    expect(cmdline).toContain(" inst.repo=http://mirror.lab/rocky/8.7/BaseOS/x86_64/os ");
    expect(cmdline).toMatch(/ console=ttyS0,115200n8$/);
    expect(cmdline).not.toMatch(/\s{2,}|\{|\}/);
  });

  it("renders an unattended kickstart with the machine's hostname, defaults and an Installed callback", () => {
    const env = load("rocky-8");
    const ctx = contextFor(env);
    const file = renderFile(env.templates, "ks.cfg", ctx);
    expect(file?.contentType).toBe("text/plain");
    const body = file!.body;
    expect(body.split("\n")[0]).toBe("# gitrack kickstart for r1-n01 (site lab, generation 3)");
    const commands = section(body, "")!.lines;
    for (const line of [
      "text --non-interactive",
      `url --url=${env.params.repo}`,
      `repo --name=AppStream --baseurl=${env.params.appstreamRepo}`,
      "lang en_US.UTF-8",
      "keyboard --vckeymap=us",
      "timezone Etc/UTC --utc",
      "network --bootproto=dhcp --device=link --activate --hostname=r1-n01",
      "rootpw --lock",
      "zerombr",
      "clearpart --all --initlabel",
      "autopart --type=lvm",
      "bootloader",
      "reboot",
    ]) {
      expect(commands).toContain(line);
    }
    expect(body).not.toContain("--proxy");
    expect(body).not.toContain("--iscrypted");
    expect(body).not.toContain("sshkey");
    expect(body).not.toContain("ignoredisk");
    expect(body).not.toContain("--ntpservers");
    expect(body).not.toMatch(/\{\{|\}\}|\{%|%\}/);

    expect(section(body, "%packages")!.lines).toEqual(["@^minimal-environment", "openssh-server", "curl"]);
    const post = section(body, "%post")!;
    expect(post.header).toBe("%post --log=/root/gitrack-post.log");
    expect(post.lines).toContain(
      `curl -fsS -X POST -H 'Content-Type: application/json' --data '{"phase":"Installed"}' '${ctx.urls.events}' || true`,
    );
    expect(section(body, "%onerror")!.lines.join("\n")).toContain(`--data '{"phase":"Failed",`);
    expect(sections(body).map((s) => s.header.split(" ")[0])).toEqual(["", "%packages", "%post", "%onerror"]);
  });

  it("lets machine params set the root password, SSH key, disk, proxy, NTP, domain and extra packages", () => {
    const env = load("rocky-8");
    const ctx = contextFor(env, {
      rootPasswordHash: "$6$x$y",
      sshAuthorizedKey: "ssh-ed25519 AAAA op@lab",
      installDisk: "sda",
      proxy: "http://proxy.lab:3128",
      ntpServer: "10.77.0.1,10.77.0.2",
      domain: "lab.example",
      extraPackages: " vim  tmux -iwl7260-firmware ",
      repo: "http://mirror.lab/rocky/8.7/BaseOS/x86_64/os",
      appstreamRepo: "http://mirror.lab/rocky/8.7/AppStream/x86_64/os",
    });
    const body = renderFile(env.templates, "ks.cfg", ctx)!.body;
    const commands = section(body, "")!.lines;
    expect(commands).toContain("rootpw --iscrypted $6$x$y");
    expect(body).not.toContain("rootpw --lock");
    expect(commands).toContain('sshkey --username=root "ssh-ed25519 AAAA op@lab"');
    expect(commands).toContain("ignoredisk --only-use=sda");
    expect(commands.indexOf("ignoredisk --only-use=sda")).toBeLessThan(commands.indexOf("clearpart --all --initlabel"));
    expect(commands).toContain("url --url=http://mirror.lab/rocky/8.7/BaseOS/x86_64/os --proxy=http://proxy.lab:3128");
    expect(commands).toContain(
      "repo --name=AppStream --baseurl=http://mirror.lab/rocky/8.7/AppStream/x86_64/os --proxy=http://proxy.lab:3128",
    );
    expect(commands).toContain("timezone Etc/UTC --utc --ntpservers=10.77.0.1,10.77.0.2");
    expect(commands).toContain("network --bootproto=dhcp --device=link --activate --hostname=r1-n01.lab.example");
    expect(section(body, "%packages")!.lines).toEqual([
      "@^minimal-environment",
      "openssh-server",
      "curl",
      "vim",
      "tmux",
      "-iwl7260-firmware",
    ]);
    expect(section(body, "%post")!.lines).toContain("printf 'proxy=%s\\n' 'http://proxy.lab:3128' >> /etc/dnf/dnf.conf");
    expect(sections(body).map((s) => s.header.split(" ")[0])).toEqual(["", "%packages", "%post", "%onerror"]);
  });

  it("escapes the SSH key for the kickstart parser, so authorized_keys options with quotes survive", () => {
    const env = load("rocky-8");
    const key = 'from="10.0.0.0/8",command="echo a\\b" ssh-ed25519 AAAA op@lab';
    const body = renderFile(env.templates, "ks.cfg", contextFor(env, { sshAuthorizedKey: key }))!.body;
    expect(section(body, "")!.lines).toContain(
      'sshkey --username=root "from=\\"10.0.0.0/8\\",command=\\"echo a\\\\b\\" ssh-ed25519 AAAA op@lab"',
    );
  });
});
