import { blockHash, decodeBlock, type Block } from "../chain/block.js";
import type { Chain, ProcessResult } from "../chain/chain.js";
import { BlockError } from "../chain/errors.js";
import { buildLocator } from "../chain/locator.js";
import { CodecError } from "../codec/index.js";
import { ZERO_HASH } from "../crypto/hash.js";
import type { Logger } from "../logging/index.js";
import { MAX_BLOCKS_PER_MESSAGE, MAX_HEADERS_PER_MESSAGE, MsgType, type Message } from "../p2p/messages.js";
import type { Peer } from "../p2p/peer.js";
import type { Clock, TimerHandle } from "../util/clock.js";
import { blockHash as headerHash } from "../chain/block.js";

/** What relay needs from the peer layer; PeerManager provides it. */
export interface PeerNetwork {
  peers(): Peer[];
  broadcast(msg: Message, filter?: (p: Peer) => boolean): void;
  misbehaving(peer: Peer, score: number, reason: string): void;
}

export interface BlockRelayOptions {
  /** Blocks per GetBlocks request (sync.max_sync_batch_size, at most 500). */
  batchSize: number;
  requestTimeoutMs: number;
  /** How often to look for a peer that is ahead even without an announcement. */
  checkIntervalMs: number;
}

export interface BlockRelayModules {
  chain: Chain;
  network: PeerNetwork;
  clock: Clock;
  logger: Logger;
}

/** Round trips one catch-up may make before it yields; bounds a peer that keeps feeding headers. */
const MAX_SYNC_ROUNDS = 10_000;

/**
 * Announces every new tip to all peers (inbound and outbound alike), fetches announced blocks,
 * and catches up from a peer that is ahead with headers-first download driven by block
 * locators. One catch-up runs at a time.
 */
export class BlockRelay {
  private announceTimer: TimerHandle | null = null;
  private checkTimer: TimerHandle | null = null;
  private syncing: Promise<void> | null = null;
  private stopped = false;
  private unsubscribe: (() => void) | null = null;

  constructor(
    private readonly opts: BlockRelayOptions,
    private readonly modules: BlockRelayModules,
  ) {}

  start(): void {
    this.unsubscribe = this.modules.chain.events.on("tip", () => this.scheduleAnnounce());
    this.checkTimer = this.modules.clock.setInterval(() => this.maybeSync(), this.opts.checkIntervalMs);
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe?.();
    this.announceTimer?.cancel();
    this.checkTimer?.cancel();
  }

  get isSyncing(): boolean {
    return this.syncing !== null;
  }

  /** Announce only the latest tip once per burst of connects (a catch-up connects many). */
  private scheduleAnnounce(): void {
    if (this.announceTimer) return;
    this.announceTimer = this.modules.clock.setTimeout(() => {
      this.announceTimer = null;
      this.announceTip();
    }, 0);
  }

  announceTip(): void {
    const { chain, network } = this.modules;
    const tip = chain.tip;
    const bytes = chain.storage.getBlockBytes(tip.hash);
    if (!bytes) return;
    const header = decodeBlock(bytes).header;
    network.broadcast({ type: MsgType.NewTip, height: tip.height, hash: tip.hash, header }, (p) => {
      if (p.knows(tip.hash)) return false;
      p.markKnown(tip.hash);
      return true;
    });
  }

  onPeerReady(peer: Peer): void {
    if (peer.height > this.modules.chain.height) this.maybeSync();
  }

  onPeerState(peer: Peer): void {
    if (peer.height > this.modules.chain.height + 1) this.maybeSync();
  }

  /** Handles NewTip; returns true if the message was one this relay handles. */
  handle(peer: Peer, msg: Message): boolean {
    if (msg.type !== MsgType.NewTip) return false;
    if (!headerHash(msg.header).equals(msg.hash) || msg.header.height !== msg.height) {
      this.modules.network.misbehaving(peer, 20, "NewTip header does not match its hash or height");
      return true;
    }
    peer.markKnown(msg.hash);
    peer.updateState(msg.height, msg.hash);
    const { chain } = this.modules;
    if (chain.getIndex(msg.hash) || chain.isKnownInvalid(msg.hash)) return true;
    if (chain.getIndex(msg.header.prevHash) && !this.syncing) {
      void this.fetchOne(peer, msg.hash);
    } else {
      this.maybeSync();
    }
    return true;
  }

  private async fetchOne(peer: Peer, hash: Buffer): Promise<void> {
    try {
      const res = await peer.request(
        (reqId) => ({ type: MsgType.GetBlocks, reqId, hashes: [hash] }),
        [MsgType.Blocks],
        this.opts.requestTimeoutMs,
      );
      for (const raw of res.blocks) this.processRaw(peer, raw);
    } catch (e) {
      this.modules.logger.debug("Block fetch failed", { peer: peer.addr, hash: hash.toString("hex") }, e);
    }
  }

