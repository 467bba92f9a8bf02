import { CodecError, Reader, Writer } from "../codec/index.js";
import { HEADER_SIZE, readHeader, writeHeader, type BlockHeader } from "../primitives/block.js";
import { MAX_BLOCK_SIZE } from "../primitives/constants.js";
import { MAX_REGISTRY_SIZE } from "../consensus/registry.js";
import { MAX_FRAME_PAYLOAD } from "./constants.js";

/**
 * Every P2P message (docs/PROTOCOL.md). Decoders read the fields they know and ignore any bytes
 * after them, so fields added later at the end of a message are invisible to older nodes.
 */
export enum MsgType {
  Hello = 0x0001,
  Auth = 0x0002,
  Goodbye = 0x0003,
  Ping = 0x0010,
  Pong = 0x0011,
  GetPeers = 0x0020,
  Peers = 0x0021,
  NewTip = 0x0030,
  GetBlocks = 0x0031,
  Blocks = 0x0032,
  GetHeaders = 0x0033,
  Headers = 0x0034,
  NotFound = 0x0035,
  GetHashes = 0x0036,
  Hashes = 0x0037,
  TxInv = 0x0040,
  GetTxs = 0x0041,
  Txs = 0x0042,
  Heartbeat = 0x0050,
  Attestation = 0x0051,
  MnAnnounce = 0x0052,
  GetMnList = 0x0053,
  MnList = 0x0054,
  /** Equivocation evidence: two headers one producer signed for one (height, round). */
  Evidence = 0x0060,
}

export enum GoodbyeReason {
  WRONG_MAGIC = 1,
  WRONG_NETWORK = 2,
  WRONG_GENESIS = 3,
  UNSUPPORTED_VERSION = 4,
  BAD_SIGNATURE = 5,
  SELF_CONNECTION = 6,
  DUPLICATE_CONNECTION = 7,
  TOO_MANY_PEERS = 8,
  BANNED = 9,
  HANDSHAKE_TIMEOUT = 10,
  PING_TIMEOUT = 11,
  PROTOCOL_VIOLATION = 12,
  MISBEHAVIOUR = 13,
  SHUTDOWN = 14,
  NETWORK_DISABLED = 15,
  SEND_QUEUE_OVERFLOW = 16,
  MANUAL_DISCONNECT = 17,
  TOO_MANY_FROM_IP = 18,
  RATE_LIMITED = 19,
  CONNECTION_LOST = 20,
  /** Nothing arrived for STALL_PING_INTERVALS ping intervals: the link is black-holed or dead. */
  STALLED = 21,
  /** Too many ordinary inbound connections from one netgroup (/24 and /16; /48 and /32 for IPv6). */
  TOO_MANY_FROM_NETGROUP = 22,
  /** Closed to make room for a peer that ranks higher (a masternode, say). */
  EVICTED = 23,
}

export function goodbyeReasonName(r: number): string {
  return GoodbyeReason[r]?.toLowerCase() ?? `unknown_${r}`;
}

export const MAX_STRING = 255;
export const MAX_USER_AGENT = 64;
export const MAX_PEERS_PER_MESSAGE = 1_000;
export const MAX_LOCATOR = 64;
export const MAX_HEADERS_PER_MESSAGE = 2_000;
/** At most 500 blocks per request: the sync batch cap (max_sync_batch_size). */
export const MAX_BLOCKS_PER_MESSAGE = 500;
/** Heights per GetHashes: one bisection step of the ancestor search asks at most this many. */
export const MAX_HASHES_PER_MESSAGE = 64;
/** An MnList carries at most one announcement and one heartbeat per registered masternode. */
export const MAX_MN_LIST_ENTRIES = MAX_REGISTRY_SIZE;
/**
 * A node records, and relays, at most this many witness attestations per heartbeat. Evidence
 * from 32 masternodes is plenty, and the cap keeps attestation traffic at O(masternodes × 32)
 * per heartbeat interval instead of O(masternodes²).
 */
export const MAX_WITNESSES_PER_HEARTBEAT = 32;
/** Encoded sizes of the fixed-size liveness messages. */
export const HEARTBEAT_SIZE = 32 + 8 + 8 + 4 + 32 + 64;
export const ATTESTATION_SIZE = 32 + 32 + 8 + 32 + 8 + 64;

