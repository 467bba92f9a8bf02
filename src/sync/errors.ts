import { BlockError } from "../primitives/errors.js";
import { CodecError } from "../codec/index.js";
import { PeerError } from "../p2p/peer.js";
import type { Logger } from "../logging/index.js";
import type { Metrics } from "../metrics/metrics.js";
import { CodedError } from "../util/codedError.js";

/**
 * Why a sync request, batch, or whole sync failed. `penaltyFor` maps every code to the score the
 * peer at fault gets, with an exhaustive switch: a new code without a penalty does not compile.
 */
export type SyncErrorCode =
  // --- a request to one peer ---
  /** The request timed out (the peer may just be slow). */
  | "TIMEOUT"
  /** The peer disconnected, or was not connected. */
  | "PEER_CLOSED"
  /** The peer answered NotFound: it does not have the blocks (another branch, or pruned). */
  | "NOT_FOUND"
  /** Our own cap on requests in flight to that peer; nothing was sent. */
  | "TOO_MANY_REQUESTS"
  /** An answer of the wrong type (Peer already scored it). */
  | "UNEXPECTED_RESPONSE"
  // --- bad data from a peer ---
  /** A block in a Blocks answer does not decode. */
  | "UNDECODABLE_BLOCK"
  /** A block we did not ask for, or whose header differs from the validated header (signature). */
  | "WRONG_BLOCK"
  /** A block failed validation when processed. */
  | "INVALID_BLOCK"
  /** A header failed validation (linkage, height, time, producer, signature). */
  | "INVALID_HEADERS"
  /** An answer inconsistent with its request (headers not starting at the locator, non-monotone hashes, wrong count). */
  | "BAD_RESPONSE"
  /** The peer's tip is unknown to us and above ours, yet it served no headers after our locator. */
  | "EMPTY_CLAIM"
  /** The peer claims a height no valid chain can have reached yet. */
  | "IMPOSSIBLE_HEIGHT"
  // --- the sync itself (no peer at fault) ---
  /** The fork point is deeper than the search depth (2,000, or 10,000 for whitelisted masternodes). */
  | "FORK_TOO_DEEP"
  /** A batch failed on more peers than its retry budget. */
  | "MAX_RETRIES"
  /** No connected peer can serve a batch. */
  | "NO_PEERS"
  /** The whole sync ran past peer_sync_timeout / masternode_sync_timeout. */
  | "SYNC_TIMEOUT"
  /** The chain refused the reorg (deeper than max_reorg_depth). */
  | "REORG_REFUSED"
  /** The branch contains a block that is invalid under its hash: nothing more to fetch on it. */
  | "INVALID_BRANCH"
  /** A block's timestamp is ahead of our clock; it may become valid later. */
  | "BLOCK_FROM_FUTURE"
  /** The coordinator stopped, or a newer decision replaced this sync. */
  | "ABORTED"
  /** A state-machine transition from the wrong state (a bug). */
  | "WRONG_STATE"
  /** The store failed, or another error that is not the peer's. */
  | "INTERNAL";

export class SyncError extends CodedError<SyncErrorCode> {
  /** For INVALID_BLOCK / INVALID_HEADERS: the rule broken, with its ban score. */
  readonly blockError: BlockError | null;
  constructor(
    code: SyncErrorCode,
    message: string,
    context: Record<string, unknown> = {},
    blockError: BlockError | null = null,
  ) {
    super(code, message, context);
    this.blockError = blockError;
  }
}

/** How much the peer that caused `err` is penalised (PeerManager.misbehaving; 100 = ban). */
export function penaltyFor(err: SyncError): number {
  switch (err.code) {
    case "UNDECODABLE_BLOCK":
    case "WRONG_BLOCK":
      // Garbage, or a block that is not the one its hash names: no honest peer sends either.
      return 100;
    case "INVALID_BLOCK":
    case "INVALID_HEADERS":
      // The rule's own score: 100 for most, less for time rules a clock skew can trip.
      return err.blockError?.banScore ?? 100;
    case "BAD_RESPONSE":
    case "IMPOSSIBLE_HEIGHT":
    case "EMPTY_CLAIM":
    case "BLOCK_FROM_FUTURE":
      // Not proof: answers that contradict each other can come from a peer that reorganised
      // between two requests; a claim it cannot back up, or an impossible height, costs it its
      // standing as a sync lead and a say in the target (SyncCoordinator), not a ban; a block
      // from the future is a clock fault.
      return 0;
    case "TIMEOUT":
    case "PEER_CLOSED":
    case "NOT_FOUND":
    case "TOO_MANY_REQUESTS":
    case "UNEXPECTED_RESPONSE":
    case "FORK_TOO_DEEP":
    case "MAX_RETRIES":
    case "NO_PEERS":
    case "SYNC_TIMEOUT":
    case "REORG_REFUSED":
    case "INVALID_BRANCH":
    case "ABORTED":
    case "WRONG_STATE":
    case "INTERNAL":
      // Slow, gone, on another branch, or our own limits: counted as failures, never scored.
      return 0;
  }
}

/** Turns whatever a network seam threw into a SyncError. */
export function toSyncError(e: unknown): SyncError {
  if (e instanceof SyncError) return e;
  if (e instanceof PeerError) {
    switch (e.code) {
      case "TIMEOUT":
        return new SyncError("TIMEOUT", e.message);
      case "CLOSED":
        return new SyncError("PEER_CLOSED", e.message);
      case "NOT_FOUND":
        return new SyncError("NOT_FOUND", e.message);
      case "TOO_MANY_REQUESTS":
        return new SyncError("TOO_MANY_REQUESTS", e.message);
      case "UNEXPECTED_RESPONSE":
        return new SyncError("UNEXPECTED_RESPONSE", e.message);
    }
  }
  if (e instanceof CodecError) return new SyncError("BAD_RESPONSE", e.message);
  return new SyncError("INTERNAL", e instanceof Error ? e.message : String(e));
}

/** Where a sync error is reported: the peer layer (bans), the log and the metrics. */
export interface SyncErrorSink {
  reportPeer(peerId: string, score: number, reason: string): void;
  logger: Logger;
  metrics?: Metrics | null;
}

/**
 * The one way sync code reports a peer's error: counted by code, logged as `msg` with the score,
 * and, when `penaltyFor` gives it a score above 0, reported to the peer layer. Returns the score.
 */
export function reportSyncError(
  sink: SyncErrorSink,
  peer: { id: string; addr: string },
  err: SyncError,
  msg: string,
  extra: Record<string, unknown> = {},
): number {
  const score = penaltyFor(err);
  sink.metrics?.syncPeerPenaltiesTotal.inc({ code: err.code });
  sink.logger.warn(msg, { peer: peer.addr, code: err.code, score, reason: err.message, ...extra });
  if (score > 0) sink.reportPeer(peer.id, score, `sync: ${err.code.toLowerCase()}: ${err.message}`);
  return score;
}
