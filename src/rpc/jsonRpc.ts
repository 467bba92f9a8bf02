/**
 * JSON-RPC 2.0, independent of the transport: the result serialisation (toRpcJson), error
 * responses, what a registered method is, and the dispatch of one call or a batch to the methods
 * (id and version checks, param parsing, the per-call timeout, the onCall report).
 */
import type { Clock } from "../util/clock.js";
import {
  INTERNAL_ERROR,
  INVALID_REQUEST,
  METHOD_NOT_FOUND,
  RpcError,
  SERVER_ERROR,
  type RpcErrorObject,
} from "./errors.js";
import { parseParams, showValue, type ParamSpec, type ParsedParams } from "./params.js";

export interface CallContext {
  method: string;
  /** The request id; null for notifications and null ids. */
  id: string | number | null;
  remoteAddress: string;
  /** Aborted when the call times out, so a handler can stop its work. */
  signal: AbortSignal;
}

export interface MethodDef {
  description: string;
  params: ParamSpec[];
  /** Describes the result for `help METHOD`. */
  result?: string;
  /** Example command lines for `help METHOD`, e.g. "time-cli getblockhash 1000". */
  examples?: string[];
  /** May return a value or a promise. Throw RpcError to answer with a specific code. */
  handler: (params: ParsedParams, ctx: CallContext) => unknown;
}

export type JsonRpcId = string | number | null;

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
/** Longest method name echoed back in a "method not found" message. */
const MAX_ECHOED_METHOD_CHARS = 100;

function jsonReplacer(this: unknown, key: string, value: unknown): unknown {
  if (typeof value === "bigint") {
    return value >= -MAX_SAFE && value <= MAX_SAFE ? Number(value) : value.toString();
  }
  // Buffer.toJSON has already run by now; look at the raw value on the holder.
  const raw = (this as Record<string, unknown>)[key];
  if (raw instanceof Uint8Array)
    return Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString("hex");
  return value;
}

/** JSON for RPC results: bigint → number if safe, else decimal string; bytes → hex. */
export function toRpcJson(value: unknown): string {
  return JSON.stringify(value === undefined ? null : value, jsonReplacer) ?? "null";
}

/** A JSON-RPC error response; drops `data` that cannot be serialised. */
export function errorResponse(id: JsonRpcId, error: RpcErrorObject): string {
  const body: { jsonrpc: "2.0"; id: JsonRpcId; error: RpcErrorObject } = { jsonrpc: "2.0", id, error };
  try {
    return toRpcJson(body);
  } catch {
    // Unserialisable `data` on a thrown RpcError: drop it rather than fail the response.
    return toRpcJson({ jsonrpc: "2.0", id, error: { code: error.code, message: error.message } });
  }
}

/** What the dispatcher needs of the server's options. */
export interface DispatchOptions {
  maxBatch: number;
  requestTimeoutMs: number;
  /** Called after every call of a registered method (unknown names are not reported, to keep
   * metric labels bounded). */
  onCall?: (method: string, durationMs: number, ok: boolean) => void;
}

/** The logging the dispatcher needs; the server's RpcLogger is one. */
export interface DispatchLogger {
  warn(msg: string, ctx?: Record<string, unknown>, err?: unknown): void;
  error(msg: string, ctx?: Record<string, unknown>, err?: unknown): void;
}

/** Answers JSON-RPC payloads from the registered methods (the server's live table). */
export class JsonRpcDispatcher {
  constructor(
    private readonly methods: ReadonlyMap<string, MethodDef>,
    private readonly opts: DispatchOptions,
    private readonly clock: Clock,
    private readonly logger: DispatchLogger,
  ) {}

