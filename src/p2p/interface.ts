/**
 * The public types of the connection manager (its modules, events and operator views, all
 * re-exported by peerManager.ts) and the seams between PeerManager and its collaborators: the
 * run state they read and the plain functions each receives at construction, so that none of
 * them imports peerManager.ts or another's private members.
 */
import type { Logger } from "../logging/index.js";
import type { Clock } from "../util/clock.js";
import type { Random } from "../util/random.js";
import type { GoodbyeReason, Message } from "./messages.js";
import type { Direction, LocalInfo, Peer } from "./peer.js";
import type { LivenessRateContext } from "./rateLimits.js";
import type { Connection, Transport } from "./transport.js";

export interface PeerManagerModules {
  clock: Clock;
  random: Random;
  logger: Logger;
  transport: Transport;
  local: LocalInfo;
  /** Whether an operator key belongs to a masternode registered on chain. */
  isRegisteredMasternode?: (operatorPubkey: Buffer) => boolean;
  /** How many masternodes the registry holds besides us (the link floor is min(k, this)). */
  registeredMasternodeCount?: () => number;
  /**
   * The registry size and heartbeat interval that size each new peer's heartbeat and attestation
   * limits (they are relayed, so what one link carries grows with the registry).
   */
  livenessRateContext?: () => LivenessRateContext;
  /**
   * Every message of a ready peer that the manager does not handle itself (it keeps GetPeers and
   * Peers): the node's router (src/relay/router.ts). Without one, such messages are dropped.
   */
  route?: (peer: Peer, msg: Message) => void;
}

export interface PeerClosedEvent {
  peer: Peer;
  reason: GoodbyeReason;
  message: string;
  byUs: boolean;
}

export interface PeerManagerEvents {
  /** A peer finished its handshake and is the one connection to its node id. */
  peerReady: Peer;
  /** Fires once for every peer that fired peerReady. */
  peerClosed: PeerClosedEvent;
  /** A ready peer's height or tip changed. */
  peerState: Peer;
  /**
   * A connection ended before it became a peer: refused in its handshake (another genesis or
   * network, a bad signature, …) or lost. `address` is the dialled "host:port" for an outbound
   * connection and the remote IP for an inbound one. Sync counts WRONG_GENESIS refusals here.
   */
  handshakeFailed: HandshakeFailedEvent;
  /** The node lost its last peer (true) or has one again after being cut off (false). */
  isolation: { isolated: boolean; since: number };
}

export interface HandshakeFailedEvent {
  address: string;
  direction: Direction;
  reason: GoodbyeReason;
  message: string;
  byUs: boolean;
}

/** Whether the node is cut off from every peer, and since when (epoch ms). */
export interface IsolationStatus {
  isolated: boolean;
  since: number | null;
}

/** One row of getpeerinfo. */
export interface PeerInfo {
  nodeid: string;
  /** The connection's remote "ip:port". */
  addr: string;
  /** The connection's local "ip:port". */
  addrlocal: string;
  /** The peer's dialable listen address, or "" when it has none. */
  listenaddr: string;
  inbound: boolean;
  /** Proved an operator key that the registry accepts. */
  masternode: boolean;
  whitelisted: boolean;
  /** The operator key it proved, in hex, or null. */
  operator: string | null;
  services: number;
  version: number;
  subver: string;
  height: number;
  tiphash: string;
  /** Last round trip in seconds, null before the first pong. */
  pingtime: number | null;
  /** Seconds since the epoch. */
  conntime: number;
  lastrecv: number;
  bytessent: number;
  bytesrecv: number;
  /** The session's record layer: "chacha20-poly1305", or "plaintext" on a devnet that chose it. */
  transport: "chacha20-poly1305" | "plaintext";
}

export interface ConnectionCounts {
  total: number;
  inbound: number;
  outbound: number;
}

/** What each side sees of one connection when deciding which of two to keep. */
export interface DedupView {
  direction: Direction;
  /** The remote node id. */
  remoteId: Buffer;
  /** Order in which this node accepted or established the connection (larger = newer). */
  seq: number;
}

// --- seams between PeerManager and its collaborators ----------------------------------------

/** An address being dialled, and then the outbound connection it became. */
export interface DialTarget {
  key: string;
  host: string;
  port: number;
  /** addnode onetry: no retries. */
  oneTry: boolean;
}

/**
 * The manager's run state. PeerManager owns and writes it; its collaborators read it (the same
 * object, so they always see the current value).
 */
export interface Lifecycle {
  /** start() was called. */
  readonly started: boolean;
  /** stop() was called. */
  readonly stopping: boolean;
  /** setNetworkActive (true unless the operator disabled the network). */
  readonly active: boolean;
}

/** Wraps a connection in a Peer and enters it in the peer table (PeerManager's attach). */
export type AttachFn = (conn: Connection, direction: Direction, target: DialTarget | null) => void;

/** What Admission needs from the others. */
export interface AdmissionFns {
  attach: AttachFn;
  /** A new contact (the dialer resets backoffs when it ends a gap in connectivity). */
  connectivityReturned(): void;
  /** `ip` is the host of a registered masternode's service address. */
  isMasternodeIp(ip: string): boolean;
  /** Sends `peer` our addresses now (one Peers, if the budget allows). */
  sendAddresses(peer: Peer): void;
}

/** What the Dialer needs from the others. */
export interface DialerFns {
  attach: AttachFn;
  /** Run at the start of every dial tick (the isolation warning). */
  checkIsolation(): void;
  isMasternodePeer(peer: Peer): boolean;
  masternodeLinks(): number;
  masternodeLinkFloor(): number;
  isWhitelistedIp(ip: string): boolean;
  isWhitelistedId(nodeIdHex: string): boolean;
  /** The bound listener's address, or null when not listening. */
  bound(): { host: string; port: number } | null;
}

/** What Discovery needs from the others. */
export interface DiscoveryFns {
  /** The address is one of ours (listen, external, or found to reach ourselves). */
  isOwnAddress(key: string): boolean;
  /** New addresses arrived: run the dial loop soon. */
  scheduleSoonTick(): void;
  /** Shuffles `a` in place with the injected Random and returns it. */
  shuffle<T>(a: T[]): T[];
}

/** The modules every collaborator shares with PeerManager. */
export interface CollaboratorModules {
  clock: Clock;
  /** PeerManager's "p2p" child logger. */
  log: Logger;
  lifecycle: Lifecycle;
}
