import type { Block, BlockHeader } from "../primitives/block.js";
import type { ProcessResult } from "../chain/chain.js";
import type { Peer } from "../p2p/peer.js";
import type { PeerInfo, PeerManagerEvents } from "../p2p/peerManager.js";
import type { TypedEmitter } from "../util/typedEmitter.js";

/**
 * What sync needs from the peer layer; PeerManager provides it. Peers are named by node id (hex)
 * everywhere in sync, never by a Peer object, so a disconnect never leaves a dangling reference.
 */
export interface SyncPeerSource {
  readonly events: TypedEmitter<PeerManagerEvents>;
  peers(): Peer[];
  getPeer(nodeIdHex: string): Peer | undefined;
  misbehaving(peer: Peer, score: number, reason: string): void;
  /** getpeerinfo rows: the `masternode` (proven and registered) and `whitelisted` flags. */
  peerInfo(): Array<Pick<PeerInfo, "nodeid" | "masternode" | "whitelisted">>;
}

/**
 * The function seams of a sync (Lodestar's SyncChainFns): everything that leaves the process or
 * changes the chain. Tests pass fakes (silent, lying, slow peers) and the real code runs
 * unchanged. Network functions reject with a SyncError (TIMEOUT, PEER_CLOSED, NOT_FOUND, …).
 */
export interface SyncFns {
  /** GetHeaders → Headers: the peer's main-chain headers after the newest locator entry it has. */
  getHeaders(peerId: string, locator: Buffer[], max: number): Promise<BlockHeader[]>;
  /** GetBlocks → Blocks: raw blocks, in request order, possibly fewer than asked. */
  getBlocks(peerId: string, hashes: Buffer[]): Promise<Buffer[]>;
  /** GetHashes → Hashes: the peer's main-chain hashes at those heights (zero above its tip). */
  getHashes(peerId: string, heights: number[]): Promise<Buffer[]>;
  /** Penalise a peer for bad data (score as in PeerManager.misbehaving). */
  reportPeer(peerId: string, score: number, reason: string): void;
  /**
   * Validates and applies blocks in order, one commit for the batch (Chain.processBlocks). With
   * `stopAfter`, asked after each block, it may stop early: fewer results and no error.
   */
  processChainSegment(
    items: ReadonlyArray<{ block: Block; raw?: Uint8Array }>,
    stopAfter?: () => boolean,
  ): {
    results: ProcessResult[];
    error?: unknown;
  };
  /**
   * Optional: checks a downloaded batch's signatures ahead of processing, on other threads
   * (crypto/sigPool.ts), while earlier batches are processed. Never rejects; whatever it did not
   * check, processing checks itself. Without it a batch is processed as soon as it is its turn.
   * Header windows go through it too, as blocks without transactions, before they are validated.
   */
  checkAhead?(blocks: readonly Block[]): Promise<void>;
}

/** What BlockRelay tells the coordinator; the coordinator decides whether and from whom to sync. */
export interface SyncTrigger {
  /** A peer reports a height above ours (or an unknown tip at our height). */
  onPeerAhead(peer: Peer): void;
  /** A block (or announcement) arrived whose parent we do not have. */
  onOrphan(peer: Peer): void;
  /** A sync is running: relay leaves catching up to it. */
  readonly isSyncing: boolean;
}
