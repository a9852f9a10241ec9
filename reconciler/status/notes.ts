// Git notes under refs/notes/gitrack/<site>: one note per reconciled commit
// saying what happened to it (applied, rejected with its errors, partial).
import type { GitRepo } from "../source/git.js";
import { notesRef } from "./refs.js";

export class NotesWriter {
  readonly ref: string;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    readonly repo: GitRepo,
    readonly site: string,
  ) {
    this.ref = notesRef(site);
  }

  /** Sets (replaces) the note on `commit`. Writes from one writer are serialized. */
  setNote(commit: string, text: string): Promise<void> {
    const next = this.chain.then(async () => {
      const oid = await this.repo.resolve(commit);
      if (!oid) throw new Error(`cannot annotate ${commit}: no such commit`);
      await this.repo.run(["notes", `--ref=${this.ref}`, "add", "-f", "-F", "-", oid], { input: text });
    });
    this.chain = next.catch(() => {});
    return next;
  }

  /** The note on `commit`, or undefined when it has none. */
  async getNote(commit: string): Promise<string | undefined> {
    const oid = await this.repo.resolve(commit);
    if (!oid) return undefined;
    const r = await this.repo.run(["notes", `--ref=${this.ref}`, "list", oid], { okExitCodes: [1] });
    if (r.exitCode !== 0) return undefined;
    return this.repo.readBlob(r.stdout.trim());
  }
}

/**
 * Merges the notes at `otherRef` (a ref under refs/notes/) into ours, keeping
 * the notes of both sides; where both annotated the same commit, ours wins.
 */
export async function mergeNotes(repo: GitRepo, ref: string, otherRef: string): Promise<void> {
  if (!otherRef.startsWith("refs/notes/")) throw new Error(`notes merge needs a ref under refs/notes/, got ${otherRef}`);
  await repo.run(["notes", `--ref=${ref}`, "merge", "--quiet", "--strategy=ours", otherRef]);
}
