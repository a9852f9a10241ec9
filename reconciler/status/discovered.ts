// The discovered branch gitrack/discovered/<site>: the tracked branch's
// commit plus commits adding files gitrack proposes (e.g. a Machine file for
// new hardware), for a person to review and merge. When the tracked branch
// moves on, the branch is rebuilt on the new base: proposals the base does
// not have yet are carried over, merged ones are dropped.
import type { GitRepo } from "../source/git.js";
import { discoveredRef } from "./refs.js";

export class DiscoveredBranchWriter {
  readonly ref: string;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    readonly repo: GitRepo,
    readonly site: string,
  ) {
    this.ref = discoveredRef(site);
  }

  /**
   * Proposes `files` on top of `baseCommit` (the tracked branch's commit).
   * Returns the branch's new head, or undefined when nothing new is proposed.
   */
  propose(baseCommit: string, files: Map<string, string>, message: string): Promise<string | undefined> {
    const next = this.chain.then(() => this.proposeNow(baseCommit, files, message));
    this.chain = next.catch(() => {});
    return next;
  }

  /** The files proposed on the branch that `baseCommit` does not hold yet (path -> content). */
  async pending(baseCommit: string): Promise<Map<string, string>> {
    const head = await this.repo.resolve(this.ref);
    return head ? proposalsNotIn(this.repo, head, baseCommit) : new Map();
  }

  private async proposeNow(baseCommit: string, files: Map<string, string>, message: string): Promise<string | undefined> {
    const base = await this.repo.resolve(baseCommit);
    if (!base) throw new Error(`cannot propose on ${baseCommit}: no such commit`);
    const head = await this.repo.resolve(this.ref);

    if (head && (await this.repo.isAncestor(base, head))) {
      // The branch already sits on this base: add a commit when something changes.
      const tree = await this.repo.writeTree(files, { base: head });
      if (tree === (await this.repo.treeOf(head))) return undefined;
      const commit = await this.repo.commitTree(tree, [head], `${message.trim()}\n`);
      return (await this.setRef(commit, head, message)) ? commit : this.proposeNow(baseCommit, files, message);
    }

    // No branch yet, or the tracked branch moved on: rebuild on the new base.
    let tip = base;
    const carried = head ? await proposalsNotIn(this.repo, head, base) : new Map<string, string>();
    for (const path of files.keys()) carried.delete(path);
    if (carried.size > 0) {
      const tree = await this.repo.writeTree(carried, { base });
      const paths = [...carried.keys()].sort().map((p) => `  ${p}`).join("\n");
      tip = await this.repo.commitTree(tree, [base], `discovered: carry over proposals not merged yet\n\n${paths}\n`);
    }
    const tree = await this.repo.writeTree(files, { base: tip });
    const proposedNow = tree !== (await this.repo.treeOf(tip));
    if (proposedNow) tip = await this.repo.commitTree(tree, [tip], `${message.trim()}\n`);
    if (tip === head || (!head && tip === base)) return undefined;
    if (!(await this.setRef(tip, head, "discovered: rebuilt on the tracked branch"))) {
      return this.proposeNow(baseCommit, files, message);
    }
    return proposedNow || carried.size > 0 ? tip : undefined;
  }

  private setRef(commit: string, old: string | undefined, reason: string): Promise<boolean> {
    return this.repo.updateRef(this.ref, commit, old, reason.split("\n")[0]);
  }
}

/**
 * The files the branch at `head` adds or changes relative to where it forked
 * from `base`, keeping only paths `base` does not have yet.
 */
export async function proposalsNotIn(repo: GitRepo, head: string, base: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (await repo.isAncestor(head, base)) return out; // everything was merged
  const fork = await repo.mergeBase(head, base);
  const changed = fork
    ? (await repo.diffPaths(fork, head)).filter((c) => c.status !== "D")
    : await repo.listFiles(head);
  if (changed.length === 0) return out;
  const inBase = new Set((await repo.listFiles(base)).map((f) => f.path));
  const wanted = changed.filter((c) => !inBase.has(c.path));
  const blobs = await repo.readBlobs(wanted.map((c) => c.oid!));
  for (const c of wanted) out.set(c.path, blobs.get(c.oid!)!);
  return out;
}

/**
 * After a rejected push: combines our proposals and theirs on top of the
 * tracked branch's commit. The result descends from their head (so the push
 * is a fast-forward, nothing is forced) and from `tracked` (so merging it into
 * the tracked branch is still a fast-forward). Where both propose a path, ours wins.
 */
export async function rebaseDiscoveredOnto(repo: GitRepo, ref: string, theirs: string, tracked: string): Promise<void> {
  const ours = await repo.resolve(ref);
  if (ours && (await repo.isAncestor(theirs, ours))) return;
  const theirsOnTracked = await repo.isAncestor(tracked, theirs);
  if (!ours || ((await repo.isAncestor(ours, theirs)) && theirsOnTracked)) {
    await repo.updateRef(ref, theirs, ours, "discovered: take remote state");
    return;
  }
  const files = await proposalsNotIn(repo, theirs, tracked);
  for (const [path, content] of await proposalsNotIn(repo, ours, tracked)) files.set(path, content);
  const tree = await repo.writeTree(files, { base: tracked });
  const parents = theirsOnTracked ? [theirs] : [theirs, tracked];
  const paths = [...files.keys()].sort().map((p) => `  ${p}`).join("\n");
  const target =
    parents.length === 1 && tree === (await repo.treeOf(theirs))
      ? theirs
      : await repo.commitTree(tree, parents, `discovered: combine proposals with the remote's\n\n${paths}\n`);
  if (!(await repo.updateRef(ref, target, ours, "discovered: rebuilt on remote state"))) {
    throw new Error(`${ref} moved while rebuilding it on the remote state`);
  }
}
