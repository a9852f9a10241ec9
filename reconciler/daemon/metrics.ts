// Prometheus text exposition of the daemon's counters.
export function metricsText(m: {
  site: string;
  counters: Record<string, number>;
  phases: string[];
  dhcp?: Record<string, number>;
  tftp?: Record<string, number>;
}): string {
  const lines: string[] = [];
  const label = `site="${m.site}"`;
  const snake = (s: string) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
  for (const [k, v] of Object.entries(m.counters)) lines.push(`gitrack_${snake(k)}_total{${label}} ${v}`);
  const phases: Record<string, number> = {};
  for (const p of m.phases) phases[p] = (phases[p] ?? 0) + 1;
  lines.push("# TYPE gitrack_machines gauge");
  for (const [p, n] of Object.entries(phases).sort()) lines.push(`gitrack_machines{${label},phase="${p}"} ${n}`);
  for (const [area, stats] of [["dhcp", m.dhcp], ["tftp", m.tftp]] as const) {
    if (!stats) continue;
    for (const [k, v] of Object.entries(stats)) if (typeof v === "number") lines.push(`gitrack_${area}_${snake(k)}{${label}} ${v}`);
  }
  return lines.join("\n") + "\n";
}
