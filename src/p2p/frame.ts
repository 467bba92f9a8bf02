import { sha256 } from "../crypto/hash.js";
import { CodedError } from "../util/codedError.js";
import { FRAME_HEADER_SIZE, MAX_FRAME_PAYLOAD } from "./constants.js";
import { GoodbyeReason } from "./messageTypes.js";
import { MAX_RECORD_BODY, RECORD_HEADER_SIZE, RECORD_TAG_SIZE, type RecordOpener } from "./secureChannel.js";

/**
 * WRONG_MAGIC, FRAME_TOO_LARGE and BAD_CHECKSUM are the plaintext framing's errors (the Hellos,
 * and every frame of a plaintext session); BAD_RECORD is a record of an encrypted session that
 * does not authenticate, or whose unauthenticated header is impossible. Only the peer can make a
 * plaintext frame or an authenticated record bad; anyone on the path can make a record fail.
 */
export type FrameErrorCode = "WRONG_MAGIC" | "FRAME_TOO_LARGE" | "BAD_CHECKSUM" | "BAD_RECORD";
export class FrameError extends CodedError<FrameErrorCode> {}

/**
 * How a framing failure ends the connection: its Goodbye reason, and the evidence when it is
 * proof against the peer. Another network's node (a wrong magic) is a configuration mistake, and
 * anyone on the path can break a record: neither bans anyone.
 */
export function framingFailure(e: FrameError): { reason: GoodbyeReason; evidence: string | null } {
  if (e.code === "WRONG_MAGIC") return { reason: GoodbyeReason.WRONG_MAGIC, evidence: null };
  if (e.code === "BAD_RECORD") return { reason: GoodbyeReason.BAD_RECORD, evidence: null };
  const ctx = Object.entries(e.context)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(" ");
  return { reason: GoodbyeReason.PROTOCOL_VIOLATION, evidence: `${e.code}: ${e.message}; ${ctx}` };
}

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

/**
 * Writes the frame header into the first FRAME_HEADER_SIZE bytes of `buf`, whose rest is the
 * payload (messages.ts, encodeMessageAfter), and returns `buf`: the same frame as encodeFrame,
 * without copying the payload.
 */
export function fillFrameHeader(magic: Buffer, type: number, buf: Buffer): Buffer {
  const payload = buf.subarray(FRAME_HEADER_SIZE);
  magic.copy(buf, 0, 0, 4);
  buf.writeUInt16LE(type, 4);
  buf.writeUInt32LE(payload.length, 6);
  sha256(payload).copy(buf, 10, 0, 4);
  return buf;
}

/**
 * A message encoded once for any number of peers (Peer.encode): its type and payload. Each peer
 * seals it in its own session's record; the plaintext frame (for plaintext sessions) is built on
 * first use, in place: `framed` holds FRAME_HEADER_SIZE unwritten bytes, then the payload.
 */
export interface WireMessage {
  type: number;
  payload: Buffer;
  framed: Buffer;
  frame?: Buffer;
}

export interface Frame {
  type: number;
  payload: Buffer;
}

interface PendingHeader {
  type: number;
  /** Bytes still to buffer after the header: the payload, or a record's ciphertext and tag. */
  length: number;
  raw: Buffer;
}

/**
 * Incremental frame decoder. Plaintext frames: the declared length is checked against the global
 * cap and the per-type cap (`maxPayload(type)`, undefined for unknown types) as soon as the
 * 14-byte header is in, before any payload is buffered, and payloads of unknown types are skipped
 * as they stream in, without being buffered. After `setOpener`, the bytes are records of an
 * encrypted session: the length is checked against the global cap before buffering, the type
 * and its cap once the record authenticates, and an unknown type is dropped after it does.
 *
 * `feed` and `next` hand out one frame at a time, so the caller can switch the decoder to
 * records right after the frame that ends the plaintext part (the peer's Hello).
 */
export class FrameDecoder {
  private readonly input: Buffer[] = [];
  private chunks: Buffer[] = [];
  private buffered = 0;
  private skipRemaining = 0;
  private header: PendingHeader | null = null;
  private opener: RecordOpener | null = null;

  constructor(
    private readonly magic: Buffer,
    private readonly maxPayload: (type: number) => number | undefined,
    private readonly onSkip?: (type: number, length: number) => void,
  ) {}

  /** Bytes held for a partial frame; never more than one frame's cap plus a header. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Whether the decoder reads records of an encrypted session. */
  get encrypted(): boolean {
    return this.opener !== null;
  }

  /** From the next frame on, the bytes are records opened with `opener`. */
  setOpener(opener: RecordOpener): void {
    if (this.header || this.buffered > 0) throw new Error("setOpener in the middle of a frame");
    this.opener = opener;
  }

  /** Queues bytes for `next`. */
  feed(chunk: Buffer): void {
    if (chunk.length > 0) this.input.push(chunk);
  }

