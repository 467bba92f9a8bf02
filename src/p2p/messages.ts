import { CodecError, Reader, Writer } from "../codec/index.js";
import { HEADER_SIZE, readHeader, writeHeader } from "../primitives/block.js";
import { MAX_BLOCK_SIZE } from "../primitives/constants.js";
import { MAX_FRAME_PAYLOAD } from "./constants.js";
import { readVote, VOTE_SIZE, writeVote } from "../consensus/finality.js";

/**
 * The binary codec of every P2P message (docs/PROTOCOL.md). Decoders read the fields they know
 * and ignore any bytes after them, so fields added later at the end of a message are invisible to
 * older nodes. The types, groups and limits are in messageTypes.ts and re-exported here.
 */
export * from "./messageTypes.js";
import {
  MsgType,
  MAX_STRING,
  MAX_USER_AGENT,
  MAX_PEERS_PER_MESSAGE,
  MAX_LOCATOR,
  MAX_HEADERS_PER_MESSAGE,
  MAX_BLOCKS_PER_MESSAGE,
  MAX_HASHES_PER_MESSAGE,
  MAX_MN_LIST_ENTRIES,
  HEARTBEAT_SIZE,
  ATTESTATION_SIZE,
  MAX_TXS_PER_MESSAGE,
  MAX_LIVENESS_PER_MESSAGE,
  MAX_VOTES_PER_MESSAGE,
  type Heartbeat,
  type Attestation,
  type MnAnnounce,
  type MessageOf,
  type Message,
} from "./messageTypes.js";

interface MsgCodec<T extends MsgType> {
  /** Largest payload accepted for this type (checked before buffering). */
  cap: number;
  write(w: Writer, m: MessageOf<T>): void;
  read(r: Reader): Omit<MessageOf<T>, "type">;
}

const hash = (r: Reader): Buffer => r.fixed(32);

// Liveness messages: each is "body ‖ signature", and the signature covers a domain ‖ the body.

function writeHeartbeatBody(w: Writer, h: Heartbeat): void {
  w.fixed(h.operatorPubkey, 32).u64n(h.seq).u64n(h.timestamp).u32(h.height).fixed(h.tipHash, 32);
}

function writeHeartbeat(w: Writer, h: Heartbeat): void {
  writeHeartbeatBody(w, h);
  w.fixed(h.signature, 64);
}

function readHeartbeat(r: Reader): Heartbeat {
  return {
    operatorPubkey: hash(r),
    seq: r.u64n(),
    timestamp: r.u64n(),
    height: r.u32(),
    tipHash: hash(r),
    signature: r.fixed(64),
  };
}

function writeAttestationBody(w: Writer, a: Attestation): void {
  w.fixed(a.heartbeatHash, 32).fixed(a.operatorPubkey, 32).u64n(a.seq);
  w.fixed(a.witnessPubkey, 32).u64n(a.timestamp);
}

function writeAttestation(w: Writer, a: Attestation): void {
  writeAttestationBody(w, a);
  w.fixed(a.signature, 64);
}

function readAttestation(r: Reader): Attestation {
  return {
    heartbeatHash: hash(r),
    operatorPubkey: hash(r),
    seq: r.u64n(),
    witnessPubkey: hash(r),
    timestamp: r.u64n(),
    signature: r.fixed(64),
  };
}

function writeMnAnnounceBody(w: Writer, a: MnAnnounce): void {
  w.fixed(a.operatorPubkey, 32).fixed(a.nodeId, 32).string(a.address, MAX_STRING).u64n(a.timestamp);
}

function writeMnAnnounce(w: Writer, a: MnAnnounce): void {
  writeMnAnnounceBody(w, a);
  w.fixed(a.signature, 64);
}

function readMnAnnounce(r: Reader): MnAnnounce {
  return {
    operatorPubkey: hash(r),
    nodeId: hash(r),
    address: r.string(MAX_STRING),
    timestamp: r.u64n(),
    signature: r.fixed(64),
  };
}

function bytesOf<T>(write: (w: Writer, v: T) => void, v: T, size: number): Buffer {
  const w = new Writer(size);
  write(w, v);
  return w.toBuffer();
}

