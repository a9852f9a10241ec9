// A remote site repository (http(s), ssh or file URL) mirrored into the state
// directory: a bare repository holding just the tracked branch (plus the
// status refs gitrack writes), fetched on an interval and on demand.
// DEPENDENCIES.md section 5: a git CLI fetch of the one branch is the
// cheapest poll; no ls-remote first, no shallow fetches.
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { GitError, GitRepo, type GitIdentity } from "./git.js";

export interface RemoteSourceOptions {
  /** http(s)://, ssh://, user@host:path or file:// URL. Credentials in it never reach logs or errors. */
  url: string;
  /** The tracked branch, e.g. "main". */
  branch: string;
  /** The mirror lives in `<stateDir>/repo.git`. */
  stateDir: string;
  /** Safety-net fetch interval; webhooks call trigger(). Default 60 s; 0 disables. */
  intervalMs?: number;
  /** Called with each new commit of the tracked branch (and the first one seen). */
  onCommit?: (commit: string) => void;
  /** Called when an interval fetch fails. */
  onError?: (err: unknown) => void;
  identity?: GitIdentity;
  /** Extra environment for network commands (e.g. GIT_SSH_COMMAND). */
  env?: Record<string, string>;
  /** Time limit of one fetch or push. Default 120 s. */
  networkTimeoutMs?: number;
}

export interface PushOptions {
  /** Called with the refs rejected as non-fast-forward, after which the push is retried. */
  rebuild?: (rejectedRefs: string[]) => Promise<void>;
  /** Total push attempts. Default 5. */
  attempts?: number;
}

interface PushLine {
  flag: string;
  dst: string;
  summary: string;
}

function checkRef(ref: string): void {
  if (!/^refs\/[^:+\s\0]+$/.test(ref) || ref.includes("..")) throw new Error(`invalid ref ${JSON.stringify(ref)}`);
}

export class RemoteSource {
  readonly repo: GitRepo;
  readonly url: string;
  readonly branch: string;
  readonly ref: string;
  /** The last commit of the tracked branch seen. */
  current?: string;
  private readonly opts: RemoteSourceOptions;
  private inflight?: Promise<string | undefined>;
  private queued?: Promise<string | undefined>;
  private interval?: NodeJS.Timeout;
  private initialized?: Promise<void>;

  constructor(opts: RemoteSourceOptions) {
    checkRef(`refs/heads/${opts.branch}`);
    this.opts = opts;
    this.url = opts.url;
    this.branch = opts.branch;
    this.ref = `refs/heads/${opts.branch}`;
    this.repo = new GitRepo(join(opts.stateDir, "repo.git"), { identity: opts.identity });
  }

  /** Creates the mirror if needed, fetches once, and starts the interval. Returns the tracked commit. */
  async start(): Promise<string | undefined> {
    const commit = await this.trigger();
    const every = this.opts.intervalMs ?? 60_000;
    if (every > 0 && !this.interval) {
      this.interval = setInterval(() => {
        this.trigger().catch((err) => this.opts.onError?.(err));
      }, every);
    }
    return commit;
  }

  /** Fetches the tracked branch now; same as trigger(). */
  fetch(): Promise<string | undefined> {
    return this.trigger();
  }

  /**
   * Asks for a fetch. While one runs, further triggers share a single
   * follow-up fetch (a push may have landed after the running one started).
   */
  trigger(): Promise<string | undefined> {
    if (!this.inflight) return this.begin();
    this.queued ??= this.inflight
      .catch(() => undefined)
      .then(() => {
        this.queued = undefined;
        return this.begin();
      });
    return this.queued;
  }

  /** Fetches other refs (e.g. `+refs/heads/gitrack/status/x:refs/remotes/origin/gitrack/status/x`). */
  async fetchRefs(refspecs: string[]): Promise<void> {
    await this.ensureMirror();
    await this.repo.run(["fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--end-of-options", this.url, ...refspecs], {
      env: this.opts.env,
      timeoutMs: this.opts.networkTimeoutMs ?? 120_000,
    });
  }

  /**
   * Pushes local refs to the same names on the remote, never forcing. A ref
   * rejected because the remote moved is handed to `rebuild`, then retried.
   */
  async push(refs: string[], opts: PushOptions = {}): Promise<void> {
    refs.forEach(checkRef);
    if (refs.length === 0) return;
    await this.ensureMirror();
    const attempts = opts.attempts ?? 5;
    for (let attempt = 1; ; attempt++) {
      const args = ["push", "--porcelain", "--no-verify", "--end-of-options", this.url, ...refs.map((r) => `${r}:${r}`)];
      const r = await this.repo.run(args, {
        env: this.opts.env,
        okExitCodes: [1],
        timeoutMs: this.opts.networkTimeoutMs ?? 120_000,
      });
      const lines = parsePushPorcelain(r.stdout);
      const rejected = lines.filter((l) => l.flag === "!");
      if (r.exitCode === 0 && rejected.length === 0) return;
      const behind = rejected.filter((l) => /fetch first|non-fast-forward|stale info/.test(l.summary));
      if (rejected.length === 0 || behind.length < rejected.length || !opts.rebuild || attempt >= attempts) {
        const what = rejected.map((l) => `${l.dst} ${l.summary}`).join("; ");
        throw new GitError(["push", this.url, ...refs], r.exitCode, `${what ? `rejected: ${what}\n` : ""}${r.stderr}`);
      }
      await opts.rebuild(behind.map((l) => l.dst));
    }
  }

  /** Stops the interval and ends the mirror's reader process. */
  async close(): Promise<void> {
    if (this.interval) clearInterval(this.interval);
    this.interval = undefined;
    await this.inflight?.catch(() => undefined);
    await this.queued?.catch(() => undefined);
    await this.repo.close();
  }

  private begin(): Promise<string | undefined> {
    const run = this.fetchOnce().finally(() => {
      if (this.inflight === run) this.inflight = undefined;
    });
    this.inflight = run;
    return run;
  }

  private async fetchOnce(): Promise<string | undefined> {
    await this.ensureMirror();
    // The tracked branch follows the remote even if it was rewritten (+):
    // desired state is whatever the remote says.
    await this.fetchRefs([`+${this.ref}:${this.ref}`]);
    const commit = await this.repo.resolve(this.ref);
    if (commit && commit !== this.current) {
      this.current = commit;
      this.opts.onCommit?.(commit);
    }
    return commit;
  }

  private ensureMirror(): Promise<void> {
    this.initialized ??= (async () => {
      if (existsSync(join(this.repo.path, "HEAD"))) return;
      await mkdir(this.opts.stateDir, { recursive: true });
      // init + fetch rather than clone: the URL (and any credentials in it)
      // is never written into the mirror's config.
      await GitRepo.init(this.repo.path, { bare: true, initialBranch: this.branch });
    })().catch((err) => {
      this.initialized = undefined;
      throw err;
    });
    return this.initialized;
  }
}

/** `git push --porcelain` lines: "<flag> TAB <src>:<dst> TAB <summary>". */
function parsePushPorcelain(stdout: string): PushLine[] {
  const out: PushLine[] = [];
  for (const line of stdout.split("\n")) {
    const m = /^(.)\t([^\t]*):([^\t]+)\t(.*)$/.exec(line);
    if (m) out.push({ flag: m[1], dst: m[3], summary: m[4] });
  }
  return out;
}
