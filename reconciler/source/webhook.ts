// Webhook authentication: GitHub (and Gitea, Forgejo) sign the raw request
// body with HMAC-SHA256 and send `X-Hub-Signature-256: sha256=<hex>`.
import { createHmac, timingSafeEqual } from "node:crypto";

export const WEBHOOK_SIGNATURE_HEADER = "x-hub-signature-256";

/** True only when `header` is the HMAC-SHA256 of `rawBody` under `secret`; compared in constant time. */
export function verifyWebhookSignature(secret: string, rawBody: Buffer, header: string | undefined): boolean {
  if (!secret || typeof header !== "string") return false;
  const m = /^sha256=([0-9a-fA-F]{64})$/.exec(header.trim());
  if (!m) return false;
  const expected = createHmac("sha256", secret).update(rawBody).digest();
  const given = Buffer.from(m[1], "hex");
  return given.length === expected.length && timingSafeEqual(given, expected);
}
