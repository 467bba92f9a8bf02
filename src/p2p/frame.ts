import { sha256 } from "../crypto/hash.js";
import { CodedError } from "../util/codedError.js";
import { FRAME_HEADER_SIZE, MAX_FRAME_PAYLOAD } from "./constants.js";

export type FrameErrorCode = "WRONG_MAGIC" | "FRAME_TOO_LARGE" | "BAD_CHECKSUM";
export class FrameError extends CodedError<FrameErrorCode> {}

/** magic 4 | type u16le | length u32le | checksum 4 (first 4 bytes of SHA-256(payload)) | payload */
export function encodeFrame(magic: Buffer, type: number, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_SIZE + payload.length);
  magic.copy(out, 0, 0, 4);
  out.writeUInt16LE(type, 4);
  out.writeUInt32LE(payload.length, 6);
  sha256(payload).copy(out, 10, 0, 4);
  payload.copy(out, FRAME_HEADER_SIZE);
  return out;
}

export interface Frame {
  type: number;
  payload: Buffer;
}

/**
 * Incremental frame decoder. The declared length is checked against the global cap and the
 * per-type cap (`maxPayload(type)`, undefined for unknown types) as soon as the 14-byte header is
 * in, before any payload is buffered. Payloads of unknown types are skipped as they stream in,
 * without being buffered, so a newer peer's messages never cost memory or the connection.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private skipRemaining = 0;
  private header: { type: number; length: number; checksum: Buffer; raw: Buffer } | null = null;

  constructor(
    private readonly magic: Buffer,
    private readonly maxPayload: (type: number) => number | undefined,
    private readonly onSkip?: (type: number, length: number) => void,
  ) {}

  /** Bytes held for a partial frame; never more than one frame's cap plus a header. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Feeds bytes; returns complete frames. Throws FrameError on a fatal framing problem. */
  push(chunk: Buffer): Frame[] {
    const frames: Frame[] = [];
    let data = chunk;
    while (data.length > 0) {
      if (this.skipRemaining > 0) {
        const n = Math.min(this.skipRemaining, data.length);
        this.skipRemaining -= n;
        data = data.subarray(n);
        continue;
      }
      if (!this.header) {
        const need = FRAME_HEADER_SIZE - this.buffered;
        const take = data.subarray(0, need);
        this.chunks.push(take);
        this.buffered += take.length;
        data = data.subarray(take.length);
        if (this.buffered < FRAME_HEADER_SIZE) break;
        const h = this.drain(FRAME_HEADER_SIZE);
        if (!h.subarray(0, 4).equals(this.magic)) {
          throw new FrameError("WRONG_MAGIC", `wrong network magic ${h.subarray(0, 4).toString("hex")}`);
        }
        const type = h.readUInt16LE(4);
        const length = h.readUInt32LE(6);
        if (length > MAX_FRAME_PAYLOAD) {
          throw new FrameError(
            "FRAME_TOO_LARGE",
            `frame of ${length} bytes exceeds the ${MAX_FRAME_PAYLOAD}-byte cap`,
            { header: h.toString("hex") },
          );
        }
        const cap = this.maxPayload(type);
        if (cap === undefined) {
          this.onSkip?.(type, length);
          this.skipRemaining = length;
          continue;
        }
        if (length > cap) {
          throw new FrameError(
            "FRAME_TOO_LARGE",
            `message type 0x${type.toString(16)} of ${length} bytes exceeds its ${cap}-byte cap`,
            { header: h.toString("hex") },
          );
        }
        this.header = { type, length, checksum: Buffer.from(h.subarray(10, 14)), raw: Buffer.from(h) };
      }
      const hdr = this.header;
      const need = hdr.length - this.buffered;
      const take = data.subarray(0, need);
      if (take.length > 0) {
        this.chunks.push(take);
        this.buffered += take.length;
        data = data.subarray(take.length);
      }
      if (this.buffered < hdr.length) break;
      const payload = this.drain(hdr.length);
      this.header = null;
      if (!sha256(payload).subarray(0, 4).equals(hdr.checksum)) {
        throw new FrameError("BAD_CHECKSUM", `checksum mismatch on message type 0x${hdr.type.toString(16)}`, {
          header: hdr.raw.toString("hex"),
          payloadHead: payload.subarray(0, 64).toString("hex"),
          payloadSha256: sha256(payload).toString("hex"),
        });
      }
      frames.push({ type: hdr.type, payload });
    }
    return frames;
  }

  private drain(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.buffered);
    this.chunks = [];
    this.buffered = 0;
    // A view when the chunk holds little else (a small read, or one whole frame); a copy when a
    // view would pin a much larger socket chunk in memory.
    const out = all.subarray(0, n);
    return all.buffer.byteLength <= Math.max(8_192, 2 * n) ? out : Buffer.from(out);
  }
}
