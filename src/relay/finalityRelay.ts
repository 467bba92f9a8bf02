/**
 * Gossip of finality votes (docs/PROTOCOL.md, "Finality relay"; docs/CONSENSUS.md, "Finality").
 * Every vote received is checked and counted by the chain's finality tracker. Votes travel between
 * masternodes: a masternode passes a new, usable vote (counted, or waiting for its blocks) on to
 * every masternode peer that does not have it, coalesced into one FinalityVotes message per peer
 * per trickle interval. Full nodes never pass votes on; a masternode sends each full-node peer
 * the certificate of every block it finalises, one message per block, so full nodes learn
 * finality from about a third of the votes, once, instead of from every vote from every
 * neighbour (the simulator measured the flood at about 19 copies of each vote per node at 1,000
 * nodes). A malformed or badly signed vote is proof against its sender (a relay checks before it
 * forwards); everything else a vote can be (stale, late, for a block we do not have, from a voter
 * another branch registered) is noise. A new peer gets the certificate of our last final block,
 * so a node that was away learns finality without waiting for new votes.
 */
import type { Chain } from "../chain/chain.js";
import type { VoteOutcome, VoteStatus } from "../chain/finalityTracker.js";
import { encodeVote, linkKey, certificateVotes, type FinalityVote } from "../consensus/finality.js";
import type { Logger } from "../logging/index.js";
import { inventoryKey } from "../p2p/inventory.js";
import { MAX_VOTES_PER_MESSAGE, MsgType, type FinalityVotesMsg } from "../p2p/messages.js";
import type { Peer } from "../p2p/peer.js";
import type { Clock, TimerHandle } from "../util/clock.js";
import { RelayError, reportRelayError } from "./errors.js";

/** The network as the finality relay sees it: PeerManager fits this structurally. */
export interface FinalityNetwork {
  peers(): Peer[];
  /** Sends one message, encoded once, to every ready peer the filter accepts. */
  broadcast(msg: FinalityVotesMsg, filter: (p: Peer) => boolean): number;
  misbehaving(peer: Peer, score: number, reason: string, evidence?: string): void;
}

export interface FinalityRelayModules {
  chain: Chain;
  network: FinalityNetwork;
  clock: Clock;
  logger: Logger;
  /**
   * Whether this node runs a masternode: only masternodes pass votes on (to masternode peers)
   * and send final certificates to full-node peers.
   */
  isMasternode: boolean;
  /** A peer holds a block that waiting votes claim final: the sync should look at its branch. */
  hintSync?: (peer: Peer) => void;
}

/** How often waiting votes are counted again (their blocks may have been stored as side blocks). */
const RETRY_PENDING_MS = 500;
/**
 * Votes are passed on in one FinalityVotes per peer at most this often (a tenth of a block time
 * on fast devnets): a block's votes arrive within a few hundred milliseconds, and sending each
 * as it came cost a hundred-node network 878 frames per block per node (the simulator).
 */
const TRICKLE_MS = 100;

/** Votes waiting to be passed on; beyond this the oldest give way (they were sent to most peers). */
const MAX_QUEUED = 20_000;

/** The relay's counts, for metrics and getfinalitystatus. */
export type VoteCounts = Record<VoteStatus | "sent" | "certificatesSent", number>;

export class FinalityRelay {
  private queue: Array<{ vote: FinalityVote; id: number; from: Peer | null }> = [];
  private flushTimer: TimerHandle | null = null;
  private retryTimer: TimerHandle | null = null;
  private unsubscribe: Array<() => void> = [];
  readonly counts: VoteCounts = {
    counted: 0,
    duplicate: 0,
    pending: 0,
    stale: 0,
    invalid: 0,
    unusable: 0,
    "not-voter": 0,
    sent: 0,
    certificatesSent: 0,
  };
  /** Offences seen since start (double or surround votes), all of them. */
  offencesTotal = 0;
  /** The last offences seen, newest last, bounded. */
  readonly offences: Array<{ offence: string; voter: string; at: number }> = [];

  constructor(private readonly modules: FinalityRelayModules) {}

  start(): void {
    const { chain } = this.modules;
    // A block can arrive on a side branch (no tip event): count waiting votes now and then too.
    this.retryTimer = this.modules.clock.setInterval(() => {
      if (chain.finality.tracker.pendingCount > 0) this.note(chain.finality.retryPending(), null);
    }, RETRY_PENDING_MS);
    // Votes that waited for blocks count once the blocks are connected.
    this.unsubscribe.push(
      chain.events.on("tip", () => {
        if (chain.finality.tracker.pendingCount > 0) this.note(chain.finality.retryPending(), null);
      }),
      // A checkpoint just became justified here: pass on every vote of the link that did it.
      // Some were cast while a peer was away, and a voter that does not see the checkpoint
      // justified keeps voting from an older source, on a link the others no longer use.
      chain.events.on("justified", (c) => {
        if (!this.modules.isMasternode) return;
        const cert = chain.finality.tracker.justification(c);
        if (cert) for (const v of certificateVotes(cert)) this.enqueue(v, null);
      }),
      // A block just became final here: its certificate goes to our full-node peers in one
      // message. They take finality from it and pass nothing on (votes stay between masternodes).
      chain.events.on("finalized", ({ certificate }) => {
        if (this.modules.isMasternode) this.sendCertificate(certificateVotes(certificate));
      }),
    );
  }

  stop(): void {
    for (const u of this.unsubscribe.splice(0)) u();
    this.retryTimer?.cancel();
    this.retryTimer = null;
    this.flushTimer?.cancel();
    this.flushTimer = null;
    this.queue = [];
  }

