/**
 * Finality for operators (docs/CONSENSUS.md, "Finality"; docs/OPERATIONS.md, "Finality"): the
 * JSON of a checkpoint and a certificate, whether a block is final, and `getfinalitystatus`.
 *
 * Everything here reads plain structural views, so the RPC layer imports neither the relay nor
 * the voter: ChainFinality fits FinalityReader, FinalityRelay fits FinalityRelayView (shared with
 * the metrics, src/metrics/finalityMetrics.ts), and FinalityVoter fits FinalityVoterView.
 */
import type { ChainReader } from "../chain/chainReader.js";
import type { BlockIndex } from "../chain/chainStore.js";
import { heightOfEpoch, type Certificate, type Checkpoint, type VoteLock } from "../consensus/finality.js";
import { eraAnchorHeight, eraEndHeight, type VoterSet } from "../consensus/committee.js";
import { VOTE_RESULTS, type FinalityRelayView } from "../metrics/finalityMetrics.js";
import type { RpcServer } from "./server.js";

/** What the RPC reads of the chain's finality (Chain.finality). */
export interface FinalityReader {
  readonly finalized: Checkpoint;
  readonly finalizedHeight: number;
  readonly tracker: {
    readonly highestJustified: Checkpoint;
    readonly finalCertificate: Certificate | null;
    readonly pendingCount: number;
    readonly era: number;
    readonly voters: Pick<VoterSet, "size" | "total" | "sampled"> | null;
  };
}

/** What the RPC reads of a masternode's voter (TimeNode.voter). */
export interface FinalityVoterView {
  readonly currentLock: VoteLock;
  readonly signed: number;
}

export interface FinalityMethodDeps {
  chain: Pick<ChainReader, "tip">;
  finality: FinalityReader;
  relay: FinalityRelayView;
  /** Null on a node that is not a masternode. */
  voter: FinalityVoterView | null;
  /** Offences seen since start (FinalityRelay.offencesTotal). */
  offencesSeen: () => number;
}

/** Offences `getfinalitystatus` lists, newest first. */
export const RECENT_OFFENCES = 10;

export function checkpointToJson(c: Checkpoint): { epoch: number; hash: string } {
  return { epoch: c.epoch, hash: c.hash.toString("hex") };
}

/** A certificate as JSON: its era, the link's two checkpoints and its votes, all hex. */
export function certificateToJson(c: Certificate): Record<string, unknown> {
  return {
    era: c.era,
    source: checkpointToJson(c.source),
    target: checkpointToJson(c.target),
    votes: c.votes.map((v) => ({ voter: v.voter.toString("hex"), signature: v.signature.toString("hex") })),
  };
}

/**
 * A block is final when it is on the main chain at or below the last final block's height (the
 * final block is always on the main chain, and so are its ancestors).
 */
export function isFinalBlock(finality: FinalityReader, entry: BlockIndex, main: boolean): boolean {
  return main && entry.height <= finality.finalizedHeight;
}

/** getblock's `finalized` and `certificate`: the certificate only for the last final block. */
export function blockFinalityJson(
  finality: FinalityReader,
  entry: BlockIndex,
  main: boolean,
): { finalized: boolean; certificate: Record<string, unknown> | null } {
  const cert = finality.tracker.finalCertificate;
  const last = entry.hash.equals(finality.finalized.hash);
  return {
    finalized: isFinalBlock(finality, entry, main),
    certificate: last && cert ? certificateToJson(cert) : null,
  };
}

/**
 * The era in force: its number, its anchor's height, the height up to which its votes can make
 * blocks final, and its voter set (how many keys, their total weight, whether it is a sampled
 * committee, whose weights are seats).
 */
function eraJson(finality: FinalityReader): Record<string, unknown> {
  const era = finality.tracker.era;
  const voters = finality.tracker.voters;
  return {
    number: era,
    anchorheight: eraAnchorHeight(era),
    endheight: eraEndHeight(era),
    voters: voters ? { count: voters.size, weight: Number(voters.total), sampled: voters.sampled } : null,
  };
}

/** The answer of getfinalitystatus. */
export function finalityStatus(deps: FinalityMethodDeps): Record<string, unknown> {
  const { chain, finality, relay, voter } = deps;
  const fin = finality.finalized;
  const justified = finality.tracker.highestJustified;
  const votes: Record<string, number> = {};
  for (const r of VOTE_RESULTS) votes[r] = relay.counts[r];
  votes.sent = relay.counts.sent;
  votes.certificatessent = relay.counts.certificatesSent;
  const recent = relay.offences
    .slice(-RECENT_OFFENCES)
    .reverse()
    .map((o) => ({ offence: o.offence, voter: o.voter, time: Math.floor(o.at / 1000) }));
  return {
    finalized: { height: finality.finalizedHeight, hash: fin.hash.toString("hex"), epoch: fin.epoch },
    justified: {
      height: heightOfEpoch(justified.epoch),
      hash: justified.hash.toString("hex"),
      epoch: justified.epoch,
    },
    era: eraJson(finality),
    tip: chain.tip.height,
    lag: Math.max(0, chain.tip.height - finality.finalizedHeight),
    certificatevotes: finality.tracker.finalCertificate?.votes.length ?? 0,
    votes,
    pendingvotes: finality.tracker.pendingCount,
    offences: { count: deps.offencesSeen(), recent },
    voter: voter
      ? {
          lock: {
            era: voter.currentLock.era,
            maxsource: voter.currentLock.maxSource,
            maxtarget: voter.currentLock.maxTarget,
          },
          signed: voter.signed,
        }
      : null,
  };
}

export function registerFinalityMethods(rpc: RpcServer, deps: FinalityMethodDeps): void {
  rpc.register("getfinalitystatus", {
    description:
      "Returns the state of finality: the last final block, the highest justified checkpoint, how far the tip is past the final block, the votes received from peers by outcome, offences seen, and (on a masternode) the voter's lock.",
    params: [],
    result: "{finalized, justified, era, tip, lag, certificatevotes, votes, pendingvotes, offences, voter}",
    examples: ["time-cli getfinalitystatus"],
    handler: () => finalityStatus(deps),
  });
}
