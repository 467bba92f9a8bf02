/**
 * The VRF (src/crypto/vrf.ts): the RFC 9381 ECVRF-EDWARDS25519-SHA512-TAI proofs of its
 * appendix verify here with the RFC's outputs; our own proofs verify and give the same output
 * for one key and input whatever nonce made them; and every altered key, input or proof byte is
 * refused, without a throw.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { KeyPair } from "../../../src/crypto/ed25519.js";
import { VRF_PROOF_LEN, vrfProve, vrfVerify } from "../../../src/crypto/vrf.js";

const hex = (s: string): Buffer => Buffer.from(s, "hex");

// RFC 9381, appendix B.3 (the key pairs are RFC 8032's first two test keys).
const RFC = [
  {
    sk: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    pk: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    alpha: "",
    pi:
      "8657106690b5526245a92b003bb079ccd1a92130477671f6fc01ad16f26f723f" +
      "26f8a57ccaed74ee1b190bed1f479d9727d2d0f9b005a6e456a35d4fb0daab12" +
      "68a1b0db10836d9826a528ca76567805",
    beta:
      "90cf1df3b703cce59e2a35b925d411164068269d7b2d29f3301c03dd757876ff" +
      "66b71dda49d2de59d03450451af026798e8f81cd2e333de5cdf4f3e140fdd8ae",
  },
  {
    sk: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
    pk: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
    alpha: "72",
    pi:
      "f3141cd382dc42909d19ec5110469e4feae18300e94f304590abdced48aed593" +
      "3bf0864a62558b3ed7f2fea45c92a465301b3bbf5e3e54ddf2d935be3b67926d" +
      "a3ef39226bbc355bdc9850112c8f4b02",
    // The first 59 bytes of the RFC's output.
    beta: "eb4440665d3891d668e7e0fcaf587f1b4bd7fbfe99d0eb2211ccec90496310eb5e33821bc613efb94db5e5b54c70a848a0bef4553a41befc57663b5637",
  },
];

describe("VRF (ECVRF-EDWARDS25519-SHA512-TAI)", () => {
  it("the RFC 9381 proofs verify, with the RFC's outputs; ours for the same key and input give the same output", () => {
    for (const v of RFC) {
      const key = KeyPair.fromSeed(hex(v.sk));
      assert.equal(key.publicKey.toString("hex"), v.pk);
      const out = vrfVerify(hex(v.pk), hex(v.pi), hex(v.alpha));
      assert.ok(out, `the RFC's proof for alpha "${v.alpha}" verifies`);
      assert.ok(out.toString("hex").startsWith(v.beta));
      const ours = vrfProve(hex(v.sk), hex(v.alpha));
      assert.equal(ours.length, VRF_PROOF_LEN);
      assert.ok(!ours.equals(hex(v.pi)), "our nonce is domain-separated from Ed25519's");
      assert.deepEqual(vrfVerify(hex(v.pk), ours, hex(v.alpha)), out, "one output per key and input");
    }
  });

  it("refuses another key, another input, and any altered proof byte; malformed bytes are not valid, not errors", () => {
    const a = KeyPair.fromSeed(Buffer.alloc(32, 1));
    const b = KeyPair.fromSeed(Buffer.alloc(32, 2));
    const alpha = Buffer.from("era 7");
    const proof = vrfProve(a.seed(), alpha);
    assert.ok(vrfVerify(a.publicKey, proof, alpha));
    assert.equal(vrfVerify(b.publicKey, proof, alpha), null, "another key");
    assert.equal(vrfVerify(a.publicKey, proof, Buffer.from("era 8")), null, "another input");
    for (let i = 0; i < VRF_PROOF_LEN; i++) {
      const bent = Buffer.from(proof);
      bent[i]! ^= 1 << (i % 8);
      assert.equal(vrfVerify(a.publicKey, bent, alpha), null, `byte ${i} altered`);
    }
    assert.equal(vrfVerify(a.publicKey, proof.subarray(1), alpha), null, "short");
    assert.equal(vrfVerify(Buffer.alloc(32, 0xff), proof, alpha), null, "not a point");
    // The identity (a small-order key) is refused, as RFC 9381's key check requires.
    const identity = Buffer.alloc(32);
    identity[0] = 1;
    assert.equal(vrfVerify(identity, proof, alpha), null, "small-order key");
    // s at or above the group order.
    const big = Buffer.from(proof);
    big.fill(0xff, 48);
    assert.equal(vrfVerify(a.publicKey, big, alpha), null, "s not reduced");
  });
});
