import { MAX_WITNESSES_PER_HEARTBEAT, MsgType } from "./messages.js";

/** [tokens per second, burst]: the shape Peer's token buckets take (PeerOptions.rateLimits). */
export type RateLimit = [perSecond: number, burst: number];
/**
 * Types without a limit: the handshake, and answers to our own requests that cost nothing to
 * receive beyond what we asked for (an unasked one is dropped by Peer).
 */
export type UnlimitedType =
  | MsgType.Hello
  | MsgType.Auth
  | MsgType.Goodbye
  | MsgType.Headers
  | MsgType.NotFound
  | MsgType.Hashes
  | MsgType.MnList;
/** Every other type has a limit: a new type without one does not compile (rateLimitsFor). */
export type LimitedType = Exclude<MsgType, UnlimitedType>;
export type RateLimitTable = Partial<Record<MsgType, RateLimit>>;

/** Pings may arrive at this many times the configured ping rate before the excess is dropped. */
export const PING_RATE_SLACK = 3;

/**
 * Requests: each one makes us do work (read blocks, headers, hashes, transactions, addresses, the
 * masternode list). Over its limit a request is a flood: a soft offence scored FLOOD_SCORE toward
 * a short ban. Every other type over its limit (liveness gossip, announcements, relayed tips and
 * transaction ids, answers) is dropped unscored: a burst of it is what a TCP link delivers when
 * it resumes after a stall, and honest peers produce it every day.
 */
export const REQUEST_TYPES: ReadonlySet<MsgType> = new Set([
  MsgType.GetBlocks,
  MsgType.GetHeaders,
  MsgType.GetHashes,
  MsgType.GetTxs,
  MsgType.GetPeers,
  MsgType.GetMnList,
]);

/**
 * Score of one request over its limit: ten floods within the hour (beyond a burst no honest node
 * sends, since it keeps at most 64 requests in flight per peer) reach a flood ban.
 */
export const FLOOD_SCORE = 10;

/**
 * Per-peer, per-message-type limits on what a peer may send us, from the original's numbers
 * (ORIGINAL.md, "Rate limits"). Peer enforces them with token buckets. A request over its limit is
 * a REQUEST_FLOOD (FLOOD_SCORE); anything else over its limit is dropped unscored (REQUEST_TYPES).
 *
 * Types not listed are unlimited: Hello/Auth/Goodbye belong to the handshake, and Headers,
 * NotFound and MnList only answer our own requests (one nobody asked for is dropped by Peer).
 *
 * Transactions are limited at 50/s per peer (the original's figure) by TxRelay, per txid; the
 * message limits below only bound how many announcements and requests carry them.
 *
 * Heartbeats and attestations are relayed, so what one peer may send grows with the number of
 * registered masternodes; see livenessRateLimits. Without a `liveness` context the table
 * assumes DEFAULT_LIVENESS_RATE_CONTEXT.
 */
