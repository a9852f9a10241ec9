// A durable key/value store: an in-memory Map backed by an append-only NDJSON
// journal (each append fdatasync'd before put/delete resolves) and a
// snapshot that compaction rewrites atomically (temp file, fsync, rename,
// fsync of the directory). Opening recovers: snapshot, then the journal
// replayed on top; a torn last line (a crash mid-append) is dropped.
//
// Group commit: every put/delete issued while no flush is running is
// written by one write() and made durable by one fdatasync(); calls issued
// while a flush runs form the next batch. So N concurrent callers cost one
// sync, not N.
//
// Journal records are absolute ("k is v", "k is gone"), so replaying a
// journal over a snapshot that already contains some of it gives the same
// state: a crash at any point of compaction loses nothing.
import { open, mkdir, rename, readFile, unlink, type FileHandle } from "node:fs/promises";
import { join } from "node:path";

export interface JournalStoreOptions {
  /**
   * Compact when the journal holds more than this many records and more
   * than twice as many records as there are live keys. Default 10,000.
   */
  compactAfter?: number;
  /** fdatasync each batch (default true). Only tests and benches turn it off. */
  sync?: boolean;
  /** Told about recoverable damage found on open (torn or bad lines). */
  onWarning?: (message: string) => void;
}

export interface JournalRecovery {
  snapshotEntries: number;
  journalRecords: number;
  /** Lines that did not parse and were skipped (a torn tail included). */
  skippedLines: number;
  /** Bytes cut from the end of the journal (a torn last line). */
  truncatedBytes: number;
}

type Record_<V> = { k: string; v: V } | { k: string; d: 1 };

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
}

const SNAPSHOT_VERSION = 1;

export class JournalStore<V> {
  private readonly map = new Map<string, V>();
  private pending: string[] = [];
  private waiters: Waiter[] = [];
  private flushing: Promise<void> | null = null;
  private scheduled = false;
  private journalRecords = 0;
  private closed = false;
  private failed: Error | null = null;
  /** What open() found and repaired. */
  recovery: JournalRecovery = { snapshotEntries: 0, journalRecords: 0, skippedLines: 0, truncatedBytes: 0 };
  /** Counters for metrics. */
  readonly counters = { batches: 0, records: 0, compactions: 0 };

  private constructor(
    private readonly dir: string,
    private readonly name: string,
    private journal: FileHandle,
    private readonly opts: Required<Omit<JournalStoreOptions, "onWarning">> & Pick<JournalStoreOptions, "onWarning">,
  ) {}

