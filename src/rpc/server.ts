/**
 * The JSON-RPC 2.0 server over HTTP POST, with HTTP Basic auth (cookie or user/password).
 * It knows no chain methods: the composition root registers them with `register()`. Other
 * HTTP surfaces (/metrics, the dashboard) mount with `addRoute()` on the same listener.
 *
 * Request flow: route table → auth → concurrency limit → body (capped before buffering) →
 * JSON parse → single call or batch → per-call param parsing, handler with a timeout, result
 * serialisation. This file holds the listener, routing, auth and the RPC endpoint's limits; the
 * HTTP helpers (body reading, JSON replies) are in http.ts and the JSON-RPC dispatch (batches,
 * params, timeouts, errors) in jsonRpc.ts.
 *
 * Wire conventions:
 * - Always answers in 2.0 style, but accepts "jsonrpc": "1.0" or no "jsonrpc" (bitcoin-cli).
 * - JSON-RPC-level errors (parse error, unknown method, bad params) use HTTP 200, as bitcoind
 *   does for 2.0 requests. HTTP-level refusals use their status: 401 auth, 413 body too
 *   large, 503 busy, 404/405 routing.
 * - Results are serialised with `toRpcJson`: a bigint becomes a JSON number when it is a safe
 *   integer and a decimal string otherwise (a JSON number beyond 2^53 would be rounded by
 *   most clients, silently); a Uint8Array/Buffer becomes a hex string.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Clock } from "../util/clock.js";
import { CodedError } from "../util/codedError.js";
import type { Random } from "../util/random.js";
import { COOKIE_SECRET_BYTES, COOKIE_USER, removeCookieFile, writeCookieFile } from "./cookie.js";
import {
  INTERNAL_ERROR,
  INVALID_REQUEST,
  PARSE_ERROR,
  RPC_INVALID_PARAMETER,
  RpcError,
  SERVER_ERROR,
} from "./errors.js";
import {
  BODY_TIMEOUT_MS,
  DRAIN_MS,
  TOO_LARGE,
  TOO_SLOW,
  isLoopbackHost,
  readBody,
  sendJson,
} from "./http.js";
import { JsonRpcDispatcher, errorResponse, type MethodDef } from "./jsonRpc.js";
import { describeParams, synopsis, validateParamSpecs } from "./params.js";

export type { ParamSpec, ParsedParams, ParamType } from "./params.js";
export type { CallContext, MethodDef } from "./jsonRpc.js";
export { toRpcJson } from "./jsonRpc.js";
export { isLoopbackHost } from "./http.js";

/** The logging the server needs; structurally compatible with the project's Logger. */
export interface RpcLogger {
  info(msg: string, ctx?: Record<string, unknown>): void;
  warn(msg: string, ctx?: Record<string, unknown>, err?: unknown): void;
  error(msg: string, ctx?: Record<string, unknown>, err?: unknown): void;
}

export type RpcAuth =
  { kind: "cookie"; cookieFile: string } | { kind: "userpass"; user: string; password: string };

export interface RpcServerOptions {
  host: string;
  /** 0 = any free port. */
  port: number;
  auth: RpcAuth;
  maxBodyBytes?: number;
  maxConcurrent?: number;
  maxBatch?: number;
  requestTimeoutMs?: number;
  /** How long stop() lets requests in flight finish before cutting their connections. */
  stopGraceMs?: number;
  /** Called after every call of a registered method (unknown names are not reported, to keep
   * metric labels bounded). */
  onCall?: (method: string, durationMs: number, ok: boolean) => void;
}

export const defaultRpcServerOptions = {
  /** 1 MiB: far above any legitimate call (a raw transaction is capped well below it). */
  maxBodyBytes: 1024 * 1024,
  /** 32 requests handled at once; more would only queue behind the chain lock anyway. */
  maxConcurrent: 32,
  /** 100 calls per batch bounds the work one HTTP request can ask for. */
  maxBatch: 100,
  /** 30 s: no legitimate handler takes longer; a stuck one must not hold a slot forever. */
  requestTimeoutMs: 30_000,
  /** 2 s to finish in-flight requests at shutdown. */
  stopGraceMs: 2_000,
} as const;

export interface RpcServerModules {
  logger: RpcLogger;
  clock: Clock;
  random: Random;
}

export type RouteHandler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

export class RpcServerError extends CodedError<"LISTEN_FAILED" | "ALREADY_STARTED" | "BAD_OPTIONS"> {}

