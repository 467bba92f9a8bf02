/**
 * TxRelay's view of the peer layer, over PeerManager: announce to every ready peer that does not
 * know the txids, fetch with GetTxs → Txs, and penalise through the relay's coded errors.
 */
import { CodecError } from "../codec/index.js";
import { MsgType } from "../p2p/messages.js";
import type { Peer } from "../p2p/peer.js";
import { decodeTx, type Tx } from "../primitives/tx.js";
import { RelayError, reportRelayError, type RelayPenaltySink } from "./errors.js";
import type { TxRelay, TxRelayNetwork } from "./txRelay.js";

/** How long a GetTxs may take before the fetch is given up (the txids can come from another peer). */
export const GET_TXS_TIMEOUT_MS = 15_000;

export interface TxPeers extends RelayPenaltySink<Peer> {
  peers(): Peer[];
}

/** `relay` is asked lazily: the relay and its network are built together. */
export function peerTxNetwork(peers: TxPeers, relay: () => TxRelay<Peer>): TxRelayNetwork<Peer> {
  return {
    broadcastTxInv: (txids, except) => {
      for (const p of peers.peers()) {
        if (p === except) continue;
        const fresh = relay().filterUnknown(p, txids);
        if (fresh.length > 0) p.send({ type: MsgType.TxInv, txids: fresh });
      }
    },
    requestTxs: async (peer, txids) => {
      const res = await peer.request(
        (reqId) => ({ type: MsgType.GetTxs, reqId, txids }),
        [MsgType.Txs],
        GET_TXS_TIMEOUT_MS,
      );
      const out: Tx[] = [];
      for (const raw of res.txs) {
        try {
          out.push(decodeTx(raw));
        } catch (e) {
          if (!(e instanceof CodecError)) throw e;
          reportRelayError(
            peers,
            peer,
            new RelayError(
              "UNDECODABLE_TX",
              `undecodable transaction: ${e.message}`,
              `${raw.length} bytes, first bytes ${raw.subarray(0, 64).toString("hex")}: ${e.message}`,
            ),
          );
          break;
        }
      }
      return out;
    },
    misbehaving: (peer, score, reason, evidence) => peers.misbehaving(peer, score, reason, evidence),
  };
}
