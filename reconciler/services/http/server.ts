// The daemon's HTTP surface, as separate fastify plugins that never share a
// scope: boot routes (public: what firmware and iPXE fetch, no secrets),
// machine routes (a machine's token in the path), the read-only API (bearer
// token), the Git webhook (HMAC) and operations (health, metrics).
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import rateLimit from "@fastify/rate-limit";
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { timingSafeEqual } from "node:crypto";
import { IntervalLog } from "../interval-log.js";

/** What a request gets from the daemon; `status` other than 200 carries a message. */
export type Answer = { status: 200; body: string; contentType?: string } | { status: number; message: string };

export interface HttpBackend {
  bootScript(mac: string, remote: string): Answer;
  machineFile(machine: string, token: string | undefined, name: string, remote: string): Answer;
  machineEvent(machine: string, token: string | undefined, body: Record<string, unknown>, remote: string): Promise<Answer>;
  /** Path (under cacheDir) of a verified artifact, fetching it first if needed; undefined when unknown. */
  artifact(sha256: string): Promise<string | undefined>;
  readonly cacheDir: string;
  health(): { ok: boolean; [k: string]: unknown };
  metrics(): string;
  apiSites(): unknown;
  apiMachines(): unknown;
  apiMachine(name: string): unknown | undefined;
  webhook(rawBody: Buffer, signature: string | undefined): Promise<Answer>;
}

/**
 * A cached artifact, streamed in 1 MiB reads (@fastify/static's sendFile
 * moved a 30 MiB kernel at about a fifth of this rate here), with single
 * byte ranges (RFC 9110 14.2) and the digest as a strong ETag: the content
 * behind a URL never changes.
 */
async function sendArtifact(req: FastifyRequest, reply: FastifyReply, path: string, sha256: string): Promise<FastifyReply> {
  const size = (await stat(path)).size;
  const etag = `"${sha256}"`;
  reply.header("etag", etag).header("cache-control", "public, max-age=31536000, immutable").header("accept-ranges", "bytes");
  reply.type("application/octet-stream");
  if (req.headers["if-none-match"] === etag) return reply.code(304).send();
  let start = 0;
  let end = size - 1;
  const range = req.headers.range;
  const ifRange = req.headers["if-range"];
  if (range && (!ifRange || ifRange === etag)) {
    const m = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
    if (m && (m[1] !== "" || m[2] !== "")) {
      if (m[1] === "") {
        start = Math.max(0, size - Number(m[2]));
      } else {
        start = Number(m[1]);
        if (m[2] !== "") end = Math.min(end, Number(m[2]));
      }
      if (start > end || start >= size) {
        return reply.code(416).header("content-range", `bytes */${size}`).send();
      }
      reply.code(206).header("content-range", `bytes ${start}-${end}/${size}`);
    }
    // Several ranges or a malformed header: the whole file, as RFC 9110 allows.
  }
  reply.header("content-length", end - start + 1);
  if (req.method === "HEAD") return reply.send();
  return reply.send(createReadStream(path, { start, end, highWaterMark: 1024 * 1024 }));
}