export interface HelloMsg {
  type: MsgType.Hello;
  version: number;
  network: string;
  genesisHash: Buffer;
  nodeId: Buffer;
  challenge: Buffer;
  /** "host:port" where this node accepts connections; "" if it does not listen. */
  listenAddr: string;
  height: number;
  tipHash: Buffer;
  services: number;
  userAgent: string;
  timestamp: number;
}

export interface AuthMsg {
  type: MsgType.Auth;
  /** Node key over AUTH_DOMAIN ‖ peer challenge ‖ own node id ‖ peer node id ‖ genesis hash. */
  signature: Buffer;
  /** Masternode proof: operator key over MN_AUTH_DOMAIN ‖ peer challenge ‖ own node id. */
  operator: { pubkey: Buffer; signature: Buffer } | null;
}

export interface GoodbyeMsg {
  type: MsgType.Goodbye;
  reason: number;
  message: string;
}

export interface PingMsg {
  type: MsgType.Ping;
  nonce: number;
  height: number;
  tipHash: Buffer;
  timestamp: number;
}

export interface PongMsg {
  type: MsgType.Pong;
  nonce: number;
  height: number;
  tipHash: Buffer;
  timestamp: number;
}

export interface GetPeersMsg {
  type: MsgType.GetPeers;
}

export interface PeerAddress {
  nodeId: Buffer;
  address: string;
  services: number;
  lastSeen: number;
}

export interface PeersMsg {
  type: MsgType.Peers;
  peers: PeerAddress[];
}

export interface NewTipMsg {
  type: MsgType.NewTip;
  height: number;
  hash: Buffer;
  header: BlockHeader;
}

export interface GetBlocksMsg {
  type: MsgType.GetBlocks;
  reqId: number;
  hashes: Buffer[];
}

export interface BlocksMsg {
  type: MsgType.Blocks;
  reqId: number;
  /** Each block in its canonical encoding, kept raw so its size is known and it is decoded once. */
  blocks: Buffer[];
}

export interface GetHeadersMsg {
  type: MsgType.GetHeaders;
  reqId: number;
  /** Block locator: newest first, dense near the tip then exponentially sparse. */
  locator: Buffer[];
  /** Stop after this hash; zero = no stop. */
  stopHash: Buffer;
  max: number;
}

export interface HeadersMsg {
  type: MsgType.Headers;
  reqId: number;
  headers: BlockHeader[];
}

/** At most 1,000 transaction ids per announcement or request. */
export const MAX_TXS_PER_MESSAGE = 1_000;

export interface TxInvMsg {
  type: MsgType.TxInv;
  txids: Buffer[];
}

export interface GetTxsMsg {
  type: MsgType.GetTxs;
  reqId: number;
  txids: Buffer[];
}

export interface TxsMsg {
  type: MsgType.Txs;
  reqId: number;
  /** Each transaction in its canonical encoding. */
  txs: Buffer[];
}

export interface NotFoundMsg {
  type: MsgType.NotFound;
  reqId: number;
  message: string;
}

/** Asks for the sender's main-chain block hashes at the given heights (sync's ancestor search). */
export interface GetHashesMsg {
  type: MsgType.GetHashes;
  reqId: number;
  heights: number[];
}

/** One hash per requested height, in request order; all zeros for a height above the tip. */
export interface HashesMsg {
  type: MsgType.Hashes;
  reqId: number;
  hashes: Buffer[];
}

/**
 * A masternode's signed "I am alive" (docs/PROTOCOL.md). The operator key signs
 * "TIME/heartbeat/v1" ‖ every byte before the signature. `seq` only ever increases per operator.
 */
export interface Heartbeat {
  operatorPubkey: Buffer;
  seq: number;
  /** Sender's clock, ms since the epoch. */
  timestamp: number;
  height: number;
  tipHash: Buffer;
  signature: Buffer;
}

/**
 * A masternode (the witness) vouching that it received another masternode's heartbeat. The
 * witness's operator key signs "TIME/attest/v1" ‖ every byte before the signature.
 */
