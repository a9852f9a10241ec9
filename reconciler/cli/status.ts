// `gitrack status`: the machines table from the status branch of a site
// (gitrack/status/<site>), read from Git like any other commit.
import { Command, Option } from "@commander-js/extra-typings";
import jsyaml from "js-yaml";
import { openRepo } from "./repo.js";
import { CliError } from "./repo.js";

interface StatusDoc {
  metadata: { name: string; annotations?: Record<string, string> };
  spec?: { generation?: number; intent?: string; bootEnv?: string };
  status?: { phase?: string; addresses?: Array<{ ip: string }>; installedGeneration?: number | null; lastBoot?: string | null; bootTarget?: string; message?: string };
}

export function addStatusCommand(program: Command, out: (s: string) => void, setExit: (code: number) => void): void {
  program
    .command("status")
    .description("machines of a site as the daemon last recorded them on gitrack/status/<site>")
    .addOption(new Option("--repo <dir>", "the site repository").default(".").env("GITRACK_REPO"))
    .option("--site <site>", "the site (default: every site with a status branch)")
    .addOption(new Option("--format <format>", "output format").choices(["text", "json"] as const).default("text" as const))
    .action(async (o) => {
      const repo = await openRepo(o.repo);
      try {
        let sites: string[];
        if (o.site) sites = [o.site];
        else {
          const { stdout } = await repo.run(["for-each-ref", "--format=%(refname)", "refs/heads/gitrack/status/"]);
          sites = stdout.split("\n").filter(Boolean).map((r) => r.replace("refs/heads/gitrack/status/", ""));
        }
        if (!sites.length) throw new CliError("no status branch yet (gitrack serve writes gitrack/status/<site>)");
        const all: Array<{ site: string; commit: string; desired?: string; machines: StatusDoc[] }> = [];
        for (const site of sites) {
          const commit = await repo.resolve(`refs/heads/gitrack/status/${site}`);
          if (!commit) throw new CliError(`no status branch gitrack/status/${site}`);
          const files = (await repo.listFiles(commit, { exts: [".yaml"] })).filter((f) => f.path.startsWith("machines/"));
          const blobs = await repo.readBlobs(files.map((f) => f.oid));
          const machines = files.map((f) => jsyaml.load(blobs.get(f.oid) ?? "", { schema: jsyaml.CORE_SCHEMA }) as StatusDoc).sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
          const siteFile = await repo.readBlobs([(await repo.listFiles(commit)).find((f) => f.path === "site.yaml")?.oid ?? ""]).catch(() => new Map());
          const siteDoc = jsyaml.load([...siteFile.values()][0] ?? "{}") as { metadata?: { annotations?: Record<string, string> } } | undefined;
          all.push({ site, commit, desired: siteDoc?.metadata?.annotations?.["gitrack.io/desired-commit"], machines });
        }
        if (o.format === "json") {
          out(JSON.stringify(all, null, 2) + "\n");
        } else {
          for (const s of all) {
            out(`site ${s.site}  status ${s.commit.slice(0, 12)}  desired ${s.desired?.slice(0, 12) ?? "-"}\n`);
            const rows = [["MACHINE", "PHASE", "ADDRESS", "GEN", "INSTALLED", "BOOT", "LAST BOOT"]];
            for (const m of s.machines) {
              rows.push([
                m.metadata.name,
                m.status?.phase ?? "-",
                m.status?.addresses?.map((a) => a.ip).join(",") || "-",
                String(m.spec?.generation ?? "-"),
                String(m.status?.installedGeneration ?? "-"),
                m.status?.bootTarget ?? "-",
                m.status?.lastBoot ?? "-",
              ]);
            }
            const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
            for (const r of rows) out(r.map((c, i) => c.padEnd(w[i]!)).join("  ").trimEnd() + "\n");
          }
        }
        setExit(0);
      } finally {
        await repo.close();
      }
    });
}
