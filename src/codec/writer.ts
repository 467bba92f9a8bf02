import { CodecError } from "./errors.js";

const U64_MAX = (1n << 64n) - 1n;
// In a `u` regex a surrogate pair is one code point, so this matches only unpaired surrogates.
const LONE_SURROGATE = /\p{Surrogate}/u;

/**
 * Canonical binary writer: little-endian fixed-width integers, u32 length prefixes for
 * variable bytes, strings and arrays. One value has exactly one encoding.
 */
export class Writer {
  private buf: Buffer;
  private pos = 0;

  constructor(initialSize = 256) {
    this.buf = Buffer.allocUnsafe(initialSize);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = Math.max(this.buf.length * 2, 64); // never 0, or the loop below would not end
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** Leaves `n` bytes unwritten (their contents are whatever the buffer held): room for a header. */
  skip(n: number): this {
    this.ensure(n);
    this.pos += n;
    return this;
  }

  get length(): number {
    return this.pos;
  }

  u8(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xff)
      throw new CodecError("INVALID_VALUE", `u8 out of range: ${v}`);
    this.ensure(1);
    this.buf[this.pos++] = v;
    return this;
  }

  bool(v: boolean): this {
    return this.u8(v ? 1 : 0);
  }

  u16(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffff)
      throw new CodecError("INVALID_VALUE", `u16 out of range: ${v}`);
    this.ensure(2);
    this.buf.writeUInt16LE(v, this.pos);
    this.pos += 2;
    return this;
  }

  u32(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
      throw new CodecError("INVALID_VALUE", `u32 out of range: ${v}`);
    }
    this.ensure(4);
    this.buf.writeUInt32LE(v, this.pos);
    this.pos += 4;
    return this;
  }

  /** 64-bit unsigned integer from a bigint (amounts). */
  u64(v: bigint): this {
    if (typeof v !== "bigint" || v < 0n || v > U64_MAX)
      throw new CodecError("INVALID_VALUE", `u64 out of range: ${v}`);
    this.ensure(8);
    this.buf.writeBigUInt64LE(v, this.pos);
    this.pos += 8;
    return this;
  }

  /** 64-bit unsigned integer from a safe JS number (timestamps, nonces). */
  u64n(v: number): this {
    if (!Number.isSafeInteger(v) || v < 0)
      throw new CodecError("INVALID_VALUE", `u64 not a safe integer: ${v}`);
    this.ensure(8);
    this.buf.writeUInt32LE(v % 0x1_0000_0000, this.pos);
    this.buf.writeUInt32LE(Math.floor(v / 0x1_0000_0000), this.pos + 4);
    this.pos += 8;
    return this;
  }

  /** Fixed-size bytes with no prefix; the length must be exactly `len`. */
  fixed(b: Uint8Array, len: number): this {
    if (b.length !== len) throw new CodecError("INVALID_VALUE", `expected ${len} bytes, got ${b.length}`);
    this.ensure(len);
    this.buf.set(b, this.pos);
    this.pos += len;
    return this;
  }

  /** Raw bytes with no prefix (for already-encoded sub-structures). */
  raw(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  /** u32 length prefix, then the bytes. `max` is the same cap the reader enforces. */
  varBytes(b: Uint8Array, max: number): this {
    if (b.length > max) throw new CodecError("LENGTH_OVER_CAP", `bytes length ${b.length} over cap ${max}`);
    this.u32(b.length);
    return this.raw(b);
  }

  /**
   * UTF-8 string with a u32 byte-length prefix. A string with a lone surrogate has no UTF-8 form
   * (Buffer.from would silently turn it into U+FFFD, so two strings would share one encoding), so
   * it is rejected.
   */
  string(s: string, max: number): this {
    if (typeof s !== "string" || LONE_SURROGATE.test(s)) {
      throw new CodecError("INVALID_VALUE", "string is not well-formed UTF-16 (lone surrogate)");
    }
    return this.varBytes(Buffer.from(s, "utf8"), max);
  }

  /** u32 count prefix, then each item. */
  array<T>(items: readonly T[], max: number, each: (w: this, item: T) => void): this {
    if (items.length > max)
      throw new CodecError("LENGTH_OVER_CAP", `array length ${items.length} over cap ${max}`);
    this.u32(items.length);
    for (const item of items) each(this, item);
    return this;
  }

  /**
   * The bytes written so far. A view when they fill at least half of the buffer (writes only ever
   * append, so they stay as they are); a trimmed copy when a view would pin much unused memory.
   */
  toBuffer(): Buffer {
    const out = this.buf.subarray(0, this.pos);
    return this.pos * 2 >= this.buf.length ? out : Buffer.from(out);
  }
}