export interface Attestation {
  /** SHA-256d of the attested heartbeat's full encoding. */
  heartbeatHash: Buffer;
  /** The attested masternode. */
  operatorPubkey: Buffer;
  seq: number;
  witnessPubkey: Buffer;
  timestamp: number;
  signature: Buffer;
}

/**
 * A masternode telling its direct peers where it listens and which node id it runs under. The
 * operator key signs "TIME/mn-announce/v1" ‖ every byte before the signature. Never relayed.
 */
export interface MnAnnounce {
  operatorPubkey: Buffer;
  nodeId: Buffer;
  /** "host:port" where the masternode accepts P2P connections. */
  address: string;
  timestamp: number;
  signature: Buffer;
}

export interface HeartbeatMsg extends Heartbeat {
  type: MsgType.Heartbeat;
}

export interface AttestationMsg extends Attestation {
  type: MsgType.Attestation;
}

export interface MnAnnounceMsg extends MnAnnounce {
  type: MsgType.MnAnnounce;
}

export interface GetMnListMsg {
  type: MsgType.GetMnList;
  reqId: number;
}

/** The answer to GetMnList: the latest announcement and heartbeat the sender holds per masternode. */
export interface MnListMsg {
  type: MsgType.MnList;
  reqId: number;
  announces: MnAnnounce[];
  heartbeats: Heartbeat[];
}

/** Gossiped proof of equivocation (src/consensus/evidence.ts): header A ‖ header B. */
export interface EvidenceMsg {
  type: MsgType.Evidence;
  a: BlockHeader;
  b: BlockHeader;
}

/** The message of a given type. */
export type MessageOf<T extends MsgType> = Extract<Message, { type: T }>;

/**
 * Who handles each type. Every type is in exactly one group, and the groups are closed: a new
 * MsgType that joins none of them leaves RoutedType one key larger, so the router's table
 * (src/relay/router.ts) and the rate-limit table (rateLimits.ts) no longer compile until it has
 * a route and a limit (or is declared unlimited).
 */
/** The handshake: Peer itself. */
export type HandshakeType = MsgType.Hello | MsgType.Auth | MsgType.Goodbye;
/** Answers to our own requests: matched by reqId in Peer.request (an unasked one is dropped). */
export type AnswerType =
  MsgType.Blocks | MsgType.Headers | MsgType.NotFound | MsgType.Hashes | MsgType.Txs | MsgType.MnList;
/** The link's own upkeep: Ping and Pong in Peer, addresses in PeerManager's discovery. */
export type LinkType = MsgType.Ping | MsgType.Pong | MsgType.GetPeers | MsgType.Peers;
/** Everything else goes to the application, through the router. */
export type RoutedType = Exclude<MsgType, HandshakeType | AnswerType | LinkType>;

const NOT_ROUTED: ReadonlySet<MsgType> = new Set<HandshakeType | AnswerType | LinkType>([
  MsgType.Hello,
  MsgType.Auth,
  MsgType.Goodbye,
  MsgType.Blocks,
  MsgType.Headers,
  MsgType.NotFound,
  MsgType.Hashes,
  MsgType.Txs,
  MsgType.MnList,
  MsgType.Ping,
  MsgType.Pong,
  MsgType.GetPeers,
  MsgType.Peers,
]);

/** Whether a message is one the application handles (RoutedType). */
export function isRouted(m: Message): m is MessageOf<RoutedType> {
  return !NOT_ROUTED.has(m.type);
}

export type Message =
  | EvidenceMsg
  | HelloMsg
  | AuthMsg
  | GoodbyeMsg
  | PingMsg
  | PongMsg
  | GetPeersMsg
  | PeersMsg
  | NewTipMsg
  | GetBlocksMsg
  | BlocksMsg
  | GetHeadersMsg
  | HeadersMsg
  | NotFoundMsg
  | GetHashesMsg
  | HashesMsg
  | TxInvMsg
  | GetTxsMsg
  | TxsMsg
  | HeartbeatMsg
  | AttestationMsg
  | MnAnnounceMsg
  | GetMnListMsg
  | MnListMsg;

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
  const w = new Writer(256);
  (CODECS[m.type] as MsgCodec<MsgType>).write(w, m as never);
  return w.toBuffer();
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
