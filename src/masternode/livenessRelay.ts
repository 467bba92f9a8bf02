/**
 * Relaying liveness gossip by inventory (PROTOCOL.md, "Liveness relay"). A heartbeat or
 * attestation this node accepted as new is not pushed to every peer at once: its hash joins each
 * masternode peer's queue, and every trickle interval each peer gets one LivenessInv with the
 * hashes it is not known to have. A peer asks for the ones it lacks (GetLiveness) and gets them
 * in one LivenessBatch.
 *
 * Why by inventory: pushing every message to every peer made each node receive each heartbeat
 * from nearly every neighbour, and the simulator showed that cost growing as masternodes × links.
 * With an inventory a node receives each message's bytes about once; its other neighbours cost it
 * a 32-byte hash, and all of a trickle interval's hashes share one frame per link.
 *
 * Why among masternodes only: when every node relayed, every node received every heartbeat, a
 * cost growing as nodes × masternodes; the simulator measured about 3 s of CPU per virtual second
 * on liveness alone at 1,000 nodes (100 masternodes). Only masternodes need a live view (the
 * production gate); a full node's view is for display, and it refreshes it by polling the
 * masternode list (HeartbeatService). So only a masternode relays, and only to masternode peers.
 *
 * What a peer can do with it: announce hashes it does not have (we ask once, then forget the
 * request after REQUEST_TIMEOUT_MS), ask for hashes (we answer only from what we relayed
 * recently), send batches nobody asked for (each item is checked as if it came alone). Every
 * table here is bounded.
 */
import type { Logger } from "../logging/index.js";
import { MAX_LIVENESS_PER_MESSAGE, MsgType, type LivenessBatchMsg } from "../p2p/messageTypes.js";
import { inventoryKey } from "../p2p/inventory.js";
import type { Peer } from "../p2p/peer.js";
import { BoundedMap } from "../util/boundedMap.js";
import type { Clock, TimerHandle } from "../util/clock.js";

export type LivenessKind = "heartbeat" | "attestation";

/** Longest a trickle interval may be; shorter heartbeat intervals trickle faster. */
export const MAX_TRICKLE_MS = 2_000;
const MIN_TRICKLE_MS = 50;
/** A request not answered in this long may be made again, to whoever announces the hash next. */
export const REQUEST_TIMEOUT_MS = 5_000;
/** Hashes waiting to be announced to one peer; past this the oldest are dropped (it can ask the list). */
const MAX_QUEUED_PER_PEER = 4 * MAX_LIVENESS_PER_MESSAGE;
/** Messages kept to answer GetLiveness: a few intervals of a 20,000-masternode registry's gossip. */
const POOL_SIZE = 60_000;
/**
 * And for at most this long: a peer asks within a trickle interval and a round trip of our
 * announcement, or after REQUEST_TIMEOUT_MS from someone else; nothing older is ever asked for.
 */
export const POOL_TTL_MS = 30_000;
/** Outstanding requests remembered. */
const MAX_IN_FLIGHT = 20_000;
/** The trickle interval for a heartbeat interval: half of it, within [50 ms, 2 s]. */
export function trickleIntervalMs(heartbeatIntervalMs: number): number {
  return Math.min(MAX_TRICKLE_MS, Math.max(MIN_TRICKLE_MS, Math.round(heartbeatIntervalMs / 2)));
}

export interface LivenessRelayNetwork {
  peers(): Peer[];
}

export interface LivenessRelayModules {
  clock: Clock;
  logger: Logger;
  network: LivenessRelayNetwork;
  /** Whether this node is a registered masternode: only masternodes pool and relay. */
  isMasternode: () => boolean;
  /** Whether a peer proved, in its handshake, an operator key registered at our tip. */
  isMasternodePeer: (p: Peer) => boolean;
  /** Whether this node already holds (or has rejected) the message with this hash. */
  has: (hash: Buffer) => boolean;
}

interface Pooled {
  kind: LivenessKind;
  /** When it was pooled (monotonic ms). */
  at: number;
  /** The message's full encoding, as in a Heartbeat or Attestation payload. */
  bytes: Buffer;
}

export class LivenessRelay {
  private readonly pool = new BoundedMap<string, Pooled>(POOL_SIZE);
  private readonly inFlight = new BoundedMap<string, number>(MAX_IN_FLIGHT);
  private readonly queues = new WeakMap<Peer, Map<string, Buffer>>();
  private timer: TimerHandle | null = null;
  readonly stats = { invSent: 0, invReceived: 0, requested: 0, served: 0 };

