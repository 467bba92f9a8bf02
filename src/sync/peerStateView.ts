import { GoodbyeReason } from "../p2p/messages.js";
import type { Peer } from "../p2p/peer.js";
import { BoundedMap } from "../util/boundedMap.js";
import type { Clock } from "../util/clock.js";
import {
  FAILURE_STREAK_TTL_MS,
  MAX_CONSECUTIVE_FAILURES,
  MAX_GENESIS_REFUSALS,
  MAX_PEER_STATES,
  PEER_STATE_TTL_MS,
} from "./constants.js";
import type { SyncPeerSource } from "./interface.js";

/** What sync knows about one peer (seed 002's "peer state cache"). */
export interface PeerState {
  /** Node id, hex. */
  readonly id: string;
  /** "ip:port" of the connection, for logs. */
  addr: string;
  connected: boolean;
  height: number;
  tipHash: Buffer;
  /** Genesis hash from its Hello (equal to ours: another genesis is refused at the handshake). */
  genesis: Buffer | null;
  rttMs: number | null;
  /** Requests failed in a row (timeouts, closes); reset by a useful answer, forgotten after FAILURE_STREAK_TTL_MS. */
  consecutiveFailures: number;
  /** When the last of those failures happened, or null. */
  lastFailureAt: number | null;
  /** Last time it answered a sync request usefully, or null. */
  lastUsefulAt: number | null;
  /** Last time anything was heard about its state (handshake, ping, pong, announcement). */
  updatedAt: number;
  /** When it disconnected, or null while connected. */
  disconnectedAt: number | null;
  /** Proved an operator key that the on-chain registry lists. */
  masternode: boolean;
  whitelisted: boolean;
}

export interface PeerStateViewOptions {
  /** Stale after this long without news; a disconnected peer's entry is dropped after it. */
  ttlMs: number;
  capacity: number;
  genesisRefusalCapacity: number;
}

export const defaultPeerStateViewOptions: PeerStateViewOptions = {
  ttlMs: PEER_STATE_TTL_MS,
  capacity: MAX_PEER_STATES,
  genesisRefusalCapacity: MAX_GENESIS_REFUSALS,
};

export interface PeerStateViewModules {
  clock: Clock;
}

/**
 * The one place peer state for sync lives: per node id, height and tip (from the handshake,
 * every ping and pong, and block announcements), genesis, RTT, failures, last useful answer, and
 * whether it is a masternode or whitelisted. Bounded; stale entries are not used for targets, and
 * entries of disconnected peers expire after the TTL (5 minutes, seed 002), so a peer that lied
 * and reconnects keeps its failure count for that long.
 *
 * It also counts, per address and within the TTL, outbound connections refused because the
 * remote had another genesis: the evidence for "the peers we can reach disagree on genesis".
 */
export class PeerStateView {
  private readonly opts: PeerStateViewOptions;
  private readonly entries: BoundedMap<string, PeerState>;
  private readonly refusals: BoundedMap<string, number>;
  private source: SyncPeerSource | null = null;
  private unsubscribe: Array<() => void> = [];

  constructor(
    opts: Partial<PeerStateViewOptions>,
    private readonly modules: PeerStateViewModules,
  ) {
    this.opts = { ...defaultPeerStateViewOptions, ...opts };
    this.entries = new BoundedMap(this.opts.capacity);
    this.refusals = new BoundedMap(this.opts.genesisRefusalCapacity);
  }

  /**
   * Follows a PeerManager: ready peers, state changes, disconnects, and handshake refusals.
   * Returns a function that stops following.
   */
  observe(source: SyncPeerSource): () => void {
    this.source = source;
    const ev = source.events;
    this.unsubscribe.push(
      ev.on("peerReady", (p) => this.fromPeer(p, true)),
      ev.on("peerState", (p) => this.fromPeer(p, false)),
      ev.on("peerClosed", (e) => this.disconnected(e.peer.nodeIdHex)),
      ev.on("handshakeFailed", (e) => {
        // "Peers we can reach": only connections we dialled count, so inbound strangers with
        // another genesis cannot make this node refuse to sync.
        if (e.reason === GoodbyeReason.WRONG_GENESIS && e.direction === "outbound") {
          this.recordGenesisRefusal(e.address);
        }
      }),
    );
    for (const p of source.peers()) this.fromPeer(p, true);
    return () => this.stop();
  }

  stop(): void {
    for (const u of this.unsubscribe.splice(0)) u();
    this.source = null;
  }

  /**
   * Re-reads every connected peer from the source: RTT (pongs change it without a state event),
   * last message time, and the masternode / whitelisted flags (the registry and the whitelist
   * change at run time). The coordinator calls this before each check.
   */
  refresh(): void {
    const src = this.source;
    if (!src) {
      this.prune();
      return;
    }
    const flags = new Map<string, { masternode: boolean; whitelisted: boolean }>();
    for (const row of src.peerInfo())
      flags.set(row.nodeid, { masternode: row.masternode, whitelisted: row.whitelisted });
    const live = new Set<string>();
    for (const p of src.peers()) {
      if (p.state !== "ready" || !p.hello) continue;
      live.add(p.nodeIdHex);
      const e = this.entries.get(p.nodeIdHex);
      if (!e || !e.connected) {
        this.fromPeer(p, true, flags.get(p.nodeIdHex));
        continue;
      }
      e.rttMs = p.rttMs;
      e.updatedAt = Math.max(e.updatedAt, p.lastMessageAt);
      const f = flags.get(p.nodeIdHex);
      if (f) {
        e.masternode = f.masternode;
        e.whitelisted = f.whitelisted;
      }
    }
    // A peer the source no longer lists has gone, even if its close was missed.
    for (const e of this.entries.values()) if (e.connected && !live.has(e.id)) this.disconnected(e.id);
    this.prune();
  }

