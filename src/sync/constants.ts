/**
 * Sync constants. Each says why it is that number; the ones taken from the seeds say so.
 * Options an operator may set live in `[sync]` (src/sync/options.ts); these are not meant to be.
 */

/**
 * Seed 001 consensus check: a non-whitelisted peer more than 50 blocks ahead of us is synced
 * from only when enough of our peers agree with it (the original's `peer_tip > our_height + 50`).
 */
export const FAR_AHEAD_BLOCKS = 50;

/** Seed 001: a peer agrees with a far-ahead peer when its tip is within 10 blocks of that peer's tip. */
export const AGREEMENT_WINDOW_BLOCKS = 10;

/**
 * Seed 001: at least half of the peers that report heights (the far-ahead peer itself included,
 * as in the original) must agree before we follow a far-ahead, non-whitelisted peer.
 */
export const CONSENSUS_SHARE = 0.5;

/** Seed 001: more than 100 blocks above the consensus height means a possible fork or partition. */
export const AHEAD_WARNING_BLOCKS = 100;

// How deep the common-ancestor search goes (seed 001: 2,000 blocks, 10,000 for a whitelisted
// masternode) is the chain's reorg policy, REORG_POLICY in primitives/params.ts.

/** Seed 001/002: a batch is retried on another peer at most 3 times ("Block Fetch Retries: 3"). */
export const MAX_BATCH_RETRIES = 3;

/** Seed 001: whitelisted masternodes get 10 retries ("max_retry_attempts = 10"). */
export const PRIORITY_MAX_BATCH_RETRIES = 10;

/**
 * Requests in flight to one peer at a time. Two keep a peer busy across one round trip (one
 * answer in flight while the next request travels) without letting one fast peer take every
 * batch: the rest spread over the other peers.
 */
export const MAX_REQUESTS_PER_PEER = 2;

/**
 * Default timeout of one sync request (headers, a batch of up to 500 blocks, hashes). A batch
 * answer is at most 4 MiB (BlockServer), so 15 s allows ~270 KiB/s; a slower peer's batch goes
 * to another peer rather than holding the sync.
 */
export const REQUEST_TIMEOUT_MS = 15_000;

/** Seed 002: the peer-state cache keeps an entry 5 minutes ("Peer Cache TTL: 5 minutes"). */
export const PEER_STATE_TTL_MS = 5 * 60_000;

/** Entries in the peer-state view; far above max_peers (125), so live peers are never evicted. */
export const MAX_PEER_STATES = 1_000;

/** Distinct addresses remembered as refused for another genesis (within the TTL). */
export const MAX_GENESIS_REFUSALS = 1_000;

/**
 * Headers fetched (2 answers of 2,000) before their bodies are downloaded. Bounds the memory of
 * one window and lets a long sync apply blocks as it goes instead of after every header.
 */
export const MAX_WINDOW_HEADERS = 4_000;

/**
 * The next header window is fetched once the running download has at most this many blocks left
 * to process, and appended to it, so its first batches are on their way long before the last of
 * the current window apply. Its GetHeaders round trips wait behind batch commits (a turn of the
 * event loop each, about a second for 500 full blocks), so it starts a whole window early. At
 * most two windows of headers are held.
 */
export const NEXT_WINDOW_AT = MAX_WINDOW_HEADERS;

/**
 * Batches downloaded but not yet processed, ahead of the one being processed. With 4 MiB per
 * answer this bounds buffered blocks to ~32 MiB while keeping every peer busy.
 */
export const MAX_BATCHES_AHEAD = 8;

/** A peer failing this many requests in a row is not used as a sync source until it answers again. */
export const MAX_CONSECUTIVE_FAILURES = 3;

/**
 * A failure streak is forgotten this long after its last failure: requests that timed out while a
 * link was stalled or partitioned say nothing about the peer once the network has healed.
 */
export const FAILURE_STREAK_TTL_MS = 60_000;

/**
 * A lead that claimed a tip above ours and then had nothing after our locator (EMPTY_CLAIM)
 * loses, for this long, its standing as a sync lead and its say in the target: its claimed height
 * no longer makes us "behind", and we stop asking it. Without this a peer claiming a few blocks
 * more than it has kept us retrying after every cooldown at no cost to itself. It ends early
 * when the peer's tip becomes a block we hold (someone else proved the claim).
 */
export const DISPROVEN_CLAIM_MS = 10 * 60_000;

/** A lead peer that failed a sync is not picked as lead again for this long (doubling per failure). */
export const LEAD_COOLDOWN_MS = 10_000;

/** Lead peers one sync tries before it gives up until the next check. */
export const MAX_LEADS_PER_SYNC = 8;

/** Windows one sync processes before yielding to a fresh check (bounds one sync's work). */
export const MAX_WINDOWS_PER_SYNC = 1_000;
/** Headers of a branch refused below the final block that are checked for twins of our blocks. */
export const MAX_TWIN_HEADERS = 64;

/** Notifier line while syncing: "every few seconds" (Lodestar prints one every few seconds). */
export const NOTIFIER_INTERVAL_MS = 5_000;

/**
 * Slack on the highest height a chain can have reached by now (each block comes at least one
 * block time after its parent and no later than the future-drift limit). A claim this many
 * blocks beyond it is impossible, not a clock skew.
 */
export const IMPOSSIBLE_HEIGHT_SLACK = 10;

/** Re-checking one peer's unchanged tip for a fork waits at least this long. */
export const FORK_RECHECK_MS = 60_000;

/** Far-ahead peers checked for a better branch when we are more than 100 ahead of consensus. */
export const MAX_FORK_CHECK_PEERS = 3;

/** Deferral and other repeated log lines print at most once per this interval per key. */
export const LOG_REPEAT_MS = 30_000;

/** Distinct (peer, range) requests remembered per sync, so a range never goes twice to one peer. */
export const MAX_REQUESTED_RANGES = 100_000;

/**
 * A masternode does not produce while the sync is fetching a branch whose validated headers beat
 * its tip (a block on the beaten tip would only be orphaned, and after a partition heals it
 * prolongs the race between the two sides). The hold lasts this long after the branch was found
 * or last made progress, at least, or one round timeout if that is longer; and never past the
 * sync's deadline. A lead that stalls its download therefore holds us for one such period only.
 */
export const PRODUCTION_HOLD_MIN_MS = 2_000;