  constructor(
    readonly trickleMs: number,
    private readonly modules: LivenessRelayModules,
  ) {}

  start(): void {
    this.timer ??= this.modules.clock.setInterval(() => this.flush(), this.trickleMs);
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = null;
  }

  /**
   * A message was accepted as new. On a masternode: keep it to serve, and queue its hash for every
   * masternode peer not known to have it, never `from` (which sent it to us). Whether it travels
   * further is the caller's choice: a heartbeat is relayed again by each masternode that accepts
   * it as new, an attestation never (it goes one hop, from its witness).
   *
   * A full node does neither: it announces nothing, so nobody asks it for anything, and pooling
   * would only cost memory. Its view is for display and is refreshed by polling the list.
   */
  relay(kind: LivenessKind, hash: Buffer, bytes: Buffer, from?: Peer): void {
    const key = hash.toString("latin1");
    this.inFlight.delete(key);
    if (!this.modules.isMasternode()) return;
    const inv = inventoryKey(hash);
    this.pool.set(key, { kind, bytes, at: this.modules.clock.monotonic() });
    for (const p of this.modules.network.peers()) {
      if (p === from || !this.modules.isMasternodePeer(p) || p.knows(inv)) continue;
      this.enqueue(p, key, hash);
    }
  }

  private enqueue(p: Peer, key: string, hash: Buffer): void {
    let q = this.queues.get(p);
    if (!q) this.queues.set(p, (q = new Map<string, Buffer>()));
    q.set(key, hash);
    if (q.size > MAX_QUEUED_PER_PEER) q.delete(q.keys().next().value!);
  }

  /** Sends every peer its queued hashes that it is still not known to have. */
  flush(): void {
    // The pool is in insertion order: drop what has outlived POOL_TTL_MS from the front.
    const cutoff = this.modules.clock.monotonic() - POOL_TTL_MS;
    for (const [key, item] of this.pool.entries()) {
      if (item.at >= cutoff) break;
      this.pool.delete(key);
    }
    for (const p of this.modules.network.peers()) {
      const q = this.queues.get(p);
      if (!q || q.size === 0) continue;
      const hashes: Buffer[] = [];
      for (const h of q.values()) {
        const inv = inventoryKey(h);
        if (p.knows(inv)) continue;
        p.markKnown(inv);
        hashes.push(h);
      }
      q.clear();
      try {
        for (let i = 0; i < hashes.length; i += MAX_LIVENESS_PER_MESSAGE) {
          p.send({ type: MsgType.LivenessInv, hashes: hashes.slice(i, i + MAX_LIVENESS_PER_MESSAGE) });
          this.stats.invSent++;
        }
      } catch (e) {
        this.modules.logger.error("Liveness: sending an inventory failed", { peer: p.addr }, e);
      }
    }
  }

  /** The route for LivenessInv: ask the sender for what we lack and nobody is already sending. */
  onInv(peer: Peer, hashes: readonly Buffer[]): void {
    this.stats.invReceived++;
    const now = this.modules.clock.monotonic();
    const want: Buffer[] = [];
    for (const h of hashes) {
      peer.markKnown(h);
      const key = h.toString("latin1");
      if (this.pool.has(key) || this.modules.has(h)) continue;
      const asked = this.inFlight.get(key);
      if (asked !== undefined && now - asked < REQUEST_TIMEOUT_MS) continue;
      this.inFlight.set(key, now);
      want.push(h);
    }
    if (want.length === 0) return;
    this.stats.requested += want.length;
    peer.send({ type: MsgType.GetLiveness, hashes: want });
  }

  /** The route for GetLiveness: what we hold of it, in one batch (unknown hashes are skipped). */
  onGet(peer: Peer, hashes: readonly Buffer[]): void {
    const batch: LivenessBatchMsg = { type: MsgType.LivenessBatch, heartbeats: [], attestations: [] };
    for (const h of hashes) {
      const item = this.pool.get(h.toString("latin1"));
      if (!item) continue;
      peer.markKnown(h);
      (item.kind === "heartbeat" ? batch.heartbeats : batch.attestations).push(item.bytes);
    }
    const n = batch.heartbeats.length + batch.attestations.length;
    if (n === 0) return;
    this.stats.served += n;
    peer.send(batch);
  }

  /** Messages pooled to serve, and requests outstanding (for status and tests). */
  get sizes(): { pool: number; inFlight: number } {
    return { pool: this.pool.size, inFlight: this.inFlight.size };
  }
}
