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

/**
 * A cache of verification results, shared by everything in the process. Off unless installed:
 * only the simulator installs one, where a thousand nodes in one process verify the same
 * heartbeats and blocks a thousand times. A real node verifies each signature itself.
 */
export class VerifyCache {
  private readonly results = new Map<string, boolean>();
  hits = 0;
  misses = 0;
  constructor(readonly maxEntries = 1_000_000) {}
  /** The key: public key, signature and message, unambiguous because the first two are fixed-size. */
  lookup(pubkey: Uint8Array, message: Uint8Array, signature: Uint8Array, compute: () => boolean): boolean {
    const id =
      Buffer.from(pubkey).toString("latin1") +
      Buffer.from(signature).toString("latin1") +
      Buffer.from(message).toString("latin1");
    const hit = this.results.get(id);
    if (hit !== undefined) {
      this.hits++;
      return hit;
    }
    this.misses++;
    const ok = compute();
    if (this.results.size >= this.maxEntries) {
      const oldest = this.results.keys().next().value;
      if (oldest !== undefined) this.results.delete(oldest);
    }
    this.results.set(id, ok);
    return ok;
  }
}

let sharedVerifyCache: VerifyCache | null = null;

/** Installs (or, with null, removes) the process-wide verification cache. Simulator only. */
export function installVerifyCache(cache: VerifyCache | null): void {
  sharedVerifyCache = cache;
}

/**
 * Signatures that a worker pool has already found good (sigPool.ts), by their exact bytes: public
 * key, signature and message. The bytes decide the result, so an entry is as good as checking
 * again, on any branch and after any reorg. Each is used once (a hit removes it), and the oldest
 * give way past PREVERIFIED_MAX, so entries that are never asked for cannot pile up.
 */
const PREVERIFIED_MAX = 262_144;
const preverified = new Set<string>();

function signatureKey(pubkey: Uint8Array, message: Uint8Array, signature: Uint8Array): string {
  return (
    Buffer.from(pubkey.buffer, pubkey.byteOffset, pubkey.byteLength).toString("latin1") +
    Buffer.from(signature.buffer, signature.byteOffset, signature.byteLength).toString("latin1") +
    Buffer.from(message.buffer, message.byteOffset, message.byteLength).toString("latin1")
  );
}

/** Records a signature a worker verified (good ones only). */
export function notePreverified(pubkey: Uint8Array, message: Uint8Array, signature: Uint8Array): void {
  if (preverified.size >= PREVERIFIED_MAX) {
    const oldest = preverified.values().next().value;
    if (oldest !== undefined) preverified.delete(oldest);
  }
  preverified.add(signatureKey(pubkey, message, signature));
}

/** Signatures verified ahead and not used yet. */
export function preverifiedCount(): number {
  return preverified.size;
}

/** Forgets every signature verified ahead (tests, and a pool that shuts down). */
export function clearPreverified(): void {
  preverified.clear();
}

/** Never throws: malformed keys or signatures simply fail verification. */
export function verifySignature(pubkey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (pubkey.length !== PUBKEY_LEN || signature.length !== SIGNATURE_LEN) return false;
  if (preverified.size > 0 && preverified.delete(signatureKey(pubkey, message, signature))) return true;
  const check = (): boolean => {
    try {
      return verify(null, message, publicKeyObject(pubkey), signature);
    } catch {
      return false;
    }
  };
  // Messages above 4 KiB are not cached: the key would cost more than it saves.
  return sharedVerifyCache && message.length <= 4_096
    ? sharedVerifyCache.lookup(pubkey, message, signature, check)
    : check();
}
