// The status branch gitrack/status/<site>: one commit per observed change,
// each a complete tree of status files, with a trailer naming the desired
// commit it reflects. Coalesced, deterministic, and never a commit for an
// unchanged tree.
import type { GitRepo } from "../source/git.js";
import { DESIRED_COMMIT_TRAILER, statusRef } from "./refs.js";

export interface StatusWriteMeta {
  /** The desired-state commit this status reflects. */
  desiredCommit: string;
  /** A one-line summary; the subject becomes `status: <message>`. */
  message: string;
}

export type StatusFilesProducer = () => Map<string, string> | Promise<Map<string, string>>;

export interface StatusBranchWriterOptions {
  /** At most one scheduled commit per this many milliseconds. Default 3000. */
  minIntervalMs?: number;
  /** Called when a scheduled write fails (it is retried after minIntervalMs). */
  onError?: (err: unknown) => void;
}

/** How many times a write re-reads the head when another writer moved it. */
const CAS_ATTEMPTS = 5;

export function statusCommitMessage(meta: StatusWriteMeta): string {
  if (!/^[0-9a-f]{40,64}$/.test(meta.desiredCommit)) {
    throw new Error(`desiredCommit must be a full commit id, got ${JSON.stringify(meta.desiredCommit)}`);
  }
  const [first, ...rest] = meta.message.trim().split("\n");
  const subject = first.startsWith("status: ") ? first : `status: ${first}`;
  const body = rest.join("\n").trim();
  return `${subject}\n\n${body ? `${body}\n\n` : ""}${DESIRED_COMMIT_TRAILER}: ${meta.desiredCommit}\n`;
}

export class StatusBranchWriter {
  readonly ref: string;
  private readonly minIntervalMs: number;
  private readonly onError: (err: unknown) => void;
  private chain: Promise<unknown> = Promise.resolve();
  private pending?: { producer: StatusFilesProducer; meta: StatusWriteMeta };
  private running?: Promise<string | undefined>;
  private timer?: NodeJS.Timeout;
  private lastWriteAt = Number.NEGATIVE_INFINITY;
  private closed = false;

  constructor(
    readonly repo: GitRepo,
    readonly site: string,
    opts: StatusBranchWriterOptions = {},
  ) {
    this.ref = statusRef(site);
    this.minIntervalMs = opts.minIntervalMs ?? 3000;
    this.onError = opts.onError ?? (() => {});
  }

  /**
   * Commits exactly `files` (path -> content) as the branch's new tree on top
   * of its head. Returns the new commit, or undefined when the tree is unchanged.
   */
  write(files: Map<string, string>, meta: StatusWriteMeta): Promise<string | undefined> {
    const message = statusCommitMessage(meta);
    const next = this.chain.then(() => this.writeNow(files, message));
    this.chain = next.catch(() => {});
    return next;
  }

  /**
   * Asks for a write of the state `producer` returns when it runs. Writes
   * happen at most once per minIntervalMs; the latest request always wins
   * and is always written eventually.
   */
  scheduleWrite(producer: StatusFilesProducer, meta: StatusWriteMeta): void {
    if (this.closed) throw new Error("StatusBranchWriter is closed");
    this.pending = { producer, meta };
    this.arm();
  }

  /** Writes any scheduled state now; resolves to the commit written (or undefined). */
  async flush(): Promise<string | undefined> {
    this.disarm();
    let result: string | undefined;
    if (this.running) result = await this.running.catch(() => undefined);
    this.disarm();
    if (this.pending) result = await this.startPending();
    this.disarm();
    return result;
  }

  /** Flushes and stops scheduling. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
    this.disarm();
  }

  private arm(): void {
    if (this.timer || this.running || !this.pending || this.closed) return;
    const delay = Math.max(0, this.lastWriteAt + this.minIntervalMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.startPending().catch((err) => this.onError(err));
    }, delay);
  }

  private disarm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private startPending(): Promise<string | undefined> {
    const job = this.pending;
    if (!job) return Promise.resolve(undefined);
    this.pending = undefined;
    this.lastWriteAt = Date.now();
    const run = (async () => {
      try {
        return await this.write(await job.producer(), job.meta);
      } catch (err) {
        // Keep the state to retry, unless something newer replaced it.
        this.pending ??= job;
        throw err;
      }
    })();
    this.running = run.finally(() => {
      this.running = undefined;
      this.arm();
    });
    return this.running;
  }

  /** The files and tree of the last write, so the next one hashes only what changed. */
  private last?: { files: Map<string, string>; tree: string };

  private async buildTree(files: Map<string, string>): Promise<string> {
    const last = this.last;
    let tree: string;
    if (last) {
      const delta = new Map<string, string | null>();
      for (const [path, content] of files) if (last.files.get(path) !== content) delta.set(path, content);
      for (const path of last.files.keys()) if (!files.has(path)) delta.set(path, null);
      tree = delta.size === 0 ? last.tree : await this.repo.writeTree(delta, { base: last.tree });
    } else tree = await this.repo.writeTree(files);
    this.last = { files: new Map(files), tree };
    return tree;
  }

  private async writeNow(files: Map<string, string>, message: string): Promise<string | undefined> {
    const tree = await this.buildTree(files);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const head = await this.repo.resolve(this.ref);
      if (head && (await this.repo.treeOf(head)) === tree) return undefined;
      const commit = await this.repo.commitTree(tree, head ? [head] : [], message);
      if (await this.repo.updateRef(this.ref, commit, head, message.split("\n")[0])) return commit;
    }
    throw new Error(`${this.ref} kept moving while writing status; gave up after ${CAS_ATTEMPTS} attempts`);
  }
}

/**
 * Re-creates our status head on top of `theirs` (the same tree, their commit
 * as parent) after a rejected push, so their history survives and our
 * latest state is on top. Updates our ref by compare-and-swap.
 */
export async function rebaseStatusOnto(repo: GitRepo, ref: string, theirs: string): Promise<void> {
  const ours = await repo.resolve(ref);
  if (!ours || (await repo.isAncestor(ours, theirs))) {
    await repo.updateRef(ref, theirs, ours, "status: take remote state");
    return;
  }
  if (await repo.isAncestor(theirs, ours)) return;
  const info = await repo.commitInfo(ours);
  const target =
    (await repo.treeOf(theirs)) === info.tree ? theirs : await repo.commitTree(info.tree, [theirs], info.message);
  if (!(await repo.updateRef(ref, target, ours, "status: rebuilt on remote state"))) {
    throw new Error(`${ref} moved while rebuilding it on the remote state`);
  }
}
