/**
 * A small JSON-RPC 2.0 client for time-cli, tests and tools. One HTTP connection per call
 * (no keep-alive agent), so a finished CLI process never lingers on an idle socket.
 *
 * Failures come in two kinds:
 * - RpcCallError: the node answered with a JSON-RPC error (code and message from the node);
 * - RpcTransportError: no usable answer: connection refused, 401, busy (503), a timeout, or a
 *   body that is not a JSON-RPC response. Its string `code` says which.
 */
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { SystemClock, type Clock } from "../util/clock.js";
import { CodedError } from "../util/codedError.js";
import type { RpcErrorObject } from "./errors.js";

export interface RpcClientOptions {
  /** e.g. "http://127.0.0.1:24001/". Credentials in the URL are used when user/password are not given. */
  url: string;
  user?: string;
  password?: string;
  /** Whole-call timeout; default 60 s. */
  timeoutMs?: number;
  /** Largest response accepted; default 256 MiB. */
  maxResponseBytes?: number;
}

/** 60 s: above the server's 30 s handler timeout, so the server's answer arrives first. */
const DEFAULT_TIMEOUT_MS = 60_000;
/** 256 MiB: bigger than any legitimate answer (a full block as JSON is a few MiB). */
const DEFAULT_MAX_RESPONSE_BYTES = 256 * 1024 * 1024;

/** The node answered with a JSON-RPC error. */
export class RpcCallError extends Error {
  readonly code: number;
  readonly data: unknown;
  constructor(code: number, message: string, data?: unknown) {
    super(message);
    this.name = "RpcCallError";
    this.code = code;
    this.data = data;
  }
}

export type RpcTransportErrorCode =
  "CONNECTION_REFUSED" | "CONNECTION_FAILED" | "UNAUTHORIZED" | "SERVER_BUSY" | "TIMEOUT" | "BAD_RESPONSE";

/** No usable JSON-RPC answer; `code` says why. */
export class RpcTransportError extends CodedError<RpcTransportErrorCode> {}

export interface RpcBatchCall {
  method: string;
  params?: unknown[] | Record<string, unknown>;
}

export type RpcBatchResult<T = unknown> = { ok: true; result: T } | { ok: false; error: RpcCallError };

interface HttpReply {
  status: number;
  body: string;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function asRpcError(v: unknown): RpcErrorObject | null {
  if (!isObject(v) || typeof v.code !== "number" || typeof v.message !== "string") return null;
  return { code: v.code, message: v.message, data: v.data };
}

function errnoCode(err: unknown): string | undefined {
  if (!(err instanceof Error)) return undefined;
  const code = (err as NodeJS.ErrnoException).code;
  if (code !== undefined) return code;
  // Happy-eyeballs connects to several addresses and reports an AggregateError.
  if (err instanceof AggregateError) {
    for (const inner of err.errors) {
      const c = errnoCode(inner);
      if (c !== undefined) return c;
    }
  }
  return undefined;
}

export class RpcClient {
  readonly url: string;
  private readonly target: URL;
  private readonly authHeader: string | null;
  private readonly timeoutMs: number;
  private readonly maxResponseBytes: number;
  private readonly clock: Clock;
  private nextId = 1;

  constructor(opts: RpcClientOptions, modules: { clock?: Clock } = {}) {
    const target = new URL(opts.url);
    if (target.protocol !== "http:" && target.protocol !== "https:") {
      throw new RpcTransportError(
        "BAD_RESPONSE",
        `unsupported RPC URL scheme ${target.protocol} (use http://)`,
      );
    }
    const user = opts.user ?? (target.username !== "" ? decodeURIComponent(target.username) : undefined);
    const password =
      opts.password ?? (target.password !== "" ? decodeURIComponent(target.password) : undefined);
    target.username = "";
    target.password = "";
    this.target = target;
    this.url = target.toString();
    this.authHeader =
      user !== undefined
        ? `Basic ${Buffer.from(`${user}:${password ?? ""}`, "utf8").toString("base64")}`
        : null;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.maxResponseBytes = opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    this.clock = modules.clock ?? new SystemClock();
  }

  /** Calls one method; resolves with its result or throws RpcCallError / RpcTransportError. */
  async call<T = unknown>(method: string, params: unknown[] | Record<string, unknown> = []): Promise<T> {
    const id = this.nextId++;
    const reply = await this.post(JSON.stringify({ jsonrpc: "2.0", id, method, params }));
    const body = this.parseReply(reply);
    if (!isObject(body)) throw this.badResponse(reply, "not a JSON-RPC response object");
    const error = asRpcError(body.error);
    if (body.error !== undefined && body.error !== null) {
      if (!error) throw this.badResponse(reply, "malformed error member");
      throw new RpcCallError(error.code, error.message, error.data);
    }
    if (!("result" in body)) throw this.badResponse(reply, "no result member");
    return body.result as T;
  }