  /** Feeds bytes; returns every complete frame. Throws FrameError on a fatal framing problem. */
  push(chunk: Buffer): Frame[] {
    this.feed(chunk);
    const frames: Frame[] = [];
    for (let f = this.next(); f; f = this.next()) frames.push(f);
    return frames;
  }

  /** The next complete frame of what was fed, or null. Throws FrameError on a fatal problem. */
  next(): Frame | null {
    while (this.input.length > 0) {
      if (this.skipRemaining > 0) {
        this.skipRemaining -= this.consume(this.skipRemaining).length;
        continue;
      }
      if (!this.header) {
        const headerSize = this.opener ? RECORD_HEADER_SIZE : FRAME_HEADER_SIZE;
        this.take(headerSize - this.buffered);
        if (this.buffered < headerSize) continue;
        const h = this.drain(headerSize);
        this.header = this.opener ? this.recordHeader(h) : this.frameHeader(h);
        if (!this.header) continue;
      }
      const hdr = this.header;
      this.take(hdr.length - this.buffered);
      if (this.buffered < hdr.length) continue;
      const body = this.drain(hdr.length);
      this.header = null;
      const frame = this.opener ? this.openRecord(hdr, body) : this.checkFrame(hdr, body);
      if (frame) return frame;
    }
    return null;
  }

  /** A plaintext header: the pending payload, or null when it is skipped (an unknown type). */
  private frameHeader(h: Buffer): PendingHeader | null {
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
      return null;
    }
    if (length > cap) {
      throw new FrameError(
        "FRAME_TOO_LARGE",
        `message type 0x${type.toString(16)} of ${length} bytes exceeds its ${cap}-byte cap`,
        { header: h.toString("hex") },
      );
    }
    return { type, length, raw: Buffer.from(h) };
  }

  private checkFrame(hdr: PendingHeader, payload: Buffer): Frame {
    if (!sha256(payload).subarray(0, 4).equals(hdr.raw.subarray(10, 14))) {
      throw new FrameError("BAD_CHECKSUM", `checksum mismatch on message type 0x${hdr.type.toString(16)}`, {
        header: hdr.raw.toString("hex"),
        payloadHead: payload.subarray(0, 64).toString("hex"),
        payloadSha256: sha256(payload).toString("hex"),
      });
    }
    return { type: hdr.type, payload };
  }

  /** A record header. Nothing in it is authenticated yet, so every problem is BAD_RECORD. */
  private recordHeader(h: Buffer): PendingHeader {
    if (!h.subarray(0, 4).equals(this.magic)) {
      throw new FrameError("BAD_RECORD", `record with magic ${h.subarray(0, 4).toString("hex")}`, {
        header: h.toString("hex"),
      });
    }
    const bodyLength = h.readUInt32LE(4);
    if (bodyLength < 2 || bodyLength > MAX_RECORD_BODY) {
      throw new FrameError("BAD_RECORD", `record length ${bodyLength} is outside 2..${MAX_RECORD_BODY}`, {
        header: h.toString("hex"),
      });
    }
    return { type: -1, length: bodyLength + RECORD_TAG_SIZE, raw: Buffer.from(h) };
  }

  /** An authenticated record's frame, or null for an unknown type (dropped). */
  private openRecord(hdr: PendingHeader, sealed: Buffer): Frame | null {
    const opener = this.opener!;
    const seq = opener.sequence;
    const cut = sealed.length - RECORD_TAG_SIZE;
    const body = opener.open(hdr.raw, sealed.subarray(0, cut), sealed.subarray(cut));
    if (!body) {
      throw new FrameError(
        "BAD_RECORD",
        `record ${seq} does not authenticate (tampered, replayed, reordered or dropped on the way)`,
        { header: hdr.raw.toString("hex") },
      );
    }
    const type = body.readUInt16LE(0);
    const payload = body.subarray(2);
    const cap = this.maxPayload(type);
    if (cap === undefined) {
      this.onSkip?.(type, payload.length);
      return null;
    }
    if (payload.length > cap) {
      throw new FrameError(
        "FRAME_TOO_LARGE",
        `message type 0x${type.toString(16)} of ${payload.length} bytes exceeds its ${cap}-byte cap`,
        { header: hdr.raw.toString("hex") },
      );
    }
    return { type, payload };
  }

  /** Moves up to `n` bytes of input into the partial frame. */
  private take(n: number): void {
    if (n <= 0) return;
    const part = this.consume(n);
    if (part.length === 0) return;
    this.chunks.push(part);
    this.buffered += part.length;
  }

  /** Removes and returns up to `n` bytes from the front of the input. */
  private consume(n: number): Buffer {
    const head = this.input[0];
    if (!head) return Buffer.alloc(0);
    if (head.length <= n) {
      this.input.shift();
      return head;
    }
    this.input[0] = head.subarray(n);
    return head.subarray(0, n);
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
