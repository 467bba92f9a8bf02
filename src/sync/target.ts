import {
  AGREEMENT_WINDOW_BLOCKS,
  CONSENSUS_SHARE,
  FAR_AHEAD_BLOCKS,
  IMPOSSIBLE_HEIGHT_SLACK,
} from "./constants.js";

/** The part of a peer's state the target and the consensus check look at. */
export interface HeightReport {
  id: string;
  height: number;
  masternode: boolean;
  whitelisted: boolean;
}

export type TargetSource = "whitelisted-masternodes" | "masternodes" | "peers";

export interface ConsensusTarget {
  /** The median height of the chosen group. */
  height: number;
  /** Which group it came from: whitelisted masternodes first, then masternodes, then any peer. */
  source: TargetSource;
  /** How many peers the median was taken over. */
  count: number;
}

/** Median of the values; the mean of the two middle ones (rounded down) for an even count, as in seed 001. */
export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const s = values.slice().sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : Math.floor((s[mid - 1]! + s[mid]!) / 2);
}

/** Population standard deviation (peer_height_variance); 0 for fewer than two values. */
export function stddev(values: readonly number[]): number {
  if (values.length < 2) return 0;
  let mean = 0;
  for (const v of values) mean += v;
  mean /= values.length;
  let sq = 0;
  for (const v of values) sq += (v - mean) * (v - mean);
  return Math.sqrt(sq / values.length);
}

/**
 * The sync target (seed 001): the median height of the whitelisted masternode peers if any report
 * a height; else of all masternode peers; else of all peers. Null without peers.
 */
export function consensusTarget(peers: readonly HeightReport[]): ConsensusTarget | null {
  const groups: Array<[TargetSource, HeightReport[]]> = [
    ["whitelisted-masternodes", peers.filter((p) => p.masternode && p.whitelisted)],
    ["masternodes", peers.filter((p) => p.masternode)],
    ["peers", peers.slice()],
  ];
  for (const [source, group] of groups) {
    const m = median(group.map((p) => p.height));
    if (m !== null) return { height: m, source, count: group.length };
  }
  return null;
}

export interface ConsensusCheck {
  ok: boolean;
  /** A whitelisted masternode: it skips the check ("they ARE the consensus"). */
  priority: boolean;
  /** It is more than 50 blocks ahead of us. */
  farAhead: boolean;
  /** Peers (itself included) whose height is within 10 blocks of its height. */
  agreeing: number;
  /** Peers that report a height (itself included). */
  reporting: number;
}

/**
 * Seed 001's consensus check. A peer more than 50 blocks ahead of us that is not a whitelisted
 * masternode is followed only when at least half of the peers reporting heights agree with it
 * (their height within 10 blocks of its height; the candidate counts itself, as in the original).
 * Whitelisted masternodes skip the check. A peer not far ahead needs no agreement.
 */
export function consensusCheck(
  candidate: HeightReport,
  ourHeight: number,
  reporters: readonly HeightReport[],
): ConsensusCheck {
  const priority = candidate.whitelisted && candidate.masternode;
  const farAhead = candidate.height > ourHeight + FAR_AHEAD_BLOCKS;
  const all = reporters.some((r) => r.id === candidate.id) ? reporters : [...reporters, candidate];
  let agreeing = 0;
  for (const r of all) if (Math.abs(r.height - candidate.height) <= AGREEMENT_WINDOW_BLOCKS) agreeing++;
  const reporting = all.length;
  const ok = priority || !farAhead || agreeing >= CONSENSUS_SHARE * reporting;
  return { ok, priority, farAhead, agreeing, reporting };
}

/**
 * The highest height any valid chain can have now, plus slack: every block's timestamp is at
 * least one block time after its parent's and at most `maxFutureDriftMs` ahead of the clock, so
 * height h needs timestamp >= genesis + h × blockTime. A claimed height above this is a lie.
 */
export function maxPlausibleHeight(
  genesisTimestamp: number,
  blockTimeMs: number,
  now: number,
  maxFutureDriftMs: number,
): number {
  const span = now + maxFutureDriftMs - genesisTimestamp;
  return Math.max(0, Math.floor(span / Math.max(1, blockTimeMs))) + IMPOSSIBLE_HEIGHT_SLACK;
}

/** What ranking looks at. */
export interface RankedPeer {
  id: string;
  whitelisted: boolean;
  masternode: boolean;
  height: number;
  rttMs: number | null;
  consecutiveFailures: number;
}

/**
 * Sync source order: whitelisted first, then masternodes, then greater height, lower RTT (unknown
 * last), fewer failures; the node id breaks ties so the order is total.
 */
export function comparePeers(a: RankedPeer, b: RankedPeer): number {
  if (a.whitelisted !== b.whitelisted) return a.whitelisted ? -1 : 1;
  if (a.masternode !== b.masternode) return a.masternode ? -1 : 1;
  if (a.height !== b.height) return b.height - a.height;
  const ra = a.rttMs ?? Number.POSITIVE_INFINITY;
  const rb = b.rttMs ?? Number.POSITIVE_INFINITY;
  if (ra !== rb) return ra < rb ? -1 : 1;
  if (a.consecutiveFailures !== b.consecutiveFailures) return a.consecutiveFailures - b.consecutiveFailures;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}
