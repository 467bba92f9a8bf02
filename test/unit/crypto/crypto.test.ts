import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import {
  HASH_LEN,
  ZERO_HASH,
  parseHash,
  sha256,
  sha256Parts,
  sha256d,
  toHex,
} from "../../../src/crypto/hash.js";
import {
  KeyPair,
  PUBKEY_LEN,
  SEED_LEN,
  SIGNATURE_LEN,
  publicKeyCacheSize,
  publicKeyObject,
  verifySignature,
} from "../../../src/crypto/ed25519.js";
import { loadOrCreateKeyFile, readKeyFile, writeKeyFile } from "../../../src/crypto/keyFile.js";

const hex = (s: string) => Buffer.from(s, "hex");
const refSha256 = (b: Uint8Array) => createHash("sha256").update(b).digest();

// ---------------------------------------------------------------------------------------------
void describe("sha256", () => {
  void it("matches the FIPS 180-2 / NIST known answers", () => {
    assert.equal(
      sha256(Buffer.alloc(0)).toString("hex"),
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    );
    assert.equal(
      sha256(Buffer.from("abc")).toString("hex"),
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
    assert.equal(
      sha256(Buffer.from("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")).toString("hex"),
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
    );
    assert.equal(sha256(Buffer.from("abc")).length, HASH_LEN);
  });

  void it("sha256d is SHA-256 applied twice (checked with createHash)", () => {
    const abc = Buffer.from("abc");
    const expected = createHash("sha256").update(createHash("sha256").update(abc).digest()).digest();
    assert.deepEqual(sha256d(abc), expected);
    assert.notDeepEqual(sha256d(abc), sha256(abc));
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
        assert.deepEqual(sha256d(b), refSha256(refSha256(b)));
      }),
      { numRuns: 200 },
    );
  });

  void it("agrees with createHash on random inputs, and hashes a Uint8Array view at its own offset", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), fc.nat(), (b, x, y) => {
        assert.deepEqual(sha256(b), refSha256(b));
        const start = b.length === 0 ? 0 : x % b.length;
        const end = start + (b.length === start ? 0 : y % (b.length - start));
        const view = new Uint8Array(b.buffer, b.byteOffset + start, end - start);
        assert.deepEqual(sha256(view), refSha256(Buffer.from(view)));
      }),
      { numRuns: 300 },
    );
    const big = Buffer.alloc(1 << 20, 0x5a);
    assert.deepEqual(sha256(big), refSha256(big));
  });

  void it("sha256Parts equals sha256 of the concatenation", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 }), (parts) => {
        assert.deepEqual(sha256Parts(parts), sha256(Buffer.concat(parts)));
      }),
      { numRuns: 300 },
    );
    assert.equal(
      sha256Parts([Buffer.from("a"), Buffer.from(""), Buffer.from("bc")]).toString("hex"),
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
    assert.deepEqual(sha256Parts([]), sha256(Buffer.alloc(0)));
  });

  void it("ZERO_HASH is 32 zero bytes", () => {
    assert.equal(ZERO_HASH.length, 32);
    assert.ok(ZERO_HASH.every((b) => b === 0));
  });

  void it("toHex renders exactly the bytes of a view", () => {
    const backing = Buffer.from("00112233445566", "hex");
    assert.equal(toHex(new Uint8Array(backing.buffer, backing.byteOffset + 2, 3)), "223344");
    assert.equal(toHex(new Uint8Array(0)), "");
  });

  void it("parseHash accepts exactly 64 hex characters", () => {
    const h = sha256(Buffer.from("x"));
    assert.deepEqual(parseHash(h.toString("hex")), h);
    assert.deepEqual(parseHash(h.toString("hex").toUpperCase()), h);
    for (const bad of [
      "",
      "00",
      "0".repeat(63),
      "0".repeat(65),
      "g" + "0".repeat(63),
      ` ${"0".repeat(63)}`,
    ]) {
      assert.equal(parseHash(bad), null, JSON.stringify(bad));
    }
    assert.equal(parseHash(123 as unknown as string), null);
  });
});

