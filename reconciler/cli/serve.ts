// `gitrack serve`: the site daemon. Every flag can also come from a GITRACK_*
// variable; flags win.
import { Command, Option } from "@commander-js/extra-typings";
import type { ServeConfig } from "../daemon/config.js";

const int = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`not a port or count: ${v}`);
  return n;
};

export function addServeCommand(program: Command, setExit: (code: number) => void): void {
  program
    .command("serve")
    .description("run the site daemon: watch the repository, serve DHCP/TFTP/HTTP boot, track machines, write status to Git")
    .addOption(new Option("--repo <path-or-url>", "local repository path, or a URL to clone (http(s), ssh, file)").env("GITRACK_REPO").default("."))
    .addOption(new Option("--site <name>", "the site this daemon serves").env("GITRACK_SITE").makeOptionMandatory())
    .addOption(new Option("--state-dir <dir>", "leases, observed state, caches").env("GITRACK_STATE_DIR").makeOptionMandatory())
    .addOption(new Option("--branch <branch>", "tracked branch").env("GITRACK_BRANCH").default("main"))
    .addOption(new Option("--listen <addr>", "address for HTTP and TFTP").env("GITRACK_LISTEN").default("0.0.0.0"))
    .addOption(new Option("--http-port <n>", "HTTP port").env("GITRACK_HTTP_PORT").default(8080).argParser(int))
    .addOption(new Option("--tftp-port <n>", "TFTP port").env("GITRACK_TFTP_PORT").default(69).argParser(int))
    .addOption(new Option("--dhcp-port <n>", "DHCP port").env("GITRACK_DHCP_PORT").default(67).argParser(int))
    .addOption(new Option("--proxy-dhcp-port <n>", "proxyDHCP port (0: off)").env("GITRACK_PROXY_DHCP_PORT").default(4011).argParser(int))
    .addOption(new Option("--no-dhcp", "do not serve DHCP").env("GITRACK_NO_DHCP"))
    .addOption(new Option("--no-tftp", "do not serve TFTP").env("GITRACK_NO_TFTP"))
    .addOption(new Option("--tftp-root <dir>", "folder served by TFTP (default: Debian's ipxe files)").env("GITRACK_TFTP_ROOT"))
    .addOption(
      new Option("--tftp-busy-poll-us <n>", "after each TFTP window sent, poll for the ACK this many microseconds before sleeping (backs off when unanswered; 0: off)")
        .env("GITRACK_TFTP_BUSY_POLL_US")
        .default(200)
        .argParser(int),
    )
    .addOption(
      new Option("--no-boot-script-address-check", "serve a machine's iPXE script (it carries the machine's token) to any address, not only the machine's own").env(
        "GITRACK_NO_BOOT_SCRIPT_ADDRESS_CHECK",
      ),
    )
    .addOption(new Option("--fetch-interval <s>", "safety-net fetch interval of a remote repository").env("GITRACK_FETCH_INTERVAL").default(60).argParser(int))
    .addOption(new Option("--install-timeout <s>", "seconds a machine may be Booting/Installing before Failed").env("GITRACK_INSTALL_TIMEOUT").default(1800).argParser(Number))
    .addOption(new Option("--status-interval <s>", "minimum seconds between status commits").env("GITRACK_STATUS_INTERVAL").default(3).argParser(Number))
    .addOption(new Option("--advertise-url <url>", "HTTP base machines use (default http://<site boot.advertise>:<httpPort>)").env("GITRACK_ADVERTISE_URL"))
    .addOption(new Option("--log-level <level>", "pino log level").env("GITRACK_LOG_LEVEL").default("info"))
    .action(async (o) => {
      const cfg: ServeConfig = {
        repo: o.repo,
        site: o.site,
        stateDir: o.stateDir,
        branch: o.branch,
        listen: o.listen,
        httpPort: o.httpPort,
        tftpPort: o.tftpPort,
        dhcpPort: o.dhcpPort,
        proxyDhcpPort: o.proxyDhcpPort === 0 ? false : o.proxyDhcpPort,
        dhcp: o.dhcp !== false,
        tftp: o.tftp !== false,
        tftpRoot: o.tftpRoot,
        tftpBusyPollUs: o.tftpBusyPollUs,
        bootScriptAddressCheck: o.bootScriptAddressCheck !== false,
        fetchIntervalSec: o.fetchInterval,
        installTimeoutSec: o.installTimeout,
        statusIntervalSec: o.statusInterval,
        webhookSecret: process.env.GITRACK_WEBHOOK_SECRET,
        apiToken: process.env.GITRACK_API_TOKEN,
        advertiseUrl: o.advertiseUrl,
        logLevel: o.logLevel,
      };
      // Loaded here, not at the top: the offline commands need none of it.
      const { Daemon } = await import("../daemon/daemon.js");
      const { createLogger } = await import("../daemon/logger.js");
      const log = createLogger(cfg.logLevel);
      // The last line of defence, not a way of working: every send, socket
      // and promise is handled where it happens, and a line logged here is a
      // bug (the hardening tests fail on it). A rejection nobody awaited
      // leaves the services running; an exception may have left any state
      // half-changed, so the daemon ends and its supervisor starts it again.
      process.on("unhandledRejection", (reason) => {
        log.fatal({ err: reason instanceof Error ? { message: reason.message, stack: reason.stack } : String(reason) }, "unhandled rejection");
      });
      process.on("uncaughtException", (err) => {
        log.fatal({ err: { message: err.message, stack: err.stack } }, "uncaught exception");
        log.flush?.();
        process.exit(70);
      });
      const daemon = await Daemon.start(cfg, log);
      await new Promise<void>((resolve) => {
        const stop = (sig: string) => {
          log.info({ signal: sig }, "stopping");
          daemon.stop().then(resolve, (err) => {
            log.error({ err: String(err) }, "stopping failed");
            resolve();
          });
        };
        process.once("SIGINT", () => stop("SIGINT"));
        process.once("SIGTERM", () => stop("SIGTERM"));
      });
      setExit(0);
    });
}
