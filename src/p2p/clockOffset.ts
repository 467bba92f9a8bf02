/**
 * Clock checks (docs/OPERATIONS.md, "Clock"): each peer's clock offset comes from its Hello and
 * then from every Pong (Peer.clockOffsetMs). The node's time offset is the median over its ready
 * peers, so a minority of peers with wrong clocks cannot move it. When it is more than a third of
 * the network's maxFutureDrift this node's own clock is probably wrong, and its blocks (or its
 * view of its peers' blocks) are at risk of the timestamp rules: warn, once per change.
 */

export interface OffsetSource {
  clockOffsetMs: number | null;
}

/** The median of the known offsets (ms), or null with none. Even counts take the mean of the two middle ones. */
export function medianOffsetMs(peers: Iterable<OffsetSource>): number | null {
  const xs: number[] = [];
  for (const p of peers)
    if (p.clockOffsetMs !== null && Number.isFinite(p.clockOffsetMs)) xs.push(p.clockOffsetMs);
  if (xs.length === 0) return null;
  xs.sort((a, b) => a - b);
  const mid = xs.length >> 1;
  return xs.length % 2 === 1 ? xs[mid]! : (xs[mid - 1]! + xs[mid]!) / 2;
}

export interface ClockWatchModules {
  peers: () => Iterable<OffsetSource>;
  /** The network's maxFutureDriftMs. */
  maxFutureDriftMs: number;
  logger: {
    warn(msg: string, ctx?: Record<string, unknown>): void;
    info(msg: string, ctx?: Record<string, unknown>): void;
  };
}

/** Keeps the median offset and whether it is over the warning threshold; logs each change. */
export class ClockWatch {
  private skewed = false;

  constructor(private readonly modules: ClockWatchModules) {}

  /** More than this (either way) and the node's clock is suspect: a third of maxFutureDrift. */
  get thresholdMs(): number {
    return this.modules.maxFutureDriftMs / 3;
  }

  offsetMs(): number | null {
    return medianOffsetMs(this.modules.peers());
  }

  /** Re-evaluates and logs a change; returns whether the clock is now suspect. */
  check(): boolean {
    const off = this.offsetMs();
    const now = off !== null && Math.abs(off) > this.thresholdMs;
    if (now !== this.skewed) {
      const ctx = {
        offsetSeconds: off === null ? null : Number((off / 1000).toFixed(3)),
        thresholdSeconds: Number((this.thresholdMs / 1000).toFixed(3)),
      };
      if (now)
        this.modules.logger.warn(
          "This node's clock differs from its peers' median by more than a third of the allowed drift: check NTP",
          ctx,
        );
      else this.modules.logger.info("This node's clock agrees with its peers again", ctx);
      this.skewed = now;
    }
    return now;
  }
}
