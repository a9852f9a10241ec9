// Watching the tracked branch of a local repository. File events only say
// "look again"; git (rev-parse) decides whether the commit changed. Events
// come from the loose ref files under refs/heads and from packed-refs
// (`git gc` / `git pack-refs` move refs there); a slow poll is the safety net.
import { watch as chokidarWatch, type FSWatcher } from "chokidar";
import { join, resolve as resolvePath } from "node:path";
import { GitRepo } from "./git.js";

export { RemoteSource, type RemoteSourceOptions, type PushOptions } from "./remote.js";
export { verifyWebhookSignature, WEBHOOK_SIGNATURE_HEADER } from "./webhook.js";

export interface WatchLocalBranchOptions {
  /** Quiet time after the last file event before asking git. Default 150 ms. */
  debounceMs?: number;
  /** Safety-net poll. Default 5000 ms; 0 disables. */
  pollMs?: number;
  /** Called when asking git fails. */
  onError?: (err: unknown) => void;
}

export interface LocalBranchWatch {
  /** The commit last reported (undefined while the branch does not exist). */
  readonly commit: string | undefined;
  close(): Promise<void>;
}

/**
 * Calls `onChange(commit)` with the branch's commit once at start (if the
 * branch exists) and then whenever it changes: a commit, a merge, a fetch or
 * a push into the repository. Resolves once the watcher is ready.
 */
export async function watchLocalBranch(
  repoPath: string,
  branch: string,
  onChange: (commit: string) => void,
  opts: WatchLocalBranchOptions = {},
): Promise<LocalBranchWatch> {
  const debounceMs = opts.debounceMs ?? 150;
  const pollMs = opts.pollMs ?? 5000;
  const repo = new GitRepo(repoPath);
  const ref = `refs/heads/${branch}`;
  const commonDir = resolvePath(await repo.commonDir());
  const headsDir = join(commonDir, "refs", "heads");
  const packedRefs = join(commonDir, "packed-refs");

  let current: string | undefined;
  let closed = false;
  let checking: Promise<void> | undefined;
  let again = false;

  const check = (): Promise<void> => {
    if (checking) {
      again = true;
      return checking;
    }
    checking = (async () => {
      do {
        again = false;
        try {
          const commit = await repo.resolve(ref);
          if (!closed && commit && commit !== current) {
            current = commit;
            onChange(commit);
          } else if (!commit) current = undefined;
        } catch (err) {
          opts.onError?.(err);
        }
      } while (again && !closed);
    })().finally(() => {
      checking = undefined;
    });
    return checking;
  };

  let debounce: NodeJS.Timeout | undefined;
  const poke = () => {
    if (closed) return;
    if (debounce) clearTimeout(debounce);
    debounce = setTimeout(() => {
      debounce = undefined;
      void check();
    }, debounceMs);
  };

  // Two watchers: the common dir itself (depth 0, only packed-refs matters)
  // and refs/heads recursively (branch names may contain slashes).
  const onlyPackedRefs = (path: string) => resolvePath(path) !== commonDir && resolvePath(path) !== packedRefs;
  const watchers: FSWatcher[] = [
    chokidarWatch(commonDir, { ignoreInitial: true, depth: 0, ignored: onlyPackedRefs }),
    chokidarWatch(headsDir, { ignoreInitial: true }),
  ];
  for (const w of watchers) {
    w.on("all", poke);
    w.on("error", (err) => opts.onError?.(err));
  }
  await Promise.all(watchers.map((w) => new Promise<void>((r) => w.once("ready", () => r()))));
  await check();

  const poll = pollMs > 0 ? setInterval(() => void check(), pollMs) : undefined;

  return {
    get commit() {
      return current;
    },
    async close() {
      closed = true;
      if (debounce) clearTimeout(debounce);
      if (poll) clearInterval(poll);
      await Promise.all(watchers.map((w) => w.close()));
      await checking;
      await repo.close();
    },
  };
}
