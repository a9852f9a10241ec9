// JSON logs (pino), one line per event that matters; pretty on a TTY when
// pino-pretty (a development dependency) is installed.
import { createRequire } from "node:module";
import pino, { type Logger } from "pino";

export function createLogger(level = "info", pretty = process.stdout.isTTY === true): Logger {
  const base = {
    level,
    base: { app: "gitrack" },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Belt and braces: tokens and secrets are never logged on purpose.
    redact: { paths: ["token", "*.token", "secret", "*.secret", "authorization", "*.authorization", "apiToken"], censor: "[redacted]" },
  };
  if (pretty) {
    try {
      createRequire(import.meta.url).resolve("pino-pretty");
      return pino({ ...base, transport: { target: "pino-pretty", options: { translateTime: "SYS:HH:MM:ss", ignore: "pid,hostname,app" } } });
    } catch {
      /* not installed: plain JSON */
    }
  }
  return pino(base);
}