interface Route {
  handler: RouteHandler;
  auth: boolean;
}

/** Log a wrong-credentials warning at most this often, so a password guesser cannot flood logs. */
const AUTH_WARN_INTERVAL_MS = 10_000;
/**
 * A connection that has sent no request yet counts as a caller waiting (callerWaiting) for this
 * long after it was accepted; one that stays silent longer is not waiting for anything.
 */
const FRESH_CONNECTION_MS = 10_000;
/** Connections tracked as fresh at once; past this, callerWaiting is simply true. */
const MAX_FRESH_CONNECTIONS = 1_024;

export class RpcServer {
  private readonly opts: Required<Omit<RpcServerOptions, "onCall">> & Pick<RpcServerOptions, "onCall">;
  private readonly logger: RpcLogger;
  private readonly clock: Clock;
  private readonly random: Random;
  private readonly methods = new Map<string, MethodDef>();
  private readonly routes = new Map<string, Route>();
  /** JSON-RPC dispatch over `methods` (the live table `register` adds to). */
  private readonly rpc: JsonRpcDispatcher;

  private server: Server | null = null;
  private bound: { host: string; port: number } | null = null;
  /** sha256("user:password"): compared in constant time against the request's. */
  private expectedAuthDigest: Buffer | null = null;
  private cookiePassword: string | null = null;
  private stopping = false;
  /** RPC requests being handled, for the maxConcurrent limit. */
  private rpcActive = 0;
  /** All HTTP requests being handled, for the drain at stop(). */
  private inFlight = 0;
  private onDrained: (() => void) | null = null;
  private lastAuthWarnAt = -Infinity;
  private suppressedAuthWarnings = 0;
  /** Accepted connections with no request yet, with when they were accepted (monotonic). */
  private readonly fresh = new Map<Socket, number>();

  constructor(opts: RpcServerOptions, modules: RpcServerModules) {
    this.opts = { ...defaultRpcServerOptions, ...stripUndefined(opts) };
    this.logger = modules.logger;
    this.clock = modules.clock;
    this.random = modules.random;
    const { auth } = this.opts;
    if (auth.kind === "userpass") {
      if (auth.user === "" || auth.password === "") {
        throw new RpcServerError("BAD_OPTIONS", "RPC user and password must not be empty");
      }
      if (auth.user.includes(":")) {
        throw new RpcServerError("BAD_OPTIONS", 'RPC user must not contain ":" (HTTP Basic cannot carry it)');
      }
    }
    for (const key of ["maxBodyBytes", "maxConcurrent", "maxBatch", "requestTimeoutMs"] as const) {
      const v = this.opts[key];
      if (!Number.isSafeInteger(v) || v <= 0) {
        throw new RpcServerError("BAD_OPTIONS", `RPC option ${key} must be a positive integer, got ${v}`);
      }
    }
    this.rpc = new JsonRpcDispatcher(this.methods, this.opts, this.clock, this.logger);
    this.registerHelp();
  }

  /**
   * Whether a caller waits for this thread: a request is being handled, or a connection came in
   * (within FRESH_CONNECTION_MS) and its request has not been read yet. The sync then commits in
   * short parts, so the answer does not wait behind whole batches of blocks.
   */
  callerWaiting(): boolean {
    if (this.inFlight > 0 || this.fresh.size >= MAX_FRESH_CONNECTIONS) return true;
    const now = this.clock.monotonic();
    for (const at of this.fresh.values()) if (now - at < FRESH_CONNECTION_MS) return true;
    return false;
  }

  /** The bound address once started, else null. */
  get address(): { host: string; port: number } | null {
    return this.bound;
  }

  register(name: string, def: MethodDef): void {
    if (!/^[a-z][a-z0-9_]*$/.test(name)) throw new Error(`bad RPC method name ${JSON.stringify(name)}`);
    if (this.methods.has(name)) throw new Error(`RPC method ${name} is already registered`);
    validateParamSpecs(name, def.params);
    this.methods.set(name, def);
  }

  /** Mounts another HTTP handler on this listener. Routes require auth unless `auth: false`. */
  addRoute(method: "GET" | "POST", path: string, handler: RouteHandler, opts: { auth?: boolean } = {}): void {
    if (!path.startsWith("/")) throw new Error(`route path must start with "/": ${path}`);
    if (method === "POST" && path === "/") throw new Error('POST "/" is the JSON-RPC endpoint');
    const key = `${method} ${path}`;
    if (this.routes.has(key)) throw new Error(`route ${key} is already registered`);
    this.routes.set(key, { handler, auth: opts.auth ?? true });
  }

