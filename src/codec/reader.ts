import { CodecError } from "./errors.js";

// ignoreBOM: a leading U+FEFF is part of the string, not a marker to strip. Stripping it would let
// two different encodings decode to the same value (non-canonical) and break round trips.
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Bounds-checked reader for the canonical encoding. Every failure is a CodecError with a code;
 * no other exception escapes for any input.
 */
export class Reader {
  private readonly buf: Buffer;
  private pos = 0;

  constructor(buf: Uint8Array) {
    this.buf = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get offset(): number {
    return this.pos;
  }
  get remaining(): number {
    return this.buf.length - this.pos;
  }
  get atEnd(): boolean {
    return this.pos >= this.buf.length;
  }

  private need(n: number, what: string): void {
    if (this.pos + n > this.buf.length) {
      throw new CodecError("OUT_OF_BOUNDS", `truncated ${what}: need ${n} bytes at offset ${this.pos}`, {
        offset: this.pos,
      });
    }
  }

  u8(): number {
    this.need(1, "u8");
    return this.buf[this.pos++]!;
  }

  bool(): boolean {
    const v = this.u8();
    if (v > 1) throw new CodecError("INVALID_VALUE", `bool must be 0 or 1, got ${v}`);
    return v === 1;
  }

  u16(): number {
    this.need(2, "u16");
    const v = this.buf.readUInt16LE(this.pos);
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4, "u32");
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  u64(): bigint {
    this.need(8, "u64");
    const v = this.buf.readBigUInt64LE(this.pos);
    this.pos += 8;
    return v;
  }

  /** u64 that must fit a safe JS integer (timestamps, nonces). */
  u64n(): number {
    this.need(8, "u64");
    const lo = this.buf.readUInt32LE(this.pos);
    const hi = this.buf.readUInt32LE(this.pos + 4);
    if (hi > 0x1fffff) throw new CodecError("INVALID_VALUE", `u64 at offset ${this.pos} exceeds 2^53`);
    this.pos += 8;
    return hi * 0x1_0000_0000 + lo;
  }

  private checkLen(len: number): void {
    if (!Number.isSafeInteger(len) || len < 0) {
      throw new CodecError("INVALID_VALUE", `field length must be a non-negative integer, got ${len}`);
    }
  }

  /** Exactly `len` bytes, as a copy so callers can keep it. */
  fixed(len: number): Buffer {
    this.checkLen(len);
    this.need(len, `${len}-byte field`);
    const out = Buffer.from(this.buf.subarray(this.pos, this.pos + len));
    this.pos += len;
    return out;
  }

  /** A view (no copy) of the next `len` bytes; only valid while the input buffer is. */
  view(len: number): Buffer {
    this.checkLen(len);
    this.need(len, `${len}-byte field`);
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }

  private length(max: number, what: string): number {
    const start = this.pos;
    const n = this.u32();
    if (n > max) {
      this.pos = start;
      throw new CodecError("LENGTH_OVER_CAP", `${what} length ${n} over cap ${max}`, { offset: start });
    }
    return n;
  }

  varBytes(max: number): Buffer {
    const n = this.length(max, "bytes");
    return this.fixed(n);
  }

  string(max: number): string {
    const n = this.length(max, "string");
    const bytes = this.view(n);
    try {
      return utf8.decode(bytes);
    } catch {
      throw new CodecError("INVALID_VALUE", `invalid UTF-8 in string at offset ${this.pos - n}`);
    }
  }

  array<T>(max: number, each: (r: this) => T): T[] {
    const n = this.length(max, "array");
    // Each item takes at least one byte, so a count beyond what is left is already truncated.
    if (n > this.remaining) {
      throw new CodecError("OUT_OF_BOUNDS", `array of ${n} items cannot fit in ${this.remaining} bytes`);
    }
    const out: T[] = new Array<T>(n);
    for (let i = 0; i < n; i++) out[i] = each(this);
    return out;
  }

  /** Asserts the whole input was consumed. */
  end(): void {
    if (this.pos !== this.buf.length) {
      throw new CodecError(
        "TRAILING_BYTES",
        `${this.buf.length - this.pos} trailing bytes at offset ${this.pos}`,
      );
    }
  }
}

/**
 * Decodes with `fn` and requires the input to be consumed exactly. Anything thrown that is not a
 * CodecError is a bug in `fn`, but is still wrapped so remote input can never escape as another
 * exception type.
 */
export function decodeExact<T>(buf: Uint8Array, fn: (r: Reader) => T): T {
  const r = new Reader(buf);
  try {
    const v = fn(r);
    r.end();
    return v;
  } catch (e) {
    if (e instanceof CodecError) throw e;
    throw new CodecError("INVALID_VALUE", `decode failed: ${e instanceof Error ? e.message : String(e)}`);
  }
}
