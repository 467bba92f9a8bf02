import { blockHash, type BlockHeader } from "../primitives/block.js";
import { locatorHeights } from "../chain/locator.js";
import { MAX_HASHES_PER_MESSAGE, MAX_HEADERS_PER_MESSAGE } from "../p2p/messages.js";
import { SyncError } from "./errors.js";

/** Our main chain as the ancestor search sees it. */
export interface LocalChainView {
  readonly height: number;
  /** Main-chain hash at `height`, or undefined above the tip. */
  hashAt(height: number): Buffer | undefined;
}

/** The two requests the search makes of one peer. */
export interface AncestorPeer {
  getHeaders(locator: Buffer[], max: number): Promise<BlockHeader[]>;
  getHashes(heights: number[]): Promise<Buffer[]>;
}

export interface ForkPoint {
  height: number;
  hash: Buffer;
}

export interface AncestorResult {
  /**
   * The highest block on both our main chain and the peer's; null when the peer had nothing after
   * our locator (its chain holds nothing we lack).
   */
  fork: ForkPoint | null;
  /** The peer's main-chain headers right after the fork, ascending (empty: nothing above the fork). */
  headers: BlockHeader[];
  /** Their block hashes (same order). */
  hashes: Buffer[];
  /** The last answer was full, so the peer may have more headers after these. */
  more: boolean;
  /** Requests made (each is one round trip). */
  roundTrips: number;
}

export interface AncestorOptions {
  /** The fork may be at most this many blocks below our tip (2,000; 10,000 for whitelisted masternodes). */
  maxDepth: number;
  /** Headers per GetHeaders (default and cap 2,000). */
  maxHeaders?: number;
}

/** Bisection rounds before the search gives up: 64-way splits cover 64^8 heights. */
const MAX_BISECT_ROUNDS = 8;

/**
 * Finds the common ancestor of our main chain and a peer's in O(log depth) round trips, never
 * one block per round trip (the original's failure):
 *
 * 1. GetHeaders with our block locator (dense near the tip, then exponentially sparse). The peer
 *    answers from the newest locator entry on its main chain. If the first header off our main
 *    chain is in that answer, that is the fork: one round trip, for any fork the first answer
 *    reaches (every fork up to ~1,000 deep).
 * 2. Otherwise the fork lies between the last header we share and the next newer locator entry,
 *    which the peer did not have. GetHashes bisects that interval 65 ways per round trip (64
 *    heights each), then one GetHeaders from the fork fetches the branch. A 10,000-deep fork
 *    takes 4 round trips.
 *
 * The search never looks below `ourHeight − maxDepth` (FORK_TOO_DEEP). Answers that contradict
 * the request are BAD_RESPONSE. Headers are only linkage-checked here; the caller validates them.
 */
