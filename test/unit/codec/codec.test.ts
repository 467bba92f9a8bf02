import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { CodecError, Reader, Writer, decodeExact, type CodecErrorCode } from "../../../src/codec/index.js";

const CODES: readonly CodecErrorCode[] = [
  "OUT_OF_BOUNDS",
  "LENGTH_OVER_CAP",
  "TRAILING_BYTES",
  "INVALID_VALUE",
];
const RUNS = 400;

// ---------------------------------------------------------------------------------------------
// A composite record that uses every field kind of the codec.

const BYTES_CAP = 48;
const STRING_CAP = 40; // in UTF-8 bytes
const ITEMS_CAP = 6;
const TAG_CAP = 12;

interface Item {
  id: number; // u32
  tag: string; // string(TAG_CAP)
  blob: Buffer; // varBytes(BYTES_CAP)
}

interface Rec {
  a: number; // u8
  b: number; // u16
  c: number; // u32
  d: bigint; // u64
  e: number; // u64n
  f: boolean;
  g: Buffer; // fixed 32
  h: Buffer; // varBytes(BYTES_CAP)
  s: string; // string(STRING_CAP)
  items: Item[]; // array(ITEMS_CAP)
}

function writeItem(w: Writer, it: Item): void {
  w.u32(it.id).string(it.tag, TAG_CAP).varBytes(it.blob, BYTES_CAP);
}

function readItem(r: Reader): Item {
  return { id: r.u32(), tag: r.string(TAG_CAP), blob: r.varBytes(BYTES_CAP) };
}

function encodeRec(x: Rec, w = new Writer()): Buffer {
  w.u8(x.a).u16(x.b).u32(x.c).u64(x.d).u64n(x.e).bool(x.f).fixed(x.g, 32);
  w.varBytes(x.h, BYTES_CAP).string(x.s, STRING_CAP);
  w.array(x.items, ITEMS_CAP, writeItem);
  return w.toBuffer();
}

function readRec(r: Reader): Rec {
  return {
    a: r.u8(),
    b: r.u16(),
    c: r.u32(),
    d: r.u64(),
    e: r.u64n(),
    f: r.bool(),
    g: r.fixed(32),
    h: r.varBytes(BYTES_CAP),
    s: r.string(STRING_CAP),
    items: r.array(ITEMS_CAP, readItem),
  };
}

const decodeRec = (b: Uint8Array): Rec => decodeExact(b, readRec);

const bytesArb = (min: number, max: number) =>
  fc.uint8Array({ minLength: min, maxLength: max }).map((u) => Buffer.from(u));

/** Any well-formed string (all code points, sometimes with a leading BOM) within `cap` UTF-8 bytes. */
const stringArb = (cap: number) =>
  fc
    .tuple(fc.constantFrom("", "\uFEFF"), fc.string({ unit: "binary", maxLength: cap }))
    .map(([bom, s]) => bom + s)
    .filter((s) => Buffer.byteLength(s, "utf8") <= cap);

const itemArb: fc.Arbitrary<Item> = fc
  .record({
    id: fc.integer({ min: 0, max: 0xffffffff }),
    tag: stringArb(TAG_CAP),
    blob: bytesArb(0, BYTES_CAP),
  })
  .map((r) => ({ ...r })); // fc.record builds null-prototype objects; the decoder builds plain ones

const recArb: fc.Arbitrary<Rec> = fc
  .record({
    a: fc.integer({ min: 0, max: 0xff }),
    b: fc.integer({ min: 0, max: 0xffff }),
    c: fc.integer({ min: 0, max: 0xffffffff }),
    d: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    e: fc.oneof(fc.maxSafeNat(), fc.constantFrom(0, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER)),
    f: fc.boolean(),
    g: bytesArb(32, 32),
    h: bytesArb(0, BYTES_CAP),
    s: stringArb(STRING_CAP),
    items: fc.array(itemArb, { maxLength: ITEMS_CAP }),
  })
  .map((r) => ({ ...r }));

