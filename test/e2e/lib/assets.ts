// The guest payload for end-to-end tests: Debian's kernel and a small,
// reproducible busybox initramfs whose /init is test/e2e/guest/init.
//
// The kernel comes from the current linux-image-*-amd64 .deb (apt-get
// download; nothing is installed). The initramfs is written by our own
// cpio "newc" writer with fixed owners, times and inode numbers, sorted
// entries and a gzip header without a time stamp, so the same inputs give
// the same bytes. Results are cached in `dir` keyed by their inputs.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";

const run = promisify(execFile);

export interface GuestAssets {
  kernel: string;
  initrd: string;
  kernelSha256: string;
  initrdSha256: string;
}

const GUEST_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "../guest");
const BUSYBOX = "/bin/busybox";
/** Modules the guest loads; their dependencies are added from each module's modinfo. */
const ROOT_MODULES = ["virtio_pci", "virtio_net", "e1000"];
/** Where those modules live in the kernel package (tar patterns, no slash matching). */
const MODULE_PATTERNS = [
  "./lib/modules/*/kernel/drivers/virtio/*.ko*",
  "./lib/modules/*/kernel/drivers/net/*.ko*",
  "./lib/modules/*/kernel/drivers/net/ethernet/intel/e1000/*.ko*",
  "./lib/modules/*/kernel/net/core/*.ko*",
];
/** Bump when the layout of the initramfs changes. */
const FORMAT_VERSION = "1";
const DAY_MS = 24 * 3600 * 1000;

interface Stamp {
  key: string;
  kernelPackage: string;
  deb: string;
  kernelSha256: string;
  initrdSha256: string;
}

export async function ensureGuestAssets(dir = "test/e2e/.assets"): Promise<GuestAssets> {
  const out = resolve(dir);
  const cache = join(out, "cache");
  await mkdir(cache, { recursive: true });
  const kernel = join(out, "vmlinuz");
  const initrd = join(out, "initrd.gz");
  const stampFile = join(out, "stamp.json");

  const busybox = await readBusybox();
  const guestFiles = await readGuestFiles();
  const localKey = sha256(
    Buffer.concat([Buffer.from(FORMAT_VERSION), busybox, ...guestFiles.map((f) => Buffer.concat([Buffer.from(f.name), f.data]))]),
  );

  const stamp = await readStamp(stampFile);
  const built = stamp && existsSync(kernel) && existsSync(initrd);
  // apt-cache costs about a second; ask it which kernel is current at most
  // once a day (delete the stamp to force it).
  if (built && stamp.key.startsWith(`${localKey}:`) && Date.now() - (await stampMtime(stampFile)) < DAY_MS) {
    return { kernel, initrd, kernelSha256: stamp.kernelSha256, initrdSha256: stamp.initrdSha256 };
  }
  let kernelPackage: string;
  try {
    kernelPackage = await resolveKernelPackage();
  } catch (err) {
    // Offline or no apt lists: a complete earlier build is still good.
    if (built && stamp.key.startsWith(`${localKey}:`)) {
      return { kernel, initrd, kernelSha256: stamp.kernelSha256, initrdSha256: stamp.initrdSha256 };
    }
    throw err;
  }
  const key = `${localKey}:${kernelPackage}`;
  if (built && stamp.key === key) {
    await writeAtomic(stampFile, Buffer.from(JSON.stringify(stamp, null, 2) + "\n")); // checked today
    return { kernel, initrd, kernelSha256: stamp.kernelSha256, initrdSha256: stamp.initrdSha256 };
  }

  const deb = await fetchDeb(kernelPackage, cache);
  const work = await mkdtemp(join(tmpdir(), "gitrack-assets-"));
  try {
    const extracted = join(work, "deb");
    await mkdir(extracted);
    await extractKernelFiles(deb, extracted);
    const vmlinuz = await findKernelImage(extracted, deb);
    const modules = await collectModules(extracted, deb);

    const entries = await initramfsEntries(busybox, guestFiles, modules);
    const image = gzipSync(writeCpioNewc(entries), { level: 9 });
    const kernelBytes = await readFile(vmlinuz);

    await writeAtomic(kernel, kernelBytes);
    await writeAtomic(initrd, image);
    const next: Stamp = {
      key,
      kernelPackage,
      deb: basename(deb),
      kernelSha256: sha256(kernelBytes),
      initrdSha256: sha256(image),
    };
    await writeAtomic(stampFile, Buffer.from(JSON.stringify(next, null, 2) + "\n"));
    return { kernel, initrd, kernelSha256: next.kernelSha256, initrdSha256: next.initrdSha256 };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

async function writeAtomic(path: string, data: Buffer): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, data);
  await rename(tmp, path);
}

async function stampMtime(path: string): Promise<number> {
  return (await stat(path)).mtimeMs;
}