  /** Our own vote (the voter's): counted here, then sent to every peer. */
  publish(vote: FinalityVote): VoteOutcome {
    const out = this.modules.chain.finality.addVote(vote);
    this.note(out, null);
    if ((out.status === "counted" || out.status === "pending") && this.modules.isMasternode)
      this.enqueue(vote, null);
    return out;
  }

  /**
   * A peer finished its handshake: send it the certificate of our last final block, and the
   * votes that justified our highest justified checkpoint (its next votes' source).
   */
  onPeerReady(peer: Peer): void {
    const tracker = this.modules.chain.finality.tracker;
    const certs = [tracker.finalCertificate, tracker.justification(tracker.highestJustified)];
    const votes = certs.flatMap((c) => (c ? certificateVotes(c) : []));
    if (votes.length === 0) return;
    for (const v of votes) peer.markKnown(voteId(v));
    for (let i = 0; i < votes.length; i += MAX_VOTES_PER_MESSAGE)
      peer.send({ type: MsgType.FinalityVotes, votes: votes.slice(i, i + MAX_VOTES_PER_MESSAGE) });
  }

  /** The route for FinalityVotes. */
  onVotes(peer: Peer, msg: FinalityVotesMsg): void {
    const { chain } = this.modules;
    let waitingSecondLink = false;
    const relays = this.modules.isMasternode;
    for (const vote of msg.votes) {
      const id = voteId(vote);
      peer.markKnown(id);
      const out = chain.finality.addVote(vote);
      this.note(out, vote);
      if (out.status === "invalid") {
        reportRelayError(
          this.modules.network,
          peer,
          new RelayError(
            "BAD_VOTE",
            `invalid finality vote: ${out.reason ?? "?"}`,
            encodeVote(vote).toString("hex"),
          ),
        );
        return;
      }
      if (relays && (out.status === "counted" || out.status === "pending")) this.enqueue(vote, peer);
      if (out.status === "pending" && vote.target.epoch === vote.source.epoch + 1) waitingSecondLink = true;
    }
    // If these votes claim a block final that we lack, have the sync look at the sender's branch
    // (it holds the block, or learnt the votes from a peer that does and is on its way to it).
    if (waitingSecondLink && this.modules.hintSync) {
      for (const hex of chain.finality.claimedFinal()) {
        if (!chain.getIndex(Buffer.from(hex, "hex"))) {
          this.modules.hintSync(peer);
          break;
        }
      }
    }
  }

  private note(out: VoteOutcome, vote: FinalityVote | null): void {
    if (vote) this.counts[out.status]++;
    if (out.evidence) {
      const voter = out.evidence.b.voter.toString("hex");
      this.offencesTotal++;
      this.offences.push({ offence: out.evidence.offence, voter, at: this.modules.clock.now() });
      if (this.offences.length > 100) this.offences.shift();
      this.modules.logger.warn("Finality: a voter broke a voting rule", {
        offence: out.evidence.offence,
        voter,
        a: linkKey(out.evidence.a),
        b: linkKey(out.evidence.b),
      });
    }
    if (out.finalized)
      this.modules.logger.debug("Block final", {
        height: Math.floor(out.finalized.epoch / 2),
        hash: out.finalized.hash.toString("hex"),
      });
  }

  private enqueue(vote: FinalityVote, from: Peer | null): void {
    this.queue.push({ vote, id: voteId(vote), from });
    if (this.queue.length > MAX_QUEUED) this.queue.shift();
    const delay = Math.min(TRICKLE_MS, this.modules.chain.params.blockTimeMs / 10);
    this.flushTimer ??= this.modules.clock.setTimeout(() => this.flush(), delay);
  }

  /** One FinalityVotes per masternode peer, with the queued votes it does not have. */
  private flush(): void {
    this.flushTimer = null;
    const queued = this.queue;
    this.queue = [];
    if (queued.length === 0) return;
    for (const peer of this.modules.network.peers()) {
      if (!peer.operatorPubkey) continue;
      const votes: FinalityVote[] = [];
      for (const q of queued) {
        if (q.from === peer || peer.knows(q.id)) continue;
        peer.markKnown(q.id);
        votes.push(q.vote);
      }
      for (let i = 0; i < votes.length; i += MAX_VOTES_PER_MESSAGE) {
        peer.send({ type: MsgType.FinalityVotes, votes: votes.slice(i, i + MAX_VOTES_PER_MESSAGE) });
      }
      this.counts.sent += votes.length;
    }
  }

  /** A final certificate's votes to every full-node peer, in one message encoded once. */
  private sendCertificate(votes: FinalityVote[]): void {
    try {
      let n = 0;
      for (let i = 0; i < votes.length; i += MAX_VOTES_PER_MESSAGE) {
        const part = votes.slice(i, i + MAX_VOTES_PER_MESSAGE);
        n = this.modules.network.broadcast(
          { type: MsgType.FinalityVotes, votes: part },
          (p) => !p.operatorPubkey,
        );
      }
      this.counts.certificatesSent += n;
    } catch (e) {
      this.modules.logger.error("Finality: sending a certificate failed", {}, e);
    }
  }
}

/**
 * A vote's key in a peer's known set: 31 bits of its signature, which is as unpredictable as a
 * hash (Ed25519 signs the whole vote). A collision only makes this node skip sending one vote to
 * one peer, a local choice; hashing each copy's encoding cost a fifth of the relay's time.
 */
function voteId(v: FinalityVote): number {
  return inventoryKey(v.signature);
}
