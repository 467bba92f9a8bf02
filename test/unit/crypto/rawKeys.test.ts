/**
 * Raw keys through JWK (crypto/rawKeys.ts) must be exactly the keys the DER path gives: the same
 * public key from a private one, the same signatures, the same shared secrets. Checked on the RFC
 * vectors and on random keys against DER-built KeyObjects.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createPrivateKey, createPublicKey, diffieHellman, sign, verify } from "node:crypto";
import fc from "fast-check";
import { rawPrivateKey, rawPublicBytes, rawPublicKey, type RawCurve } from "../../../src/crypto/rawKeys.js";
import { X25519Key } from "../../../src/crypto/x25519.js";

const PKCS8: Record<RawCurve, string> = {
  Ed25519: "302e020100300506032b657004220420",
  X25519: "302e020100300506032b656e04220420",
};
const SPKI: Record<RawCurve, string> = {
  Ed25519: "302a300506032b6570032100",
  X25519: "302a300506032b656e032100",
};
const derPrivate = (crv: RawCurve, b: Uint8Array) =>
  createPrivateKey({ key: Buffer.concat([Buffer.from(PKCS8[crv], "hex"), b]), format: "der", type: "pkcs8" });
const derPublicBytes = (crv: RawCurve, b: Uint8Array): Buffer => {
  const spki = createPublicKey(derPrivate(crv, b)).export({ format: "der", type: "spki" });
  assert.equal(spki.subarray(0, 12).toString("hex"), SPKI[crv]);
  return Buffer.from(spki.subarray(12));
};
const hex = (s: string) => Buffer.from(s, "hex");

describe("raw keys", () => {
  it("X25519: RFC 7748 section 6.1, both sides", () => {
    const alice = new X25519Key(hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"));
    const bob = new X25519Key(hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"));
    assert.equal(
      alice.publicKey.toString("hex"),
      "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
    );
    assert.equal(
      bob.publicKey.toString("hex"),
      "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
    );
    const shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
    assert.equal(alice.agree(bob.publicKey)?.toString("hex"), shared);
    assert.equal(bob.agree(alice.publicKey)?.toString("hex"), shared);
  });

  it("Ed25519 and X25519: the same keys as DER, for any 32 bytes", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ maxLength: 64 }),
        (b, msg) => {
          for (const crv of ["Ed25519", "X25519"] as const) {
            const pub = rawPublicBytes(rawPrivateKey(crv, b));
            assert.deepEqual(pub, derPublicBytes(crv, b), crv);
            assert.deepEqual(rawPublicBytes(rawPublicKey(crv, pub)), pub);
          }
          // Ed25519 is deterministic: both private keys sign alike, and each public key verifies.
          const sig = sign(null, msg, rawPrivateKey("Ed25519", b));
          assert.deepEqual(sig, sign(null, msg, derPrivate("Ed25519", b)));
          assert.ok(verify(null, msg, rawPublicKey("Ed25519", derPublicBytes("Ed25519", b)), sig));
          // X25519: a secret agreed through raw keys equals one agreed through DER keys.
          const other = derPrivate("X25519", Buffer.alloc(32, 7));
          const viaRaw = diffieHellman({
            privateKey: rawPrivateKey("X25519", b),
            publicKey: rawPublicKey("X25519", rawPublicBytes(other)),
          });
          const viaDer = diffieHellman({
            privateKey: other,
            publicKey: createPublicKey(derPrivate("X25519", b)),
          });
          assert.deepEqual(viaRaw, viaDer);
        },
      ),
      { numRuns: 50, seed: 7 },
    );
  });

  it("a public key of the wrong length is refused", () => {
    for (const crv of ["Ed25519", "X25519"] as const) {
      assert.throws(() => rawPublicKey(crv, Buffer.alloc(31, 1)));
      assert.throws(() => rawPublicKey(crv, Buffer.alloc(33, 1)));
    }
  });
});
