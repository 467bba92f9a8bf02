/**
 * A full node's polls for the masternode list (PROTOCOL.md, "The masternode list"). Every half
 * liveness window it asks one peer: drawn at random among its masternode peers that still have
 * GetMnList send budget (their view is fed by relay; another full node's is itself polled, so
 * older), else among its other ready peers that do. Each peer's budget stays under what the
 * receiver accepts (5 per minute, rateLimits.ts): over it a request is a flood, scored against
 * us, so a poll skips that peer. A masternode never polls: relay keeps its view current.
 */
import type { Logger } from "../logging/index.js";
import { MsgType } from "../p2p/messageTypes.js";
import type { Peer } from "../p2p/peer.js";
import { rateLimitsFor, sendBudget } from "../p2p/rateLimits.js";
import type { Clock, TimerHandle } from "../util/clock.js";
import type { Random } from "../util/random.js";
import { TokenBucket } from "../util/tokenBucket.js";

/** The GetMnList budget per peer (the receiver's limit does not depend on the ping interval). */
const LIST_SEND_BUDGET = sendBudget(rateLimitsFor(1_000)[MsgType.GetMnList]);

export interface ListPollerModules {
  clock: Clock;
  random: Random;
  logger: Logger;
  peers(): Peer[];
  /** This node relays liveness (a registered masternode): then it does not poll. */
  isMasternode(): boolean;
  isMasternodePeer(p: Peer): boolean;
  /** Whether another list request may go out now (the in-flight cap). */
  canRequest(): boolean;
  request(peer: Peer): void;
}

export class ListPoller {
  private timer: TimerHandle | null = null;
  private readonly picker: ListPeerPicker;

  constructor(
    /** The liveness window (5 heartbeat intervals). */
    private readonly windowMs: number,
    private readonly modules: ListPollerModules,
  ) {
    this.picker = new ListPeerPicker(modules.random, (p) => modules.isMasternodePeer(p));
  }

  /**
   * Half the liveness window. An MnList entry counts as seen at its own timestamp, at most about
   * one heartbeat interval old when a masternode serves it, so the oldest entry is about 3.5
   * intervals old when the next answer comes, inside the 5-interval window: no masternode flaps
   * to inactive between polls.
   */
  get intervalMs(): number {
    return Math.max(1, Math.round(this.windowMs / 2));
  }

  start(): void {
    // Every node runs the timer: whether it is a registered masternode changes with its tip.
    this.timer ??= this.modules.clock.setInterval(() => this.poll(), this.intervalMs);
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = null;
  }

  private poll(): void {
    const { modules } = this;
    try {
      if (modules.isMasternode() || !modules.canRequest()) return;
      const peer = this.picker.pick(modules.peers(), modules.clock.now());
      if (peer) modules.request(peer);
      else modules.logger.debug("Masternode list poll skipped: no peer with send budget");
    } catch (e) {
      modules.logger.error("Liveness: masternode list poll failed", {}, e);
    }
  }
}

class ListPeerPicker {
  /** Each peer's GetMnList send budget (a WeakMap: it goes with the peer). */
  private readonly budgets = new WeakMap<Peer, TokenBucket>();

  constructor(
    private readonly random: Random,
    private readonly isMasternodePeer: (p: Peer) => boolean,
  ) {}

  /** The peer to poll now (its budget taken), or null when no ready peer has budget left. */
  pick(peers: readonly Peer[], now: number): Peer | null {
    const masternodes: Peer[] = [];
    const others: Peer[] = [];
    for (const p of peers) {
      if (p.state === "ready") (this.isMasternodePeer(p) ? masternodes : others).push(p);
    }
    return this.drawWithBudget(masternodes, now) ?? this.drawWithBudget(others, now);
  }

  /** A peer drawn at random (a Fisher–Yates shuffle as it goes) that has budget left. */
  private drawWithBudget(peers: Peer[], now: number): Peer | null {
    for (let i = 0; i < peers.length; i++) {
      const j = i + this.random.int(peers.length - i);
      const p = peers[j]!;
      peers[j] = peers[i]!;
      let budget = this.budgets.get(p);
      if (!budget) this.budgets.set(p, (budget = new TokenBucket(...LIST_SEND_BUDGET, now)));
      if (budget.take(now)) return p;
    }
    return null;
  }
}