  /** Sends calls as one batch; each entry of the answer, in call order, succeeded or failed. */
  async batch<T = unknown>(calls: readonly RpcBatchCall[]): Promise<RpcBatchResult<T>[]> {
    if (calls.length === 0) return [];
    const firstId = this.nextId;
    this.nextId += calls.length;
    const payload = calls.map((c, i) => ({
      jsonrpc: "2.0",
      id: firstId + i,
      method: c.method,
      params: c.params ?? [],
    }));
    const reply = await this.post(JSON.stringify(payload));
    const body = this.parseReply(reply);
    if (!Array.isArray(body)) {
      // A whole-batch refusal (e.g. too many calls) comes back as a single error object.
      const error = isObject(body) ? asRpcError(body.error) : null;
      if (error) throw new RpcCallError(error.code, error.message, error.data);
      throw this.badResponse(reply, "expected an array for a batch");
    }
    const byId = new Map<unknown, unknown>();
    for (const entry of body as unknown[]) if (isObject(entry)) byId.set(entry.id, entry);
    return payload.map((p): RpcBatchResult<T> => {
      const entry = byId.get(p.id);
      if (!isObject(entry)) {
        return { ok: false, error: new RpcCallError(-32603, `no answer for call ${p.id} (${p.method})`) };
      }
      const error = asRpcError(entry.error);
      if (error) return { ok: false, error: new RpcCallError(error.code, error.message, error.data) };
      return { ok: true, result: entry.result as T };
    });
  }

  private parseReply(reply: HttpReply): unknown {
    if (reply.status === 401) {
      throw new RpcTransportError(
        "UNAUTHORIZED",
        `authorization failed at ${this.url}: wrong or missing credentials`,
        {
          url: this.url,
        },
      );
    }
    let body: unknown;
    try {
      body = JSON.parse(reply.body);
    } catch {
      throw this.badResponse(reply, "the body is not JSON");
    }
    if (reply.status === 503) {
      const error = isObject(body) ? asRpcError(body.error) : null;
      throw new RpcTransportError("SERVER_BUSY", error?.message ?? `server busy (HTTP 503) at ${this.url}`, {
        url: this.url,
      });
    }
    return body;
  }

  private badResponse(reply: HttpReply, why: string): RpcTransportError {
    return new RpcTransportError(
      "BAD_RESPONSE",
      `unexpected answer from ${this.url} (HTTP ${reply.status}): ${why}`,
      {
        url: this.url,
        status: reply.status,
      },
    );
  }

  private post(body: string): Promise<HttpReply> {
    const request = this.target.protocol === "https:" ? httpsRequest : httpRequest;
    const headers: Record<string, string> = {
      "Content-Type": "application/json",
      "Content-Length": String(Buffer.byteLength(body)),
      Connection: "close",
    };
    if (this.authHeader !== null) headers.Authorization = this.authHeader;
    return new Promise<HttpReply>((resolve, reject) => {
      let settled = false;
      const fail = (err: RpcTransportError): void => {
        if (settled) return;
        settled = true;
        timer.cancel();
        req.destroy();
        reject(err);
      };
      const timer = this.clock.setTimeout(() => {
        fail(
          new RpcTransportError("TIMEOUT", `no answer from ${this.url} within ${this.timeoutMs} ms`, {
            url: this.url,
          }),
        );
      }, this.timeoutMs);
      const req = request(this.target, { method: "POST", headers, agent: false }, (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > this.maxResponseBytes) {
            fail(this.badResponse({ status: res.statusCode ?? 0, body: "" }, "response too large"));
            return;
          }
          chunks.push(chunk);
        });
        res.once("end", () => {
          if (settled) return;
          settled = true;
          timer.cancel();
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") });
        });
        res.once("error", (err) => fail(this.connectionError(err)));
      });
      req.once("error", (err) => fail(this.connectionError(err)));
      req.end(body);
    });
  }

  private connectionError(err: unknown): RpcTransportError {
    const code = errnoCode(err);
    const reason = err instanceof Error && err.message !== "" ? err.message : (code ?? String(err));
    if (code === "ECONNREFUSED") {
      return new RpcTransportError("CONNECTION_REFUSED", `connection refused at ${this.url}`, {
        url: this.url,
      });
    }
    return new RpcTransportError("CONNECTION_FAILED", `could not talk to ${this.url}: ${reason}`, {
      url: this.url,
      errno: code,
    });
  }
}
