/**
 * The session layer of the P2P protocol (docs/PROTOCOL.md, "Session keys" and "Record layer"):
 * the handshake transcript hash, the key schedule, and the ChaCha20-Poly1305 records that carry
 * every frame after the Hellos.
 *
 * Record: magic 4 | length u32le | ciphertext of (type u16le ‖ payload), `length` bytes | tag 16.
 * The 8-byte header is the AEAD's associated data. The nonce is 4 zero bytes ‖ the record's
 * sequence number (u64le), counted from 0 in each direction; it is never sent, so a replayed,
 * dropped or reordered record fails its tag.
 */
import { createCipheriv, createDecipheriv } from "node:crypto";
import { hkdfSha256 } from "../crypto/x25519.js";
import { sha256Parts } from "../crypto/hash.js";
import { MAX_FRAME_PAYLOAD } from "./constants.js";

export const TRANSCRIPT_DOMAIN = Buffer.from("TIME/p2p-handshake/v2", "utf8");
export const KEYS_INFO = Buffer.from("TIME/p2p-keys/v2", "utf8");
export const RECORD_HEADER_SIZE = 8;
export const RECORD_TAG_SIZE = 16;
/** Largest plaintext body of one record: a type and the largest frame payload. */
export const MAX_RECORD_BODY = MAX_FRAME_PAYLOAD + 2;
/**
 * A side closes the connection before its sequence number reaches this (far below the nonce's
 * 2^64, and far beyond any connection's life: 2^48 records at a million a second is 9 years).
 */
export const MAX_RECORDS_PER_DIRECTION = 2 ** 48;

const CIPHER = "chacha20-poly1305";

/** Values of Hello's `transport` field. */
export const TransportMode = { PLAINTEXT: 0, CHACHA20_POLY1305: 1 } as const;
export type TransportMode = (typeof TransportMode)[keyof typeof TransportMode];

function u32le(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32LE(n, 0);
  return b;
}

/**
 * SHA-256(TRANSCRIPT_DOMAIN ‖ magic ‖ u32le(|Hi|) ‖ Hi ‖ u32le(|Hr|) ‖ Hr), where Hi and Hr are
 * the Hello payloads, byte for byte as sent, of the initiator (the side that dialled) and of the
 * responder. Both node ids, both genesis hashes, both challenges and both ephemeral keys are in
 * them. (Both sides compute the same hash even when their genesis blocks differ, so the refusal
 * that follows is sealed in a session both can read.)
 */
export function transcriptHash(magic: Buffer, initiatorHello: Buffer, responderHello: Buffer): Buffer {
  return sha256Parts([
    TRANSCRIPT_DOMAIN,
    magic,
    u32le(initiatorHello.length),
    initiatorHello,
    u32le(responderHello.length),
    responderHello,
  ]);
}

export interface SessionKeys {
  /** Encrypts what the initiator sends. */
  initiatorToResponder: Buffer;
  /** Encrypts what the responder sends. */
  responderToInitiator: Buffer;
}

/** HKDF-SHA256(ikm = X25519 shared secret, salt = transcript hash, info = KEYS_INFO, 64 bytes). */
export function sessionKeys(sharedSecret: Buffer, transcript: Buffer): SessionKeys {
  const okm = hkdfSha256(sharedSecret, transcript, KEYS_INFO, 64);
  return { initiatorToResponder: okm.subarray(0, 32), responderToInitiator: okm.subarray(32, 64) };
}

function nonceFor(seq: number): Buffer {
  const n = Buffer.alloc(12);
  n.writeUInt32LE(seq % 0x1_0000_0000, 4);
  n.writeUInt32LE(Math.floor(seq / 0x1_0000_0000), 8);
  return n;
}

/** Seals our frames for one direction of one session. */
export class RecordSealer {
  private seq = 0;

  constructor(
    private readonly magic: Buffer,
    private readonly key: Buffer,
  ) {}

  /** Records sealed so far (the next record's sequence number). */
  get sequence(): number {
    return this.seq;
  }

  /** One record carrying a message of `type`. Throws once the sequence limit is reached. */
  seal(type: number, payload: Buffer): Buffer {
    if (this.seq >= MAX_RECORDS_PER_DIRECTION) throw new Error("record sequence limit reached");
    const bodyLen = 2 + payload.length;
    const out = Buffer.allocUnsafe(RECORD_HEADER_SIZE + bodyLen + RECORD_TAG_SIZE);
    this.magic.copy(out, 0, 0, 4);
    out.writeUInt32LE(bodyLen, 4);
    const cipher = createCipheriv(CIPHER, this.key, nonceFor(this.seq++), { authTagLength: RECORD_TAG_SIZE });
    cipher.setAAD(out.subarray(0, RECORD_HEADER_SIZE), { plaintextLength: bodyLen });
    const typeBytes = Buffer.allocUnsafe(2);
    typeBytes.writeUInt16LE(type, 0);
    let at = RECORD_HEADER_SIZE;
    at += cipher.update(typeBytes).copy(out, at);
    at += cipher.update(payload).copy(out, at);
    at += cipher.final().copy(out, at);
    cipher.getAuthTag().copy(out, at);
    return out;
  }
}

/** Opens the peer's records for the other direction of one session. */
export class RecordOpener {
  private seq = 0;

  constructor(private readonly key: Buffer) {}

  get sequence(): number {
    return this.seq;
  }

  /**
   * The plaintext body (type u16le ‖ payload) of the next record, or null when its tag does not
   * verify (tampered, replayed, reordered or dropped records all end here).
   */
  open(header: Buffer, ciphertext: Buffer, tag: Buffer): Buffer | null {
    if (this.seq >= MAX_RECORDS_PER_DIRECTION) return null;
    const decipher = createDecipheriv(CIPHER, this.key, nonceFor(this.seq), {
      authTagLength: RECORD_TAG_SIZE,
    });
    decipher.setAAD(header, { plaintextLength: ciphertext.length });
    decipher.setAuthTag(tag);
    try {
      const body = Buffer.concat([decipher.update(ciphertext), decipher.final()]);
      this.seq++;
      return body;
    } catch {
      return null;
    }
  }
}