/** Runs `fn`, requires it to throw a CodecError with a known code, and returns that error. */
function codecErrorOf(fn: () => unknown): CodecError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof CodecError, `expected CodecError, got ${String(e)}`);
    assert.ok(CODES.includes(e.code), `unknown code ${e.code}`);
    return e;
  }
  assert.fail("expected a CodecError, but nothing was thrown");
}

function throwsCode(fn: () => unknown, code: CodecErrorCode): CodecError {
  const e = codecErrorOf(fn);
  assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`);
  return e;
}

const u32le = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};

// ---------------------------------------------------------------------------------------------

void describe("codec: byte layout", () => {
  void it("writes every field kind little-endian with u32 length prefixes (known answer)", () => {
    const w = new Writer()
      .u8(0x01)
      .u16(0x0203)
      .u32(0x04050607)
      .u64(0x08090a0b0c0d0e0fn)
      .u64n(Number.MAX_SAFE_INTEGER)
      .bool(true)
      .bool(false)
      .fixed(Buffer.from([0xde, 0xad]), 2)
      .varBytes(Buffer.from([0xaa]), 4)
      .string("hé", 8)
      .array([1, 2], 4, (w2, x) => w2.u8(x));
    const hex = [
      "01",
      "0302",
      "07060504",
      "0f0e0d0c0b0a0908",
      "ffffffffffff1f00",
      "01",
      "00",
      "dead",
      "01000000aa",
      "0300000068c3a9",
      "020000000102",
    ].join("");
    assert.equal(w.toBuffer().toString("hex"), hex);
    assert.equal(w.length, hex.length / 2);

    const r = new Reader(Buffer.from(hex, "hex"));
    assert.equal(r.u8(), 0x01);
    assert.equal(r.u16(), 0x0203);
    assert.equal(r.u32(), 0x04050607);
    assert.equal(r.u64(), 0x08090a0b0c0d0e0fn);
    assert.equal(r.u64n(), Number.MAX_SAFE_INTEGER);
    assert.equal(r.bool(), true);
    assert.equal(r.bool(), false);
    assert.deepEqual(r.fixed(2), Buffer.from([0xde, 0xad]));
    assert.deepEqual(r.varBytes(4), Buffer.from([0xaa]));
    assert.equal(r.string(8), "hé");
    assert.deepEqual(
      r.array(4, (rr) => rr.u8()),
      [1, 2],
    );
    assert.ok(r.atEnd);
    r.end();
  });

  void it("u64 and u64n agree on the encoding of the same value", () => {
    fc.assert(
      fc.property(fc.maxSafeNat(), (n) => {
        const a = new Writer().u64(BigInt(n)).toBuffer();
        const b = new Writer().u64n(n).toBuffer();
        assert.deepEqual(a, b);
        assert.equal(
          decodeExact(a, (r) => r.u64n()),
          n,
        );
        assert.equal(
          decodeExact(b, (r) => r.u64()),
          BigInt(n),
        );
      }),
      { numRuns: RUNS },
    );
  });

  void it("grows its buffer from any initial size, including 0 and 1", () => {
    for (const initial of [0, 1, 3, 256]) {
      const w = new Writer(initial);
      const data = Buffer.alloc(1000, 7);
      w.u8(1).raw(data).u64(2n);
      const out = w.toBuffer();
      assert.equal(out.length, 1 + 1000 + 8);
      assert.equal(out[0], 1);
      assert.deepEqual(out.subarray(1, 1001), data);
      assert.equal(out.readBigUInt64LE(1001), 2n);
    }
  });

  void it("toBuffer returns a copy", () => {
    const w = new Writer().u8(5);
    const a = w.toBuffer();
    a[0] = 9;
    assert.equal(w.toBuffer()[0], 5);
  });

  void it("Reader reads a Uint8Array view at its own offset, and tracks offset/remaining/atEnd", () => {
    const backing = new Uint8Array([0xee, 0xee, 0x01, 0x02, 0x03, 0xee]);
    const view = new Uint8Array(backing.buffer, 2, 3);
    const r = new Reader(view);
    assert.equal(r.offset, 0);
    assert.equal(r.remaining, 3);
    assert.equal(r.atEnd, false);
    assert.equal(r.u16(), 0x0201);
    assert.equal(r.offset, 2);
    assert.equal(r.remaining, 1);
    assert.equal(r.u8(), 0x03);
    assert.equal(r.atEnd, true);
    throwsCode(() => r.u8(), "OUT_OF_BOUNDS");
  });

  void it("fixed() and varBytes() return copies; view() shares the input", () => {
    const input = Buffer.from([1, 2, 3, 4, 0, 0, 0, 0]);
    input.writeUInt32LE(0, 4);
    const input2 = Buffer.concat([Buffer.from([1, 2]), u32le(2), Buffer.from([9, 9])]);

    const f = new Reader(input).fixed(2);
    f[0] = 100;
    assert.equal(input[0], 1);

    const v = new Reader(input).view(2);
    v[0] = 100;
    assert.equal(input[0], 100);

    const r = new Reader(input2);
    r.fixed(2);
    const vb = r.varBytes(8);
    vb[0] = 1;
    assert.equal(input2[6], 9);
  });

  void it("raw() writes bytes without a prefix", () => {
    assert.equal(new Writer().raw(Buffer.from("abc")).toBuffer().toString("hex"), "616263");
  });
});

void describe("codec: properties of a composite record", () => {
  void it("decode(encode(x)) deep-equals x", () => {
    fc.assert(
      fc.property(recArb, (x) => {
        assert.deepStrictEqual(decodeRec(encodeRec(x)), x);
      }),
      { numRuns: RUNS },
    );
  });

  void it("encode(decode(bytes)) equals bytes for valid encodings (canonical)", () => {
    fc.assert(
      fc.property(recArb, (x) => {
        const bytes = encodeRec(x);
        assert.deepEqual(encodeRec(decodeRec(bytes)), bytes);
        // The writer's initial size must not matter.
        assert.deepEqual(encodeRec(x, new Writer(1)), bytes);
      }),
      { numRuns: RUNS },
    );
  });

  void it("a mutated encoding either fails with a CodecError or re-encodes to exactly the same bytes", () => {
    // This is the real canonicity check: no two byte strings may decode to the same value.
    fc.assert(
      fc.property(recArb, fc.nat(), fc.integer({ min: 1, max: 255 }), (x, at, xor) => {
        const bytes = encodeRec(x);
        const i = at % bytes.length;
        const mutated = Buffer.from(bytes);
        mutated[i] = mutated[i]! ^ xor;
        let decoded: Rec;
        try {
          decoded = decodeRec(mutated);
        } catch (e) {
          assert.ok(e instanceof CodecError, `not a CodecError: ${String(e)}`);
          assert.ok(CODES.includes(e.code));
          return;
        }
        assert.deepEqual(encodeRec(decoded), mutated);
      }),
      { numRuns: RUNS * 2 },
    );
  });

  void it("every proper prefix of a valid encoding fails with OUT_OF_BOUNDS", () => {
    fc.assert(
      fc.property(recArb, (x) => {
        const bytes = encodeRec(x);
        for (let n = 0; n < bytes.length; n++) {
          throwsCode(() => decodeRec(bytes.subarray(0, n)), "OUT_OF_BOUNDS");
        }
      }),
      { numRuns: 200 },
    );
  });

  void it("a valid encoding with bytes appended fails with TRAILING_BYTES", () => {
    fc.assert(
      fc.property(recArb, bytesArb(1, 16), (x, extra) => {
        const bytes = Buffer.concat([encodeRec(x), extra]);
        throwsCode(() => decodeRec(bytes), "TRAILING_BYTES");
      }),
      { numRuns: RUNS },
    );
  });

  void it("random bytes only ever fail with a CodecError", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        try {
          decodeRec(bytes);
        } catch (e) {
          assert.ok(e instanceof CodecError, `not a CodecError: ${String(e)}`);
          assert.ok(CODES.includes(e.code));
        }
      }),
      { numRuns: RUNS * 2 },
    );
  });

  void it("random bytes after a valid fixed-size head only ever fail with a CodecError", () => {
    // Random bytes rarely get past the first fields; this starts them at the length-prefixed part.
    fc.assert(
      fc.property(recArb, fc.uint8Array({ maxLength: 200 }), (x, tail) => {
        const head = encodeRec(x).subarray(0, 1 + 2 + 4 + 8 + 8 + 1 + 32);
        try {
          decodeRec(Buffer.concat([head, tail]));
        } catch (e) {
          assert.ok(e instanceof CodecError, `not a CodecError: ${String(e)}`);
          assert.ok(CODES.includes(e.code));
        }
      }),
      { numRuns: RUNS },
    );
  });
});

void describe("codec: OUT_OF_BOUNDS", () => {
  void it("is raised for every fixed-width read past the end", () => {
    throwsCode(() => new Reader(Buffer.alloc(0)).u8(), "OUT_OF_BOUNDS");
    throwsCode(() => new Reader(Buffer.alloc(0)).bool(), "OUT_OF_BOUNDS");
    throwsCode(() => new Reader(Buffer.alloc(1)).u16(), "OUT_OF_BOUNDS");
    throwsCode(() => new Reader(Buffer.alloc(3)).u32(), "OUT_OF_BOUNDS");
    throwsCode(() => new Reader(Buffer.alloc(7)).u64(), "OUT_OF_BOUNDS");
    throwsCode(() => new Reader(Buffer.alloc(7)).u64n(), "OUT_OF_BOUNDS");
    throwsCode(() => new Reader(Buffer.alloc(31)).fixed(32), "OUT_OF_BOUNDS");
    throwsCode(() => new Reader(Buffer.alloc(31)).view(32), "OUT_OF_BOUNDS");
  });

  void it("is raised when a length prefix promises more bytes than are left", () => {
    const bytes = Buffer.concat([u32le(10), Buffer.alloc(5)]);
    throwsCode(() => decodeExact(bytes, (r) => r.varBytes(100)), "OUT_OF_BOUNDS");
    throwsCode(() => decodeExact(bytes, (r) => r.string(100)), "OUT_OF_BOUNDS");
    throwsCode(() => decodeExact(Buffer.from([1, 0]), (r) => r.varBytes(100)), "OUT_OF_BOUNDS");
  });

  void it("carries the offset of the failed read", () => {
    const r = new Reader(Buffer.alloc(5));
    r.u32();
    const e = throwsCode(() => r.u16(), "OUT_OF_BOUNDS");
    assert.equal(e.context.offset, 4);
  });

  void it("a huge declared array count on a short input fails fast, before allocating or reading items", () => {
    for (const [count, cap] of [
      [0xffffffff, 0xffffffff],
      [100_000_000, 1_000_000_000],
      [4, 4],
    ] as const) {
      let calls = 0;
      const bytes = Buffer.concat([u32le(count), Buffer.from([1, 2, 3])]);
      throwsCode(
        () =>
          decodeExact(bytes, (r) =>
            r.array(cap, (rr) => {
              calls++;
              return rr.u8();
            }),
          ),
        "OUT_OF_BOUNDS",
      );
      assert.equal(calls, 0, `item reader called ${calls} times for count ${count}`);
    }
  });

  void it("an array count that fits the remaining bytes is read item by item", () => {
    const bytes = Buffer.concat([u32le(3), Buffer.from([7, 8, 9])]);
    assert.deepEqual(
      decodeExact(bytes, (r) => r.array(3, (rr) => rr.u8())),
      [7, 8, 9],
    );
  });
});

void describe("codec: LENGTH_OVER_CAP", () => {
  void it("is raised for a bytes length prefix over the cap, even when the bytes are present", () => {
    const bytes = Buffer.concat([u32le(5), Buffer.alloc(5)]);
    assert.equal(decodeExact(bytes, (r) => r.varBytes(5)).length, 5);
    throwsCode(() => decodeExact(bytes, (r) => r.varBytes(4)), "LENGTH_OVER_CAP");
  });

  void it("is raised for a string length prefix over the cap", () => {
    const bytes = Buffer.concat([u32le(3), Buffer.from("abc")]);
    assert.equal(
      decodeExact(bytes, (r) => r.string(3)),
      "abc",
    );
    throwsCode(() => decodeExact(bytes, (r) => r.string(2)), "LENGTH_OVER_CAP");
  });

  void it("is raised for an array count over the cap (before the truncation check)", () => {
    const bytes = Buffer.concat([u32le(3), Buffer.from([1, 2, 3])]);
    throwsCode(() => decodeExact(bytes, (r) => r.array(2, (rr) => rr.u8())), "LENGTH_OVER_CAP");
    // Over the cap and also truncated: the cap is reported.
    throwsCode(() => decodeExact(u32le(0xffffffff), (r) => r.array(10, (rr) => rr.u8())), "LENGTH_OVER_CAP");
  });

  void it("leaves the reader at the length prefix and reports its offset", () => {
    const r = new Reader(Buffer.concat([Buffer.from([0xaa]), u32le(9), Buffer.alloc(9)]));
    r.u8();
    const e = throwsCode(() => r.varBytes(8), "LENGTH_OVER_CAP");
    assert.equal(e.context.offset, 1);
    assert.equal(r.offset, 1);
  });

  void it("is raised by the writer for bytes, strings (in UTF-8 bytes) and arrays over the cap", () => {
    throwsCode(() => new Writer().varBytes(Buffer.alloc(5), 4), "LENGTH_OVER_CAP");
    throwsCode(() => new Writer().string("abcde", 4), "LENGTH_OVER_CAP");
    throwsCode(() => new Writer().string("éé", 3), "LENGTH_OVER_CAP"); // 2 chars, 4 bytes
    throwsCode(() => new Writer().array([1, 2, 3], 2, (w, x) => w.u8(x)), "LENGTH_OVER_CAP");
    // Exactly at the cap is fine.
    assert.equal(new Writer().string("éé", 4).length, 8);
    assert.equal(new Writer().array([1, 2], 2, (w, x) => w.u8(x)).length, 6);
  });
});

void describe("codec: TRAILING_BYTES", () => {
  void it("decodeExact rejects input that is not fully consumed", () => {
    const e = throwsCode(() => decodeExact(Buffer.from([1, 2]), (r) => r.u8()), "TRAILING_BYTES");
    assert.match(e.message, /1 trailing byte/);
    throwsCode(() => decodeExact(Buffer.from([0]), () => 0), "TRAILING_BYTES");
    assert.equal(
      decodeExact(Buffer.alloc(0), () => "nothing"),
      "nothing",
    );
  });

  void it("Reader.end() rejects leftovers and accepts an exhausted reader", () => {
    const r = new Reader(Buffer.from([1, 2]));
    r.u8();
    throwsCode(() => r.end(), "TRAILING_BYTES");
    r.u8();
    r.end();
  });
});

void describe("codec: INVALID_VALUE", () => {
  void it("a bool must be 0 or 1", () => {
    assert.equal(
      decodeExact(Buffer.from([0]), (r) => r.bool()),
      false,
    );
    assert.equal(
      decodeExact(Buffer.from([1]), (r) => r.bool()),
      true,
    );
    for (const b of [2, 0x80, 0xff]) {
      throwsCode(() => decodeExact(Buffer.from([b]), (r) => r.bool()), "INVALID_VALUE");
    }
  });

  void it("strings must be valid UTF-8 (no bad bytes, overlong forms, surrogates or cut sequences)", () => {
    for (const hex of ["ff", "c080", "e08080", "eda080", "e282", "f4908080", "61fe62"]) {
      const raw = Buffer.from(hex, "hex");
      throwsCode(
        () => decodeExact(Buffer.concat([u32le(raw.length), raw]), (r) => r.string(16)),
        "INVALID_VALUE",
      );
    }
  });

  void it("a leading byte-order mark is kept as part of the string", () => {
    const bytes = Buffer.concat([u32le(4), Buffer.from("efbbbf78", "hex")]);
    const s = decodeExact(bytes, (r) => r.string(8));
    assert.equal(s, "\uFEFFx");
    assert.deepEqual(new Writer().string(s, 8).toBuffer(), bytes);
  });

  void it("u64n accepts up to 2^53 - 1 and rejects anything from 2^53 up", () => {
    const enc = (v: bigint) => new Writer().u64(v).toBuffer();
    assert.equal(
      decodeExact(enc(2n ** 53n - 1n), (r) => r.u64n()),
      Number.MAX_SAFE_INTEGER,
    );
    for (const v of [2n ** 53n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n]) {
      throwsCode(() => decodeExact(enc(v), (r) => r.u64n()), "INVALID_VALUE");
      assert.equal(
        decodeExact(enc(v), (r) => r.u64()),
        v,
      );
    }
  });

  void it("the writer rejects out-of-range and non-integer numbers", () => {
    const bad: Array<[string, () => unknown]> = [
      ["u8 256", () => new Writer().u8(256)],
      ["u8 -1", () => new Writer().u8(-1)],
      ["u8 1.5", () => new Writer().u8(1.5)],
      ["u8 NaN", () => new Writer().u8(NaN)],
      ["u16 65536", () => new Writer().u16(0x10000)],
      ["u16 -1", () => new Writer().u16(-1)],
      ["u32 2^32", () => new Writer().u32(2 ** 32)],
      ["u32 -1", () => new Writer().u32(-1)],
      ["u32 Infinity", () => new Writer().u32(Infinity)],
      ["u64 -1n", () => new Writer().u64(-1n)],
      ["u64 2^64", () => new Writer().u64(1n << 64n)],
      ["u64 number", () => new Writer().u64(5 as unknown as bigint)],
      ["u64n 2^53", () => new Writer().u64n(2 ** 53)],
      ["u64n -1", () => new Writer().u64n(-1)],
      ["u64n 1.5", () => new Writer().u64n(1.5)],
      ["fixed wrong length", () => new Writer().fixed(Buffer.alloc(31), 32)],
      ["lone high surrogate", () => new Writer().string("a\uD800b", 16)],
      ["lone low surrogate", () => new Writer().string("\uDC00", 16)],
    ];
    for (const [name, fn] of bad) {
      const e = codecErrorOf(fn);
      assert.equal(e.code, "INVALID_VALUE", name);
    }
    // The limits themselves are accepted.
    const w = new Writer()
      .u8(255)
      .u16(0xffff)
      .u32(0xffffffff)
      .u64((1n << 64n) - 1n)
      .u64n(2 ** 53 - 1);
    assert.equal(w.length, 1 + 2 + 4 + 8 + 8);
    assert.equal(new Writer().string("😀", 4).length, 8); // a surrogate pair is fine
  });

  void it("a writer that throws leaves what it wrote before intact", () => {
    const w = new Writer().u8(1);
    codecErrorOf(() => w.u16(-1));
    assert.deepEqual(w.toBuffer(), Buffer.from([1]));
  });

  void it("the reader rejects a negative or fractional field length from the caller", () => {
    const r = new Reader(Buffer.alloc(8));
    throwsCode(() => r.fixed(-1), "INVALID_VALUE");
    throwsCode(() => r.view(1.5), "INVALID_VALUE");
    throwsCode(() => r.fixed(NaN), "INVALID_VALUE");
    assert.equal(r.offset, 0);
  });

  void it("decodeExact wraps any other exception from the decode function as INVALID_VALUE", () => {
    const e = throwsCode(
      () =>
        decodeExact(Buffer.from([1]), () => {
          throw new TypeError("boom");
        }),
      "INVALID_VALUE",
    );
    assert.match(e.message, /boom/);
    throwsCode(
      () =>
        decodeExact(Buffer.from([1]), () => {
          throw "a string"; // eslint-disable-line @typescript-eslint/only-throw-error
        }),
      "INVALID_VALUE",
    );
  });

  void it("CodecError is an Error with a name, code and context", () => {
    const e = codecErrorOf(() => new Reader(Buffer.alloc(0)).u8());
    assert.ok(e instanceof Error);
    assert.equal(e.name, "CodecError");
    assert.equal(typeof e.context, "object");
  });
});