  /** Decodes and processes one block from a peer; returns the result, or null if it was bad. */
  processRaw(peer: Peer, raw: Buffer): ProcessResult | null {
    let block: Block;
    try {
      block = decodeBlock(raw);
    } catch (e) {
      if (e instanceof CodecError) {
        this.modules.network.misbehaving(peer, 100, `undecodable block: ${e.message}`);
        return null;
      }
      throw e;
    }
    const hash = blockHash(block.header);
    peer.markKnown(hash);
    try {
      const r = this.modules.chain.processBlock(block, raw.length);
      if (r.status === "orphan") this.maybeSync();
      return r;
    } catch (e) {
      if (e instanceof BlockError) {
        this.modules.logger.warn("Invalid block from peer", {
          peer: peer.addr,
          hash: hash.toString("hex"),
          code: e.code,
          reason: e.message,
        });
        if (e.banScore > 0) this.modules.network.misbehaving(peer, e.banScore, `invalid block: ${e.code}`);
        return null;
      }
      this.modules.logger.error(
        "Block processing failed",
        { peer: peer.addr, hash: hash.toString("hex") },
        e,
      );
      return null;
    }
  }

  /**
   * Decodes and processes a downloaded batch in one write transaction (one fsync per batch).
   * Stops at the first bad block, penalising the peer; blocks before it stay connected.
   */
  processBatch(peer: Peer, raws: Buffer[]): { ok: boolean; progressed: boolean } {
    const items: Array<{ block: Block; size: number }> = [];
    for (const raw of raws) {
      try {
        items.push({ block: decodeBlock(raw), size: raw.length });
      } catch (e) {
        if (!(e instanceof CodecError)) throw e;
        this.modules.network.misbehaving(peer, 100, `undecodable block: ${e.message}`);
        break;
      }
    }
    for (const it of items) peer.markKnown(blockHash(it.block.header));
    let res: ReturnType<Chain["processBlocks"]>;
    try {
      res = this.modules.chain.processBlocks(items);
    } catch (e) {
      this.modules.logger.error("Block batch commit failed", { peer: peer.addr }, e);
      return { ok: false, progressed: false };
    }
    const progressed = res.results.some((r) => r.status !== "duplicate");
    if (res.error !== undefined) {
      const e = res.error;
      if (e instanceof BlockError) {
        const bad = items[res.results.length];
        this.modules.logger.warn("Invalid block from peer", {
          peer: peer.addr,
          hash: bad ? blockHash(bad.block.header).toString("hex") : undefined,
          code: e.code,
          reason: e.message,
        });
        if (e.banScore > 0) this.modules.network.misbehaving(peer, e.banScore, `invalid block: ${e.code}`);
      } else {
        this.modules.logger.error("Block processing failed", { peer: peer.addr }, e);
      }
      return { ok: false, progressed };
    }
    return { ok: items.length === raws.length, progressed };
  }

  /** Starts a catch-up from the best peer that is ahead, unless one is running. */
  maybeSync(): void {
    if (this.syncing || this.stopped) return;
    const best = this.bestPeerAhead();
    if (!best) return;
    this.syncing = this.syncFrom(best)
      .catch((e: unknown) =>
        this.modules.logger.debug("Catch-up ended with an error", { peer: best.addr }, e),
      )
      .finally(() => {
        this.syncing = null;
        // Another peer may be further ahead, or new blocks arrived meanwhile.
        if (!this.stopped && this.bestPeerAhead()) this.modules.clock.setTimeout(() => this.maybeSync(), 0);
      });
  }

  private bestPeerAhead(): Peer | null {
    const { chain } = this.modules;
    let best: Peer | null = null;
    for (const p of this.modules.network.peers()) {
      if (p.state !== "ready") continue;
      const ahead =
        p.height > chain.height ||
        (p.height === chain.height && !p.tipHash.equals(chain.tip.hash) && !chain.getIndex(p.tipHash));
      if (!ahead) continue;
      if (
        !best ||
        p.height > best.height ||
        (p.height === best.height && (p.rttMs ?? 1e9) < (best.rttMs ?? 1e9))
      )
        best = p;
    }
    return best;
  }

  /** Headers-first catch-up from one peer: locator → headers → bodies in batches → process. */
  async syncFrom(peer: Peer): Promise<void> {
    const { chain, logger } = this.modules;
    const start = chain.height;
    for (let round = 0; round < MAX_SYNC_ROUNDS && !this.stopped && peer.state === "ready"; round++) {
      const res = await peer.request(
        (reqId) => ({
          type: MsgType.GetHeaders,
          reqId,
          locator: buildLocator(chain),
          stopHash: ZERO_HASH,
          max: MAX_HEADERS_PER_MESSAGE,
        }),
        [MsgType.Headers],
        this.opts.requestTimeoutMs,
      );
      const wanted = res.headers.map((h) => headerHash(h)).filter((h) => !chain.getIndex(h));
      if (wanted.length === 0) break;
      let progressed = false;
      for (let i = 0; i < wanted.length;) {
        const batch = wanted.slice(i, i + Math.min(this.opts.batchSize, MAX_BLOCKS_PER_MESSAGE));
        const got = await peer.request(
          (reqId) => ({ type: MsgType.GetBlocks, reqId, hashes: batch }),
          [MsgType.Blocks],
          this.opts.requestTimeoutMs,
        );
        if (got.blocks.length === 0) return;
        const r = this.processBatch(peer, got.blocks);
        if (r.progressed) progressed = true;
        if (!r.ok) return; // bad data: stop trusting this peer for this catch-up
        i += got.blocks.length;
      }
      if (!progressed) break;
    }
    if (chain.height !== start)
      logger.info("Caught up from peer", { peer: peer.addr, from: start, to: chain.height });
  }
}
