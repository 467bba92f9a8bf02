import { blockHash, decodeBlock, type Block } from "../primitives/block.js";
import type { Chain, ProcessResult } from "../chain/chain.js";
import { BlockError } from "../primitives/errors.js";
import { CodecError } from "../codec/index.js";
import type { Logger } from "../logging/index.js";
import { MsgType, type Message, type NewTipMsg } from "../p2p/messages.js";
import type { Peer } from "../p2p/peer.js";
import type { Clock, TimerHandle } from "../util/clock.js";
import { blockHash as headerHash } from "../primitives/block.js";
import type { SyncTrigger } from "../sync/interface.js";
import { RelayError, reportRelayError } from "./errors.js";
import { BoundedMap } from "../util/boundedMap.js";

/** A peer offering blocks against the final block is logged at most this often. */
const BELOW_FINAL_LOG_MS = 60_000;

/** What relay needs from the peer layer; PeerManager provides it. */
export interface PeerNetwork {
  peers(): Peer[];
  broadcast(msg: Message, filter?: (p: Peer) => boolean): void;
  misbehaving(peer: Peer, score: number, reason: string, evidence?: string): void;
}

export interface BlockRelayOptions {
  requestTimeoutMs: number;
}

export interface BlockRelayModules {
  chain: Chain;
  network: PeerNetwork;
  clock: Clock;
  logger: Logger;
  /** The sync coordinator: told about peers ahead and orphans. Without it the relay only fetches announced blocks. */
  sync?: SyncTrigger | null;
}

/**
 * Announces every new tip to all peers (inbound and outbound alike) and fetches an announced block
 * whose parent we have. Everything else — a peer ahead of us, an announcement or a block whose
 * parent we lack — goes to the SyncCoordinator, which owns catching up and fork resolution.
 */
export class BlockRelay {
  private announceTimer: TimerHandle | null = null;
  private stopped = false;
  private unsubscribe: (() => void) | null = null;
  private sync: SyncTrigger | null;
  /** When each peer was last logged offering a block against the final block (bounded). */
  private readonly belowFinalLogged = new BoundedMap<string, number>(256);

  constructor(
    private readonly opts: BlockRelayOptions,
    private readonly modules: BlockRelayModules,
  ) {
    this.sync = modules.sync ?? null;
  }

  /** Connects the coordinator after construction (when it is built after the relay). */
  attachSync(sync: SyncTrigger | null): void {
    this.sync = sync;
  }

  start(): void {
    this.unsubscribe = this.modules.chain.events.on("tip", () => this.scheduleAnnounce());
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe?.();
    this.announceTimer?.cancel();
  }

  get isSyncing(): boolean {
    return this.sync?.isSyncing ?? false;
  }

  /** Hands a peer that may have blocks we lack to the coordinator. */
  private peerAhead(peer: Peer, orphan: boolean): void {
    if (orphan) this.sync?.onOrphan(peer);
    else this.sync?.onPeerAhead(peer);
  }

  /** Announce only the latest tip once per burst of connects (a catch-up connects many). */
  private scheduleAnnounce(): void {
    if (this.announceTimer || this.stopped) return;
    this.announceTimer = this.modules.clock.setTimeout(() => {
      this.announceTimer = null;
      this.announceTip();
    }, 0);
  }

  announceTip(): void {
    const { chain, network } = this.modules;
    const tip = chain.tip;
    const header = chain.getHeader(tip.hash);
    if (!header) return;
    network.broadcast({ type: MsgType.NewTip, height: tip.height, hash: tip.hash, header }, (p) => {
      if (p.knows(tip.hash)) return false;
      p.markKnown(tip.hash);
      return true;
    });
  }

  /** A new peer: ahead of us, or at our height with a tip we do not know (maybe a better branch). */
  onPeerReady(peer: Peer): void {
    const { chain } = this.modules;
    const unknownTip = !chain.getIndex(peer.tipHash) && !chain.isKnownInvalid(peer.tipHash);
    if (peer.height > chain.height || (peer.height === chain.height && unknownTip))
      this.peerAhead(peer, false);
  }

  /** Height from a ping, pong or announcement; one block ahead is left to the NewTip that follows. */
  onPeerState(peer: Peer): void {
    if (peer.height > this.modules.chain.height + 1) this.peerAhead(peer, false);
  }

  /** The route for NewTip. */
  onNewTip(peer: Peer, msg: NewTipMsg): void {
    if (!headerHash(msg.header).equals(msg.hash) || msg.header.height !== msg.height) {
      // The message contradicts itself: no honest node sends it (proof).
      reportRelayError(
        this.modules.network,
        peer,
        new RelayError(
          "NEWTIP_MISMATCH",
          "NewTip header does not match its hash or height",
          `NewTip hash ${msg.hash.toString("hex")} height ${msg.height}; its header hashes to ${headerHash(msg.header).toString("hex")} at height ${msg.header.height}`,
        ),
      );
      return;
    }
    peer.markKnown(msg.hash);
    peer.updateState(msg.height, msg.hash);
    const { chain } = this.modules;
    if (chain.getIndex(msg.hash) || chain.isKnownInvalid(msg.hash)) return;
    // A twin of a stored block (same producer, height and round) is evidence from its header
    // alone, whether or not its block is fetched: a twin of a final block never is.
    chain.noteHeader(msg.header);
    if (chain.getIndex(msg.header.prevHash) && !this.isSyncing) {
      // A block whose branch cannot win would be refused after download: do not fetch it. Not
      // blamed (an honest late block looks the same), only counted in the debug log.
      const refusal = chain.sideRefusalOf(msg.header);
      if (refusal === "below-final") {
        // A branch against a final block is worth an operator's eye (a partitioned or hostile
        // peer); once a minute per peer, never blamed.
        const now = this.modules.clock.now();
        const last = this.belowFinalLogged.get(peer.nodeIdHex);
        if (last === undefined || now - last >= BELOW_FINAL_LOG_MS) {
          this.belowFinalLogged.set(peer.nodeIdHex, now);
          this.modules.logger.info("Refusing a block that conflicts with the final block", {
            peer: peer.addr,
            hash: msg.hash.toString("hex"),
            height: msg.height,
            final: chain.finality.finalizedHeight,
          });
        }
        return;
      }
      if (refusal) {
        this.modules.logger.debug("Not fetching an announced block that cannot win", {
          peer: peer.addr,
          hash: msg.hash.toString("hex"),
          height: msg.height,
          reason: refusal,
        });
        return;
      }
      void this.fetchOne(peer, msg.hash);
    } else {
      this.peerAhead(peer, true);
    }
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
        reportRelayError(
          this.modules.network,
          peer,
          new RelayError(
            "UNDECODABLE_BLOCK",
            `undecodable block: ${e.message}`,
            `${raw.length} bytes, first bytes ${raw.subarray(0, 64).toString("hex")}: ${e.message}`,
          ),
        );
        return null;
      }
      throw e;
    }
    const hash = blockHash(block.header);
    peer.markKnown(hash);
    try {
      const r = this.modules.chain.processBlock(block, raw);
      if (r.status === "orphan") this.peerAhead(peer, true);
      return r;
    } catch (e) {
      if (e instanceof BlockError) {
        this.modules.logger.warn("Invalid block from peer", {
          peer: peer.addr,
          hash: hash.toString("hex"),
          code: e.code,
          reason: e.message,
        });
        reportRelayError(
          this.modules.network,
          peer,
          RelayError.invalidBlock(
            e,
            `block ${hash.toString("hex")} height ${block.header.height} by ${block.header.producer.toString("hex")} breaks ${e.code}: ${e.message}`,
          ),
        );
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
}
