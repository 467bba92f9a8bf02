/**
 * The single source of truth for PeerManager's connections: one entry per Peer, from accept or
 * dial to close, whose phase says where it stands, with the node-id index of the ready peers
 * kept inside. Only the table changes a phase, and it updates the index with it, so "the ready
 * peer for node id X" and "the entry of Peer p" never disagree. Every count (per IP, inbound,
 * outbound) is computed from the table, never kept beside it.
 */
import type { TokenBucket } from "../util/tokenBucket.js";
import type { ParsedAddress } from "./addressBook.js";
import type { PeerAddress } from "./messages.js";
import type { Peer } from "./peer.js";
import type { Connection } from "./transport.js";
import type { ConnectionCounts, DialTarget } from "./interface.js";

/**
 * Where a connection stands. `handshaking` → `admitting` → `ready` (→ `replaced`); any phase
 * ends with the peer's close, which removes the entry.
 */
export type PeerPhase =
  /** Hello and Auth in progress: holds a handshake slot. */
  | { kind: "handshaking" }
  /**
   * Handshake done, being admitted (bans, dedup, slots). A refused peer stays here until its
   * close removes it.
   */
  | { kind: "admitting" }
  /** The one connection to its node id: the index points at it. */
  | { kind: "ready"; readyAt: number; announced: boolean }
  /** Was ready until a newer connection to the same node id took the index; it is being closed. */
  | { kind: "replaced"; readyAt: number; announced: boolean };

export interface PeerEntry {
  readonly peer: Peer;
  /** Order in which this node accepted or established the connection (larger = newer). */
  readonly seq: number;
  readonly conn: Connection;
  readonly target: DialTarget | null;
  /** Changed by the table only. */
  readonly phase: PeerPhase;
  /** The peer's dialable listen address, once its Hello is in. */
  listen: ParsedAddress | null;
  /** Our budget for the rate-limited messages we send it (mirrors its limits, with margin). */
  readonly getPeersBudget: TokenBucket;
  readonly peersBudget: TokenBucket;
  /** It asked for peers and is owed an answer. */
  owesPeers: boolean;
  /** Addresses waiting to be relayed to it, keyed by address. */
  readonly relay: Map<string, PeerAddress>;
}

type MutableEntry = { -readonly [K in keyof PeerEntry]: PeerEntry[K] };

/** peerReady was emitted for it (it is or was ready, and announced). */
export function wasAnnounced(phase: PeerPhase): boolean {
  return (phase.kind === "ready" || phase.kind === "replaced") && phase.announced;
}

/** When it became ready (epoch ms), or 0 if it never did. */
export function readyAtOf(phase: PeerPhase): number {
  return phase.kind === "ready" || phase.kind === "replaced" ? phase.readyAt : 0;
}

/** Every connection PeerManager holds, by Peer, with the ready peers indexed by node id. */
export class PeerTable {
  private readonly entries = new Map<Peer, MutableEntry>();
  /** node id → the ready Peer (the entry whose phase is "ready"). */
  private readonly byId = new Map<string, Peer>();
  private handshakingN = 0;
  private seq = 0;

  /** Enters a new connection, handshaking. */
  add(peer: Peer, init: Pick<PeerEntry, "conn" | "target" | "getPeersBudget" | "peersBudget">): PeerEntry {
    const entry: MutableEntry = {
      peer,
      seq: ++this.seq,
      conn: init.conn,
      target: init.target,
      phase: { kind: "handshaking" },
      listen: null,
      getPeersBudget: init.getPeersBudget,
      peersBudget: init.peersBudget,
      owesPeers: false,
      relay: new Map(),
    };
    this.entries.set(peer, entry);
    this.handshakingN++;
    return entry;
  }

  get(peer: Peer): PeerEntry | undefined {
    return this.entries.get(peer);
  }

  /** The handshake finished: the peer leaves its handshake slot and is being admitted. */
  handshakeDone(entry: PeerEntry): void {
    const e = this.entries.get(entry.peer);
    if (!e) return;
    if (e.phase.kind === "handshaking") this.handshakingN--;
    e.phase = { kind: "admitting" };
  }

  /**
   * Makes the peer the ready one for its node id. A peer that held the index until now becomes
   * `replaced` (the caller closes it).
   */
  promote(entry: PeerEntry, now: number): void {
    const e = this.entries.get(entry.peer);
    if (!e) return;
    const id = e.peer.nodeIdHex;
    const previous = this.byId.get(id);
    const pe = previous !== undefined && previous !== e.peer ? this.entries.get(previous) : undefined;
    if (pe?.phase.kind === "ready") {
      pe.phase = { kind: "replaced", readyAt: pe.phase.readyAt, announced: pe.phase.announced };
    }
    this.byId.set(id, e.peer);
    if (e.phase.kind === "handshaking") this.handshakingN--;
    e.phase = { kind: "ready", readyAt: now, announced: false };
  }

  /** peerReady is being emitted for this ready peer. */
  markAnnounced(entry: PeerEntry): void {
    const e = this.entries.get(entry.peer);
    if (e?.phase.kind === "ready") e.phase = { ...e.phase, announced: true };
  }

  /** Drops the peer (it closed); returns its entry, or undefined when it was not in the table. */
  remove(peer: Peer): PeerEntry | undefined {
    const e = this.entries.get(peer);
    if (!e) return undefined;
    this.entries.delete(peer);
    if (e.phase.kind === "handshaking") this.handshakingN--;
    const id = peer.nodeIdHex;
    if (id && this.byId.get(id) === peer) this.byId.delete(id);
    return e;
  }

  /** The ready peer with this node id (lowercase hex). */
  readyPeer(nodeIdHex: string): Peer | undefined {
    return this.byId.get(nodeIdHex);
  }

  /** The peer is the ready one for its node id. */
  isReady(peer: Peer): boolean {
    return this.byId.get(peer.nodeIdHex) === peer;
  }

  hasReady(nodeIdHex: string): boolean {
    return this.byId.has(nodeIdHex);
  }

  /** The ready peers, live (a peer removed meanwhile is skipped), in node-id index order. */
  readyPeers(): IterableIterator<Peer> {
    return this.byId.values();
  }

  get readyCount(): number {
    return this.byId.size;
  }

  /** Connections mid-handshake. */
  get handshakingCount(): number {
    return this.handshakingN;
  }

  /** The connections mid-handshake, oldest first (a copy). */
  handshaking(): Peer[] {
    const out: Peer[] = [];
    for (const [p, e] of this.entries) if (e.phase.kind === "handshaking") out.push(p);
    return out;
  }

  /** Every connection, oldest first (a copy). */
  all(): Peer[] {
    return [...this.entries.keys()];
  }

  /** Every connection with its entry, live, oldest first. */
  list(): IterableIterator<[Peer, PeerEntry]> {
    return this.entries.entries();
  }

  connectionCounts(): ConnectionCounts {
    let inbound = 0;
    for (const p of this.byId.values()) if (p.direction === "inbound") inbound++;
    return { total: this.byId.size, inbound, outbound: this.byId.size - inbound };
  }
}
