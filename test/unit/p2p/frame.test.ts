// A message encoded after room for its frame header (messages.ts, encodeMessageAfter) and framed
// in place (frame.ts, fillFrameHeader) is the same frame, byte for byte, as the two-buffer path.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { signVote } from "../../../src/consensus/finality.js";
import { KeyPair } from "../../../src/crypto/ed25519.js";
import { sha256 } from "../../../src/crypto/hash.js";
import { FRAME_HEADER_SIZE } from "../../../src/p2p/constants.js";
import { encodeFrame, fillFrameHeader, FrameDecoder } from "../../../src/p2p/frame.js";
import {
  decodeMessage,
  encodeMessage,
  encodeMessageAfter,
  MsgType,
  type Message,
} from "../../../src/p2p/messages.js";

const MAGIC = Buffer.from("f00dcafe", "hex");
const key = KeyPair.fromSeed(sha256(Buffer.from("frame-test")));
const hash = (s: string): Buffer => sha256(Buffer.from(s));

const messages: Message[] = [
  { type: MsgType.Ping, nonce: 7, height: 12, tipHash: hash("tip"), timestamp: 1_800_000_000_000 },
  // Large enough that the old writer grew through several buffers.
  {
    type: MsgType.Blocks,
    reqId: 9,
    blocks: [Buffer.alloc(12_000, 1), Buffer.alloc(300, 2), Buffer.alloc(0)],
  },
  { type: MsgType.Blocks, reqId: 10, blocks: [] },
  {
    type: MsgType.FinalityVotes,
    votes: Array.from({ length: 70 }, (_, i) =>
      signVote(
        key,
        hash("genesis"),
        { epoch: 2 * i, hash: hash(`a${i}`) },
        { epoch: 2 * i + 2, hash: hash(`b${i}`) },
      ),
    ),
  },
  { type: MsgType.Txs, reqId: 1, txs: [Buffer.alloc(5_000, 3)] },
];

describe("frames built in place", () => {
  for (const m of messages) {
    it(`${MsgType[m.type]}: the same bytes as the two-buffer path, and they decode back`, () => {
      const payload = encodeMessage(m);
      const framed = encodeMessageAfter(FRAME_HEADER_SIZE, m);
      assert.deepEqual(framed.subarray(FRAME_HEADER_SIZE), payload, "the payload after the headroom");
      const frame = fillFrameHeader(MAGIC, m.type, framed);
      assert.equal(frame, framed, "filled in place: no second buffer");
      assert.deepEqual(frame, encodeFrame(MAGIC, m.type, payload));
      const frames = new FrameDecoder(MAGIC, () => 1 << 24).push(frame);
      assert.equal(frames.length, 1, "one whole frame");
      assert.equal(frames[0]!.type, m.type);
      assert.deepEqual(decodeMessage(frames[0]!.type, frames[0]!.payload), m);
    });
  }
});