// ---------------------------------------------------------------------------------------------
// RFC 8032 section 7.1, TEST 1, 2 and 3 (secret seed, public key, message, signature).
const RFC8032 = [
  {
    name: "TEST 1 (empty message)",
    seed: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    pub: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    msg: "",
    sig:
      "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155" +
      "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
  },
  {
    name: "TEST 2 (one byte)",
    seed: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
    pub: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
    msg: "72",
    sig:
      "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da" +
      "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
  },
  {
    name: "TEST 3 (two bytes)",
    seed: "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
    pub: "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
    msg: "af82",
    sig:
      "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac" +
      "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
  },
] as const;

void describe("ed25519: RFC 8032 test vectors", () => {
  for (const v of RFC8032) {
    void it(v.name, () => {
      const kp = KeyPair.fromSeed(hex(v.seed));
      assert.equal(kp.publicKey.toString("hex"), v.pub);
      assert.equal(kp.publicKey.length, PUBKEY_LEN);
      assert.equal(kp.seed().toString("hex"), v.seed);
      const sig = kp.sign(hex(v.msg));
      assert.equal(sig.length, SIGNATURE_LEN);
      assert.equal(sig.toString("hex"), v.sig);
      assert.equal(verifySignature(hex(v.pub), hex(v.msg), hex(v.sig)), true);
      // Plain Uint8Arrays work as well as Buffers.
      assert.equal(
        verifySignature(new Uint8Array(hex(v.pub)), new Uint8Array(hex(v.msg)), new Uint8Array(hex(v.sig))),
        true,
      );
    });
  }
});