/** The bytes a heartbeat's signature covers (after its domain): everything before the signature. */
export const heartbeatBody = (h: Heartbeat): Buffer => bytesOf(writeHeartbeatBody, h, HEARTBEAT_SIZE);
/** A heartbeat's full encoding, as in a Heartbeat payload; its hash is SHA-256d of these bytes. */
export const encodeHeartbeat = (h: Heartbeat): Buffer => bytesOf(writeHeartbeat, h, HEARTBEAT_SIZE);
export const attestationBody = (a: Attestation): Buffer => bytesOf(writeAttestationBody, a, ATTESTATION_SIZE);
export const encodeAttestation = (a: Attestation): Buffer => bytesOf(writeAttestation, a, ATTESTATION_SIZE);
export const mnAnnounceBody = (a: MnAnnounce): Buffer => bytesOf(writeMnAnnounceBody, a, 128);
export const encodeMnAnnounce = (a: MnAnnounce): Buffer => bytesOf(writeMnAnnounce, a, 192);
/** Encoded size of an announcement, for budgeting an MnList. */
export function mnAnnounceSize(a: MnAnnounce): number {
  return 32 + 32 + 4 + Buffer.byteLength(a.address, "utf8") + 8 + 64;
}

const CODECS: { [T in MsgType]: MsgCodec<T> } = {
  [MsgType.Hello]: {
    cap: 4_096,
    write: (w, m) => {
      w.u32(m.version)
        .string(m.network, 16)
        .fixed(m.genesisHash, 32)
        .fixed(m.nodeId, 32)
        .fixed(m.challenge, 32);
      w.string(m.listenAddr, MAX_STRING).u32(m.height).fixed(m.tipHash, 32).u32(m.services);
      w.string(m.userAgent, MAX_USER_AGENT).u64n(m.timestamp);
      // Protocol version 2: the ephemeral X25519 key and the transport mode (absent in version 1).
      if (m.ephemeralKey) w.fixed(m.ephemeralKey, 32).u8(m.transport);
    },
    read: (r) => ({
      version: r.u32(),
      network: r.string(16),
      genesisHash: hash(r),
      nodeId: hash(r),
      challenge: hash(r),
      listenAddr: r.string(MAX_STRING),
      height: r.u32(),
      tipHash: hash(r),
      services: r.u32(),
      userAgent: r.string(MAX_USER_AGENT),
      timestamp: r.u64n(),
      ...(r.remaining >= 33
        ? { ephemeralKey: r.fixed(32), transport: r.u8() }
        : { ephemeralKey: null, transport: 0 }),
    }),
  },
  [MsgType.Auth]: {
    cap: 1_024,
    write: (w, m) => {
      w.fixed(m.signature, 64);
      if (m.operator) w.u8(1).fixed(m.operator.pubkey, 32).fixed(m.operator.signature, 64);
      else w.u8(0);
    },
    read: (r) => {
      const signature = r.fixed(64);
      const has = r.bool();
      return { signature, operator: has ? { pubkey: r.fixed(32), signature: r.fixed(64) } : null };
    },
  },
  [MsgType.Goodbye]: {
    cap: 1_024,
    write: (w, m) => void w.u16(m.reason).string(m.message, MAX_STRING),
    read: (r) => ({ reason: r.u16(), message: r.string(MAX_STRING) }),
  },
  [MsgType.Ping]: {
    cap: 256,
    write: (w, m) => void w.u64n(m.nonce).u32(m.height).fixed(m.tipHash, 32).u64n(m.timestamp),
    read: (r) => ({ nonce: r.u64n(), height: r.u32(), tipHash: hash(r), timestamp: r.u64n() }),
  },
  [MsgType.Pong]: {
    cap: 256,
    write: (w, m) => void w.u64n(m.nonce).u32(m.height).fixed(m.tipHash, 32).u64n(m.timestamp),
    read: (r) => ({ nonce: r.u64n(), height: r.u32(), tipHash: hash(r), timestamp: r.u64n() }),
  },
  [MsgType.GetPeers]: {
    cap: 64,
    write: () => undefined,
    read: () => ({}),
  },
  [MsgType.Peers]: {
    cap: 512 * 1024,
    write: (w, m) =>
      void w.array(m.peers, MAX_PEERS_PER_MESSAGE, (w, p) => {
        w.fixed(p.nodeId, 32).string(p.address, MAX_STRING).u32(p.services).u64n(p.lastSeen);
      }),
    read: (r) => ({
      peers: r.array(MAX_PEERS_PER_MESSAGE, (r) => ({
        nodeId: hash(r),
        address: r.string(MAX_STRING),
        services: r.u32(),
        lastSeen: r.u64n(),
      })),
    }),
  },
  [MsgType.NewTip]: {
    cap: 1_024,
    write: (w, m) => {
      w.u32(m.height).fixed(m.hash, 32);
      writeHeader(w, m.header);
    },
    read: (r) => ({ height: r.u32(), hash: hash(r), header: readHeader(r) }),
  },
  [MsgType.GetBlocks]: {
    cap: 64 + 32 * MAX_BLOCKS_PER_MESSAGE,
    write: (w, m) =>
      void w.u32(m.reqId).array(m.hashes, MAX_BLOCKS_PER_MESSAGE, (w, h) => void w.fixed(h, 32)),
    read: (r) => ({ reqId: r.u32(), hashes: r.array(MAX_BLOCKS_PER_MESSAGE, hash) }),
  },
  [MsgType.Blocks]: {
    cap: MAX_FRAME_PAYLOAD,
    write: (w, m) =>
      void w
        .u32(m.reqId)
        .array(m.blocks, MAX_BLOCKS_PER_MESSAGE, (w, b) => void w.varBytes(b, MAX_BLOCK_SIZE)),
    read: (r) => ({
      reqId: r.u32(),
      blocks: r.array(MAX_BLOCKS_PER_MESSAGE, (r) => r.varBytes(MAX_BLOCK_SIZE)),
    }),
  },
  [MsgType.GetHeaders]: {
    cap: 64 + 32 * MAX_LOCATOR,
    write: (w, m) => {
      w.u32(m.reqId).array(m.locator, MAX_LOCATOR, (w, h) => void w.fixed(h, 32));
      w.fixed(m.stopHash, 32).u32(m.max);
    },
    read: (r) => ({ reqId: r.u32(), locator: r.array(MAX_LOCATOR, hash), stopHash: hash(r), max: r.u32() }),
  },
  [MsgType.Headers]: {
    cap: 64 + HEADER_SIZE * MAX_HEADERS_PER_MESSAGE,
    write: (w, m) => void w.u32(m.reqId).array(m.headers, MAX_HEADERS_PER_MESSAGE, writeHeader),
    read: (r) => ({ reqId: r.u32(), headers: r.array(MAX_HEADERS_PER_MESSAGE, readHeader) }),
  },
  [MsgType.NotFound]: {
    cap: 1_024,
    write: (w, m) => void w.u32(m.reqId).string(m.message, MAX_STRING),
    read: (r) => ({ reqId: r.u32(), message: r.string(MAX_STRING) }),
  },
  [MsgType.GetHashes]: {
    cap: 64 + 4 * MAX_HASHES_PER_MESSAGE,
    write: (w, m) => void w.u32(m.reqId).array(m.heights, MAX_HASHES_PER_MESSAGE, (w, h) => void w.u32(h)),
    read: (r) => ({ reqId: r.u32(), heights: r.array(MAX_HASHES_PER_MESSAGE, (r) => r.u32()) }),
  },
  [MsgType.Hashes]: {
    cap: 64 + 32 * MAX_HASHES_PER_MESSAGE,
    write: (w, m) =>
      void w.u32(m.reqId).array(m.hashes, MAX_HASHES_PER_MESSAGE, (w, h) => void w.fixed(h, 32)),
    read: (r) => ({ reqId: r.u32(), hashes: r.array(MAX_HASHES_PER_MESSAGE, hash) }),
  },
  [MsgType.TxInv]: {
    cap: 64 + 32 * MAX_TXS_PER_MESSAGE,
    write: (w, m) => void w.array(m.txids, MAX_TXS_PER_MESSAGE, (w, h) => void w.fixed(h, 32)),
    read: (r) => ({ txids: r.array(MAX_TXS_PER_MESSAGE, hash) }),
  },
  [MsgType.GetTxs]: {
    cap: 64 + 32 * MAX_TXS_PER_MESSAGE,
    write: (w, m) => void w.u32(m.reqId).array(m.txids, MAX_TXS_PER_MESSAGE, (w, h) => void w.fixed(h, 32)),
    read: (r) => ({ reqId: r.u32(), txids: r.array(MAX_TXS_PER_MESSAGE, hash) }),
  },
  [MsgType.Txs]: {
    cap: MAX_FRAME_PAYLOAD,
    write: (w, m) =>
      void w.u32(m.reqId).array(m.txs, MAX_TXS_PER_MESSAGE, (w, t) => void w.varBytes(t, MAX_BLOCK_SIZE)),
    read: (r) => ({ reqId: r.u32(), txs: r.array(MAX_TXS_PER_MESSAGE, (r) => r.varBytes(MAX_BLOCK_SIZE)) }),
  },
  // Liveness caps leave room for fields added later at the end (each fixed part is far smaller).
  [MsgType.Heartbeat]: {
    cap: 512,
    write: writeHeartbeat,
    read: readHeartbeat,
  },
  [MsgType.Attestation]: {
    cap: 512,
    write: writeAttestation,
    read: readAttestation,
  },
  [MsgType.MnAnnounce]: {
    cap: 1_024,
    write: writeMnAnnounce,
    read: readMnAnnounce,
  },
  [MsgType.GetMnList]: {
    cap: 64,
    write: (w, m) => void w.u32(m.reqId),
    read: (r) => ({ reqId: r.u32() }),
  },
  // 20,000 announcements with the longest addresses plus 20,000 heartbeats would exceed the
  // frame cap, so the sender trims its answer to fit (HeartbeatService); typical entries fit.
  [MsgType.MnList]: {
    cap: MAX_FRAME_PAYLOAD,
    write: (w, m) => {
      w.u32(m.reqId);
      w.array(m.announces, MAX_MN_LIST_ENTRIES, writeMnAnnounce);
      w.array(m.heartbeats, MAX_MN_LIST_ENTRIES, writeHeartbeat);
    },
    read: (r) => ({
      reqId: r.u32(),
      announces: r.array(MAX_MN_LIST_ENTRIES, readMnAnnounce),
      heartbeats: r.array(MAX_MN_LIST_ENTRIES, readHeartbeat),
    }),
  },
  [MsgType.LivenessInv]: {
    cap: 64 + 32 * MAX_LIVENESS_PER_MESSAGE,
    write: (w, m) => void w.array(m.hashes, MAX_LIVENESS_PER_MESSAGE, (w, h) => void w.fixed(h, 32)),
    read: (r) => ({ hashes: r.array(MAX_LIVENESS_PER_MESSAGE, hash) }),
  },
  [MsgType.GetLiveness]: {
    cap: 64 + 32 * MAX_LIVENESS_PER_MESSAGE,
    write: (w, m) => void w.array(m.hashes, MAX_LIVENESS_PER_MESSAGE, (w, h) => void w.fixed(h, 32)),
    read: (r) => ({ hashes: r.array(MAX_LIVENESS_PER_MESSAGE, hash) }),
  },
  // Each item is length-prefixed and at most 512 bytes (a Heartbeat or Attestation payload cap).
  [MsgType.LivenessBatch]: {
    cap: 64 + 2 * MAX_LIVENESS_PER_MESSAGE * (4 + 512),
    write: (w, m) => {
      w.array(m.heartbeats, MAX_LIVENESS_PER_MESSAGE, (w, b) => void w.varBytes(b, 512));
      w.array(m.attestations, MAX_LIVENESS_PER_MESSAGE, (w, b) => void w.varBytes(b, 512));
    },
    read: (r) => ({
      heartbeats: r.array(MAX_LIVENESS_PER_MESSAGE, (r) => r.varBytes(512)),
      attestations: r.array(MAX_LIVENESS_PER_MESSAGE, (r) => r.varBytes(512)),
    }),
  },
  [MsgType.VoteEvidence]: {
    cap: 2 * VOTE_SIZE,
    write: (w, m) => {
      writeVote(w, m.a);
      writeVote(w, m.b);
    },
    read: (r) => ({ a: readVote(r), b: readVote(r) }),
  },
  [MsgType.FinalityVotes]: {
    cap: 64 + VOTE_SIZE * MAX_VOTES_PER_MESSAGE,
    write: (w, m) => void w.array(m.votes, MAX_VOTES_PER_MESSAGE, (w, v) => writeVote(w, v)),
    read: (r) => ({ votes: r.array(MAX_VOTES_PER_MESSAGE, () => readVote(r)) }),
  },
  [MsgType.Evidence]: {
    cap: 1_024,
    write: (w, m) => {
      writeHeader(w, m.a);
      writeHeader(w, m.b);
    },
    read: (r) => ({ a: readHeader(r), b: readHeader(r) }),
  },
};

