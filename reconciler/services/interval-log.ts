// A warning that a flood would repeat once per packet or request, written
// at most once per key in an interval; the next line says how many were
// left out in between. Keys are bounded: past `maxKeys` the table starts
// over (a flood of distinct keys then costs one line per key per interval
// at worst, never memory).

export type IntervalLevel = "debug" | "info" | "warn" | "error";

export type IntervalLogger = Record<IntervalLevel, (obj: object, msg?: string) => void>;

export class IntervalLog {
  private readonly seen = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly log: Pick<IntervalLogger, "info" | "warn" | "error">,
    private readonly intervalMs = 10_000,
    private readonly maxKeys = 10_000,
  ) {}

  /** Logs unless `key` was logged less than the interval ago; returns whether it logged. */
  write(key: string, level: "info" | "warn" | "error", obj: object, msg: string): boolean {
    const now = Date.now();
    const s = this.seen.get(key);
    if (s && now - s.at < this.intervalMs) {
      s.suppressed++;
      return false;
    }
    if (this.seen.size >= this.maxKeys) this.seen.clear();
    this.seen.set(key, { at: now, suppressed: 0 });
    this.log[level]({ ...obj, ...(s?.suppressed ? { suppressed: s.suppressed } : {}) }, msg);
    return true;
  }

  /** Forgets keys whose interval has passed (call now and then). */
  sweep(): void {
    const cutoff = Date.now() - this.intervalMs;
    for (const [k, s] of this.seen) if (s.at < cutoff && s.suppressed === 0) this.seen.delete(k);
  }
}
