// `gitrack render` (what a machine would be served) and `gitrack explain`
// (which file and line set each param).
import { describe, expect, it } from "vitest";
import { LOCALE_OF, baseFiles, layeredFiles, machineYaml, siteYaml, siteRepos } from "../model/site-repo.js";
import { gitrack, lines } from "./run.js";

const newRepo = siteRepos();


const KERNEL_SHA = "d8808aa4ca188560da1e6d749dcb930c87a5fd8b11ebff1f3fa6d728af35203d";
const INITRD_SHA = "cb24a28a5ba13dfb22e6e75bdd8ab997dbdee6e3ec6c1102f6c7f93044bd817d";

describe("gitrack render", () => {
  it("renders the iPXE script by default, with the daemon's cache URLs and the machine's command line", async () => {
    const repo = newRepo(baseFiles());
    const r = await gitrack("render", "n1", "--repo", repo.dir);
    expect(r.code).toBe(0);
    expect(lines(r.stdout)).toEqual([
      "#!ipxe",
      "echo gitrack: n1 boots debian-12",
      `kernel http://10.0.0.1:8080/cache/${KERNEL_SHA}/linux initrd=initrd.gz auto=true priority=critical url=http://10.0.0.1:8080/m/n1/TOKEN/files/preseed.cfg interface=auto hostname=n1 locale=en_US.UTF-8 keymap=us`,
      `initrd http://10.0.0.1:8080/cache/${INITRD_SHA}/initrd.gz`,
      "boot",
    ]);
    expect(await gitrack("render", "n1", "script", "--repo", repo.dir)).toEqual(r);
  });

  it("renders the kernel command line with the merged params", async () => {
    const repo = newRepo(layeredFiles(["profile2", "site"]));
    const r = await gitrack("render", "n1", "cmdline", "--repo", repo.dir);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      `auto=true priority=critical url=http://10.0.0.1:8080/m/n1/TOKEN/files/preseed.cfg interface=auto hostname=n1 locale=${LOCALE_OF.profile2} keymap=us\n`,
    );
  });

  it("renders a named file of the machine's bootEnv (debian-12 preseed.cfg)", async () => {
    const repo = newRepo(baseFiles());
    const r = await gitrack("render", "n2", "preseed.cfg", "--repo", repo.dir);
    expect(r.code).toBe(0);
    const out = lines(r.stdout);
    expect(out[0]).toBe("# gitrack preseed for n2 (site lab, generation 1)");
    expect(out).toContain("d-i netcfg/get_hostname string n2");
    expect(out).toContain("d-i time/zone string UTC"); // the site's timezone over the bootEnv's Etc/UTC
    expect(out).toContain("d-i passwd/root-password-crypted password !");
    expect(r.stdout).toContain("http://10.0.0.1:8080/m/n2/TOKEN/events");
  });

  it("renders the local-disk script with --boot-env local", async () => {
    const repo = newRepo(baseFiles());
    const r = await gitrack("render", "n1", "--boot-env", "local", "--repo", repo.dir);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("sanboot --no-describe --drive 0x80 || exit");
  });

  it("says which files exist when the named file does not", async () => {
    const repo = newRepo(baseFiles());
    const r = await gitrack("render", "n1", "kickstart.cfg", "--repo", repo.dir);
    expect(r).toEqual({ code: 1, stdout: "", stderr: 'gitrack: bootEnv debian-12 has no file "kickstart.cfg" (it has: script, cmdline, preseed.cfg)\n' });
  });

  it("says so when the machine does not exist", async () => {
    const repo = newRepo(baseFiles());
    expect(await gitrack("render", "n9", "--repo", repo.dir)).toEqual({ code: 1, stdout: "", stderr: 'gitrack: no machine named "n9"\n' });
  });

  it("asks for --site when the name is used in two sites", async () => {
    const repo = newRepo({ ...baseFiles(), "sites/edge.yaml": siteYaml({ name: "edge" }), "machines/edge-n1.yaml": machineYaml("n1", 9, { site: "edge" }) });
    const r = await gitrack("render", "n1", "--repo", repo.dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("add --site");
    const edge = await gitrack("render", "n1", "--site", "edge", "--repo", repo.dir);
    expect(edge.code).toBe(0);
    expect(edge.stdout).toContain("preseed.cfg interface=auto hostname=n1");
  });
});

describe("gitrack explain", () => {
  it("prints every param of a machine with its value and the file:line that set it", async () => {
    const repo = newRepo(layeredFiles(["profile1", "site"]));
    const r = await gitrack("explain", "n1", "--repo", repo.dir);
    expect(r.code).toBe(0);
    const out = lines(r.stdout);
    expect(out[0]).toBe("machine lab/n1; precedence: machine n1 > profile p1 > profile p2 > cluster k8s > site lab > bootEnv debian-12");
    const row = (param: string) => out.find((l) => l.startsWith(`${param} `))!.replace(/ +/g, " ");
    expect(row("locale")).toBe(`locale "${LOCALE_OF.profile1}" ← Profile p1 at profiles/p1.yaml:8:13`);
    expect(row("clusterName")).toBe('clusterName "k8s" ← Cluster k8s at clusters/k8s.yaml:12:18');
    expect(row("keymap")).toBe('keymap "us" ← BootEnv debian-12 at renderers/bootenvs/debian-12.yaml:30:13');
    expect(row("other")).toBe('other "x" ← Machine n1 at machines/n1.yaml:15:12');
  });

  it("prints one param with the file:line of the layer that set it", async () => {
    for (const [layers, expected] of [
      [["machine", "site"], `"${LOCALE_OF.machine}"  ← Machine n1 at machines/n1.yaml:15:13`],
      [["cluster", "site"], `"${LOCALE_OF.cluster}"  ← Cluster k8s at clusters/k8s.yaml:12:13`],
      [["site"], `"${LOCALE_OF.site}"  ← Site lab at sites/lab.yaml:7:13`],
    ] as const) {
      const repo = newRepo(layeredFiles(layers));
      const r = await gitrack("explain", "n1", "locale", "--repo", repo.dir);
      expect(r.code).toBe(0);
      expect(lines(r.stdout)[1]).toBe(`locale  ${expected}`);
      expect(lines(r.stdout)).toHaveLength(2);
    }
  });

  it("with --format json gives the value, the document and its position", async () => {
    const repo = newRepo(layeredFiles(["profile2"]));
    const r = await gitrack("explain", "n1", "locale", "--repo", repo.dir, "--format", "json");
    expect(JSON.parse(r.stdout)).toEqual({
      machine: "n1",
      site: "lab",
      precedence: ["machine n1", "profile p1", "profile p2", "cluster k8s", "site lab", "bootEnv debian-12"],
      params: [{ param: "locale", value: LOCALE_OF.profile2, from: "Profile p2", file: "profiles/p2.yaml", line: 8, col: 13 }],
    });
  });

  it("says a param is not set, with the layers it looked in", async () => {
    const repo = newRepo(layeredFiles([]));
    const r = await gitrack("explain", "n1", "ntpServer", "--repo", repo.dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('gitrack: param "ntpServer" is not set for machine n1 (precedence: machine, profiles p1, p2, cluster, site lab, bootEnv debian-12)\n');
  });
});
