/**
 * The P2P message types, their fields and groups, and the protocol's size limits
 * (docs/PROTOCOL.md). The binary codec is in messages.ts, which re-exports all of this.
 */
import type { BlockHeader } from "../primitives/block.js";
import type { FinalityVote } from "../consensus/finality.js";
import { MAX_REGISTRY_SIZE } from "../consensus/registry.js";

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
  LivenessInv = 0x0055,
  GetLiveness = 0x0056,
  LivenessBatch = 0x0057,
  /** Equivocation evidence: two headers one producer signed for one (height, round). */
  Evidence = 0x0060,
  /** Vote evidence: two finality votes one voter signed that break a voting rule. */
  VoteEvidence = 0x0061,
  /** Finality votes (docs/CONSENSUS.md, "Finality"): relayed, and a final certificate on connect. */
  FinalityVotes = 0x0070,
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
  /** One side offers encrypted records and the other plaintext (only a devnet may run plaintext). */
  TRANSPORT_MISMATCH = 24,
  /**
   * A record of the encrypted session failed to authenticate: tampered, replayed, reordered or
   * dropped on the way. Anyone on the path can cause it, so it closes the link and bans no one.
   */
  BAD_RECORD = 25,
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
  /** The sender's ephemeral X25519 public key for this connection; null in a version-1 Hello. */
  ephemeralKey: Buffer | null;
  /** TransportMode (secureChannel.ts): 1 = ChaCha20-Poly1305 records, 0 = plaintext (devnet only). */
  transport: number;
}

export interface AuthMsg {
  type: MsgType.Auth;
  /** Node key over AUTH_DOMAIN ‖ signer's role ‖ transcript hash (handshake.ts). */
  signature: Buffer;
  /** Masternode proof: operator key over MN_AUTH_DOMAIN ‖ signer's role ‖ transcript hash. */
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

/** At most this many hashes per LivenessInv or GetLiveness, and items per LivenessBatch. */
export const MAX_LIVENESS_PER_MESSAGE = 1_000;

/** Hashes of heartbeats and attestations the sender relays (src/masternode/livenessRelay.ts). */
export interface LivenessInvMsg {
  type: MsgType.LivenessInv;
  hashes: Buffer[];
}

/** Asks for the heartbeats and attestations with these hashes. */
export interface GetLivenessMsg {
  type: MsgType.GetLiveness;
  hashes: Buffer[];
}

/** Heartbeats and attestations, each as its full encoding (a Heartbeat or Attestation payload). */
export interface LivenessBatchMsg {
  type: MsgType.LivenessBatch;
  heartbeats: Buffer[];
  attestations: Buffer[];
}

/** Gossiped proof of equivocation (src/consensus/evidence.ts): header A ‖ header B. */
export interface EvidenceMsg {
  type: MsgType.Evidence;
  a: BlockHeader;
  b: BlockHeader;
}

/** Gossiped proof that a finality voter broke a rule (src/consensus/voteEvidence.ts): vote A ‖ vote B. */
export interface VoteEvidenceMsg {
  type: MsgType.VoteEvidence;
  a: FinalityVote;
  b: FinalityVote;
}

/** At most this many votes per FinalityVotes message. */
export const MAX_VOTES_PER_MESSAGE = 1_000;

export interface FinalityVotesMsg {
  type: MsgType.FinalityVotes;
  votes: FinalityVote[];
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
  | VoteEvidenceMsg
  | FinalityVotesMsg
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
  | MnListMsg
  | LivenessInvMsg
  | GetLivenessMsg
  | LivenessBatchMsg;
