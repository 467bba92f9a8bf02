/**
 * The types a Peer is made with and tells of: its direction, what this node says about itself,
 * its options and modules, and the kinds of misbehaviour it reports. peer.ts re-exports
 * them (its events, which name the Peer, stay there).
 */
import type { Logger } from "../logging/index.js";
import type { Clock } from "../util/clock.js";
import type { Random } from "../util/random.js";
import type { HandshakeIdentity } from "./handshake.js";
import type { MsgType } from "./messages.js";

export type Direction = "inbound" | "outbound";

/**
 * What this node says about itself in the handshake and in pings: the handshake's identity
 * (`plaintext` is the devnet's explicit `plaintext_transport`), and what changes as it runs.
 */
export interface LocalInfo extends HandshakeIdentity {
  listenAddr: () => string;
  services: () => number;
  /** Current best height and tip, for Hello, Ping and Pong. */
  tip: () => { height: number; hash: Buffer };
}

export interface PeerOptions {
  direction: Direction;
  /** Seconds between pings. */
  pingIntervalMs: number;
  /** Per message type: [tokens per second, burst]. Types not listed are unlimited. */
  rateLimits: Partial<Record<MsgType, [number, number]>>;
  /** Masternodes and whitelisted peers get more slack before a ping timeout (seeds). */
  isPrivileged?: () => boolean;
  handshakeTimeoutMs?: number;
  /** The remote's Hello must be complete this soon after the connection opens (HELLO_TIMEOUT_MS). */
  helloTimeoutMs?: number;
  /** Silence that makes a ready link stalled; default STALL_PING_INTERVALS ping intervals. */
  stallTimeoutMs?: number;
}

export interface PeerModules {
  clock: Clock;
  random: Random;
  logger: Logger;
}

/**
 * What a peer did wrong. MALFORMED_FRAME, UNDECODABLE and PROTOCOL_VIOLATION are proof (score
 * PROOF_SCORE); REQUEST_FLOOD is a soft offence (a flood score); INVALID_DATA is reported from
 * above the P2P layer (a bad block, transaction or signature), with the score the caller gives.
 */
export type MisbehaviourKind =
  "MALFORMED_FRAME" | "UNDECODABLE" | "PROTOCOL_VIOLATION" | "REQUEST_FLOOD" | "INVALID_DATA";