  static async open<V>(dir: string, name: string, options: JournalStoreOptions = {}): Promise<JournalStore<V>> {
    if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new Error(`bad store name ${JSON.stringify(name)}`);
    await mkdir(dir, { recursive: true });
    const opts = { compactAfter: options.compactAfter ?? 10_000, sync: options.sync ?? true, onWarning: options.onWarning };
    const snapPath = join(dir, `${name}.snapshot.json`);
    const journalPath = join(dir, `${name}.journal.ndjson`);
    // A temp snapshot left by a crash mid-compaction is incomplete by
    // definition (the rename never happened): discard it.
    await unlink(`${snapPath}.tmp`).catch(() => undefined);

    const map = new Map<string, V>();
    const recovery: JournalRecovery = { snapshotEntries: 0, journalRecords: 0, skippedLines: 0, truncatedBytes: 0 };
    let snapText: string | null = null;
    try {
      snapText = await readFile(snapPath, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    if (snapText !== null) {
      let snap: { version: number; entries: Array<[string, V]> };
      try {
        snap = JSON.parse(snapText);
      } catch {
        // The snapshot is only ever renamed into place complete and synced,
        // so this is outside damage; refusing to start is the honest answer.
        throw new Error(`store ${snapPath}: snapshot is not valid JSON; restore it from a backup or remove it`);
      }
      if (snap.version !== SNAPSHOT_VERSION || !Array.isArray(snap.entries)) {
        throw new Error(`store ${snapPath}: unknown snapshot version ${snap.version}`);
      }
      for (const [k, v] of snap.entries) map.set(k, v);
      recovery.snapshotEntries = map.size;
    }

    const journal = await open(journalPath, "a+");
    const data = await journal.readFile();
    let pos = 0;
    let lastLineUnterminated = false;
    while (pos < data.length) {
      const nl = data.indexOf(0x0a, pos);
      const terminated = nl !== -1;
      const next = terminated ? nl + 1 : data.length;
      const line = data.toString("utf8", pos, terminated ? nl : data.length);
      let rec: Record_<V> | null = null;
      if (line.trim() !== "") {
        try {
          const r = JSON.parse(line) as Record_<V>;
          if (r && typeof r === "object" && typeof r.k === "string") rec = r;
        } catch {
          rec = null;
        }
        if (rec) {
          if ("d" in rec) map.delete(rec.k);
          else map.set(rec.k, rec.v);
          recovery.journalRecords++;
          if (!terminated) lastLineUnterminated = true;
        } else if (!terminated) {
          // A crash in the middle of an append: the batch was never
          // acknowledged, so dropping its torn tail loses nothing promised.
          recovery.skippedLines++;
          recovery.truncatedBytes = data.length - pos;
          opts.onWarning?.(`store ${journalPath}: dropped a torn last line (${data.length - pos} bytes)`);
        } else {
          recovery.skippedLines++;
          opts.onWarning?.(`store ${journalPath}: skipped a line that is not a record at byte ${pos}`);
        }
      }
      if (!terminated && recovery.truncatedBytes > 0) {
        await journal.truncate(pos);
        await journal.datasync();
      }
      pos = next;
    }
    if (lastLineUnterminated) {
      // A whole record without its newline: add one so the next append
      // starts on a line of its own.
      await journal.appendFile("\n");
      await journal.datasync();
    }

    const store = new JournalStore<V>(dir, name, journal, opts);
    for (const [k, v] of map) store.map.set(k, v);
    store.journalRecords = recovery.journalRecords;
    store.recovery = recovery;
    return store;
  }

  get size(): number {
    return this.map.size;
  }

  get(key: string): V | undefined {
    return this.map.get(key);
  }

  has(key: string): boolean {
    return this.map.has(key);
  }

  entries(): IterableIterator<[string, V]> {
    return this.map.entries();
  }

  keys(): IterableIterator<string> {
    return this.map.keys();
  }

  /**
   * Sets key to value. The in-memory value changes at once (get() sees it);
   * the promise resolves when the record is on disk.
   */
  put(key: string, value: V): Promise<void> {
    const bad = this.unusable();
    if (bad) return Promise.reject(bad);
    const line = JSON.stringify({ k: key, v: value });
    this.map.set(key, value);
    return this.enqueue(line);
  }

  /** Removes key; resolves when the removal is on disk. */
  delete(key: string): Promise<void> {
    const bad = this.unusable();
    if (bad) return Promise.reject(bad);
    this.map.delete(key);
    return this.enqueue(JSON.stringify({ k: key, d: 1 }));
  }

  /** Writes a snapshot of the current state and empties the journal. */
  async compact(): Promise<void> {
    const bad = this.unusable();
    if (bad) throw bad;
    await this.quiesce();
    await this.compactNow();
  }

  /** Flushes what is pending and closes the files. Further calls throw. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.quiesce();
    this.closed = true;
    await this.journal.close();
  }

  private unusable(): Error | null {
    if (this.closed) return new Error(`store ${this.name} is closed`);
    if (this.failed) return new Error(`store ${this.name} failed earlier: ${this.failed.message}`);
    return null;
  }

  private enqueue(line: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending.push(line);
      this.waiters.push({ resolve, reject });
      this.schedule();
    });
  }

  /** Starts a flush after the current tick unless one is running or due. */
  private schedule(): void {
    if (this.scheduled || this.flushing) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flushing = this.flushLoop().finally(() => {
        this.flushing = null;
        // Puts made while the last batch was being acknowledged.
        if (this.pending.length > 0) this.schedule();
      });
    });
  }

  /** Writes batches until nothing is pending: one write + one fdatasync each. */
  private async flushLoop(): Promise<void> {
    while (this.pending.length > 0) {
      const lines = this.pending;
      const waiters = this.waiters;
      this.pending = [];
      this.waiters = [];
      try {
        await this.journal.write(lines.join("\n") + "\n");
        if (this.opts.sync) await this.journal.datasync();
        this.journalRecords += lines.length;
        this.counters.batches++;
        this.counters.records += lines.length;
        if (this.journalRecords > this.opts.compactAfter && this.journalRecords > 2 * this.map.size) {
          await this.compactNow();
        }
      } catch (err) {
        // The in-memory state is ahead of the disk now; stop accepting
        // writes rather than acknowledge anything that is not durable.
        this.failed = err as Error;
        for (const w of [...waiters, ...this.waiters]) w.reject(err as Error);
        this.pending = [];
        this.waiters = [];
        return;
      }
      for (const w of waiters) w.resolve();
    }
  }

  private async quiesce(): Promise<void> {
    while (this.flushing || this.scheduled || this.pending.length > 0) {
      if (this.flushing) await this.flushing;
      else await new Promise<void>((r) => setImmediate(r));
      if (this.pending.length > 0 && !this.flushing && !this.scheduled) this.schedule();
    }
  }

  /** Snapshot = temp + fsync + rename + fsync(dir); then empty the journal. */
  private async compactNow(): Promise<void> {
    const snapPath = join(this.dir, `${this.name}.snapshot.json`);
    const tmp = `${snapPath}.tmp`;
    const body = JSON.stringify({ version: SNAPSHOT_VERSION, entries: [...this.map] });
    const fh = await open(tmp, "w");
    try {
      await fh.writeFile(body);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, snapPath);
    await fsyncDir(this.dir);
    await this.journal.truncate(0);
    await this.journal.sync();
    this.journalRecords = 0;
    this.counters.compactions++;
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
