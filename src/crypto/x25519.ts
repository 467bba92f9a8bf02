/**
 * X25519 (RFC 7748) over node:crypto, with raw 32-byte keys. Private keys come from the caller
 * (the injected Random), so a handshake is reproducible from a seed and test vectors are fixed.
 */
import { diffieHellman, hkdfSync, type KeyObject } from "node:crypto";
import { rawPrivateKey, rawPublicBytes, rawPublicKey } from "./rawKeys.js";

export const X25519_KEY_LEN = 32;

/** An ephemeral X25519 key pair from 32 random bytes (clamped by X25519 itself). */
export class X25519Key {
  readonly publicKey: Buffer;
  private readonly priv: KeyObject;

  constructor(privateBytes: Uint8Array) {
    this.priv = rawPrivateKey("X25519", privateBytes);
    this.publicKey = rawPublicBytes(this.priv);
  }

  /**
   * The shared secret with `peerPublic`, or null when it is all zeros (a low-order point: the
   * peer chose a key that forces a known secret, RFC 7748 section 6.1).
   */
  agree(peerPublic: Uint8Array): Buffer | null {
    let secret: Buffer;
    try {
      secret = diffieHellman({ privateKey: this.priv, publicKey: rawPublicKey("X25519", peerPublic) });
    } catch {
      return null;
    }
    return secret.every((b) => b === 0) ? null : secret;
  }
}

/** HKDF-SHA256 (RFC 5869). */
export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Buffer {
  return Buffer.from(hkdfSync("sha256", ikm, salt, info, length));
}
