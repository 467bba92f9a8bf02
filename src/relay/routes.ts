/**
 * The node's routing table: which part answers each application message type. TimeNode builds
 * it from its parts and hands the router to PeerManager (docs/ARCHITECTURE.md, "Routing").
 */
import type { HeartbeatService } from "../masternode/heartbeatService.js";
import { MsgType } from "../p2p/messages.js";
import type { Peer } from "../p2p/peer.js";
import { encodeTx } from "../primitives/tx.js";
import type { BlockRelay } from "./blockRelay.js";
import type { BlockServer } from "./blockServer.js";
import type { EvidenceRelay } from "./evidenceRelay.js";
import type { FinalityRelay } from "./finalityRelay.js";
import type { Routes } from "./router.js";
import type { TxRelay } from "./txRelay.js";

export interface RoutedParts {
  blockServer: BlockServer;
  blockRelay: BlockRelay;
  txRelay: TxRelay<Peer>;
  heartbeats: HeartbeatService;
  evidence: EvidenceRelay;
  finality: FinalityRelay;
}

export function nodeRoutes(parts: RoutedParts): Routes {
  const { blockServer, blockRelay, txRelay, heartbeats, evidence, finality } = parts;
  return {
    [MsgType.NewTip]: (peer, msg) => blockRelay.onNewTip(peer, msg),
    [MsgType.GetBlocks]: (peer, msg) => blockServer.onGetBlocks(peer, msg),
    [MsgType.GetHeaders]: (peer, msg) => blockServer.onGetHeaders(peer, msg),
    [MsgType.GetHashes]: (peer, msg) => blockServer.onGetHashes(peer, msg),
    [MsgType.TxInv]: (peer, msg) => void txRelay.onTxInv(peer, msg.txids),
    [MsgType.GetTxs]: (peer, msg) =>
      peer.send({
        type: MsgType.Txs,
        reqId: msg.reqId,
        txs: txRelay.onGetTxs(msg.txids, peer).map(encodeTx),
      }),
    [MsgType.Heartbeat]: (peer, msg) => heartbeats.onHeartbeat(peer, msg),
    [MsgType.Attestation]: (peer, msg) => heartbeats.onAttestation(peer, msg),
    [MsgType.MnAnnounce]: (peer, msg) => heartbeats.onAnnounce(peer, msg),
    [MsgType.GetMnList]: (peer, msg) => heartbeats.onGetMnList(peer, msg),
    [MsgType.LivenessInv]: (peer, msg) => heartbeats.relay.onInv(peer, msg.hashes),
    [MsgType.GetLiveness]: (peer, msg) => heartbeats.relay.onGet(peer, msg.hashes),
    [MsgType.LivenessBatch]: (peer, msg) => heartbeats.onLivenessBatch(peer, msg),
    [MsgType.Evidence]: (peer, msg) => evidence.onEvidence(peer, msg),
    [MsgType.VoteEvidence]: (peer, msg) => evidence.onVoteEvidence(peer, msg),
    [MsgType.FinalityVotes]: (peer, msg) => finality.onVotes(peer, msg),
  };
}
