import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
  type KeyObject,
} from "node:crypto";

export const PUBKEY_LEN = 32;
export const SIGNATURE_LEN = 64;
export const SEED_LEN = 32;

// DER prefixes for raw ed25519 keys (RFC 8410): SPKI for public keys, PKCS#8 for private seeds.
const SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");
const PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

/** Bound on cached public KeyObjects; enough for every masternode plus active peers. */
const KEY_CACHE_MAX = 16_384;
const keyCache = new Map<string, KeyObject>();

/**
 * Rebuilding a KeyObject from raw bytes costs ~40% of a verification (DESIGN.md), so public keys
 * are cached. The cache is a bounded LRU: Map order is insertion order, and a hit re-inserts.
 */
export function publicKeyObject(pubkey: Uint8Array): KeyObject {
  const id = Buffer.from(pubkey.buffer, pubkey.byteOffset, pubkey.byteLength).toString("latin1");
  const hit = keyCache.get(id);
  if (hit) {
    keyCache.delete(id);
    keyCache.set(id, hit);
    return hit;
  }
  const ko = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, pubkey]), format: "der", type: "spki" });
  if (keyCache.size >= KEY_CACHE_MAX) {
    const oldest = keyCache.keys().next().value;
    if (oldest !== undefined) keyCache.delete(oldest);
  }
  keyCache.set(id, ko);
  return ko;
}

export function publicKeyCacheSize(): number {
  return keyCache.size;
}

/** An ed25519 key pair held as a private KeyObject plus the raw 32-byte public key. */
export class KeyPair {
  readonly publicKey: Buffer;
  private readonly priv: KeyObject;
  private readonly seedBytes: Buffer;

  private constructor(seed: Buffer) {
    if (seed.length !== SEED_LEN)
      throw new Error(`ed25519 seed must be ${SEED_LEN} bytes, got ${seed.length}`);
    this.seedBytes = Buffer.from(seed);
    this.priv = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: "der", type: "pkcs8" });
    const spki = createPublicKey(this.priv).export({ format: "der", type: "spki" });
    this.publicKey = Buffer.from(spki.subarray(spki.length - PUBKEY_LEN));
  }

  static fromSeed(seed: Uint8Array): KeyPair {
    return new KeyPair(Buffer.from(seed));
  }

  static generate(): KeyPair {
    const { privateKey } = generateKeyPairSync("ed25519");
    const der = privateKey.export({ format: "der", type: "pkcs8" });
    return new KeyPair(Buffer.from(der.subarray(der.length - SEED_LEN)));
  }

  /** The 32-byte private seed. Handle with care: this is the secret. */
  seed(): Buffer {
    return Buffer.from(this.seedBytes);
  }

  sign(message: Uint8Array): Buffer {
    return sign(null, message, this.priv);
  }
}

/** Never throws: malformed keys or signatures simply fail verification. */
export function verifySignature(pubkey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (pubkey.length !== PUBKEY_LEN || signature.length !== SIGNATURE_LEN) return false;
  try {
    return verify(null, message, publicKeyObject(pubkey), signature);
  } catch {
    return false;
  }
}
