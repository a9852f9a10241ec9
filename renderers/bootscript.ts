/**
 * What a machine boots: the iPXE script, the kernel command line and the
 * per-machine files of its BootEnv, each rendered from the BootEnv's
 * templates with the machine's RenderContext.
 */
import type { RenderContext } from "./context.js";
import { renderTemplate, type TemplateSource } from "./engine.js";

/** BootEnv purposes; see README.md. */
export const BOOT_PURPOSES = ["install", "discovery", "local", "live"] as const;
export type BootPurpose = (typeof BOOT_PURPOSES)[number];

/** The parts of a BootEnv document the renderers need, templates positioned in their file. */
export interface BootEnvTemplates {
  name: string;
  purpose: string;
  kernel?: { url: string; sha256: string };
  initrds: Array<{ url: string; sha256: string }>;
  cmdline?: TemplateSource;
  script?: TemplateSource;
  files?: Array<{ name: string; template: TemplateSource; contentType?: string }>;
}

/**
 * The local-disk script. On BIOS, `sanboot --drive 0x80` hands the machine to
 * the first hard disk's boot sector directly, which is more dependable than
 * returning to a BIOS that may retry PXE or halt. On UEFI there is no such
 * drive to iPXE, so sanboot fails and `exit` returns to the firmware's boot
 * manager, which goes on to the next boot entry (the installed OS).
 * `--no-describe` keeps iPXE from publishing an iBFT/aBFT for a disk that is
 * not a SAN disk.
 */
const LOCAL_BOOT_SCRIPT = [
  "#!ipxe",
  "echo gitrack: booting from local disk",
  "sanboot --no-describe --drive 0x80 || exit",
  "",
].join("\n");

/** The last path segment of a URL: the name iPXE gives the image it fetches. */
function imageName(url: string): string {
  const path = url.replace(/[?#].*$/, "");
  const name = path.slice(path.lastIndexOf("/") + 1);
  return name === "" ? "initrd" : name;
}

/** The rendered kernel command line ("" when the BootEnv has none). */
export function renderKernelCmdline(env: BootEnvTemplates, ctx: RenderContext): string {
  if (!env.cmdline) return "";
  // Installers read the command line as one line of words; newlines from a
  // folded or block scalar are just separators.
  return renderTemplate(env.cmdline, ctx).replace(/\s+/g, " ").trim();
}

/**
 * The iPXE script for one machine. A custom `script` template replaces the
 * generated one entirely. Without a kernel (purpose `local`, or any BootEnv
 * that forgot one) the machine boots its local disk.
 */
export function renderBootScript(env: BootEnvTemplates, ctx: RenderContext): string {
  if (env.script) {
    const out = renderTemplate(env.script, ctx);
    return out.endsWith("\n") ? out : `${out}\n`;
  }
  if (env.purpose === "local" || !env.kernel || !ctx.urls.kernel) return LOCAL_BOOT_SCRIPT;

  // Each initrd gets a distinct image name; the kernel's EFI stub finds them
  // by the initrd=NAME arguments (BIOS bzImage boots ignore those).
  const seen = new Set<string>();
  const initrds = ctx.urls.initrds.map((url, i) => {
    let name = imageName(url);
    if (seen.has(name)) name = `initrd${i}-${name}`;
    seen.add(name);
    return { url, name, renamed: name !== imageName(url) };
  });
  const cmdline = renderKernelCmdline(env, ctx);
  const kernelArgs = [...initrds.map((i) => `initrd=${i.name}`), cmdline].filter((s) => s !== "").join(" ");
  const lines = [
    "#!ipxe",
    `echo gitrack: ${ctx.machine.name} boots ${env.name}`,
    `kernel ${ctx.urls.kernel}${kernelArgs ? ` ${kernelArgs}` : ""}`,
    ...initrds.map((i) => (i.renamed ? `initrd --name ${i.name} ${i.url}` : `initrd ${i.url}`)),
    "boot",
    "",
  ];
  return lines.join("\n");
}

/** A rendered per-machine file, or undefined when the BootEnv has no file of that name. */
export function renderFile(
  env: BootEnvTemplates,
  name: string,
  ctx: RenderContext,
): { body: string; contentType: string } | undefined {
  const file = env.files?.find((f) => f.name === name);
  if (!file) return undefined;
  return { body: renderTemplate(file.template, ctx), contentType: file.contentType ?? "text/plain" };
}