void describe("ed25519: KeyPair", () => {
  void it("fromSeed rejects a seed that is not 32 bytes", () => {
    for (const n of [0, 31, 33, 64]) {
      assert.throws(() => KeyPair.fromSeed(Buffer.alloc(n)), /seed must be 32 bytes/);
    }
  });

  void it("seed() returns a copy, and fromSeed copies its input", () => {
    const seed = hex(RFC8032[0].seed);
    const kp = KeyPair.fromSeed(seed);
    seed.fill(0);
    const s = kp.seed();
    assert.equal(s.toString("hex"), RFC8032[0].seed);
    s.fill(0);
    assert.equal(kp.seed().toString("hex"), RFC8032[0].seed);
    assert.equal(kp.seed().length, SEED_LEN);
  });

  void it("generate() makes distinct working keys that round-trip through their seed", () => {
    const a = KeyPair.generate();
    const b = KeyPair.generate();
    assert.notDeepEqual(a.publicKey, b.publicKey);
    assert.deepEqual(KeyPair.fromSeed(a.seed()).publicKey, a.publicKey);
    const msg = Buffer.from("hello");
    assert.equal(verifySignature(a.publicKey, msg, a.sign(msg)), true);
    assert.equal(verifySignature(b.publicKey, msg, a.sign(msg)), false);
  });

  void it("signatures are deterministic and verify; any other message fails (property)", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ maxLength: 100 }),
        fc.uint8Array({ maxLength: 100 }),
        (seed, msg, other) => {
          const kp = KeyPair.fromSeed(seed);
          const sig = kp.sign(msg);
          assert.deepEqual(kp.sign(msg), sig);
          assert.equal(verifySignature(kp.publicKey, msg, sig), true);
          if (!Buffer.from(msg).equals(Buffer.from(other))) {
            assert.equal(verifySignature(kp.publicKey, other, sig), false);
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});

void describe("ed25519: verifySignature rejects without throwing", () => {
  const v = RFC8032[1];
  const pub = hex(v.pub);
  const msg = hex(v.msg);
  const sig = hex(v.sig);

  void it("every single flipped bit of the signature", () => {
    for (let bit = 0; bit < SIGNATURE_LEN * 8; bit++) {
      const bad = Buffer.from(sig);
      bad[bit >> 3] = bad[bit >> 3]! ^ (1 << (bit & 7));
      assert.equal(verifySignature(pub, msg, bad), false, `bit ${bit}`);
    }
  });

  void it("a wrong message", () => {
    assert.equal(verifySignature(pub, hex("73"), sig), false);
    assert.equal(verifySignature(pub, Buffer.alloc(0), sig), false);
    assert.equal(verifySignature(pub, hex("7200"), sig), false);
  });

  void it("a wrong key", () => {
    assert.equal(verifySignature(hex(RFC8032[0].pub), msg, sig), false);
    assert.equal(verifySignature(hex(RFC8032[2].pub), msg, sig), false);
  });

  void it("wrong lengths of key or signature", () => {
    assert.equal(verifySignature(pub.subarray(0, 31), msg, sig), false);
    assert.equal(verifySignature(Buffer.concat([pub, Buffer.alloc(1)]), msg, sig), false);
    assert.equal(verifySignature(Buffer.alloc(0), msg, sig), false);
    assert.equal(verifySignature(pub, msg, sig.subarray(0, 63)), false);
    assert.equal(verifySignature(pub, msg, Buffer.concat([sig, Buffer.alloc(1)])), false);
    assert.equal(verifySignature(pub, msg, Buffer.alloc(0)), false);
  });

  void it("degenerate keys and signatures", () => {
    assert.equal(verifySignature(Buffer.alloc(32), msg, sig), false);
    assert.equal(verifySignature(Buffer.alloc(32, 0xff), msg, sig), false);
    assert.equal(verifySignature(pub, msg, Buffer.alloc(64)), false);
    assert.equal(verifySignature(pub, msg, Buffer.alloc(64, 0xff)), false);
  });

  void it("a malleated signature with S + L in place of S (RFC 8032 requires S < L)", () => {
    const L = (1n << 252n) + 27742317777372353535851937790883648493n;
    const s = BigInt("0x" + Buffer.from(sig.subarray(32)).reverse().toString("hex"));
    const sPlusL = Buffer.from((s + L).toString(16).padStart(64, "0"), "hex").reverse();
    const malleated = Buffer.concat([sig.subarray(0, 32), sPlusL]);
    assert.equal(verifySignature(pub, msg, malleated), false);
  });
});

void describe("ed25519: public KeyObject cache", () => {
  void it("repeated verification with one key adds one cache entry and reuses it", () => {
    const kp = KeyPair.fromSeed(Buffer.alloc(32, 0x42));
    const msg = Buffer.from("cache me");
    const sig = kp.sign(msg);
    const before = publicKeyCacheSize();
    assert.equal(verifySignature(kp.publicKey, msg, sig), true);
    assert.equal(publicKeyCacheSize(), before + 1);
    for (let i = 0; i < 50; i++) assert.equal(verifySignature(kp.publicKey, msg, sig), true);
    assert.equal(publicKeyCacheSize(), before + 1);
    // The cache is keyed by the key's bytes, not by the object that holds them.
    const ko = publicKeyObject(kp.publicKey);
    assert.equal(publicKeyObject(Buffer.from(kp.publicKey)), ko);
    assert.equal(publicKeyObject(new Uint8Array(kp.publicKey)), ko);
    assert.equal(publicKeyCacheSize(), before + 1);
    // And it really is that key.
    const spki = ko.export({ format: "der", type: "spki" });
    assert.deepEqual(spki.subarray(spki.length - 32), kp.publicKey);
  });

  void it("a public key given in a view of a larger buffer is cached under its own bytes", () => {
    const kp = KeyPair.fromSeed(Buffer.alloc(32, 0x43));
    const backing = Buffer.concat([Buffer.alloc(7, 0xee), kp.publicKey, Buffer.alloc(5, 0xee)]);
    const view = new Uint8Array(backing.buffer, backing.byteOffset + 7, 32);
    assert.equal(publicKeyObject(view), publicKeyObject(kp.publicKey));
    const msg = Buffer.from("m");
    assert.equal(verifySignature(view, msg, kp.sign(msg)), true);
  });

  void it("is bounded at 16,384 entries and evicts the least recently used key", () => {
    // node:crypto does not decode the point when it imports a raw ed25519 public key, so distinct
    // 32-byte strings are enough to fill the cache (~1 s, where deriving 16,500 real keys takes ~8 s).
    const MAX = 16_384;
    const N = MAX + 116;
    const key = (i: number) => {
      const b = Buffer.alloc(32, 0xa5);
      b.writeUInt32LE(i, 0);
      return b;
    };
    const first = publicKeyObject(key(0));
    const second = publicKeyObject(key(1));
    for (let i = 2; i < N; i++) {
      publicKeyObject(key(i));
      // Keep key 1 recently used; key 0 is never touched again.
      if (i % 1000 === 0) assert.equal(publicKeyObject(key(1)), second);
      assert.ok(publicKeyCacheSize() <= MAX);
    }
    assert.equal(publicKeyCacheSize(), MAX);
    assert.equal(publicKeyObject(key(1)), second, "a recently used key must stay cached");
    assert.equal(publicKeyObject(key(N - 1)), publicKeyObject(key(N - 1)));
    assert.notEqual(publicKeyObject(key(0)), first, "the least recently used key must have been evicted");
    assert.equal(publicKeyCacheSize(), MAX);
  });

  void it("verification still works after the cache has churned", () => {
    const v = RFC8032[2];
    assert.equal(verifySignature(hex(v.pub), hex(v.msg), hex(v.sig)), true);
  });
});

// ---------------------------------------------------------------------------------------------
void describe("key files", () => {
  const dir = mkdtempSync(join(tmpdir(), "timecoin-keyfile-test-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  void it("writeKeyFile creates a 0600 file holding the hex seed, and readKeyFile reads the same key", () => {
    const p = join(dir, "node.key");
    const kp = KeyPair.fromSeed(hex(RFC8032[0].seed));
    writeKeyFile(p, kp);
    assert.equal(statSync(p).mode & 0o777, 0o600);
    assert.equal(readFileSync(p, "utf8"), RFC8032[0].seed + "\n");
    const back = readKeyFile(p);
    assert.deepEqual(back.publicKey, kp.publicKey);
    assert.deepEqual(back.seed(), kp.seed());
  });

  void it("writeKeyFile refuses to overwrite an existing file and leaves it unchanged", () => {
    const p = join(dir, "operator.key");
    writeKeyFile(p, KeyPair.fromSeed(hex(RFC8032[1].seed)));
    assert.throws(
      () => writeKeyFile(p, KeyPair.fromSeed(hex(RFC8032[2].seed))),
      (e: Error) => e.message.includes("refusing to overwrite") && e.message.includes(p),
    );
    assert.equal(readKeyFile(p).publicKey.toString("hex"), RFC8032[1].pub);
  });

  void it("readKeyFile accepts surrounding whitespace and upper-case hex", () => {
    const p = join(dir, "upper.key");
    writeFileSync(p, `  ${RFC8032[2].seed.toUpperCase()}\r\n\n`);
    assert.equal(readKeyFile(p).publicKey.toString("hex"), RFC8032[2].pub);
  });

  void it("a malformed key file gives an error naming the path", () => {
    const cases = {
      "empty.key": "",
      "short.key": RFC8032[0].seed.slice(0, 62),
      "long.key": RFC8032[0].seed + "00",
      "nothex.key": "zz" + RFC8032[0].seed.slice(2),
      "twolines.key": RFC8032[0].seed + "\n" + RFC8032[1].seed,
    };
    for (const [name, content] of Object.entries(cases)) {
      const p = join(dir, name);
      writeFileSync(p, content);
      assert.throws(
        () => readKeyFile(p),
        (e: Error) => e.message.includes(p) && /hex ed25519 seed/.test(e.message),
        name,
      );
    }
  });

  void it("a missing key file gives an error naming the path", () => {
    const p = join(dir, "missing.key");
    assert.throws(
      () => readKeyFile(p),
      (e: Error) => e.message.includes(p) && e.message.includes("ENOENT"),
    );
  });

  void it("loadOrCreateKeyFile creates a 0600 key once and then loads the same key", () => {
    const p = join(dir, "auto.key");
    const a = loadOrCreateKeyFile(p);
    assert.equal(statSync(p).mode & 0o777, 0o600);
    const b = loadOrCreateKeyFile(p);
    assert.deepEqual(b.publicKey, a.publicKey);
    assert.deepEqual(b.seed(), a.seed());
  });
});
