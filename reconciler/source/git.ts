// One typed wrapper around the git CLI, and GitRepo: the reads and object
// writes gitrack needs, all against the object database and refs only. No
// command here reads or writes a working tree, the user's index or HEAD.
//
// Why the CLI (shared/DEPENDENCIES.md section 5): `cat-file --batch` reads
// 10k blobs in ~0.2 s where isomorphic-git takes ~4.5 s, and the CLI speaks
// every transport. Single objects (one commit, one blob) go through the same
// long-lived `cat-file --batch` process, so they cost no process start.
import { execFile, spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve as resolvePath } from "node:path";

export interface GitIdentity {
  name: string;
  email: string;
}

/** The identity of every commit gitrack makes unless configured otherwise. */
export const DEFAULT_IDENTITY: GitIdentity = { name: "gitrack", email: "gitrack@localhost" };

export interface GitRunOptions {
  /** Working directory of the git process. */
  cwd?: string;
  /** Passed as `--git-dir=`; with it git never looks at a working tree. */
  gitDir?: string;
  /** Committer and author of commits made by this command. */
  identity?: GitIdentity;
  /** Extra environment (e.g. GIT_INDEX_FILE for a temporary index). */
  env?: Record<string, string>;
  /** Written to the process's stdin. */
  input?: string | Buffer;
  /** Exit codes that are answers, not failures (e.g. 1 for `merge-base --is-ancestor`). */
  okExitCodes?: number[];
  /** Aborts a command that hangs (network). Default: none. */
  timeoutMs?: number;
}

export interface GitResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** Replaces the user:password part of any URL with `***`. */
export function redactCredentials(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^/\s@]*@/gi, "$1***@");
}

/** A git command that failed: which command, its exit code and stderr, with URL credentials redacted. */
export class GitError extends Error {
  readonly command: string;
  readonly exitCode: number | string | undefined;
  readonly stderr: string;

  constructor(args: string[], exitCode: number | string | undefined, stderr: string) {
    const command = redactCredentials(`git ${args.join(" ")}`);
    const detail = redactCredentials(stderr.trim()).split("\n").slice(0, 8).join("\n");
    super(`${command} failed (exit ${exitCode ?? "?"})${detail ? `: ${detail}` : ""}`);
    this.name = "GitError";
    this.command = command;
    this.exitCode = exitCode;
    this.stderr = redactCredentials(stderr);
  }
}

const MAX_BUFFER = 1024 * 1024 * 1024;

/** Variables that would point git at some other repository, index or tree. */
const INHERITED_GIT_VARS = [
  "GIT_DIR",
  "GIT_WORK_TREE",
  "GIT_INDEX_FILE",
  "GIT_OBJECT_DIRECTORY",
  "GIT_ALTERNATE_OBJECT_DIRECTORIES",
  "GIT_COMMON_DIR",
  "GIT_NAMESPACE",
  "GIT_CEILING_DIRECTORIES",
];

function gitEnv(identity: GitIdentity, extra: Record<string, string> | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of INHERITED_GIT_VARS) delete env[name];
  return {
    ...env,
    GIT_TERMINAL_PROMPT: "0",
    GIT_OPTIONAL_LOCKS: "0",
    LC_ALL: "C",
    GIT_AUTHOR_NAME: identity.name,
    GIT_AUTHOR_EMAIL: identity.email,
    GIT_COMMITTER_NAME: identity.name,
    GIT_COMMITTER_EMAIL: identity.email,
    ...extra,
  };
}

