/**
 * A verifiable random function on the operator keys: ECVRF-EDWARDS25519-SHA512-TAI (RFC 9381,
 * suite 0x03), over the same Ed25519 key pairs the node signs with. For one public key and one
 * input there is exactly one output a valid proof can show, so the key's holder can compute it
 * but cannot choose it. The era seeds of finality use it (docs/CONSENSUS.md, "Eras and the voter
 * set"): an anchor block's producer cannot grind the committee the way it could grind its
 * block's hash.
 *
 * The proof is Gamma (32) ‖ c (16, little-endian) ‖ s (32, little-endian): 80 bytes. Verification
 * follows RFC 9381 section 5.3 exactly, including the public-key check (no small-order keys).
 * Proving differs from the RFC only in where its nonce comes from (SHA-512 of a domain string,
 * the key's secret prefix and H, instead of the prefix and H alone), so a VRF nonce can never
 * be an Ed25519 signature nonce of the same key; a verifier cannot tell the difference, and the
 * RFC's own proofs verify here (test/unit/crypto/vrf.test.ts).
 */
import { createHash } from "node:crypto";
import { ed25519 } from "@noble/curves/ed25519.js";

type Point = InstanceType<typeof ed25519.Point>;

const Point = ed25519.Point;
/** The prime order of the base point's group. */
const L = Point.Fn.ORDER;
const SUITE = 0x03;
const C_LEN = 16;
export const VRF_PROOF_LEN = 32 + C_LEN + 32;
export const VRF_OUTPUT_LEN = 64;
const NONCE_DOMAIN = Buffer.from("TIME/vrf-nonce/v1", "utf8");

function sha512(...parts: Uint8Array[]): Buffer {
  const h = createHash("sha512");
  for (const p of parts) h.update(p);
  return h.digest();
}

function le(bytes: Uint8Array): bigint {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]!);
  return n;
}

function leBytes(n: bigint, len: number): Buffer {
  const out = Buffer.alloc(len);
  for (let i = 0; i < len; i++, n >>= 8n) out[i] = Number(n & 0xffn);
  return out;
}

/** RFC 8032 decoding (strict: a non-canonical encoding is not a point), or null. */
function decodePoint(bytes: Uint8Array): Point | null {
  try {
    return Point.fromBytes(Uint8Array.from(bytes), false);
  } catch {
    return null;
  }
}

/** ECVRF_encode_to_curve_try_and_increment, with PK_string as the salt (RFC 9381 5.4.1.1). */
function encodeToCurve(pk: Uint8Array, alpha: Uint8Array): Point {
  for (let ctr = 0; ctr < 256; ctr++) {
    const hash = sha512(Uint8Array.of(SUITE, 0x01), pk, alpha, Uint8Array.of(ctr, 0x00));
    const candidate = decodePoint(hash.subarray(0, 32));
    if (!candidate) continue;
    const h = candidate.clearCofactor();
    if (!h.equals(Point.ZERO)) return h;
  }
  // About 2^-256 likely: every one of 256 hashes missed the curve.
  throw new Error("VRF: encode_to_curve found no point");
}

function challenge(points: Point[]): bigint {
  const bytes = points.map((p) => p.toBytes());
  const hash = sha512(Uint8Array.of(SUITE, 0x02), ...bytes, Uint8Array.of(0x00));
  return le(hash.subarray(0, C_LEN));
}

/** The secret scalar x and prefix of an Ed25519 seed (RFC 8032 5.1.5). */
function expand(seed: Uint8Array): { x: bigint; prefix: Buffer } {
  const h = sha512(seed);
  const a = Buffer.from(h.subarray(0, 32));
  a[0]! &= 248;
  a[31]! &= 127;
  a[31]! |= 64;
  return { x: le(a) % L, prefix: Buffer.from(h.subarray(32)) };
}

/** The proof that `seed`'s key maps `alpha` to its one output. */
export function vrfProve(seed: Uint8Array, alpha: Uint8Array): Buffer {
  const { x, prefix } = expand(seed);
  const y = Point.BASE.multiply(x);
  const h = encodeToCurve(y.toBytes(), alpha);
  const gamma = h.multiply(x);
  let k = le(sha512(NONCE_DOMAIN, prefix, h.toBytes())) % L;
  if (k === 0n) k = 1n;
  const c = challenge([y, h, gamma, Point.BASE.multiply(k), h.multiply(k)]);
  const s = (k + c * x) % L;
  return Buffer.concat([Buffer.from(gamma.toBytes()), leBytes(c, C_LEN), leBytes(s, 32)]);
}

/** The output a proof shows (ECVRF_proof_to_hash); the proof must have been verified. */
function proofOutput(gamma: Point): Buffer {
  return sha512(Uint8Array.of(SUITE, 0x03), gamma.clearCofactor().toBytes(), Uint8Array.of(0x00));
}

/**
 * The output of a proof that was verified before (a stored block's): no verification here. Null
 * if its Gamma is not a point.
 */
export function vrfProofOutput(proof: Uint8Array): Buffer | null {
  const gamma = proof.length === VRF_PROOF_LEN ? decodePoint(proof.subarray(0, 32)) : null;
  return gamma && proofOutput(gamma);
}

/**
 * The 64-byte output if `proof` is `publicKey`'s valid proof for `alpha`, else null. Any bytes
 * are safe to pass: a malformed key or proof is simply not valid.
 */
export function vrfVerify(publicKey: Uint8Array, proof: Uint8Array, alpha: Uint8Array): Buffer | null {
  if (publicKey.length !== 32 || proof.length !== VRF_PROOF_LEN) return null;
  const y = decodePoint(publicKey);
  if (!y || y.isSmallOrder()) return null;
  const gamma = decodePoint(proof.subarray(0, 32));
  if (!gamma) return null;
  const c = le(proof.subarray(32, 32 + C_LEN));
  const s = le(proof.subarray(32 + C_LEN));
  if (s >= L) return null;
  const h = encodeToCurve(y.toBytes(), alpha);
  const u = Point.BASE.multiplyUnsafe(s).subtract(y.multiplyUnsafe(c));
  const v = h.multiplyUnsafe(s).subtract(gamma.multiplyUnsafe(c));
  if (challenge([y, h, gamma, u, v]) !== c) return null;
  return proofOutput(gamma);
}
