/**
 * Protocol version spoken by this node; peers below MIN_PROTOCOL_VERSION are refused. Version 3:
 * finality votes carry their era (172 bytes, not 168), so a version 2 peer's votes would not
 * decode here, nor ours there.
 */
export const PROTOCOL_VERSION = 3;
export const MIN_PROTOCOL_VERSION = 3;

/** Frame header: magic 4 | type u16 | length u32 | checksum 4. */
export const FRAME_HEADER_SIZE = 14;
/** No frame payload may exceed 8 MiB (checked before anything is buffered). */
export const MAX_FRAME_PAYLOAD = 8 * 1024 * 1024;

/** Service flags in Hello. */
export const SERVICE_MASTERNODE = 1 << 0;
/** Serves blocks to others (every full node does). */
export const SERVICE_BLOCKS = 1 << 1;

export const USER_AGENT = "timed-ts/0.1";

/** Handshake must finish within this, or the connection is closed (HANDSHAKE_TIMEOUT). */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
/**
 * The remote's Hello (its first frame, a few hundred bytes) must be complete within this, or the
 * connection is closed (HANDSHAKE_TIMEOUT). An honest node sends it the moment the connection
 * opens; a connection that drips it holds a handshake slot, so it gets only this long.
 */
export const HELLO_TIMEOUT_MS = 3_000;
/**
 * A ready link on which nothing at all has arrived for this many ping intervals is stalled
 * (a black-holed route, a dead host) and is closed with STALLED at the next ping tick, then
 * redialled. The dialer pings once per interval and the accepting side answers (and pings when
 * the dialer does not), so an honest peer sends at least one frame per interval: three silent
 * intervals is three missing frames.
 */
export const STALL_PING_INTERVALS = 3;
/**
 * The accepting side of a link pings only when the dialer's pings stop coming (none within
 * 1.5 intervals), or when its own last ping is this many intervals old: enough to keep its RTT
 * and its missed-pong count, at a quarter of the frames (docs/PROTOCOL.md, "Ping policy").
 */
export const PING_REFRESH_INTERVALS = 4;
/** A score of 100 is proof (a bad signature, an invalid block, a malformed frame): a ban at once. */
export const PROOF_SCORE = 100;
/**
 * Messages dropped over their rate limit that one peer may cause within one ping interval before
 * the link is closed (RATE_LIMITED, never a ban). An honest burst after a stall carries a few
 * intervals' worth of gossip; this is far beyond it, and only stops a peer from making us decode
 * floods for ever.
 */
export const MAX_DROPPED_PER_INTERVAL = 10_000;
/** Default per-request timeout for request/response messages. */
export const REQUEST_TIMEOUT_MS = 30_000;
/**
 * Each peer's writer queue holds at most 24 MiB: room for three maximal frames. A peer that
 * cannot drain that much is too slow to keep, and is dropped rather than buffered without limit.
 */
export const MAX_SEND_QUEUE_BYTES = 24 * 1024 * 1024;
/** Outstanding requests per peer; more would only hide a stuck peer. */
export const MAX_PENDING_REQUESTS = 64;
/** Block hashes remembered per peer as already known to it (relay dedup). */
export const KNOWN_INVENTORY_PER_PEER = 4_096;

/** Ping slack as in the seeds: 3 missed pongs of 90 s for peers, 6 of 180 s for masternodes. */
export function pingPolicy(
  intervalMs: number,
  privileged: boolean,
): { timeoutMs: number; maxMissed: number } {
  return privileged
    ? { timeoutMs: 6 * intervalMs, maxMissed: 6 }
    : { timeoutMs: 3 * intervalMs, maxMissed: 3 };
}
