import { MsgType } from "./messages.js";

/** [tokens per second, burst]: the shape Peer's token buckets take (PeerOptions.rateLimits). */
export type RateLimit = [perSecond: number, burst: number];
export type RateLimitTable = Partial<Record<MsgType, RateLimit>>;

/** Pings may arrive at this many times the configured ping rate before they count as a flood. */
export const PING_RATE_SLACK = 3;

/**
 * Per-peer, per-message-type limits on what a peer may send us, from the original's numbers
 * (ORIGINAL.md, "Rate limits"). Peer enforces them with token buckets and reports a message over
 * its limit as misbehaviour RATE_LIMITED (score 10), so ten violations within an hour get the IP
 * banned while every other peer is still served.
 *
 * Types not listed are unlimited: Hello/Auth/Goodbye belong to the handshake, and Headers and
 * NotFound only answer our own requests (an unsolicited one is already scored by Peer).
 *
 * Reserved for later message types, same source:
 * - transactions: 50/s (burst 100);
 * - masternode announcements: 3 per minute (burst 3).
 */
export function rateLimitsFor(pingIntervalMs: number): RateLimitTable {
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
    // GetPeers 5 per minute in the original.
    [MsgType.GetPeers]: [5 / 60, 5],
    // Peers 10 per minute: a GetPeers answer plus relayed new addresses.
    [MsgType.Peers]: [10 / 60, 10],
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
