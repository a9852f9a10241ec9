// The daemon logs one JSON object per line (pino); tests and benchmarks read
// those lines back to see what it did.
import { readFileSync } from "node:fs";

export type LogLine = Record<string, unknown>;

/** The JSON lines of a log text; other lines (a stack trace, a warning) are left out. */
export function parseJsonLines(text: string): LogLine[] {
  const out: LogLine[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      out.push(JSON.parse(line) as LogLine);
    } catch {
      /* a line cut short while the daemon was writing it */
    }
  }
  return out;
}

/** The JSON lines of a log file; none when it does not exist yet. */
export function readJsonLog(path: string): LogLine[] {
  try {
    return parseJsonLines(readFileSync(path, "utf8"));
  } catch {
    return [];
  }
}