  async start(): Promise<{ host: string; port: number }> {
    if (this.server) throw new RpcServerError("ALREADY_STARTED", "RPC server is already started");
    const { host, port, auth } = this.opts;
    if (!isLoopbackHost(host)) {
      this.logger.warn(
        "RPC is listening on a non-loopback address: anyone who can reach it may try credentials",
        { host, port },
      );
    }
    let user: string;
    let password: string;
    if (auth.kind === "cookie") {
      user = COOKIE_USER;
      password = this.random.bytes(COOKIE_SECRET_BYTES).toString("hex");
      writeCookieFile(auth.cookieFile, password);
      this.cookiePassword = password;
    } else {
      user = auth.user;
      password = auth.password;
    }
    this.expectedAuthDigest = sha256(`${user}:${password}`);
    this.stopping = false;

    const server = createServer((req, res) => {
      this.fresh.delete(req.socket);
      void this.onRequest(req, res);
    });
    server.on("connection", (socket: Socket) => {
      if (this.fresh.size >= MAX_FRESH_CONNECTIONS) return;
      this.fresh.set(socket, this.clock.monotonic());
      socket.once("close", () => this.fresh.delete(socket));
    });
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          resolve();
        });
      });
    } catch (err) {
      this.removeCookie();
      const reason = err instanceof Error ? err.message : String(err);
      throw new RpcServerError("LISTEN_FAILED", `cannot listen for RPC on ${host}:${port}: ${reason}`, {
        host,
        port,
      });
    }
    server.on("error", (err) => this.logger.error("RPC server error", {}, err));
    this.server = server;
    const info = server.address() as AddressInfo;
    this.bound = { host: info.address, port: info.port };
    this.logger.info("RPC server listening", { host: info.address, port: info.port, auth: auth.kind });
    return { ...this.bound };
  }

  /** Stops listening, lets in-flight requests finish (up to stopGraceMs), closes every
   * connection, and removes the cookie. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.stopping = true;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    if (this.inFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = this.clock.setTimeout(resolve, this.opts.stopGraceMs);
        this.onDrained = () => {
          timer.cancel();
          resolve();
        };
      });
      this.onDrained = null;
    }
    server.closeAllConnections();
    await closed;
    this.server = null;
    this.bound = null;
    this.expectedAuthDigest = null;
    this.removeCookie();
    this.logger.info("RPC server stopped");
  }

  private removeCookie(): void {
    const { auth } = this.opts;
    if (auth.kind === "cookie" && this.cookiePassword !== null) {
      removeCookieFile(auth.cookieFile, this.cookiePassword);
      this.cookiePassword = null;
    }
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.inFlight++;
    if (this.stopping) res.setHeader("Connection", "close");
    try {
      await this.route(req, res);
    } catch (err) {
      this.logger.error("RPC HTTP handler failed", { method: req.method, path: req.url }, err);
      if (!res.headersSent) {
        sendJson(res, 500, errorResponse(null, { code: INTERNAL_ERROR, message: "internal error" }));
      } else {
        res.destroy();
      }
    } finally {
      this.inFlight--;
      if (this.inFlight === 0) this.onDrained?.();
    }
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? "GET";
    const path = (req.url ?? "/").split("?", 1)[0] ?? "/";
    const route = this.routes.get(`${method} ${path}`);
    if (route) {
      if (route.auth && !this.authorize(req, res)) return;
      await route.handler(req, res);
      return;
    }
    if (method === "POST" && path === "/") {
      if (!this.authorize(req, res)) return;
      await this.handleRpc(req, res);
      return;
    }
    const allowed = (["GET", "POST"] as const).filter(
      (m) => this.routes.has(`${m} ${path}`) || (m === "POST" && path === "/"),
    );
    if (allowed.length > 0) {
      sendJson(res, 405, JSON.stringify({ error: `method ${method} not allowed on ${path}` }), {
        Allow: allowed.join(", "),
      });
    } else {
      sendJson(res, 404, JSON.stringify({ error: `not found: ${path}` }));
    }
  }

  /** Checks HTTP Basic credentials; on failure answers 401 and returns false. */
  private authorize(req: IncomingMessage, res: ServerResponse): boolean {
    const header = req.headers.authorization;
    const match = header === undefined ? null : /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
    const expected = this.expectedAuthDigest;
    if (match?.[1] !== undefined && expected !== null) {
      const given = sha256(Buffer.from(match[1], "base64").toString("utf8"));
      if (timingSafeEqual(given, expected)) return true;
    }
    if (header !== undefined) this.warnBadCredentials(req);
    sendJson(res, 401, JSON.stringify({ error: "unauthorized: missing or wrong RPC credentials" }), {
      "WWW-Authenticate": 'Basic realm="jsonrpc"',
    });
    return false;
  }

  private warnBadCredentials(req: IncomingMessage): void {
    const now = this.clock.monotonic();
    if (now - this.lastAuthWarnAt < AUTH_WARN_INTERVAL_MS) {
      this.suppressedAuthWarnings++;
      return;
    }
    this.logger.warn("RPC request with wrong credentials", {
      remote: req.socket.remoteAddress,
      suppressedSinceLast: this.suppressedAuthWarnings,
    });
    this.lastAuthWarnAt = now;
    this.suppressedAuthWarnings = 0;
  }

  private async handleRpc(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { maxConcurrent, maxBodyBytes } = this.opts;
    if (this.rpcActive >= maxConcurrent) {
      const message = `server busy: too many concurrent requests (limit ${maxConcurrent})`;
      sendJson(res, 503, errorResponse(null, { code: SERVER_ERROR, message }));
      return;
    }
    this.rpcActive++;
    try {
      let body: Buffer | typeof TOO_LARGE | typeof TOO_SLOW;
      try {
        body = await readBody(req, maxBodyBytes, BODY_TIMEOUT_MS, this.clock);
      } catch {
        // The client went away mid-body: nobody to answer.
        res.destroy();
        return;
      }
      if (body === TOO_SLOW) {
        const message = `request body not received within ${BODY_TIMEOUT_MS / 1000} s`;
        sendJson(res, 408, errorResponse(null, { code: INVALID_REQUEST, message }), { Connection: "close" });
        res.once("finish", () => req.socket.destroy());
        return;
      }
      if (body === TOO_LARGE) {
        const message = `request body too large: limit ${maxBodyBytes} bytes`;
        // Let the client finish writing (discarded) so it can read the 413, then hang up; never
        // for longer than DRAIN_MS. Closing at once made clients see EPIPE instead of the answer.
        const socket = req.socket;
        const t = this.clock.setTimeout(() => socket.destroy(), DRAIN_MS);
        socket.once("close", () => t.cancel());
        req.once("end", () => socket.end());
        req.resume();
        sendJson(res, 413, errorResponse(null, { code: INVALID_REQUEST, message }));
        return;
      }
      let payload: unknown;
      try {
        payload = JSON.parse(body.toString("utf8"));
      } catch {
        sendJson(res, 200, errorResponse(null, { code: PARSE_ERROR, message: "parse error: invalid JSON" }));
        return;
      }
      const reply = await this.rpc.dispatch(payload, req.socket.remoteAddress ?? "");
      if (reply === null) {
        // Only notifications: JSON-RPC says to return nothing at all.
        res.writeHead(204);
        res.end();
      } else {
        sendJson(res, 200, reply);
      }
    } finally {
      this.rpcActive--;
    }
  }

  private registerHelp(): void {
    this.register("help", {
      description: "Lists every RPC method, or describes one method in full.",
      params: [{ name: "command", type: "string", optional: true, description: "The method to describe." }],
      result: "text (string): the method list, or the method's description",
      examples: ["time-cli help", "time-cli help getblockhash"],
      handler: (params) => {
        const command = params.command as string | undefined;
        if (command === undefined) {
          return [...this.methods.keys()]
            .sort()
            .map((name) => synopsis(name, this.methods.get(name)?.params ?? []))
            .join("\n");
        }
        const def = this.methods.get(command);
        if (!def) throw new RpcError(RPC_INVALID_PARAMETER, `help: unknown method ${command}`);
        return formatHelp(command, def);
      },
    });
  }
}

/** The full text of `help METHOD`. */
export function formatHelp(name: string, def: MethodDef): string {
  const lines = [synopsis(name, def.params), "", def.description];
  if (def.params.length > 0) lines.push("", "Arguments:", ...describeParams(def.params));
  if (def.result !== undefined) lines.push("", "Result:", def.result);
  if (def.examples && def.examples.length > 0) {
    lines.push("", "Examples:", ...def.examples.map((e) => `> ${e}`));
  }
  return lines.join("\n");
}

function sha256(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}

function stripUndefined<T extends object>(obj: T): T {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as T;
}
