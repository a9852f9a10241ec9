// Pushing the status refs of a remote source back to its remote, never
// forcing: when someone else pushed first, fetch their ref, re-create our
// work on top of theirs, and try again.
import type { GitRepo } from "../source/git.js";
import type { RemoteSource } from "../source/remote.js";
import { rebaseStatusOnto } from "./branch.js";
import { rebaseDiscoveredOnto } from "./discovered.js";
import { mergeNotes } from "./notes.js";

/** Where the remote's copy of one of our refs is fetched to in the mirror. */
export function remoteCopyRef(ref: string): string {
  if (ref.startsWith("refs/notes/")) return `refs/notes/_remote/${ref.slice("refs/notes/".length)}`;
  if (ref.startsWith("refs/heads/")) return `refs/remotes/origin/${ref.slice("refs/heads/".length)}`;
  throw new Error(`cannot push ${ref}: gitrack pushes only branches and notes`);
}

/** Puts our `ref` on top of the remote's copy at `theirs`, by the kind of ref. */
async function rebuildOnto(repo: GitRepo, ref: string, theirsRef: string, tracked: string | undefined): Promise<void> {
  const theirs = await repo.resolve(theirsRef);
  if (!theirs) return;
  if (ref.startsWith("refs/notes/")) return mergeNotes(repo, ref, theirsRef);
  if (ref.startsWith("refs/heads/gitrack/status/")) return rebaseStatusOnto(repo, ref, theirs);
  if (ref.startsWith("refs/heads/gitrack/discovered/")) {
    if (!tracked) throw new Error(`cannot rebuild ${ref}: the tracked branch has not been fetched`);
    return rebaseDiscoveredOnto(repo, ref, theirs, tracked);
  }
  throw new Error(`no rule to rebuild ${ref} on the remote state`);
}

export interface PushStatusOptions {
  /** Total push attempts. Default 5. */
  attempts?: number;
}

/**
 * Pushes the given refs (status branch, notes ref, discovered branch) that
 * exist in the mirror. Rejections are resolved by rebuilding on the remote
 * state (status: our tree on their head; notes: merged, ours winning per
 * commit; discovered: our proposals on their head) and retried.
 */
export async function pushStatus(remote: RemoteSource, refs: string[], opts: PushStatusOptions = {}): Promise<void> {
  const present: string[] = [];
  for (const ref of refs) {
    remoteCopyRef(ref);
    if (await remote.repo.resolve(ref)) present.push(ref);
  }
  await remote.push(present, {
    attempts: opts.attempts,
    rebuild: async (rejected) => {
      await remote.fetchRefs(rejected.map((ref) => `+${ref}:${remoteCopyRef(ref)}`));
      const tracked = await remote.repo.resolve(remote.ref);
      for (const ref of rejected) await rebuildOnto(remote.repo, ref, remoteCopyRef(ref), tracked);
    },
  });
}