export function rateLimitsFor(
  pingIntervalMs: number,
  liveness: LivenessRateContext = DEFAULT_LIVENESS_RATE_CONTEXT,
): Record<LimitedType, RateLimit> {
  // The original allowed 2 pings per 10 s with 30 s pings, i.e. 0.2/s. Ping intervals are
  // configurable (devnets ping every 0.1–2 s), so allow PING_RATE_SLACK times the configured
  // rate, and never less than the original's 0.2/s. The burst covers a few seconds' worth, so
  // a late timer followed by an on-time one never trips it.
  const pingRate = Math.max(2 / 10, (PING_RATE_SLACK * 1000) / Math.max(1, pingIntervalMs));
  const pingBurst = Math.max(2, Math.ceil(pingRate * 2));
  return {
    // Pings 2 per 10 s in the original, scaled by the ping interval (above).
    [MsgType.Ping]: [pingRate, pingBurst],
    // A pong answers one of our pings, so the same ceiling holds.
    [MsgType.Pong]: [pingRate, pingBurst],
    // Blocks 10/s in the original. The burst of 20 lets a tip announcement and a batch answer
    // arrive together without tripping.
    [MsgType.NewTip]: [10, 20],
    [MsgType.Blocks]: [10, 20],
    // GetBlocks 100 per 10 s in the original; GetHeaders costs the same to serve.
    [MsgType.GetBlocks]: [100 / 10, 100],
    [MsgType.GetHeaders]: [100 / 10, 100],
    // GetHashes (the common-ancestor bisection) costs about as much as GetHeaders.
    [MsgType.GetHashes]: [100 / 10, 100],
    // Up to 1,000 txids per message: 10 messages/s leaves TxRelay's 50 tx/s as the real limit.
    [MsgType.TxInv]: [10, 50],
    [MsgType.GetTxs]: [10, 50],
    [MsgType.Txs]: [10, 50],
    // GetPeers 5 per minute in the original.
    [MsgType.GetPeers]: [5 / 60, 5],
    // Peers 10 per minute: a GetPeers answer plus relayed new addresses.
    [MsgType.Peers]: [10 / 60, 10],
    ...livenessRateLimits(liveness),
    // Liveness relay by inventory: an honest peer sends one LivenessInv per trickle interval (at
    // least 50 ms), split past 1,000 hashes, and one GetLiveness and one LivenessBatch per
    // inventory it answers. Over the limit they are dropped: the hashes come again from others.
    [MsgType.LivenessInv]: [40, 200],
    [MsgType.GetLiveness]: [40, 200],
    [MsgType.LivenessBatch]: [40, 200],
    // Masternode announcements 3 per minute in the original. They are not relayed: a peer only
    // ever sends its own, on connect and then at most every 30 s (announce_interval >= 30 s).
    [MsgType.MnAnnounce]: [3 / 60, 3],
    // Asking for the masternode list costs the answerer as much as GetPeers: 5 per minute.
    [MsgType.GetMnList]: [5 / 60, 5],
    // Equivocation evidence is rare (one per offender, ever); 10 a minute with a burst of 20
    // (a new peer is sent up to 16 pending ones at once).
    [MsgType.Evidence]: [10 / 60, 20],
    [MsgType.VoteEvidence]: [10 / 60, 20],
    // Votes are relayed in batches: two rounds per block from every masternode, coalesced per
    // peer. 20 messages a second with a burst of 200 carries far more than any registry needs;
    // over it they are dropped, never scored (a burst after a stall is normal).
    [MsgType.FinalityVotes]: [20, 200],
  };
}

/** What the heartbeat and attestation limits are scaled by. */
export interface LivenessRateContext {
  /** Registered masternodes: each sends one heartbeat per interval. */
  registrySize: number;
  heartbeatIntervalMs: number;
}

/**
 * Used when the caller gives no context. Generous on purpose: 1,000 masternodes at the mainnet
 * heartbeat interval of 60 s, which also covers a devnet of up to 15 masternodes heartbeating
 * every second. A node that knows its registry passes the real figures.
 */
export const DEFAULT_LIVENESS_RATE_CONTEXT: LivenessRateContext = {
  registrySize: 1_000,
  heartbeatIntervalMs: 60_000,
};

/** Each registered masternode may show up this many times per interval on one link. */
export const LIVENESS_RATE_SLACK = 4;
/** Small registries still get the limits of this many masternodes (the registry grows at runtime). */
export const MIN_LIVENESS_REGISTRY = 16;

/**
 * Per link and heartbeat interval, an honest peer sends each masternode's heartbeat at most once
 * (relay dedup), and at most MAX_WITNESSES_PER_HEARTBEAT attestations of it. Allow
 * LIVENESS_RATE_SLACK times that, so late timers, restarts (a new seq) and relays from both
 * directions never trip it, with a burst of one such interval's worth.
 */
export function livenessRateLimits(
  ctx: LivenessRateContext,
): Record<MsgType.Heartbeat | MsgType.Attestation, RateLimit> {
  const masternodes = Math.max(MIN_LIVENESS_REGISTRY, Math.ceil(ctx.registrySize));
  const intervalS = Math.max(0.001, ctx.heartbeatIntervalMs / 1000);
  const heartbeats = LIVENESS_RATE_SLACK * masternodes;
  const attestations = heartbeats * Math.min(masternodes, MAX_WITNESSES_PER_HEARTBEAT);
  return {
    [MsgType.Heartbeat]: [heartbeats / intervalS, heartbeats],
    [MsgType.Attestation]: [attestations / intervalS, attestations],
  };
}

/**
 * What we allow ourselves to send of a rate-limited type to one peer: 80% of the receiver's
 * rate and a burst two smaller (at least 1), so that network jitter, which can bunch messages
 * together on arrival, never pushes an honest sender over the receiver's limit.
 */
export function sendBudget(limit: RateLimit): RateLimit {
  return [limit[0] * 0.8, Math.max(1, limit[1] - 2)];
}