export async function findCommonAncestor(
  local: LocalChainView,
  peer: AncestorPeer,
  opts: AncestorOptions,
): Promise<AncestorResult> {
  const max = Math.min(opts.maxHeaders ?? MAX_HEADERS_PER_MESSAGE, MAX_HEADERS_PER_MESSAGE);
  const floor = local.height - opts.maxDepth;
  let roundTrips = 0;
  const tooDeep = (below: number): SyncError =>
    new SyncError(
      "FORK_TOO_DEEP",
      `the fork is below height ${below}, more than ${opts.maxDepth} blocks deep`,
      {
        ourHeight: local.height,
        maxDepth: opts.maxDepth,
      },
    );

  const heights = locatorHeights(local.height);
  const locator = heights.map((h) => mustHash(local, h));
  const first = await peer.getHeaders(locator, max);
  roundTrips++;
  if (first.length === 0) return { fork: null, headers: [], hashes: [], more: false, roundTrips };
  const idx = locator.findIndex((h) => h.equals(first[0]!.prevHash));
  if (idx < 0) throw new SyncError("BAD_RESPONSE", "headers do not start after an entry of our locator");
  const base: ForkPoint = { height: heights[idx]!, hash: locator[idx]! };
  const scan = scanMain(local, base, first);
  const full = first.length >= max;
  if (scan.matched < first.length) {
    const fork =
      scan.matched === 0
        ? base
        : { height: base.height + scan.matched, hash: scan.hashes[scan.matched - 1]! };
    if (fork.height < floor) throw tooDeep(floor);
    return {
      fork,
      headers: first.slice(scan.matched),
      hashes: scan.hashes.slice(scan.matched),
      more: full,
      roundTrips,
    };
  }
  const top: ForkPoint = { height: base.height + first.length, hash: scan.hashes[scan.hashes.length - 1]! };
  // Every header was ours and the answer was short: the peer's chain is a prefix of ours.
  if (!full) return { fork: top, headers: [], hashes: [], more: false, roundTrips };

  // Step 2: the fork is in [top, bad): `bad` is the next newer locator height, not on its chain.
  let good = top.height;
  let bad = idx > 0 ? heights[idx - 1]! : local.height + 1;
  if (bad <= good) bad = local.height + 1;
  for (let round = 0; bad - good > 1; round++) {
    if (bad - 1 < floor) throw tooDeep(floor);
    if (round >= MAX_BISECT_ROUNDS)
      throw new SyncError("BAD_RESPONSE", "ancestor bisection did not converge");
    // Below the floor nothing is searched: the floor itself is asked first, and if it differs the
    // fork is deeper than allowed.
    const asks =
      good < floor
        ? [floor, ...spread(floor, bad, MAX_HASHES_PER_MESSAGE - 1)]
        : spread(good, bad, MAX_HASHES_PER_MESSAGE);
    const answers = await peer.getHashes(asks);
    roundTrips++;
    if (answers.length !== asks.length) {
      throw new SyncError("BAD_RESPONSE", `asked for ${asks.length} hashes, got ${answers.length}`);
    }
    let mismatch = false;
    for (let i = 0; i < asks.length; i++) {
      const h = asks[i]!;
      const same = answers[i]!.equals(mustHash(local, h));
      if (same && mismatch)
        throw new SyncError("BAD_RESPONSE", "hashes agree above a height where they differ");
      if (same) good = h;
      else if (!mismatch) {
        mismatch = true;
        bad = h;
      }
    }
    if (good < floor) throw tooDeep(floor);
  }
  if (good < floor) throw tooDeep(floor);
  const fork: ForkPoint = { height: good, hash: mustHash(local, good) };
  const branch = await peer.getHeaders([fork.hash], max);
  roundTrips++;
  if (branch.length === 0) return { fork, headers: [], hashes: [], more: false, roundTrips };
  if (!branch[0]!.prevHash.equals(fork.hash)) {
    throw new SyncError("BAD_RESPONSE", "headers do not start after the requested fork point");
  }
  // Normally nothing matches here; a peer that reorged meanwhile may share a few more blocks.
  const rescan = scanMain(local, fork, branch);
  const realFork =
    rescan.matched === 0
      ? fork
      : { height: fork.height + rescan.matched, hash: rescan.hashes[rescan.matched - 1]! };
  return {
    fork: realFork,
    headers: branch.slice(rescan.matched),
    hashes: rescan.hashes.slice(rescan.matched),
    more: branch.length >= max,
    roundTrips,
  };
}

function mustHash(local: LocalChainView, height: number): Buffer {
  const h = local.hashAt(height);
  if (!h) throw new SyncError("INTERNAL", `our main chain has no block at height ${height}`);
  return h;
}

/**
 * Checks that `headers` extend `base` block by block, and counts how many leading ones are on our
 * main chain. Returns their hashes (computed once).
 */
function scanMain(
  local: LocalChainView,
  base: ForkPoint,
  headers: readonly BlockHeader[],
): { matched: number; hashes: Buffer[] } {
  const hashes: Buffer[] = [];
  let prev = base.hash;
  let matched = 0;
  let onMain = true;
  for (let i = 0; i < headers.length; i++) {
    const h = headers[i]!;
    if (h.height !== base.height + 1 + i || !h.prevHash.equals(prev)) {
      throw new SyncError("BAD_RESPONSE", "headers are not a contiguous chain", { index: i });
    }
    const hash = blockHash(h);
    hashes.push(hash);
    if (onMain && local.hashAt(h.height)?.equals(hash)) matched++;
    else onMain = false;
    prev = hash;
  }
  return { matched, hashes };
}

/** Up to `n` distinct heights strictly between `lo` and `hi`, evenly spread, ascending. */
export function spread(lo: number, hi: number, n: number): number[] {
  const inside = hi - lo - 1;
  if (inside <= 0) return [];
  if (inside <= n) return Array.from({ length: inside }, (_, i) => lo + 1 + i);
  const out: number[] = [];
  for (let j = 1; j <= n; j++) {
    const h = lo + Math.round((j * (hi - lo)) / (n + 1));
    if (h > lo && h < hi && out[out.length - 1] !== h) out.push(h);
  }
  return out;
}
