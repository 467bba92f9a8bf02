import { generateKeyPairSync, sign, verify, type KeyObject } from "node:crypto";
import { rawPrivateKey, rawPublicBytes, rawPublicKey } from "./rawKeys.js";

export const PUBKEY_LEN = 32;
export const SIGNATURE_LEN = 64;
export const SEED_LEN = 32;

/** Bound on cached public KeyObjects; enough for every masternode plus active peers. */
const KEY_CACHE_MAX = 16_384;
const keyCache = new Map<string, KeyObject>();

/**
 * Rebuilding a KeyObject from raw bytes cost ~40% of a verification through DER (DESIGN.md); it
 * is far less through JWK (rawKeys.ts), and public keys are cached all the same. The cache is a
 * bounded LRU: Map order is insertion order, and a hit re-inserts.
 */
export function publicKeyObject(pubkey: Uint8Array): KeyObject {
  const id = Buffer.from(pubkey.buffer, pubkey.byteOffset, pubkey.byteLength).toString("latin1");
  const hit = keyCache.get(id);
  if (hit) {
    keyCache.delete(id);
    keyCache.set(id, hit);
    return hit;
  }
  const ko = rawPublicKey("Ed25519", pubkey);
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
    this.priv = rawPrivateKey("Ed25519", seed);
    this.publicKey = rawPublicBytes(this.priv);
  }

  static fromSeed(seed: Uint8Array): KeyPair {
    return new KeyPair(Buffer.from(seed));
  }

  static generate(): KeyPair {
    const { privateKey } = generateKeyPairSync("ed25519");
    const d = privateKey.export({ format: "jwk" }).d;
    if (typeof d !== "string") throw new Error("ed25519 key generation gave no private scalar");
    return new KeyPair(Buffer.from(d, "base64url"));
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
/**
 * By the first 6 bytes of the signature, read as a number (no string is built per signature):
 * each bucket holds copies of whole triples, public key ‖ signature ‖ message, compared byte for
 * byte. Two good signatures sharing those 48 bits are rare, and making them on purpose takes
 * about 2^48 signing attempts each, so buckets stay tiny; PREVERIFIED_MAX bounds them all.
 */
const preverified = new Map<number, Buffer[]>();
let preverifiedSize = 0;

function bucketOf(signature: Uint8Array): number {
  return (
    signature[0]! +
    signature[1]! * 0x100 +
    signature[2]! * 0x1_0000 +
    signature[3]! * 0x100_0000 +
    signature[4]! * 0x1_0000_0000 +
    signature[5]! * 0x100_0000_0000
  );
}

function sameTriple(e: Buffer, pubkey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  const end = PUBKEY_LEN + SIGNATURE_LEN;
  return (
    e.length === end + message.length &&
    e.compare(signature, 0, SIGNATURE_LEN, PUBKEY_LEN, end) === 0 &&
    e.compare(pubkey, 0, PUBKEY_LEN, 0, PUBKEY_LEN) === 0 &&
    e.compare(message, 0, message.length, end, e.length) === 0
  );
}

/** Records a signature a worker verified (good ones only). */
export function notePreverified(pubkey: Uint8Array, message: Uint8Array, signature: Uint8Array): void {
  if (pubkey.length !== PUBKEY_LEN || signature.length !== SIGNATURE_LEN) return;
  if (preverifiedSize >= PREVERIFIED_MAX) {
    const oldest = preverified.entries().next().value;
    if (oldest !== undefined) {
      preverified.delete(oldest[0]);
      preverifiedSize -= oldest[1].length;
    }
  }
  // A copy: the caller's buffers may change later, and the entry must keep what was checked.
  const e = Buffer.allocUnsafe(PUBKEY_LEN + SIGNATURE_LEN + message.length);
  e.set(pubkey, 0);
  e.set(signature, PUBKEY_LEN);
  e.set(message, PUBKEY_LEN + SIGNATURE_LEN);
  const k = bucketOf(signature);
  const bucket = preverified.get(k);
  if (bucket) bucket.push(e);
  else preverified.set(k, [e]);
  preverifiedSize++;
}

/** Takes (uses up) the entry for exactly these bytes, if there is one. */
function takePreverified(pubkey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  const k = bucketOf(signature);
  const bucket = preverified.get(k);
  if (!bucket) return false;
  for (let i = 0; i < bucket.length; i++) {
    if (!sameTriple(bucket[i]!, pubkey, message, signature)) continue;
    if (bucket.length === 1) preverified.delete(k);
    else bucket.splice(i, 1);
    preverifiedSize--;
    return true;
  }
  return false;
}

/** Signatures verified ahead and not used yet. */
export function preverifiedCount(): number {
  return preverifiedSize;
}

/** Forgets every signature verified ahead (tests, and a pool that shuts down). */
export function clearPreverified(): void {
  preverified.clear();
  preverifiedSize = 0;
}

/** Never throws: malformed keys or signatures simply fail verification. */
export function verifySignature(pubkey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (pubkey.length !== PUBKEY_LEN || signature.length !== SIGNATURE_LEN) return false;
  if (preverifiedSize > 0 && takePreverified(pubkey, message, signature)) return true;
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
