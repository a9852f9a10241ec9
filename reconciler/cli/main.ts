// The `gitrack` command. Each subcommand is one file in this folder; this
// one wires them into commander and maps errors to exit codes.
import { Command, Option } from "@commander-js/extra-typings";
import { CliError } from "./repo.js";
import { runExplain, runInit, runPlan, runRender, runValidate } from "./commands.js";
import { addServeCommand } from "./serve.js";
import { addStatusCommand } from "./status.js";

export function buildProgram(out: (s: string) => void, err: (s: string) => void): Command {
  const program = new Command()
    .name("gitrack")
    .description("GitOps for the physical underlay: a Git repository of sites, machines and boot environments drives DHCP, TFTP and HTTP/iPXE boot")
    .showHelpAfterError()
    .configureOutput({ writeOut: out, writeErr: err });
  program.exitOverride();

  const repoOpt = () => new Option("--repo <dir>", "the site repository").default(".").env("GITRACK_REPO");
  const revOpt = () => new Option("--rev <rev>", "the commit to read").default("HEAD");
  const formatOpt = () => new Option("--format <format>", "output format").choices(["text", "json"] as const).default("text" as const);

  program
    .command("init")
    .description("create a new site repository from the template, committed and valid")
    .argument("<dir>", "folder to create (must not exist or be empty)")
    .option("--branch <name>", "initial branch", "main")
    .action(async (dir, o) => {
      program.setOptionValue("exitCode", await runInit(dir, o.branch, out));
    });

  program
    .command("validate")
    .description("check a commit of the site repository; every problem as FILE:LINE:COL: message")
    .addOption(repoOpt())
    .addOption(revOpt())
    .addOption(formatOpt())
    .action(async (o) => {
      program.setOptionValue("exitCode", await runValidate(o, out));
    });

  program
    .command("render")
    .description("what a machine would be served: its iPXE script (default), kernel command line (cmdline) or a named file")
    .argument("<machine>", "machine name")
    .argument("[file]", "script | cmdline | a file name of its bootEnv", "script")
    .addOption(repoOpt())
    .addOption(revOpt())
    .option("--site <site>", "the machine's site, when the name is used in several")
    .option("--boot-env <name>", "render with this bootEnv instead of the machine's (e.g. local)")
    .action(async (machine, file, o) => {
      program.setOptionValue("exitCode", await runRender(machine, file, o, out));
    });

  program
    .command("explain")
    .description("each effective param of a machine and the file:line that set it")
    .argument("<machine>", "machine name")
    .argument("[param]", "only this param")
    .addOption(repoOpt())
    .addOption(revOpt())
    .option("--site <site>", "the machine's site, when the name is used in several")
    .addOption(formatOpt())
    .action(async (machine, param, o) => {
      program.setOptionValue("exitCode", await runExplain(machine, param, o, out));
    });

  program
    .command("plan")
    .description("the actions moving from one commit to another would cause; exit 0 nothing to do, 2 changes, 1 invalid")
    .addOption(repoOpt())
    .option("--from <rev>", "the current commit (default: the first parent of --to)")
    .requiredOption("--to <rev>", "the proposed commit")
    .option("--site <site>", "only this site")
    .addOption(formatOpt())
    .action(async (o) => {
      program.setOptionValue("exitCode", await runPlan(o, out));
    });

  const setExit = (code: number) => program.setOptionValue("exitCode", code);
  addServeCommand(program, setExit);
  addStatusCommand(program, out, setExit);
  return program;
}

/** Runs the CLI; resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const out = (s: string) => void process.stdout.write(s);
  const err = (s: string) => void process.stderr.write(s);
  const program = buildProgram(out, err);
  try {
    await program.parseAsync(argv);
    return (program.getOptionValue("exitCode") as number | undefined) ?? 0;
  } catch (e) {
    if (e instanceof CliError) {
      err(`gitrack: ${e.message}\n`);
      return e.exitCode;
    }
    const ce = e as { code?: string; exitCode?: number };
    if (typeof ce.code === "string" && ce.code.startsWith("commander.")) {
      return ce.code === "commander.helpDisplayed" || ce.code === "commander.version" ? 0 : (ce.exitCode ?? 1);
    }
    throw e;
  }
}