/** Payload cap for a known type, or undefined for a type this node does not know (skipped). */
export function payloadCap(type: number): number | undefined {
  return (CODECS as Record<number, MsgCodec<MsgType> | undefined>)[type]?.cap;
}

export function encodeMessage(m: Message): Buffer {
  return encodeMessageAfter(0, m);
}

/**
 * `m` encoded after `headroom` unwritten bytes: the caller fills them with a frame header, so a
 * plaintext frame needs no second buffer and no copy of its payload (frame.ts, fillFrameHeader).
 */
export function encodeMessageAfter(headroom: number, m: Message): Buffer {
  const w = new Writer(headroom + sizeHint(m));
  w.skip(headroom);
  (CODECS[m.type] as MsgCodec<MsgType>).write(w, m as never);
  return w.toBuffer();
}

/**
 * About how many bytes `m` encodes to, for the message types that can be large: the writer is
 * made that size at once instead of doubling its way up from 256 bytes (each step a fresh
 * buffer and a copy; a served batch of blocks went through six).
 */
function sizeHint(m: Message): number {
  const sum = (xs: readonly Uint8Array[]): number => xs.reduce((n, x) => n + 4 + x.length, 16);
  switch (m.type) {
    case MsgType.Blocks:
      return sum(m.blocks);
    case MsgType.Txs:
      return sum(m.txs);
    case MsgType.Headers:
      return 16 + HEADER_SIZE * m.headers.length;
    case MsgType.FinalityVotes:
      return 16 + VOTE_SIZE * m.votes.length;
    case MsgType.LivenessBatch:
      return sum(m.heartbeats) + sum(m.attestations);
    case MsgType.MnList:
      return (
        16 + HEARTBEAT_SIZE * m.heartbeats.length + m.announces.reduce((n, a) => n + mnAnnounceSize(a), 0)
      );
    default:
      return 256;
  }
}

/**
 * Decodes a payload of a known type. Trailing bytes are allowed (newer fields); anything else
 * wrong is a CodecError.
 */
export function decodeMessage(type: MsgType, payload: Buffer): Message {
  const codec = (CODECS as Record<number, MsgCodec<MsgType> | undefined>)[type];
  if (!codec) throw new CodecError("INVALID_VALUE", `unknown message type 0x${type.toString(16)}`);
  const r = new Reader(payload);
  try {
    return { type, ...codec.read(r) } as Message;
  } catch (e) {
    if (e instanceof CodecError) throw e;
    throw new CodecError("INVALID_VALUE", `bad ${MsgType[type]} payload: ${(e as Error).message}`);
  }
}

/** Messages that answer a request carry its reqId. */
export function responseReqId(m: Message): number | null {
  switch (m.type) {
    case MsgType.Blocks:
    case MsgType.Headers:
    case MsgType.NotFound:
    case MsgType.Hashes:
    case MsgType.Txs:
    case MsgType.MnList:
      return m.reqId;
    default:
      return null;
  }
}

export { HEADER_SIZE };