  /** Records (or updates) a peer from a Peer object. */
  private fromPeer(p: Peer, ready: boolean, flags?: { masternode: boolean; whitelisted: boolean }): void {
    if (!p.hello) return;
    const f =
      flags ??
      (ready ? this.source?.peerInfo().find((r) => r.nodeid === p.nodeIdHex) : undefined) ??
      undefined;
    this.update(p.nodeIdHex, {
      addr: p.addr,
      connected: p.state === "ready",
      height: p.height,
      tipHash: p.tipHash,
      genesis: p.hello.genesisHash,
      rttMs: p.rttMs,
      ...(f ? { masternode: f.masternode, whitelisted: f.whitelisted } : {}),
    });
  }

  /**
   * Creates or updates an entry; `updatedAt` becomes now. Connecting again clears the
   * disconnect time but keeps the failure count.
   */
  update(
    id: string,
    patch: Partial<
      Omit<
        PeerState,
        "id" | "updatedAt" | "disconnectedAt" | "consecutiveFailures" | "lastFailureAt" | "lastUsefulAt"
      >
    >,
  ): PeerState {
    const now = this.modules.clock.now();
    const e: PeerState = this.entries.get(id) ?? {
      id,
      addr: "",
      connected: true,
      height: 0,
      tipHash: Buffer.alloc(32),
      genesis: null,
      rttMs: null,
      consecutiveFailures: 0,
      lastFailureAt: null,
      lastUsefulAt: null,
      updatedAt: now,
      disconnectedAt: null,
      masternode: false,
      whitelisted: false,
    };
    Object.assign(e, patch);
    e.updatedAt = now;
    if (e.connected) e.disconnectedAt = null;
    this.entries.set(id, e);
    return e;
  }

  disconnected(id: string): void {
    const e = this.entries.get(id);
    if (!e || !e.connected) return;
    e.connected = false;
    e.disconnectedAt = this.modules.clock.now();
  }

  /** A useful answer: the failure streak ends. */
  recordSuccess(id: string): void {
    const e = this.entries.get(id);
    if (!e) return;
    e.consecutiveFailures = 0;
    e.lastUsefulAt = this.modules.clock.now();
  }

  recordFailure(id: string): void {
    const e = this.entries.get(id);
    if (!e) return;
    const now = this.modules.clock.now();
    // A streak whose last failure is old is over: the link that timed out then has healed.
    if (e.lastFailureAt !== null && now - e.lastFailureAt > FAILURE_STREAK_TTL_MS) e.consecutiveFailures = 0;
    e.consecutiveFailures++;
    e.lastFailureAt = now;
  }

  get(id: string): PeerState | undefined {
    return this.entries.get(id);
  }

  /** Every entry, connected or not (bounded). */
  all(): PeerState[] {
    return [...this.entries.values()];
  }

  /** Connected peers heard from within the TTL: the only ones used for targets and downloads. */
  fresh(): PeerState[] {
    const now = this.modules.clock.now();
    const out: PeerState[] = [];
    for (const e of this.entries.values()) {
      if (e.connected && now - e.updatedAt <= this.opts.ttlMs) out.push(e);
    }
    return out;
  }

  /**
   * Fresh peers not failing repeatedly: the candidates for sync. A failure streak ends
   * FAILURE_STREAK_TTL_MS after its last failure, so a peer that timed out during a partition is
   * used again once it heals, not only after it happens to answer.
   */
  usable(): PeerState[] {
    const now = this.modules.clock.now();
    return this.fresh().filter(
      (e) =>
        e.consecutiveFailures < MAX_CONSECUTIVE_FAILURES ||
        (e.lastFailureAt !== null && now - e.lastFailureAt > FAILURE_STREAK_TTL_MS),
    );
  }

  recordGenesisRefusal(address: string): void {
    this.refusals.set(address, this.modules.clock.now());
  }

  /** Distinct addresses we dialled that had another genesis, within the TTL. */
  genesisRefusals(): number {
    const now = this.modules.clock.now();
    let n = 0;
    for (const at of this.refusals.values()) if (now - at <= this.opts.ttlMs) n++;
    return n;
  }

  /** Drops disconnected entries older than the TTL, and expired refusals. */
  prune(): void {
    const now = this.modules.clock.now();
    for (const e of [...this.entries.values()]) {
      if (!e.connected && e.disconnectedAt !== null && now - e.disconnectedAt > this.opts.ttlMs) {
        this.entries.delete(e.id);
      }
    }
    for (const [addr, at] of [...this.refusals.entries()]) {
      if (now - at > this.opts.ttlMs) this.refusals.delete(addr);
    }
  }

  get size(): number {
    return this.entries.size;
  }
}
