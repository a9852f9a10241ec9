// Per-machine tokens: bound to the machine's name, MAC and generation, so a
// token from an earlier install or another machine opens nothing. The token
// is `<subject>.<hmac>`: the subject is not secret and finds the machine, the
// HMAC (keyed by a secret that never leaves the state dir) proves it.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export class TokenIssuer {
  private constructor(private readonly key: Buffer) {}

  /** Loads the site secret from the state dir, creating it (mode 0600) on first start. */
  static fromStateDir(stateDir: string): TokenIssuer {
    mkdirSync(stateDir, { recursive: true });
    const path = join(stateDir, "token-secret");
    if (!existsSync(path)) writeFileSync(path, randomBytes(32).toString("hex") + "\n", { mode: 0o600 });
    return new TokenIssuer(Buffer.from(readFileSync(path, "utf8").trim(), "hex"));
  }

  private mac(subject: string, binding: string): string {
    return createHmac("sha256", this.key).update(`${subject}\n${binding}`).digest("base64url").slice(0, 32);
  }

  /** A known machine's token. */
  forMachine(name: string, mac: string, generation: number): string {
    return `${name}.${this.mac(name, `${mac}\n${generation}`)}`;
  }

  /** An unknown MAC's token (discovery). */
  forUnknown(mac: string): string {
    const subject = `mac-${mac.replace(/:/g, "")}`;
    return `${subject}.${this.mac(subject, mac)}`;
  }

  /** The subject a token claims (machine name or mac-XXXXXXXXXXXX); not yet verified. */
  static subject(token: string): string | undefined {
    const dot = token.indexOf(".");
    if (dot <= 0) return undefined;
    return token.slice(0, dot);
  }

  static equal(a: string, b: string): boolean {
    const x = Buffer.from(a);
    const y = Buffer.from(b);
    return x.length === y.length && timingSafeEqual(x, y);
  }
}

/** The read-only API's bearer token: configured, or generated once into the state dir. */
export function apiToken(stateDir: string, configured?: string): { token: string; path?: string } {
  if (configured) return { token: configured };
  const path = join(stateDir, "api-token");
  if (!existsSync(path)) writeFileSync(path, randomBytes(24).toString("base64url") + "\n", { mode: 0o600 });
  return { token: readFileSync(path, "utf8").trim(), path };
}
