/**
 * Where the built-in BootEnv documents live. They are plain YAML, not
 * compiled, so the path is found from the package root whether this module
 * runs from renderers/ (tsx, vitest) or dist/renderers/ (the build).
 */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** Names of the BootEnvs in builtinBootEnvDir(), one file `<name>.yaml` each. */
export const BUILTIN_BOOTENV_NAMES = ["local", "discovery", "debian-12", "rocky-8"] as const;

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "renderers", "bootenvs"))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error("gitrack: cannot find the package root holding renderers/bootenvs");
    dir = parent;
  }
}

/** Absolute path of the folder holding the built-in BootEnv YAML files. */
export function builtinBootEnvDir(): string {
  return join(packageRoot(), "renderers", "bootenvs");
}