  /** Answers a parsed payload (one call or a batch); null when nothing is to be returned. */
  async dispatch(payload: unknown, remoteAddress: string): Promise<string | null> {
    if (!Array.isArray(payload)) return this.dispatchCall(payload, remoteAddress);
    if (payload.length === 0) {
      return errorResponse(null, { code: INVALID_REQUEST, message: "invalid request: empty batch" });
    }
    if (payload.length > this.opts.maxBatch) {
      const message = `invalid request: batch of ${payload.length} calls exceeds the limit of ${this.opts.maxBatch}`;
      return errorResponse(null, { code: INVALID_REQUEST, message });
    }
    // Calls run one after another, in order, like bitcoind: a batch may depend on its order.
    const parts: string[] = [];
    for (const call of payload as unknown[]) {
      const part = await this.dispatchCall(call, remoteAddress);
      if (part !== null) parts.push(part);
    }
    return parts.length > 0 ? `[${parts.join(",")}]` : null;
  }

  private async dispatchCall(call: unknown, remoteAddress: string): Promise<string | null> {
    if (typeof call !== "object" || call === null || Array.isArray(call)) {
      return errorResponse(null, {
        code: INVALID_REQUEST,
        message: "invalid request: expected a JSON object",
      });
    }
    const req = call as Record<string, unknown>;
    const isNotification = !Object.hasOwn(req, "id");
    const rawId = req.id;
    if (!isNotification && rawId !== null && typeof rawId !== "string" && typeof rawId !== "number") {
      const message = "invalid request: id must be a string, a number or null";
      return errorResponse(null, { code: INVALID_REQUEST, message });
    }
    const id = (rawId ?? null) as JsonRpcId;
    if (req.jsonrpc !== undefined && req.jsonrpc !== "2.0" && req.jsonrpc !== "1.0") {
      const message = `invalid request: unsupported jsonrpc version ${showValue(req.jsonrpc)}`;
      return errorResponse(id, { code: INVALID_REQUEST, message });
    }
    if (typeof req.method !== "string") {
      return errorResponse(id, {
        code: INVALID_REQUEST,
        message: "invalid request: method must be a string",
      });
    }
    const outcome = await this.invoke(req.method, req.params, { id, remoteAddress });
    if (isNotification) return null;
    return "error" in outcome
      ? errorResponse(id, outcome.error)
      : `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":${outcome.json}}`;
  }

  private async invoke(
    method: string,
    params: unknown,
    call: { id: JsonRpcId; remoteAddress: string },
  ): Promise<{ json: string } | { error: RpcErrorObject }> {
    const def = this.methods.get(method);
    if (!def) {
      const shown =
        method.length > MAX_ECHOED_METHOD_CHARS ? `${method.slice(0, MAX_ECHOED_METHOD_CHARS)}…` : method;
      return { error: { code: METHOD_NOT_FOUND, message: `method not found: ${shown} (see "help")` } };
    }
    const started = this.clock.monotonic();
    let ok = false;
    try {
      const parsed = parseParams(method, def.params, params);
      const result = await this.runWithTimeout(method, (signal) =>
        def.handler(parsed, { method, id: call.id, remoteAddress: call.remoteAddress, signal }),
      );
      const json = toRpcJson(result);
      ok = true;
      return { json };
    } catch (err) {
      if (err instanceof RpcError) {
        const error: RpcErrorObject = { code: err.code, message: err.message };
        if (err.data !== undefined) error.data = err.data;
        return { error };
      }
      this.logger.error("RPC method failed", { method }, err);
      return { error: { code: INTERNAL_ERROR, message: "internal error" } };
    } finally {
      this.opts.onCall?.(method, this.clock.monotonic() - started, ok);
    }
  }

  private runWithTimeout(method: string, fn: (signal: AbortSignal) => unknown): Promise<unknown> {
    const ms = this.opts.requestTimeoutMs;
    const abort = new AbortController();
    return new Promise((resolve, reject) => {
      const timer = this.clock.setTimeout(() => {
        this.logger.warn("RPC call timed out", { method, timeoutMs: ms });
        const err = new RpcError(SERVER_ERROR, "request timed out");
        abort.abort(err);
        reject(err);
      }, ms);
      // A late settle after the timeout lands on an already-settled promise and is ignored.
      Promise.resolve()
        .then(() => fn(abort.signal))
        .then(
          (value) => {
            timer.cancel();
            resolve(value);
          },
          (err: unknown) => {
            timer.cancel();
            reject(err instanceof Error ? err : new Error(String(err)));
          },
        );
    });
  }
}
