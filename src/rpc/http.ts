/**
 * HTTP plumbing of the RPC listener: JSON replies, the loopback check, and reading a request
 * body under a size cap and a deadline.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { BlockList, isIP } from "node:net";
import type { Clock } from "../util/clock.js";

/** Answers with a JSON body (already serialised), its length and any extra headers. */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, {
    "Content-Type": "application/json",
    "Content-Length": String(Buffer.byteLength(body)),
    ...headers,
  });
  res.end(body);
}

const loopbackList = new BlockList();
loopbackList.addSubnet("127.0.0.0", 8, "ipv4");
loopbackList.addAddress("::1", "ipv6");

/** True for 127.0.0.0/8, ::1 (also IPv4-mapped 127.x) and "localhost". */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  if (h === "localhost") return true;
  const family = isIP(h);
  if (family === 4) return loopbackList.check(h, "ipv4");
  if (family === 6) {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
    if (mapped?.[1] !== undefined) return loopbackList.check(mapped[1], "ipv4");
    return loopbackList.check(h, "ipv6");
  }
  return false;
}

export const TOO_LARGE = Symbol("too large");
export const TOO_SLOW = Symbol("too slow");
/** 10 s to send a request body: ample for 1 MiB over any link; a stalled body frees its slot. */
export const BODY_TIMEOUT_MS = 10_000;
/** After a 413, the client may finish writing (discarded) for this long before we hang up. */
export const DRAIN_MS = 5_000;

/**
 * Reads a body of at most `limit` bytes. A declared Content-Length over the limit is refused
 * before reading anything; a chunked body is refused as soon as it grows past the limit, and
 * the rest is discarded as it arrives, never buffered.
 */
export function readBody(
  req: IncomingMessage,
  limit: number,
  timeoutMs: number,
  clock: Clock,
): Promise<Buffer | typeof TOO_LARGE | typeof TOO_SLOW> {
  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > limit) return Promise.resolve(TOO_LARGE);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    // A body that never finishes must not hold a request slot (slowloris): give up on it.
    const timer = clock.setTimeout(() => {
      if (settled) return;
      settled = true;
      chunks.length = 0;
      req.off("data", onData);
      resolve(TOO_SLOW);
    }, timeoutMs);
    req.once("close", () => timer.cancel());
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        settled = true;
        chunks.length = 0;
        // Keep the stream flowing with no listener: the rest is dropped as it arrives.
        req.off("data", onData);
        resolve(TOO_LARGE);
        return;
      }
      chunks.push(chunk);
    };
    req.on("data", onData);
    req.once("end", () => {
      timer.cancel();
      if (settled) return;
      settled = true;
      resolve(Buffer.concat(chunks, size));
    });
    req.once("error", (err) => {
      if (settled) return;
      settled = true;
      reject(err);
    });
    req.once("close", () => {
      if (settled) return;
      settled = true;
      reject(new Error("client closed the connection before sending the whole body"));
    });
  });
}
