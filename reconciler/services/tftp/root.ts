// Containment of TFTP paths inside a served root. A request path is first
// normalised lexically (backslashes, leading slashes, "." segments) and refused
// when it holds "..", NUL, control characters or percent-escapes; then every
// component is walked with lstat, symlinks are resolved with realpath, and the
// result must stay under realpath(root). Refusals never say whether a file
// outside the root exists.
import { constants, existsSync, statSync } from "node:fs";
import { lstat, open, realpath, type FileHandle } from "node:fs/promises";
import path from "node:path";

export type PathCheck = { ok: true; segments: string[] } | { ok: false; reason: string };

/**
 * Lexical normalisation of a TFTP filename into root-relative segments.
 * Absolute paths are taken relative to the root ("/a/b" = "a/b").
 */
export function normaliseRequestPath(raw: string): PathCheck {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(raw)) return { ok: false, reason: "control character in path" };
  if (/%[0-9a-fA-F]{2}/.test(raw)) return { ok: false, reason: "percent-encoding in path" };
  if (raw.includes("\ufffd")) return { ok: false, reason: "invalid UTF-8 in path" };
  const segments: string[] = [];
  for (const seg of raw.replace(/\\/g, "/").split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") return { ok: false, reason: "'..' segment in path" };
    // A Windows drive prefix ("C:") has no meaning here; refuse rather than guess.
    if (segments.length === 0 && /^[A-Za-z]:$/.test(seg)) return { ok: false, reason: "drive letter in path" };
    segments.push(seg);
  }
  if (segments.length === 0) return { ok: false, reason: "empty path" };
  return { ok: true, segments };
}

export type OpenResult =
  | { ok: true; handle: FileHandle; size: number; realPath: string }
  | { ok: false; code: "not-found" | "refused"; reason: string };

function isInside(realRoot: string, p: string): boolean {
  return p === realRoot || p.startsWith(realRoot.endsWith("/") ? realRoot : realRoot + "/");
}

/**
 * Opens a regular file under root, following symlinks only while they stay
 * inside realpath(root). `allowOutside` lists real paths of single files that a
 * symlink inside the root may point to (Debian's /usr/lib/ipxe/ipxe.efi is a
 * link to /boot/ipxe.efi).
 */
export async function openInsideRoot(
  root: string,
  segments: string[],
  allowOutside: ReadonlySet<string> = new Set(),
): Promise<OpenResult> {
  let realRoot: string;
  try {
    realRoot = await realpath(root);
  } catch {
    return { ok: false, code: "not-found", reason: "root folder missing" };
  }
  let cur = realRoot;
  for (let i = 0; i < segments.length; i++) {
    const next = path.join(cur, segments[i]);
    let st;
    try {
      st = await lstat(next);
    } catch {
      return { ok: false, code: "not-found", reason: "no such file" };
    }
    if (st.isSymbolicLink()) {
      let real: string;
      try {
        real = await realpath(next);
      } catch {
        // A dangling link is refused whatever it points to, so the answer
        // says nothing about files outside the root.
        return { ok: false, code: "refused", reason: "dangling symlink" };
      }
      const last = i === segments.length - 1;
      if (!isInside(realRoot, real) && !(last && allowOutside.has(real))) {
        return { ok: false, code: "refused", reason: "symlink leaves the root" };
      }
      cur = real;
    } else {
      cur = next;
    }
  }
  let handle: FileHandle;
  try {
    // cur holds no symlink now; O_NOFOLLOW closes the race with a swapped-in
    // link. O_NONBLOCK: opening a FIFO (or a device) must not wait for a
    // writer, which would hold one of libuv's few threads (and with it the
    // lease journal's fsync); fstat below refuses anything but a regular file.
    handle = await open(cur, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return { ok: false, code: "not-found", reason: "cannot open" };
  }
  const st = await handle.stat();
  if (!st.isFile()) {
    await handle.close();
    return { ok: false, code: "not-found", reason: "not a regular file" };
  }
  return { ok: true, handle, size: st.size, realPath: cur };
}

/** Debian's `ipxe` package folder (undionly.kpxe, ipxe.efi, snponly.efi, ...), when installed. */
export function defaultIpxeRoot(): string | undefined {
  const dir = "/usr/lib/ipxe";
  try {
    return statSync(dir).isDirectory() ? dir : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The files outside /usr/lib/ipxe that Debian's own symlinks there point to
 * (ipxe.efi and ipxe.lkrn live in /boot); pass them as `allowOutside` when
 * serving defaultIpxeRoot().
 */
export function defaultIpxeAllowOutside(): string[] {
  return ["/boot/ipxe.efi", "/boot/ipxe.lkrn"].filter((f) => existsSync(f));
}