async function readStamp(path: string): Promise<Stamp | undefined> {
  try {
    return JSON.parse(await readFile(path, "utf8")) as Stamp;
  } catch {
    return undefined;
  }
}

async function readBusybox(): Promise<Buffer> {
  let data: Buffer;
  try {
    data = await readFile(BUSYBOX);
  } catch {
    throw new Error(`guest assets: ${BUSYBOX} is missing: install the Debian package busybox-static`);
  }
  // A dynamically linked busybox has a PT_INTERP program header naming the
  // loader; the initramfs has no libc, so it must be the static build.
  if (data.includes(Buffer.from("/lib64/ld-linux-x86-64.so.2"))) {
    throw new Error(`guest assets: ${BUSYBOX} is dynamically linked: install the Debian package busybox-static`);
  }
  return data;
}

async function readGuestFiles(): Promise<{ name: string; data: Buffer }[]> {
  const files = [
    { src: "init", name: "init" },
    { src: "udhcpc.script", name: "etc/udhcpc.script" },
  ];
  const result = [];
  for (const f of files) {
    const path = join(GUEST_DIR, f.src);
    try {
      result.push({ name: f.name, data: await readFile(path) });
    } catch {
      throw new Error(`guest assets: ${path} is missing (part of the gitrack checkout)`);
    }
  }
  return result;
}

async function resolveKernelPackage(): Promise<string> {
  let stdout: string;
  try {
    ({ stdout } = await run("apt-cache", ["depends", "linux-image-amd64"], { encoding: "utf8" }));
  } catch (err) {
    throw new Error(`guest assets: "apt-cache depends linux-image-amd64" failed (is apt available?): ${String(err)}`);
  }
  const m = /Depends:\s*(linux-image-\d\S*-amd64)\b/.exec(stdout);
  if (!m) {
    throw new Error(
      `guest assets: apt knows no linux-image-*-amd64 behind linux-image-amd64; run "apt-get update" (apt-cache said: ${stdout.trim().slice(0, 200)})`,
    );
  }
  return m[1];
}

async function fetchDeb(pkg: string, cache: string): Promise<string> {
  const find = async () => (await readdir(cache)).filter((f) => f.startsWith(`${pkg}_`) && f.endsWith(".deb")).sort();
  let debs = await find();
  if (debs.length === 0) {
    try {
      await run("apt-get", ["download", pkg], { cwd: cache, encoding: "utf8", maxBuffer: 16 << 20 });
    } catch (err) {
      const e = err as { stderr?: string };
      throw new Error(`guest assets: "apt-get download ${pkg}" failed: ${(e.stderr ?? String(err)).trim()}`);
    }
    debs = await find();
    if (debs.length === 0) throw new Error(`guest assets: "apt-get download ${pkg}" left no ${pkg}_*.deb in ${cache}`);
  }
  return join(cache, debs[debs.length - 1]);
}

async function extractKernelFiles(deb: string, into: string): Promise<void> {
  // dpkg-deb | tar, selecting only the kernel image and network modules.
  const script =
    'dpkg-deb --fsys-tarfile "$0" | tar -x -C "$1" --wildcards --no-wildcards-match-slash ' +
    "'./boot/vmlinuz-*' " +
    MODULE_PATTERNS.map((p) => `'${p}'`).join(" ");
  try {
    await run("sh", ["-c", script, deb, into], { maxBuffer: 16 << 20 });
  } catch (err) {
    const e = err as { stderr?: string };
    // tar complains about patterns that matched nothing; that is judged below.
    if (!/Not found in archive/.test(e.stderr ?? "")) {
      throw new Error(`guest assets: cannot unpack ${deb} (needs dpkg-deb and tar): ${(e.stderr ?? String(err)).trim()}`);
    }
  }
}

async function findKernelImage(root: string, deb: string): Promise<string> {
  const boot = join(root, "boot");
  const names = existsSync(boot) ? (await readdir(boot)).filter((n) => n.startsWith("vmlinuz-")) : [];
  if (names.length === 0) throw new Error(`guest assets: ${deb} has no boot/vmlinuz-*`);
  return join(boot, names.sort()[0]);
}

interface KernelModule {
  name: string;
  data: Buffer;
  depends: string[];
}

async function collectModules(root: string, deb: string): Promise<KernelModule[]> {
  const available = new Map<string, string>();
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (/\.ko(\.(xz|zst|gz))?$/.test(e.name)) available.set(normalizeModuleName(e.name.replace(/\.ko.*$/, "")), p);
    }
  };
  if (existsSync(join(root, "lib"))) await walk(join(root, "lib"));

  const loaded = new Map<string, KernelModule>();
  const order: KernelModule[] = [];
  const visit = async (name: string, neededBy: string | undefined): Promise<void> => {
    const key = normalizeModuleName(name);
    if (loaded.has(key)) return;
    const path = available.get(key);
    if (!path) {
      throw new Error(
        `guest assets: module ${name}${neededBy ? ` (needed by ${neededBy})` : ""} is not in ${deb} under ${MODULE_PATTERNS.join(", ")}`,
      );
    }
    const data = await decompressModule(path);
    const mod: KernelModule = { name: key, data, depends: moduleDepends(data) };
    loaded.set(key, mod);
    for (const dep of mod.depends) await visit(dep, key);
    order.push(mod); // post-order: dependencies come first
  };
  for (const m of ROOT_MODULES) await visit(m, undefined);
  return order;
}

