import type { Chain } from "../chain/chain.js";
import { blockSignatureItems } from "../chain/blockSignatures.js";
import type { SignaturePool } from "../crypto/sigPool.js";
import type { Block } from "../primitives/block.js";
import { ZERO_HASH } from "../crypto/hash.js";
import { MsgType } from "../p2p/messages.js";
import type { Peer } from "../p2p/peer.js";
import { BoundedMap } from "../util/boundedMap.js";
import { MAX_PEER_STATES } from "./constants.js";
import { SyncError, toSyncError } from "./errors.js";
import type { SyncFns, SyncPeerSource } from "./interface.js";

/**
 * The production SyncFns: requests go to the ready Peer with that node id (each with its own
 * timeout), penalties to PeerManager.misbehaving, blocks to Chain.processBlocks.
 */
export function peerSyncFns(
  source: SyncPeerSource,
  chain: Chain,
  opts: { requestTimeoutMs: number; sigPool?: SignaturePool | null },
): SyncFns {
  // A peer that sent bad data and then hung up is still penalised (bans are per IP).
  const lastSeen = new BoundedMap<string, Peer>(MAX_PEER_STATES);
  const peerFor = (id: string): Peer => {
    const p = source.getPeer(id);
    if (!p || p.state !== "ready")
      throw new SyncError("PEER_CLOSED", `peer ${id.slice(0, 16)} is not connected`);
    lastSeen.set(id, p);
    return p;
  };
  const timeout = opts.requestTimeoutMs;
  return {
    async getHeaders(id, locator, max) {
      try {
        const res = await peerFor(id).request(
          (reqId) => ({ type: MsgType.GetHeaders, reqId, locator, stopHash: ZERO_HASH, max }),
          [MsgType.Headers],
          timeout,
        );
        return res.headers;
      } catch (e) {
        throw toSyncError(e);
      }
    },
    async getBlocks(id, hashes) {
      try {
        const res = await peerFor(id).request(
          (reqId) => ({ type: MsgType.GetBlocks, reqId, hashes }),
          [MsgType.Blocks],
          timeout,
        );
        return res.blocks;
      } catch (e) {
        throw toSyncError(e);
      }
    },
    async getHashes(id, heights) {
      try {
        const res = await peerFor(id).request(
          (reqId) => ({ type: MsgType.GetHashes, reqId, heights }),
          [MsgType.Hashes],
          timeout,
        );
        return res.hashes;
      } catch (e) {
        throw toSyncError(e);
      }
    },
    reportPeer(id, score, reason) {
      const p = source.getPeer(id) ?? lastSeen.get(id);
      if (p) source.misbehaving(p, score, reason);
    },
    processChainSegment(items, stopAfter) {
      return chain.processBlocks(items, stopAfter);
    },
    ...(opts.sigPool
      ? {
          checkAhead: async (blocks: readonly Block[]): Promise<void> => {
            await opts.sigPool!.verifyAll(blockSignatureItems(blocks, chain.genesisHash));
          },
        }
      : {}),
  };
}
