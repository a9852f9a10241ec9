// Problems found in a site repository, each pointing at a file, line and
// column a person can open. Validation never throws for bad input: it returns
// these.

export interface Diagnostic {
  file: string;
  line: number; // 1-based
  col: number; // 1-based
  message: string;
  /** the machine a problem concerns, when there is one (for JSON output) */
  machine?: string;
}

export function formatDiagnostic(d: Diagnostic): string {
  return `${d.file}:${d.line}:${d.col}: ${d.message}`;
}

export function compareDiagnostics(a: Diagnostic, b: Diagnostic): number {
  if (a.file !== b.file) return a.file < b.file ? -1 : 1;
  if (a.line !== b.line) return a.line - b.line;
  if (a.col !== b.col) return a.col - b.col;
  return a.message < b.message ? -1 : a.message > b.message ? 1 : 0;
}
