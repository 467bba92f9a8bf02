/**
 * KeyObjects from raw 32-byte Ed25519 and X25519 keys, and back. They go through JWK, which
 * node:crypto turns straight into a raw key, rather than through DER, which OpenSSL 3 parses with
 * its generic decoders: measured here, a private key took 36 µs instead of 402, a public one 6 µs
 * instead of 84, and reading a public key back 3 µs instead of 94. Every handshake makes an X25519
 * key and reads two public keys, so on a busy listener the DER path was a tenth of its CPU. Both
 * paths give the same key; DER stays as the fallback should a runtime refuse the JWK form.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from "node:crypto";

export type RawCurve = "Ed25519" | "X25519";

// DER prefixes for raw keys (RFC 8410): PKCS#8 for a private key, SPKI for a public one.
const DER = {
  Ed25519: {
    pkcs8: Buffer.from("302e020100300506032b657004220420", "hex"),
    spki: Buffer.from("302a300506032b6570032100", "hex"),
  },
  X25519: {
    pkcs8: Buffer.from("302e020100300506032b656e04220420", "hex"),
    spki: Buffer.from("302a300506032b656e032100", "hex"),
  },
} as const;

function b64url(bytes: Uint8Array, what: string): string {
  // DER would quietly take a 33-byte key for its first 32 bytes; a raw key is exactly 32.
  if (bytes.length !== 32) throw new RangeError(`${what} must be 32 bytes, got ${bytes.length}`);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64url");
}

/** A private KeyObject from a raw 32-byte key (an Ed25519 seed, or an X25519 scalar). */
export function rawPrivateKey(crv: RawCurve, bytes: Uint8Array): KeyObject {
  const d = b64url(bytes, `${crv} private key`);
  try {
    // `x` must be a string; for a private key node:crypto derives the public half itself.
    return createPrivateKey({ key: { kty: "OKP", crv, d, x: "" }, format: "jwk" });
  } catch {
    return createPrivateKey({ key: Buffer.concat([DER[crv].pkcs8, bytes]), format: "der", type: "pkcs8" });
  }
}

/** A public KeyObject from a raw 32-byte key. Throws on a malformed one. */
export function rawPublicKey(crv: RawCurve, bytes: Uint8Array): KeyObject {
  const x = b64url(bytes, `${crv} public key`);
  try {
    return createPublicKey({ key: { kty: "OKP", crv, x }, format: "jwk" });
  } catch {
    return createPublicKey({ key: Buffer.concat([DER[crv].spki, bytes]), format: "der", type: "spki" });
  }
}

/** The raw 32-byte public key of a private or public KeyObject. */
export function rawPublicBytes(key: KeyObject): Buffer {
  const jwk = key.export({ format: "jwk" });
  if (typeof jwk.x === "string") {
    const x = Buffer.from(jwk.x, "base64url");
    if (x.length === 32) return x;
  }
  const spki = (key.type === "private" ? createPublicKey(key) : key).export({ format: "der", type: "spki" });
  return Buffer.from(spki.subarray(spki.length - 32));
}