function normalizeModuleName(name: string): string {
  return name.replace(/-/g, "_");
}

async function decompressModule(path: string): Promise<Buffer> {
  const tool = path.endsWith(".xz") ? "xz" : path.endsWith(".zst") ? "zstd" : path.endsWith(".gz") ? "gzip" : undefined;
  if (!tool) return readFile(path);
  try {
    const { stdout } = await run(tool, ["-dc", path], { encoding: "buffer", maxBuffer: 64 << 20 });
    return stdout;
  } catch (err) {
    throw new Error(`guest assets: cannot decompress ${path} with ${tool} (install it): ${String(err)}`);
  }
}

/** The `depends=` entry of a module's .modinfo section (NUL-separated key=value strings). */
function moduleDepends(ko: Buffer): string[] {
  const marker = Buffer.from("\0depends=");
  const at = ko.indexOf(marker);
  if (at < 0) return [];
  const start = at + marker.length;
  const end = ko.indexOf(0, start);
  return ko
    .subarray(start, end)
    .toString("latin1")
    .split(",")
    .filter(Boolean);
}

interface CpioEntry {
  name: string;
  mode: number; // including the file type bits
  data?: Buffer;
  rdev?: [number, number];
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

async function initramfsEntries(
  busybox: Buffer,
  guestFiles: { name: string; data: Buffer }[],
  modules: KernelModule[],
): Promise<CpioEntry[]> {
  const entries: CpioEntry[] = [];
  for (const d of ["bin", "dev", "etc", "lib", "lib/modules", "proc", "sbin", "sys", "tmp"]) {
    entries.push({ name: d, mode: S_IFDIR | 0o755 });
  }
  // The kernel opens /dev/console before /init runs; without the node the
  // first messages of /init are lost.
  entries.push({ name: "dev/console", mode: S_IFCHR | 0o600, rdev: [5, 1] });
  entries.push({ name: "bin/busybox", mode: S_IFREG | 0o755, data: busybox });
  const { stdout } = await run(BUSYBOX, ["--list"], { encoding: "utf8" });
  for (const applet of stdout.split("\n").filter((a) => a && a !== "busybox")) {
    entries.push({ name: `bin/${applet}`, mode: S_IFLNK | 0o777, data: Buffer.from("busybox") });
  }
  for (const f of guestFiles) entries.push({ name: f.name, mode: S_IFREG | 0o755, data: f.data });
  for (const m of modules) entries.push({ name: `lib/modules/${m.name}.ko`, mode: S_IFREG | 0o644, data: m.data });
  entries.push({
    name: "lib/modules/order",
    mode: S_IFREG | 0o644,
    data: Buffer.from(modules.map((m) => m.name).join("\n") + "\n"),
  });
  // Parents sort before children with a plain byte order of the path.
  return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** cpio "newc" (SVR4 without CRC) as the kernel's initramfs unpacker reads it. */
function writeCpioNewc(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let offset = 0;
  const push = (b: Buffer) => {
    parts.push(b);
    offset += b.length;
  };
  const pad4 = () => {
    const n = (4 - (offset % 4)) % 4;
    if (n) push(Buffer.alloc(n));
  };
  const hex = (n: number) => n.toString(16).padStart(8, "0");
  const record = (ino: number, e: CpioEntry) => {
    const data = e.data ?? Buffer.alloc(0);
    const name = Buffer.from(`${e.name}\0`);
    const isDir = (e.mode & 0o170000) === S_IFDIR;
    const header =
      "070701" +
      hex(ino) +
      hex(e.mode) +
      hex(0) + // uid
      hex(0) + // gid
      hex(isDir ? 2 : 1) + // nlink
      hex(0) + // mtime
      hex(data.length) +
      hex(0) + // devmajor
      hex(0) + // devminor
      hex(e.rdev?.[0] ?? 0) +
      hex(e.rdev?.[1] ?? 0) +
      hex(name.length) +
      hex(0); // check
    push(Buffer.from(header, "ascii"));
    push(name);
    pad4();
    if (data.length) {
      push(data);
      pad4();
    }
  };
  entries.forEach((e, i) => record(i + 1, e));
  record(0, { name: "TRAILER!!!", mode: 0 });
  return Buffer.concat(parts);
}
