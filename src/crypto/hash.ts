import { createHash, hash as oneShotHash } from "node:crypto";

export const HASH_LEN = 32;
export const ZERO_HASH: Buffer = Buffer.alloc(32);

// crypto.hash (Node >= 20.12) is the fast one-shot path for small inputs (DESIGN.md).
const fastHash: ((alg: string, data: Uint8Array, enc: "binary") => string) | undefined =
  typeof oneShotHash === "function"
    ? (oneShotHash as (a: string, d: Uint8Array, e: "binary") => string)
    : undefined;

export function sha256(data: Uint8Array): Buffer {
  // As a latin1 string, then into Node's shared buffer pool: a Buffer straight from crypto gets
  // an ArrayBuffer of its own, and millions of those live at once (every hash a node keeps) made
  // each new one, and the collector, slower (a 1,000-node simulation spent a quarter of its time
  // there). Same bytes.
  if (fastHash) return Buffer.from(fastHash("sha256", data, "binary"), "latin1");
  return createHash("sha256").update(data).digest();
}

/**
 * SHA-256 as a 32-character latin1 string (one character per byte), for callers that only read
 * the digest's words and need no Buffer (utxoSet.ts's running sum).
 */
export function sha256Latin1(data: Uint8Array): string {
  if (fastHash) return fastHash("sha256", data, "binary");
  return createHash("sha256").update(data).digest("binary");
}

export function sha256d(data: Uint8Array): Buffer {
  return sha256(sha256(data));
}

/** SHA-256 over several parts without concatenating them first. */
export function sha256Parts(parts: readonly Uint8Array[]): Buffer {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest();
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
}

/** Parses a 64-character hex string into a 32-byte hash, or returns null. */
export function parseHash(s: string): Buffer | null {
  if (typeof s !== "string" || !/^[0-9a-fA-F]{64}$/.test(s)) return null;
  return Buffer.from(s, "hex");
}