export interface HttpLimits {
  /** Requests per minute one address may make to the token-bearing machine routes (files, events, discovery). */
  machineRequestsPerMinute: number;
  /** Boot scripts per minute one address may fetch (each carries a token). */
  bootScriptsPerMinute: number;
  /** Bytes of one event or discovery report. */
  eventBodyBytes: number;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = { machineRequestsPerMinute: 600, bootScriptsPerMinute: 120, eventBodyBytes: 64 * 1024 };

export interface HttpOptions {
  apiToken: string;
  logger: unknown;
  limits?: Partial<HttpLimits>;
}

/** A URL as it may be logged: the token of a machine route replaced. */
export function redactUrl(url: string): string {
  return url.replace(/^(\/m\/[^/?#]+\/)(?!files\/|events(?:[/?#]|$))[^/?#]+/, "$1[redacted]").replace(/([?&](?:token|secret)=)[^&#]*/gi, "$1[redacted]");
}

function send(reply: FastifyReply, a: Answer): FastifyReply {
  if ("body" in a) return reply.type(a.contentType ?? "text/plain; charset=utf-8").send(a.body);
  return reply.code(a.status).type("text/plain; charset=utf-8").send(a.message + "\n");
}

function bearerOk(req: FastifyRequest, token: string): boolean {
  const h = req.headers.authorization;
  if (!h || !h.startsWith("Bearer ")) return false;
  const given = Buffer.from(h.slice(7));
  const want = Buffer.from(token);
  return given.length === want.length && timingSafeEqual(given, want);
}

export async function buildHttpServer(backend: HttpBackend, opts: HttpOptions): Promise<FastifyInstance> {
  const limits = { ...DEFAULT_HTTP_LIMITS, ...opts.limits };
  const log = opts.logger as FastifyBaseLogger;
  const app = Fastify({
    // Requests are counted, not logged one by one: the daemon logs what matters.
    loggerInstance: log,
    disableRequestLogging: true,
    bodyLimit: 1024 * 1024,
    trustProxy: false,
  });
  const refusals = new IntervalLog(log);
  // Every error answer is made here, so no line fastify would write (with
  // the request's URL, and a machine's token in it) is ever written.
  app.setErrorHandler((err: Error & { statusCode?: number }, req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (status >= 500) log.error({ method: req.method, route: req.routeOptions.url, url: redactUrl(req.url), err: err.message }, "request failed");
    return reply
      .code(status)
      .type("text/plain; charset=utf-8")
      .send(`${status >= 500 ? "internal error" : err.message}\n`);
  });
  /** Per-address limits for a scope; a refusal is logged once per address and interval. */
  const limitScope = (scope: FastifyInstance, perMinute: number, what: string) =>
    scope.register(rateLimit, {
      max: perMinute,
      timeWindow: 60_000,
      cache: 10_000,
      onExceeded: (req) => {
        refusals.write(`rate:${what}:${req.ip}`, "warn", { remote: req.ip, route: req.routeOptions.url, perMinute }, `${what}: an address over its rate limit is answered 429`);
      },
      errorResponseBuilder: (_req, ctx) => Object.assign(new Error(`too many requests from your address (at most ${ctx.max} a minute); retry in ${ctx.after}`), { statusCode: 429 }),
    });
  let requests = 0;
  app.addHook("onRequest", async (req, reply) => {
    requests++;
    // A client that left before its request came up has no address any more
    // (req.ip is undefined): there is no one to answer, and nothing after
    // this (rate limits, the address checks of boot scripts) is asked about it.
    if (req.ip === undefined) {
      reply.hijack();
      req.raw.socket?.destroy();
      return reply;
    }
  });
  app.decorate("requestCount", () => requests);

  // Installers post form bodies too (busybox wget, curl -d).
  app.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string" }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(String(body))));
  });
  app.addContentTypeParser("text/plain", { parseAs: "string" }, (_req, body, done) => {
    try {
      done(null, JSON.parse(String(body)));
    } catch {
      done(null, { message: String(body) });
    }
  });

  // --- boot: public, read-only, no secrets --------------------------------
  await app.register(async (scripts) => {
    await limitScope(scripts, limits.bootScriptsPerMinute, "boot scripts");
    scripts.get<{ Params: { mac: string } }>("/boot/:mac", async (req, reply) => {
      const m = /^([0-9a-fA-F]{2}(?:[-:][0-9a-fA-F]{2}){5})\.ipxe$/.exec(req.params.mac);
      if (!m) return reply.code(404).send("not found\n");
      return send(reply, backend.bootScript(m[1]!.toLowerCase().replace(/-/g, ":"), req.ip));
    });
  });
  // Artifacts are the same for everyone and carry no secret: not limited.
  await app.register(async (boot) => {
    boot.get<{ Params: { sha: string; name: string } }>("/cache/:sha/:name", async (req, reply) => {
      if (!/^[0-9a-f]{64}$/.test(req.params.sha)) return reply.code(404).send("not found\n");
      const path = await backend.artifact(req.params.sha);
      if (!path) return reply.code(404).send("not found\n");
      return sendArtifact(req, reply, path, req.params.sha);
    });
  });

  // --- machines: everything here needs that machine's token ---------------
  await app.register(async (machines) => {
    await limitScope(machines, limits.machineRequestsPerMinute, "machine routes");
    type P = { machine: string; token?: string; name?: string };
    const file = async (req: FastifyRequest<{ Params: P }>, reply: FastifyReply) =>
      send(reply, backend.machineFile(req.params.machine, req.params.token, req.params.name ?? "", req.ip));
    machines.get("/m/:machine/:token/files/:name", file);
    machines.get("/m/:machine/files/:name", file);
    const event = async (req: FastifyRequest<{ Params: P }>, reply: FastifyReply) => {
      const posted = req.body;
      if (posted !== undefined && posted !== null && (typeof posted !== "object" || Array.isArray(posted))) {
        return reply.code(400).type("text/plain; charset=utf-8").send("an event is a JSON object or a form (phase=..., message=...)\n");
      }
      const body = { ...((req.query as Record<string, unknown>) ?? {}), ...((posted as Record<string, unknown> | undefined) ?? {}) };
      return send(reply, await backend.machineEvent(req.params.machine, req.params.token, body, req.ip));
    };
    for (const path of ["/m/:machine/:token/events", "/m/:machine/events"]) {
      machines.post(path, { bodyLimit: limits.eventBodyBytes }, event);
      // iPXE can only GET; discovery reports as query parameters.
      machines.get(path, event);
    }
  });

  // --- API: bearer token ---------------------------------------------------
  await app.register(
    async (api) => {
      await limitScope(api, limits.machineRequestsPerMinute, "API");
      api.addHook("onRequest", async (req, reply) => {
        if (req.url.startsWith("/api/v1/hooks/")) return;
        if (!bearerOk(req, opts.apiToken)) {
          reply.code(401).header("www-authenticate", "Bearer").send({ error: "a valid bearer token is required" });
        }
      });
      api.get("/sites", async () => backend.apiSites());
      api.get("/machines", async () => backend.apiMachines());
      api.get<{ Params: { name: string } }>("/machines/:name", async (req, reply) => {
        const m = backend.apiMachine(req.params.name);
        if (m === undefined) return reply.code(404).send({ error: `no machine ${req.params.name}` });
        return m;
      });
      // The webhook's HMAC covers the raw bytes, whatever the content type
      // (GitHub sends JSON or a form with payload=...): never parse here.
      api.removeAllContentTypeParsers();
      api.addContentTypeParser("*", { parseAs: "buffer" }, (_req, body, done) => done(null, body));
      api.post("/hooks/git", async (req, reply) => {
        const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.from(JSON.stringify(req.body ?? ""));
        const sig = req.headers["x-hub-signature-256"];
        return send(reply, await backend.webhook(raw, Array.isArray(sig) ? sig[0] : sig));
      });
    },
    { prefix: "/api/v1" },
  );

  // --- operations ----------------------------------------------------------
  app.get("/healthz", async (_req, reply) => {
    const h = backend.health();
    return reply.code(h.ok ? 200 : 503).send(h);
  });
  app.get("/metrics", async (_req, reply) => reply.type("text/plain; version=0.0.4").send(backend.metrics() + `gitrack_http_requests_total ${requests}\n`));
  return app;
}
