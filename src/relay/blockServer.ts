import type { ChainReader } from "../chain/chainReader.js";
import { findLocatorFork } from "../chain/locator.js";
import { ZERO_HASH } from "../crypto/hash.js";
import {
  MAX_BLOCKS_PER_MESSAGE,
  MAX_HASHES_PER_MESSAGE,
  MAX_HEADERS_PER_MESSAGE,
  MsgType,
  type GetBlocksMsg,
  type GetHashesMsg,
  type GetHeadersMsg,
  type Message,
} from "../p2p/messages.js";
import type { Peer } from "../p2p/peer.js";

/** A Blocks answer stops adding blocks past 4 MiB, half the frame cap. */
const MAX_BLOCKS_RESPONSE_BYTES = 4 * 1024 * 1024;

/**
 * Answers block and header requests from any peer, inbound or outbound. Serving never depends on
 * whether this node itself is syncing (sync.enable_coordinator = false still serves).
 */
export class BlockServer {
  constructor(private readonly chain: ChainReader) {}

  /** Answers any of the three requests this server serves; returns false for other types. */
  handle(peer: Peer, msg: Message): boolean {
    switch (msg.type) {
      case MsgType.GetHeaders:
        this.onGetHeaders(peer, msg);
        return true;
      case MsgType.GetBlocks:
        this.onGetBlocks(peer, msg);
        return true;
      case MsgType.GetHashes:
        this.onGetHashes(peer, msg);
        return true;
      default:
        return false;
    }
  }

  /** Headers of our main chain after the first locator entry we share, up to `max` or `stopHash`. */
  onGetHeaders(peer: Peer, msg: GetHeadersMsg): void {
    const max = Math.min(msg.max === 0 ? MAX_HEADERS_PER_MESSAGE : msg.max, MAX_HEADERS_PER_MESSAGE);
    const fork = findLocatorFork(this.chain, msg.locator);
    const headers = [];
    for (let h = fork.height + 1; h <= this.chain.height && headers.length < max; h++) {
      const hash = this.chain.getHashAtHeight(h);
      const header = hash ? this.chain.getHeader(hash) : undefined;
      if (!hash || !header) break;
      headers.push(header);
      if (hash.equals(msg.stopHash)) break;
    }
    peer.send({ type: MsgType.Headers, reqId: msg.reqId, headers });
  }

  /** The stored blocks asked for (main chain or side), each once, up to 4 MiB; NotFound if none. */
  onGetBlocks(peer: Peer, msg: GetBlocksMsg): void {
    const blocks: Buffer[] = [];
    let bytes = 0;
    // Each block at most once, however often it is listed: a GetBlocks naming one hash 500
    // times would otherwise be answered with 500 copies.
    const unique = new Set<string>();
    for (const hash of msg.hashes.slice(0, MAX_BLOCKS_PER_MESSAGE)) {
      const hex = hash.toString("hex");
      if (unique.has(hex)) continue;
      unique.add(hex);
      const b = this.chain.storage.getBlockBytes(hash);
      if (!b) continue;
      if (blocks.length > 0 && bytes + b.length > MAX_BLOCKS_RESPONSE_BYTES) break;
      blocks.push(b);
      bytes += b.length;
      peer.markKnown(hash);
    }
    if (blocks.length === 0)
      peer.send({
        type: MsgType.NotFound,
        reqId: msg.reqId,
        message: "none of the requested blocks are known",
      });
    else peer.send({ type: MsgType.Blocks, reqId: msg.reqId, blocks });
  }

  /**
   * Main-chain hashes at the asked heights, zero above the tip: one bisection step of a peer's
   * common-ancestor search (src/sync/ancestor.ts).
   */
  onGetHashes(peer: Peer, msg: GetHashesMsg): void {
    const hashes = msg.heights
      .slice(0, MAX_HASHES_PER_MESSAGE)
      .map((h) => this.chain.getHashAtHeight(h) ?? ZERO_HASH);
    peer.send({ type: MsgType.Hashes, reqId: msg.reqId, hashes });
  }
}
