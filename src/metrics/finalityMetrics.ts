/**
 * Finality metrics (docs/OPERATIONS.md, "Monitoring"): the last final height, how far the tip is
 * past it, the votes received by outcome, and the offences seen. Read at scrape time (`collect`),
 * like the other node metrics.
 *
 * The relay is read through a structural view (FinalityRelay fits it), since metrics sit below
 * the relay. The same views serve `getfinalitystatus` (src/rpc/finalityMethods.ts).
 */
import { Counter, Gauge, type Registry } from "prom-client";
import type { ChainReader } from "../chain/chainReader.js";
import type { VoteStatus } from "../chain/finalityTracker.js";

/** The vote outcomes, in the order the RPC and the metrics list them. */
export const VOTE_RESULTS: readonly VoteStatus[] = [
  "counted",
  "duplicate",
  "pending",
  "stale",
  "invalid",
  "unusable",
  "not-voter",
];

/** One offence as the relay records it: `at` is ms since the epoch. */
export interface OffenceRecord {
  offence: string;
  voter: string;
  at: number;
}

/** What metrics and RPC read of the finality relay (FinalityRelay fits it). */
export interface FinalityRelayView {
  /** Votes received from peers by what counting them gave, votes sent, and certificates sent. */
  readonly counts: Readonly<Record<VoteStatus | "sent" | "certificatesSent", number>>;
  /** The offences the relay holds, newest last; it keeps only the last ones. */
  readonly offences: readonly OffenceRecord[];
  /** Every offence seen since start. */
  readonly offencesTotal: number;
}

export interface FinalityMetricsSources {
  chain: Pick<ChainReader, "height">;
  finality: { readonly finalizedHeight: number };
  relay: FinalityRelayView;
}

/** Registers the finality metrics on `registry`. */
export function registerFinalityMetrics(registry: Registry, src: FinalityMetricsSources): void {
  const registers = [registry];
  const { chain, finality, relay } = src;
  new Gauge({
    name: "chain_finalized_height",
    help: "Height of the last final block",
    registers,
    collect() {
      this.set(finality.finalizedHeight);
    },
  });
  new Gauge({
    name: "finality_lag_blocks",
    help: "Blocks the tip is past the last final block (tip height minus final height)",
    registers,
    collect() {
      this.set(Math.max(0, chain.height - finality.finalizedHeight));
    },
  });
  // The relay keeps running totals; turn them into counter increments at each scrape.
  const lastVotes = new Map<string, number>();
  const votes = new Counter<"result">({
    name: "finality_votes_total",
    help: "Finality votes received from peers, by what counting them gave (counted, duplicate, pending, stale, invalid, unusable, not-voter)",
    labelNames: ["result"],
    registers,
    collect() {
      for (const result of VOTE_RESULTS) {
        const total = relay.counts[result];
        const delta = total - (lastVotes.get(result) ?? 0);
        if (delta > 0) this.inc({ result }, delta);
        lastVotes.set(result, total);
      }
    },
  });
  for (const result of VOTE_RESULTS) votes.inc({ result }, 0);
  let lastOffences = 0;
  new Counter({
    name: "finality_offences_total",
    help: "Double and surround votes seen (a voter broke a voting rule)",
    registers,
    collect() {
      const total = relay.offencesTotal;
      if (total > lastOffences) this.inc(total - lastOffences);
      lastOffences = total;
    },
  });
}
