import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fc from "fast-check";
import { base58Decode, base58Encode } from "../../../src/crypto/base58.js";
import {
  ADDRESS_HASH_LEN,
  AddressError,
  addressFromPubkey,
  addressPrefix,
  decodeAddress,
  encodeAddress,
  pubkeyHash,
  type AddressErrorCode,
  type NetworkName,
} from "../../../src/crypto/address.js";

const hex = (s: string) => Buffer.from(s, "hex");
const ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/** Independent base58 (the classic digit-array algorithm, no BigInt) to check the module against. */
function refBase58(data: Uint8Array): string {
  const digits: number[] = [];
  for (const byte of data) {
    let carry = byte;
    for (let j = 0; j < digits.length; j++) {
      carry += digits[j]! << 8;
      digits[j] = carry % 58;
      carry = Math.floor(carry / 58);
    }
    while (carry > 0) {
      digits.push(carry % 58);
      carry = Math.floor(carry / 58);
    }
  }
  let out = "";
  for (let i = 0; i < data.length && data[i] === 0; i++) out += "1";
  for (let i = digits.length - 1; i >= 0; i--) out += ALPHABET[digits[i]!];
  return out;
}

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest();

function addressError(fn: () => unknown, code: AddressErrorCode): AddressError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof AddressError, `expected AddressError, got ${String(e)}`);
    assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`);
    return e;
  }
  assert.fail(`expected AddressError ${code}, nothing was thrown`);
}

// ---------------------------------------------------------------------------------------------
void describe("base58", () => {
  // Bitcoin Core's base58_encode_decode.json.
  const VECTORS: ReadonlyArray<readonly [string, string]> = [
    ["", ""],
    ["61", "2g"],
    ["626262", "a3gV"],
    ["636363", "aPEr"],
    ["73696d706c792061206c6f6e6720737472696e67", "2cFupjhnEsSn59qHXstmK2ffpLv2"],
    ["00eb15231dfceb60925886b67d065299925915aeb172c06647", "1NS17iag9jJgTHD1VXjvLCEnZuQ3rJDE9L"],
    ["516b6fcd0f", "ABnLTmg"],
    ["bf4f89001e670274dd", "3SEo3LWLoPntC"],
    ["572e4794", "3EFU7m"],
    ["ecac89cad93923c02321", "EJDM8drfXA6uyA"],
    ["10c8511e", "Rt5zm"],
    ["00000000000000000000", "1111111111"],
  ];

  for (const [h, s] of VECTORS) {
    void it(`encodes ${h || "(empty)"} as ${s || "(empty)"} and decodes it back`, () => {
      assert.equal(base58Encode(hex(h)), s);
      assert.equal(refBase58(hex(h)), s); // the reference implementation agrees
      const back = base58Decode(s);
      assert.ok(back);
      assert.equal(back.toString("hex"), h);
    });
  }

  void it("round-trips any bytes, leading zeros included, and agrees with an independent encoder", () => {
    fc.assert(
      fc.property(fc.nat({ max: 6 }), fc.uint8Array({ maxLength: 60 }), (zeros, rest) => {
        const data = Buffer.concat([Buffer.alloc(zeros), rest]);
        const s = base58Encode(data);
        assert.equal(s, refBase58(data));
        assert.match(s, /^[1-9A-HJ-NP-Za-km-z]*$/);
        assert.deepEqual(base58Decode(s), data);
      }),
      { numRuns: 500 },
    );
  });

  void it("decodes every canonical string back to the same string (decode is injective)", () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...ALPHABET), maxLength: 40 }), (s) => {
        const b = base58Decode(s);
        assert.ok(b);
        assert.equal(base58Encode(b), s);
      }),
      { numRuns: 500 },
    );
  });

  void it("rejects characters outside the alphabet", () => {
    for (const c of ["0", "O", "I", "l", "+", "/", "=", " ", "-", "é", "\n"]) {
      assert.equal(base58Decode(c), null, JSON.stringify(c));
      assert.equal(base58Decode(`2g${c}`), null, JSON.stringify(c));
      assert.equal(base58Decode(`${c}a3gV`), null, JSON.stringify(c));
      assert.equal(base58Decode(`11${c}`), null, JSON.stringify(c));
    }
  });
});

// ---------------------------------------------------------------------------------------------
// RFC 8032 TEST 1 public key.
const PUB = hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
const PINNED: Record<NetworkName, string> = {
  mainnet: "TIME146jp6a3cnphZZ4orZEBvg3GhVkwobjy2g",
  testnet: "TIME046jp6a3cnphZZ4orZEBvg3GhVkwobjy2g",
  devnet: "TIME046jp6a3cnphZZ4orZEBvg3GhVkwobjy2g",
};
const NETWORKS: readonly NetworkName[] = ["mainnet", "testnet", "devnet"];

/** prefix + base58(first20(sha256(pub)) ‖ first4(sha256(sha256(first20)))), built from scratch. */
function refAddress(pub: Uint8Array, prefix: string): string {
  const h20 = sha(pub).subarray(0, 20);
  const check = sha(sha(h20)).subarray(0, 4);
  return prefix + refBase58(Buffer.concat([h20, check]));
}

void describe("addresses", () => {
  void it("use the prefix TIME1 on mainnet and TIME0 on testnet and devnet", () => {
    assert.equal(addressPrefix("mainnet"), "TIME1");
    assert.equal(addressPrefix("testnet"), "TIME0");
    assert.equal(addressPrefix("devnet"), "TIME0");
  });

  void it("are computed from the public key as the definition says (RFC 8032 TEST 1 key)", () => {
    assert.equal(addressFromPubkey(PUB, "mainnet"), refAddress(PUB, "TIME1"));
    assert.equal(addressFromPubkey(PUB, "testnet"), refAddress(PUB, "TIME0"));
    assert.equal(addressFromPubkey(PUB, "devnet"), refAddress(PUB, "TIME0"));
    assert.deepEqual(pubkeyHash(PUB), sha(PUB).subarray(0, 20));
    assert.equal(pubkeyHash(PUB).length, ADDRESS_HASH_LEN);
  });

  void it("match the pinned regression vectors", () => {
    for (const n of NETWORKS) {
      assert.equal(addressFromPubkey(PUB, n), PINNED[n], n);
      assert.equal(refAddress(PUB, addressPrefix(n)), PINNED[n], n);
      assert.deepEqual(decodeAddress(PINNED[n], n), pubkeyHash(PUB));
    }
  });

  void it("round-trip any 20-byte payload on every network", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 20, maxLength: 20 }), fc.constantFrom(...NETWORKS), (h, n) => {
        const a = encodeAddress(h, n);
        assert.ok(a.startsWith(addressPrefix(n)));
        assert.ok(a.length <= 5 + 33);
        assert.deepEqual(decodeAddress(a, n), Buffer.from(h));
      }),
      { numRuns: 300 },
    );
    // The longest bodies (33 characters) are accepted.
    const ones = Buffer.alloc(20, 0xff);
    const longest = encodeAddress(ones, "mainnet");
    assert.equal(longest.length, 5 + 33);
    assert.deepEqual(decodeAddress(longest, "mainnet"), ones);
    // Leading zero bytes in the payload survive.
    const zeros = Buffer.alloc(20);
    assert.deepEqual(decodeAddress(encodeAddress(zeros, "mainnet"), "mainnet"), zeros);
  });

  void it("testnet and devnet addresses are interchangeable (same prefix)", () => {
    assert.deepEqual(decodeAddress(PINNED.testnet, "devnet"), pubkeyHash(PUB));
    assert.deepEqual(decodeAddress(PINNED.devnet, "testnet"), pubkeyHash(PUB));
  });

  void it("encodeAddress rejects a payload that is not 20 bytes", () => {
    for (const n of [0, 19, 21, 32])
      addressError(() => encodeAddress(Buffer.alloc(n), "mainnet"), "BAD_LENGTH");
  });
});

void describe("decodeAddress rejects", () => {
  const body = PINNED.mainnet.slice(5);

  void it("a bad checksum (one character changed)", () => {
    const last = body[body.length - 1]!;
    const swapped = last === "2" ? "3" : "2";
    addressError(() => decodeAddress(`TIME1${body.slice(0, -1)}${swapped}`, "mainnet"), "BAD_CHECKSUM");
    addressError(() => decodeAddress(`TIME0${body.slice(0, -1)}${swapped}`, "testnet"), "BAD_CHECKSUM");
  });

  void it("any single changed character, at any position (property)", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 20, maxLength: 20 }),
        fc.nat(),
        fc.constantFrom(...ALPHABET),
        (h, at, c) => {
          const a = encodeAddress(h, "mainnet");
          const i = 5 + (at % (a.length - 5));
          fc.pre(a[i] !== c);
          const changed = a.slice(0, i) + c + a.slice(i + 1);
          try {
            decodeAddress(changed, "mainnet");
          } catch (e) {
            assert.ok(e instanceof AddressError);
            assert.ok(e.code === "BAD_CHECKSUM" || e.code === "BAD_LENGTH", e.code);
            return;
          }
          assert.fail(`altered address ${changed} (from ${a}) was accepted`);
        },
      ),
      { numRuns: 300 },
    );
  });

  void it("the other network's prefix, naming the expected prefix", () => {
    const e1 = addressError(() => decodeAddress(PINNED.mainnet, "testnet"), "WRONG_NETWORK");
    assert.match(e1.message, /TIME0/);
    const e2 = addressError(() => decodeAddress(PINNED.testnet, "mainnet"), "WRONG_NETWORK");
    assert.match(e2.message, /TIME1/);
    const e3 = addressError(() => decodeAddress(PINNED.mainnet, "devnet"), "WRONG_NETWORK");
    assert.match(e3.message, /TIME0/);
  });

  void it("a prefix that is not TIME0 or TIME1", () => {
    for (const a of [
      `BTC1${body}`,
      `time1${body}`,
      `TIME2${body}`,
      `TIME${body}`,
      `XTIME1${body}`,
      ` TIME1${body}`,
      "",
      "TIME",
    ]) {
      addressError(() => decodeAddress(a, "mainnet"), "BAD_PREFIX");
    }
    addressError(() => decodeAddress(undefined as unknown as string, "mainnet"), "BAD_PREFIX");
    addressError(() => decodeAddress(42 as unknown as string, "mainnet"), "BAD_PREFIX");
  });

  void it("a character outside base58", () => {
    for (const c of ["0", "O", "I", "l", "+", " "]) {
      addressError(
        () => decodeAddress(`TIME1${body.slice(0, 10)}${c}${body.slice(11)}`, "mainnet"),
        "BAD_ENCODING",
      );
    }
  });

  void it("a body that decodes to the wrong number of bytes", () => {
    const h20 = sha(PUB).subarray(0, 20);
    const check = sha(sha(h20)).subarray(0, 4);
    // 23 and 25 bytes, and the bare 20-byte payload without a checksum.
    addressError(
      () => decodeAddress("TIME1" + refBase58(Buffer.concat([h20, check.subarray(0, 3)])), "mainnet"),
      "BAD_LENGTH",
    );
    addressError(
      () => decodeAddress("TIME1" + refBase58(Buffer.concat([h20, check, Buffer.from([1])])), "mainnet"),
      "BAD_LENGTH",
    );
    addressError(() => decodeAddress("TIME1" + refBase58(h20), "mainnet"), "BAD_LENGTH");
    addressError(() => decodeAddress("TIME1", "mainnet"), "BAD_LENGTH");
    // A leading '1' adds a zero byte.
    addressError(() => decodeAddress(`TIME11${body}`, "mainnet"), "BAD_LENGTH");
  });

  void it("an absurdly long address quickly, without decoding it", () => {
    const started = process.hrtime.bigint();
    addressError(() => decodeAddress("TIME1" + "z".repeat(200_000), "mainnet"), "BAD_LENGTH");
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    assert.ok(ms < 500, `took ${ms} ms`);
  });
});