/** Runs `git ARGS`; rejects with a GitError unless the exit code is 0 or listed in okExitCodes. */
export function runGit(args: string[], opts: GitRunOptions = {}): Promise<GitResult> {
  const fullArgs = opts.gitDir ? [`--git-dir=${opts.gitDir}`, ...args] : args;
  return new Promise((resolveRun, rejectRun) => {
    const child = execFile(
      "git",
      fullArgs,
      {
        cwd: opts.cwd,
        env: gitEnv(opts.identity ?? DEFAULT_IDENTITY, opts.env),
        maxBuffer: MAX_BUFFER,
        encoding: "utf8",
        timeout: opts.timeoutMs,
      },
      (error, stdout, stderr) => {
        if (!error) return resolveRun({ stdout, stderr, exitCode: 0 });
        const code = (error as NodeJS.ErrnoException & { code?: number | string }).code;
        if (typeof code === "number" && opts.okExitCodes?.includes(code)) {
          return resolveRun({ stdout, stderr, exitCode: code });
        }
        const why = typeof code === "number" ? stderr : `${stderr}${error.message}`;
        rejectRun(new GitError(args, code ?? (error.killed ? "timeout" : undefined), why));
      },
    );
    // A command that does not read stdin may exit before we finish writing.
    child.stdin?.on("error", () => {});
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

export interface FileEntry {
  path: string;
  oid: string;
}

export interface PathChange {
  path: string;
  status: "A" | "M" | "D";
  /** The blob after the change (absent for deletions). */
  oid?: string;
}

export interface Signature {
  name: string;
  email: string;
  /** Seconds since the epoch. */
  timestamp: number;
  /** e.g. "+0200" */
  timezone: string;
}

export interface CommitInfo {
  oid: string;
  tree: string;
  parents: string[];
  author: Signature;
  committer: Signature;
  subject: string;
  /** The whole message, subject included. */
  message: string;
}

export interface ListFilesOptions {
  /** Keep only paths ending in one of these (case-insensitive), e.g. [".yaml", ".yml"]. */
  exts?: string[];
  /** Keep only paths under this folder (no leading or trailing slash). */
  under?: string;
}

export interface GitRepoOptions {
  identity?: GitIdentity;
}

/** Refuses revisions that git would parse as options. */
function checkRev(rev: string): void {
  if (rev === "" || rev.startsWith("-") || /[\0\n]/.test(rev)) {
    throw new Error(`invalid git revision ${JSON.stringify(rev)}`);
  }
}

/** Refuses paths that cannot be stored in a git tree. */
export function checkTreePath(path: string): void {
  const parts = path.split("/");
  if (path === "" || parts.some((p) => p === "" || p === "." || p === ".." || p === ".git") || /[\0\n]/.test(path)) {
    throw new Error(`invalid path for a git tree: ${JSON.stringify(path)}`);
  }
}

function matchesExts(path: string, exts: string[] | undefined): boolean {
  if (!exts || exts.length === 0) return true;
  const lower = path.toLowerCase();
  return exts.some((e) => lower.endsWith(e.toLowerCase()));
}

function parseSignature(value: string): Signature {
  const m = /^(.*) <([^>]*)> (\d+) ([+-]\d{4})$/.exec(value);
  if (!m) return { name: value, email: "", timestamp: 0, timezone: "+0000" };
  return { name: m[1], email: m[2], timestamp: Number(m[3]), timezone: m[4] };
}

/** A repository (bare or not), addressed through its git directory only. */
export class GitRepo {
  readonly path: string;
  readonly identity: GitIdentity;
  private gitDirPromise?: Promise<string>;
  private commonDirPromise?: Promise<string>;
  private batch?: CatFileBatch;

  constructor(path: string, opts: GitRepoOptions = {}) {
    this.path = resolvePath(path);
    this.identity = opts.identity ?? DEFAULT_IDENTITY;
  }

  /** Creates an empty repository and returns it. */
  static async init(path: string, opts: GitRepoOptions & { bare?: boolean; initialBranch?: string } = {}): Promise<GitRepo> {
    const args = ["init", "--quiet"];
    if (opts.bare) args.push("--bare");
    if (opts.initialBranch) args.push(`--initial-branch=${opts.initialBranch}`);
    await runGit([...args, resolvePath(path)]);
    return new GitRepo(path, opts);
  }

  /** The absolute git directory (`.git` of a working copy, the path of a bare repository). */
  gitDir(): Promise<string> {
    this.gitDirPromise ??= runGit(["rev-parse", "--absolute-git-dir"], { cwd: this.path }).then(
      (r) => r.stdout.trim(),
      (err) => {
        this.gitDirPromise = undefined; // not a repository yet: ask again next time
        throw err;
      },
    );
    return this.gitDirPromise;
  }

  /** The directory holding refs and packed-refs (differs from gitDir() in a linked worktree). */
  commonDir(): Promise<string> {
    this.commonDirPromise ??= (async () => {
      const r = await runGit(["rev-parse", "--path-format=absolute", "--git-common-dir"], { cwd: this.path });
      return r.stdout.trim();
    })();
    return this.commonDirPromise;
  }

  /** Runs a git command against this repository's git directory. */
  async run(args: string[], opts: Omit<GitRunOptions, "gitDir" | "cwd"> = {}): Promise<GitResult> {
    const gitDir = await this.gitDir();
    return runGit(args, { identity: this.identity, ...opts, gitDir, cwd: gitDir });
  }

  /** The commit a revision names, or undefined when it does not exist. */
  async resolve(rev: string): Promise<string | undefined> {
    checkRev(rev);
    const r = await this.run(["rev-parse", "--verify", "--quiet", "--end-of-options", `${rev}^{commit}`], { okExitCodes: [1] });
    return r.exitCode === 0 ? r.stdout.trim() : undefined;
  }

  /** The tree of a commit. */
  async treeOf(commit: string): Promise<string> {
    checkRev(commit);
    const r = await this.run(["rev-parse", "--verify", "--end-of-options", `${commit}^{tree}`]);
    return r.stdout.trim();
  }

  /** Every regular file (blob) in a commit's tree, optionally filtered by extension and folder. */
  async listFiles(commit: string, opts: ListFilesOptions = {}): Promise<FileEntry[]> {
    checkRev(commit);
    const args = ["ls-tree", "-r", "-z", "--full-tree", commit];
    if (opts.under) args.push("--", opts.under.replace(/\/+$/, "") + "/");
    const r = await this.run(args);
    const files: FileEntry[] = [];
    for (const record of r.stdout.split("\0")) {
      if (!record) continue;
      // "<mode> SP <type> SP <oid> TAB <path>"
      const tab = record.indexOf("\t");
      const [mode, type, oid] = record.slice(0, tab).split(" ");
      const path = record.slice(tab + 1);
      if (type !== "blob" || mode === "120000") continue; // skip submodules and symlinks
      if (matchesExts(path, opts.exts)) files.push({ path, oid });
    }
    return files;
  }

  /** Reads blobs by oid as UTF-8 text; throws if any is missing. */
  async readBlobs(oids: Iterable<string>): Promise<Map<string, string>> {
    const unique = [...new Set(oids)];
    const objects = await this.catFile().read(unique);
    const out = new Map<string, string>();
    for (const oid of unique) {
      const obj = objects.get(oid);
      if (!obj) throw new GitError(["cat-file", "--batch"], undefined, `object ${oid} is missing`);
      out.set(oid, obj.content.toString("utf8"));
    }
    return out;
  }

  /**
   * Reads blobs by oid and hands each to `onBlob` as it arrives, so the
   * caller's work on one overlaps git's reading of the next; throws if any
   * is missing.
   */
  async readBlobsEach(oids: Iterable<string>, onBlob: (oid: string, text: string) => void): Promise<void> {
    const unique = [...new Set(oids)];
    let seen = 0;
    await this.catFile().read(unique, (oid, obj) => {
      seen++;
      onBlob(oid, obj.content.toString("utf8"));
    });
    if (seen !== unique.length) throw new GitError(["cat-file", "--batch"], undefined, `${unique.length - seen} object(s) missing`);
  }

  /** Reads one blob as UTF-8 text, or undefined when it is missing. */
  async readBlob(oid: string): Promise<string | undefined> {
    const objects = await this.catFile().read([oid]);
    return objects.get(oid)?.content.toString("utf8");
  }

  /** The files that differ between two commits (renames appear as D + A, type changes as M). */
  async diffPaths(fromCommit: string, toCommit: string, opts: { exts?: string[] } = {}): Promise<PathChange[]> {
    checkRev(fromCommit);
    checkRev(toCommit);
    const r = await this.run(["diff-tree", "-r", "-z", "--no-renames", "--no-commit-id", fromCommit, toCommit]);
    const fields = r.stdout.split("\0");
    const changes: PathChange[] = [];
    // Each change is ":<srcmode> <dstmode> <srcoid> <dstoid> <status>" NUL "<path>" NUL.
    for (let i = 0; i + 1 < fields.length; i += 2) {
      const meta = fields[i];
      const path = fields[i + 1];
      if (!meta.startsWith(":")) break;
      const [, dstMode, , dstOid, status] = meta.slice(1).split(" ");
      if (!matchesExts(path, opts.exts)) continue;
      if (status === "D") changes.push({ path, status: "D" });
      else if (status === "A") changes.push({ path, status: "A", oid: dstOid });
      else if (dstMode === "160000") continue;
      else changes.push({ path, status: "M", oid: dstOid });
    }
    return changes;
  }

  /** Author, committer, parents and message of one commit. */
  async commitInfo(oid: string): Promise<CommitInfo> {
    checkRev(oid);
    // A full object id needs no rev-parse: the batch reader answers directly.
    const full = /^([0-9a-f]{40}|[0-9a-f]{64})$/.test(oid) ? oid : await this.resolve(oid);
    if (!full) throw new GitError(["cat-file", "commit", oid], undefined, `commit ${oid} not found`);
    const obj = (await this.catFile().read([full])).get(full);
    if (!obj || obj.type !== "commit") throw new GitError(["cat-file", "commit", full], undefined, "not a commit");
    const text = obj.content.toString("utf8");
    const split = text.indexOf("\n\n");
    const headers = split === -1 ? text : text.slice(0, split);
    const message = split === -1 ? "" : text.slice(split + 2);
    const info: CommitInfo = {
      oid: full,
      tree: "",
      parents: [],
      author: parseSignature(""),
      committer: parseSignature(""),
      subject: message.split("\n")[0] ?? "",
      message,
    };
    for (const line of headers.split("\n")) {
      if (line.startsWith(" ")) continue; // continuation of a multi-line header (gpgsig)
      const sp = line.indexOf(" ");
      const key = line.slice(0, sp);
      const value = line.slice(sp + 1);
      if (key === "tree") info.tree = value;
      else if (key === "parent") info.parents.push(value);
      else if (key === "author") info.author = parseSignature(value);
      else if (key === "committer") info.committer = parseSignature(value);
    }
    return info;
  }

  /** Whether commit a is an ancestor of (or equal to) commit b. */
  async isAncestor(a: string, b: string): Promise<boolean> {
    checkRev(a);
    checkRev(b);
    const r = await this.run(["merge-base", "--is-ancestor", a, b], { okExitCodes: [1] });
    return r.exitCode === 0;
  }

  /** The best common ancestor of two commits, or undefined when they share no history. */
  async mergeBase(a: string, b: string): Promise<string | undefined> {
    checkRev(a);
    checkRev(b);
    const r = await this.run(["merge-base", a, b], { okExitCodes: [1] });
    return r.exitCode === 0 ? r.stdout.trim() : undefined;
  }

  /**
   * Writes the blobs and returns the oid of a tree holding them. With `base`
   * (a tree-ish), the files are laid over that tree and a `null` content
   * removes a path; without it the tree holds exactly `files`. A temporary
   * index (GIT_INDEX_FILE) builds the nested trees; the user's index is not used.
   */
  async writeTree(files: Map<string, string | null>, opts: { base?: string } = {}): Promise<string> {
    for (const path of files.keys()) checkTreePath(path);
    const tmp = await mkdtemp(join(tmpdir(), "gitrack-index-"));
    try {
      const env = { GIT_INDEX_FILE: join(tmp, "index") };
      if (opts.base) {
        checkRev(opts.base);
        await this.run(["read-tree", "--end-of-options", opts.base], { env });
      }
      const writes = [...files].filter((e): e is [string, string] => e[1] !== null);
      const oids = await this.hashBlobs(writes.map(([, content]) => content));
      const zero = "0".repeat(oids[0]?.length ?? 40);
      let info = "";
      writes.forEach(([path], i) => (info += `100644 ${oids[i]}\t${path}\0`));
      for (const [path, content] of files) if (content === null) info += `0 ${zero}\t${path}\0`;
      if (info) await this.run(["update-index", "-z", "--index-info"], { env, input: info });
      const r = await this.run(["write-tree"], { env });
      return r.stdout.trim();
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }

  /** Writes blobs into the object database and returns their oids, in order. */
  async hashBlobs(contents: string[]): Promise<string[]> {
    if (contents.length === 0) return [];
    if (contents.length === 1) {
      const r = await this.run(["hash-object", "-w", "--no-filters", "--stdin"], { input: contents[0] });
      return [r.stdout.trim()];
    }
    // One process for many blobs: write them to temporary files and pass their paths.
    const tmp = await mkdtemp(join(tmpdir(), "gitrack-blobs-"));
    try {
      const paths = contents.map((_, i) => join(tmp, String(i)));
      await Promise.all(contents.map((c, i) => writeFile(paths[i], c)));
      const r = await this.run(["hash-object", "-w", "--no-filters", "--stdin-paths"], { input: paths.join("\n") + "\n" });
      return r.stdout.trim().split("\n");
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }

  /** Makes a commit object (no ref is changed). */
  async commitTree(tree: string, parents: string[], message: string): Promise<string> {
    const args = ["commit-tree", tree];
    for (const p of parents) args.push("-p", p);
    args.push("-F", "-");
    const r = await this.run(args, { input: message });
    return r.stdout.trim();
  }

  /**
   * Compare-and-swap a ref: sets `ref` to `newOid` only if it still points at
   * `oldOid` (or does not exist, when oldOid is undefined). Returns false when
   * someone else moved it first.
   */
  async updateRef(ref: string, newOid: string, oldOid: string | undefined, reason: string): Promise<boolean> {
    checkRev(ref);
    const r = await this.run(["update-ref", "-m", reason, ref, newOid, oldOid ?? ""], { okExitCodes: [1, 128] });
    if (r.exitCode === 0) return true;
    if (/cannot lock ref|but expected|already exists|unable to resolve reference/i.test(r.stderr)) return false;
    throw new GitError(["update-ref", ref, newOid, oldOid ?? ""], r.exitCode, r.stderr);
  }

  /** Ends the long-lived `cat-file --batch` process, if one is running. */
  async close(): Promise<void> {
    const batch = this.batch;
    this.batch = undefined;
    await batch?.close();
  }

  private catFile(): CatFileBatch {
    if (!this.batch || this.batch.dead) this.batch = new CatFileBatch(() => this.gitDir());
    return this.batch;
  }
}

interface BatchObject {
  type: string;
  content: Buffer;
}

interface BatchRequest {
  oid: string;
  resolve: (obj: BatchObject | undefined) => void;
  reject: (err: Error) => void;
}

/**
 * One long-lived `git cat-file --batch`: requests are answered in order, so
 * a FIFO of pending requests pairs each answer with its question.
 */
class CatFileBatch {
  dead = false;
  private proc?: ChildProcessWithoutNullStreams;
  private starting?: Promise<ChildProcessWithoutNullStreams>;
  // A FIFO as an array and a head index: shift() on 10,000 waiting requests
  // moves the whole array each time.
  private pending: BatchRequest[] = [];
  private head = 0;
  private stderr = "";
  // Parser state: either waiting for a header line, or collecting a body.
  private header = Buffer.alloc(0);
  private body?: { type: string; size: number; chunks: Buffer[]; have: number };

  constructor(private readonly gitDir: () => Promise<string>) {}

  /** Reads objects in order; `onEach` sees each one as soon as it arrives (parsing can overlap reading). */
  async read(oids: string[], onEach?: (oid: string, obj: BatchObject) => void): Promise<Map<string, BatchObject>> {
    const out = new Map<string, BatchObject>();
    if (oids.length === 0) return out;
    for (const oid of oids) {
      if (!/^[0-9a-f]{4,64}$/i.test(oid)) throw new Error(`invalid object id ${JSON.stringify(oid)}`);
    }
    const proc = await this.start();
    const answers = oids.map(
      (oid) =>
        new Promise<void>((resolve, reject) => {
          this.pending.push({
            oid,
            resolve: (obj) => {
              if (obj) {
                if (onEach) onEach(oid, obj);
                else out.set(oid, obj);
              }
              resolve();
            },
            reject,
          });
        }),
    );
    proc.stdin.write(oids.join("\n") + "\n");
    await Promise.all(answers);
    return out;
  }

  async close(): Promise<void> {
    this.dead = true;
    const proc = this.proc ?? (await this.starting?.catch(() => undefined));
    if (!proc || proc.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      proc.once("close", () => resolve());
      proc.stdin.end();
    });
  }

  private start(): Promise<ChildProcessWithoutNullStreams> {
    if (this.proc) return Promise.resolve(this.proc);
    this.starting ??= this.gitDir().then((gitDir) => {
      const proc = spawn("git", [`--git-dir=${gitDir}`, "cat-file", "--batch"], {
        cwd: gitDir,
        env: gitEnv(DEFAULT_IDENTITY, undefined),
        stdio: ["pipe", "pipe", "pipe"],
      });
      proc.stdout.on("data", (chunk: Buffer) => this.onData(chunk));
      proc.stderr.on("data", (chunk: Buffer) => {
        this.stderr = (this.stderr + chunk.toString("utf8")).slice(-4096);
      });
      proc.stdin.on("error", () => {}); // reported through 'close'
      const fail = (why: string) => {
        // The process died: fail what is pending; the next read starts a new one.
        this.dead = true;
        const err = new GitError(["cat-file", "--batch"], proc.exitCode ?? undefined, `${this.stderr}${why}`);
        const waiting = this.pending.slice(this.head);
        this.pending = [];
        this.head = 0;
        for (const req of waiting) req.reject(err);
      };
      proc.on("error", (e) => fail(e.message));
      proc.on("close", () => fail("the process exited"));
      this.proc = proc;
      return proc;
    });
    return this.starting;
  }

  private onData(chunk: Buffer): void {
    let data = chunk;
    while (data.length > 0) {
      if (this.body) {
        const need = this.body.size + 1 - this.body.have; // body plus its trailing LF
        const take = data.subarray(0, need);
        this.body.chunks.push(take);
        this.body.have += take.length;
        data = data.subarray(take.length);
        if (this.body.have === this.body.size + 1) {
          const content = Buffer.concat(this.body.chunks).subarray(0, this.body.size);
          const type = this.body.type;
          this.body = undefined;
          this.next()?.resolve({ type, content });
        }
        continue;
      }
      const nl = data.indexOf(0x0a);
      if (nl === -1) {
        this.header = Buffer.concat([this.header, data]);
        return;
      }
      const line = Buffer.concat([this.header, data.subarray(0, nl)]).toString("utf8");
      this.header = Buffer.alloc(0);
      data = data.subarray(nl + 1);
      // "<oid> <type> <size>" or "<name> missing" / "<name> ambiguous"
      const parts = line.split(" ");
      if (parts.length === 3 && /^\d+$/.test(parts[2])) {
        this.body = { type: parts[1], size: Number(parts[2]), chunks: [], have: 0 };
      } else {
        this.next()?.resolve(undefined);
      }
    }
  }

  /** The oldest request still waiting for its answer. */
  private next(): BatchRequest | undefined {
    const req = this.pending[this.head];
    if (req === undefined) return undefined;
    this.head++;
    if (this.head === this.pending.length) {
      this.pending = [];
      this.head = 0;
    }
    return req;
  }
}
