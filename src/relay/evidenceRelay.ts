import type { Chain } from "../chain/chain.js";
import { BlockError } from "../primitives/errors.js";
import { sha256 } from "../crypto/hash.js";
import {
  checkEquivocation,
  encodeEquivocation,
  makeEquivocation,
  offenderOf,
  type Equivocation,
} from "../consensus/evidence.js";
import { findByOperator } from "../consensus/registry.js";
import type { Logger } from "../logging/index.js";
import { MsgType, type EvidenceMsg, type Message, type VoteEvidenceMsg } from "../p2p/messages.js";
import {
  checkVoteOffenceShape,
  checkVoteOffenceSignatures,
  encodeVoteOffence,
  makeVoteOffence,
  voteOffender,
  type VoteOffence,
} from "../consensus/voteEvidence.js";
import type { Peer } from "../p2p/peer.js";
import { RelayError, reportRelayError } from "./errors.js";

/** The network as the evidence relay sees it: PeerManager fits this structurally. */
export interface EvidenceNetwork {
  broadcast(msg: Message, filter?: (p: Peer) => boolean): number;
  misbehaving(peer: Peer, score: number, reason: string, evidence?: string): void;
}

export interface EvidenceRelayModules {
  chain: Chain;
  network: EvidenceNetwork;
  logger: Logger;
}

/** Pending (not yet on chain) evidence sent to a new peer: far more than a healthy network holds. */
const MAX_SENT_ON_CONNECT = 16;

/**
 * Gossip of equivocation evidence (docs/PROTOCOL.md, "Evidence"). Evidence found here (the chain
 * saw a producer's second block for one slot) or received from a peer is checked, kept by the
 * chain (one per offender), and relayed once to every peer that does not have it. A new peer is
 * sent what is not yet on chain, so a producer anywhere can put it in a block.
 */
export class EvidenceRelay {
  private unsubscribe: Array<() => void> = [];

  constructor(private readonly modules: EvidenceRelayModules) {}

  start(): void {
    this.unsubscribe.push(
      this.modules.chain.events.on("evidence", (ev) => this.relay(ev, null)),
      this.modules.chain.events.on("voteEvidence", (o) => this.relayVotes(o, null)),
    );
  }

  stop(): void {
    for (const u of this.unsubscribe.splice(0)) u();
  }

  /** A peer finished its handshake: send it the evidence not yet on chain. */
  onPeerReady(peer: Peer): void {
    try {
      let sent = 0;
      for (const { evidence, slashedAt } of this.modules.chain.listEvidence()) {
        if (slashedAt !== null) continue;
        if (sent++ >= MAX_SENT_ON_CONNECT) break;
        peer.markKnown(evidenceId(evidence));
        peer.send({ type: MsgType.Evidence, a: evidence.a, b: evidence.b });
      }
      for (const { evidence, slashedAt } of this.modules.chain.listVoteEvidence()) {
        if (slashedAt !== null) continue;
        if (sent++ >= MAX_SENT_ON_CONNECT) break;
        peer.markKnown(voteEvidenceId(evidence));
        peer.send({ type: MsgType.VoteEvidence, a: evidence.a, b: evidence.b });
      }
    } catch (e) {
      this.modules.logger.error("Evidence: sending to a new peer failed", { peer: peer.addr }, e);
    }
  }

  /** The route for Evidence. */
  onEvidence(peer: Peer, msg: EvidenceMsg): void {
    const ev = makeEquivocation(msg.a, msg.b);
    const encoded = encodeEquivocation(ev);
    this.accept(peer, {
      id: sha256(encoded),
      // Not proof of anything but the sender's: a bad signature, or two copies of one header.
      check: () => checkEquivocation(ev),
      what: "evidence",
      encoded,
      offender: offenderOf(ev),
      record: () => this.modules.chain.recordEvidence(ev), // emits "evidence", which relays it
    });
  }

  /** The route for VoteEvidence. */
  onVoteEvidence(peer: Peer, msg: VoteEvidenceMsg): void {
    const o = makeVoteOffence(msg.a, msg.b);
    const encoded = encodeVoteOffence(o);
    this.accept(peer, {
      id: sha256(encoded),
      // Two votes that prove nothing but the sender's fault: a bad signature, one vote twice, or
      // a pair that breaks no rule.
      check: () => {
        checkVoteOffenceShape(o);
        checkVoteOffenceSignatures(o, this.modules.chain.genesisHash);
      },
      what: "vote evidence",
      encoded,
      offender: voteOffender(o),
      record: () => this.modules.chain.recordVoteEvidence(o), // emits "voteEvidence", which relays it
    });
  }

  /**
   * A piece of evidence from a peer: proof checked (a failure is proof against the sender), then
   * kept only against a masternode registered at our tip that we hold no evidence against yet:
   * the only kind a block can carry, and the table stays bounded by the registry.
   */
  private accept(
    peer: Peer,
    e: { id: Buffer; check: () => void; what: string; encoded: Buffer; offender: Buffer; record: () => void },
  ): void {
    peer.markKnown(e.id);
    try {
      e.check();
    } catch (err) {
      if (!(err instanceof BlockError)) throw err;
      reportRelayError(
        this.modules.network,
        peer,
        new RelayError(
          "BAD_EVIDENCE",
          `invalid ${e.what}: ${err.message}`,
          `${e.what} ${e.encoded.subarray(0, 96).toString("hex")}…: ${err.message}`,
        ),
      );
      return;
    }
    const { chain } = this.modules;
    if (!findByOperator(chain.getRegistry(), e.offender) || chain.hasEvidenceAgainst(e.offender)) return;
    e.record();
  }

  private relayVotes(o: VoteOffence, except: Peer | null): void {
    this.broadcastOnce(voteEvidenceId(o), { type: MsgType.VoteEvidence, a: o.a, b: o.b }, except);
  }

  private relay(ev: Equivocation, except: Peer | null): void {
    this.broadcastOnce(evidenceId(ev), { type: MsgType.Evidence, a: ev.a, b: ev.b }, except);
  }

  /** Sends `msg` to every ready peer but `except` not known to have `id`, once. */
  private broadcastOnce(id: Buffer, msg: Message, except: Peer | null): void {
    this.modules.network.broadcast(msg, (p) => {
      if (p === except || p.knows(id)) return false;
      p.markKnown(id);
      return true;
    });
  }
}

/** Relay dedup key: SHA-256 of the canonical encoding. */
function evidenceId(ev: Equivocation): Buffer {
  return sha256(encodeEquivocation(ev));
}

function voteEvidenceId(o: VoteOffence): Buffer {
  return sha256(encodeVoteOffence(o));
}
