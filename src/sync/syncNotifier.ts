import type { Chain } from "../chain/chain.js";
import type { Logger } from "../logging/index.js";
import type { Clock, TimerHandle } from "../util/clock.js";
import type { PeerStateView } from "./peerStateView.js";
import type { SyncState } from "./types.js";

/** Samples kept for the blocks-per-second figure (one per applied batch). */
const RATE_SAMPLES = 64;
/** The blocks-per-second figure covers this much recent time. */
const RATE_WINDOW_MS = 10_000;

/** What the notifier reads: the coordinator's state, our height, the fresh peers; all timers on `clock`. */
export interface SyncNotifierModules {
  chain: Pick<Chain, "height">;
  view: Pick<PeerStateView, "fresh">;
  clock: Clock;
  logger: Logger;
  /** The coordinator's current state; a line is logged only while it is Syncing. */
  state(): SyncState;
}

/**
 * The sync's visibility: the blocks-per-second figure (samples of applied batches) and the
 * periodic "Syncing — …" log line, written every `intervalMs` between start() and stop().
 */
export class SyncNotifier {
  private timer: TimerHandle | null = null;
  private readonly rate: Array<{ at: number; blocks: number }> = [];

  constructor(
    private readonly intervalMs: number,
    private readonly modules: SyncNotifierModules,
  ) {}

  /** Counts `blocks` applied now, for blocksPerSecond(). */
  recordRate(blocks: number): void {
    this.rate.push({ at: this.modules.clock.monotonic(), blocks });
    if (this.rate.length > RATE_SAMPLES) this.rate.shift();
  }

  /** Blocks applied per second over the last 10 s. */
  blocksPerSecond(): number {
    const now = this.modules.clock.monotonic();
    let blocks = 0;
    let oldest = now;
    for (const s of this.rate) {
      if (now - s.at > RATE_WINDOW_MS) continue;
      blocks += s.blocks;
      oldest = Math.min(oldest, s.at);
    }
    if (blocks === 0) return 0;
    const span = Math.max(1_000, now - oldest);
    return (blocks * 1000) / span;
  }

  /** Starts (or restarts) the periodic line. */
  start(): void {
    this.stop();
    this.timer = this.modules.clock.setInterval(() => this.notify(), this.intervalMs);
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = null;
  }

  /** Lodestar-style notifier: "Syncing — 4,210/12,000 — 310 blocks/s — 25 s left — 8 peers". */
  private notify(): void {
    const st = this.modules.state();
    if (st.status !== "Syncing") return;
    const height = this.modules.chain.height;
    const target = Math.max(st.target, height);
    const bps = this.blocksPerSecond();
    const left = target - height;
    const eta = bps > 0 ? formatDuration(left / bps) : "unknown";
    const peers = this.modules.view.fresh().length;
    this.modules.logger.info(
      `Syncing — ${height.toLocaleString("en-US")}/${target.toLocaleString("en-US")} — ${bps.toFixed(1)} blocks/s — ${eta} left — ${peers} peers`,
      { height, target, blocksPerSecond: Number(bps.toFixed(1)), peers, lead: st.leadAddr },
    );
  }
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "unknown";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}
