import type { Chain } from "../chain/chain.js";
import { txid as txidOf, type Tx } from "../primitives/tx.js";
import type { Logger } from "../logging/index.js";
import { BoundedMap } from "../util/boundedMap.js";
import type { Clock } from "../util/clock.js";
import { TokenBucket } from "../util/tokenBucket.js";
import { MempoolError, isCacheableRejection, type MempoolErrorCode } from "../mempool/errors.js";
import type { Mempool } from "../mempool/mempool.js";
import { defaultTxRelayOptions, type TxRelayOptions } from "../mempool/options.js";
import { RelayError, reportRelayError, type RelayPenaltySink } from "./errors.js";

/**
 * What the relay needs from the P2P layer. The relay keeps, per peer, the txids the peer is known
 * to have (see `TxRelay.filterUnknown`); an implementation of broadcastTxInv asks it for each peer
 * so nothing is announced to a peer that already knows it.
 */
export interface TxRelayNetwork<P> extends RelayPenaltySink<P> {
  /** Announce to every ready peer (inbound and outbound) that does not already know them. */
  broadcastTxInv(txids: Buffer[], except?: P): void;
  /** GetTxs → Txs. Resolves with the transactions the peer had (possibly fewer, in any order). */
  requestTxs(peer: P, txids: Buffer[]): Promise<Tx[]>;
}

export interface TxRelayModules<P> {
  mempool: Mempool;
  network: TxRelayNetwork<P>;
  clock: Clock;
  logger: Logger;
  /** When given, the recently-rejected cache is cleared at every new tip (a conflict may be gone). */
  chain?: Pick<Chain, "events">;
}

/** The misbehaviour score a rejection costs the peer that relayed the transaction. */
export function rejectionPenalty(err: MempoolError): number {
  const code: MempoolErrorCode = err.code;
  switch (code) {
    case "INVALID":
      return err.banScore;
    case "COINBASE":
      return 100;
    // Policy or timing, not proof of malice: another node's mempool may differ from ours.
    case "LOW_FEE":
    case "ALREADY_KNOWN":
    case "CONFLICT":
    case "MEMPOOL_FULL":
    case "TOO_LARGE":
    case "TOO_MANY_ANCESTORS":
      return 0;
  }
}

interface PeerRelayState {
  /** Txids this peer has announced, asked for, or been sent. */
  known: BoundedMap<string, true>;
  bucket: TokenBucket;
}

/** Peers that are primitive values (ids in tests or simulators) cannot key a WeakMap. */
const MAX_PRIMITIVE_PEERS = 1_024;

/**
 * Transaction relay: peers announce txids (inv), we fetch the ones we lack (GetTxs → Txs), hand
 * them to the mempool, and announce what the mempool accepts to every other peer.
 *
 * - Duplicates: a txid in the mempool, recently accepted (seen), recently rejected, or already
 *   being fetched is not fetched again; an accepted txid is announced once.
 * - Penalties: an invalid transaction costs its sender the rule's ban score; policy rejections
 *   (fee, conflict, full) cost nothing (rejectionPenalty).
 * - Rate limit: 50 new transactions per second per peer (the original's limit), as a token bucket;
 *   the excess txids are dropped and the peer pays a small score.
 * Every cache is bounded.
 */
export class TxRelay<P = unknown> {
  private readonly opts: TxRelayOptions;
  private readonly mempool: Mempool;
  private readonly network: TxRelayNetwork<P>;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly chain: Pick<Chain, "events"> | undefined;

  private readonly seen: BoundedMap<string, true>;
  private readonly rejected: BoundedMap<string, string>;
  private readonly inFlight: BoundedMap<string, true>;
  private readonly peers = new WeakMap<object, PeerRelayState>();
  private readonly primitivePeers = new BoundedMap<unknown, PeerRelayState>(MAX_PRIMITIVE_PEERS);

  /** While a peer's transactions are being accepted: who sent them, and what was accepted. */
  private batch: { from: P; accepted: Buffer[] } | null = null;
  /**
   * Transactions a reorg returned to the mempool, announced together when it is done: one TxInv
   * per 1,000, instead of one per transaction (which tripped peers' TxInv rate limit and got a
   * node banned after any large reorg).
   */
  private reorgBatch: Buffer[] | null = null;
  /** Set by submitLocal so a resubmitted (already seen) transaction is announced again. */
  private forceAnnounce = false;
  private unsubscribe: Array<() => void> = [];

  constructor(opts: Partial<TxRelayOptions>, modules: TxRelayModules<P>) {
    this.opts = { ...defaultTxRelayOptions, ...stripUndefined(opts) };
    for (const [k, v] of Object.entries(this.opts)) {
      if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
        throw new RangeError(`tx relay option ${k} must be a non-negative number`);
      }
    }
    this.mempool = modules.mempool;
    this.network = modules.network;
    this.clock = modules.clock;
    this.logger = modules.logger;
    this.chain = modules.chain;
    this.seen = new BoundedMap(Math.max(1, this.opts.seenCacheSize));
    this.rejected = new BoundedMap(Math.max(1, this.opts.rejectedCacheSize));
    this.inFlight = new BoundedMap(Math.max(1, this.opts.maxInFlight));
  }

  start(): void {
    if (this.unsubscribe.length > 0) return;
    this.unsubscribe.push(
      this.mempool.events.on("txAdded", ({ txid }) => this.onTxAdded(txid)),
      this.mempool.events.on("reconcileStart", () => (this.reorgBatch = [])),
      this.mempool.events.on("reconcileEnd", () => this.flushReorgBatch()),
    );
    if (this.chain) this.unsubscribe.push(this.chain.events.on("tip", () => this.rejected.clear()));
  }

  stop(): void {
    for (const off of this.unsubscribe) off();
    this.unsubscribe = [];
  }

  /** Cache sizes, for metrics and getmempoolinfo. */
  stats(): { seen: number; rejected: number; inFlight: number } {
    return { seen: this.seen.size, rejected: this.rejected.size, inFlight: this.inFlight.size };
  }

  /** Whether `txid` was rejected recently (and will not be fetched again until the next tip). */
  isRejected(txid: Buffer): boolean {
    return this.rejected.has(txid.toString("hex"));
  }

  /** Accepts a transaction of our own (RPC or wallet) and announces it to every peer. */
  submitLocal(tx: Tx): { txid: Buffer; fee: bigint } {
    this.forceAnnounce = true;
    try {
      return this.mempool.accept(tx);
    } finally {
      this.forceAnnounce = false;
    }
  }

  /** Announces a txid to every ready peer that does not know it, except `except`. */
  announce(txid: Buffer, except?: P): void {
    this.network.broadcastTxInv([txid], except);
  }

  /**
   * A peer announced txids: fetch those we lack, then accept them. Never throws; a failed fetch is
   * logged, and the transactions can be fetched from the next peer that announces them.
   */
  async onTxInv(peer: P, txids: Buffer[]): Promise<void> {
    const state = this.stateOf(peer);
    const wanted: Buffer[] = [];
    const wantedHex = new Set<string>();
    for (const id of txids) {
      const hex = id.toString("hex");
      state.known.set(hex, true);
      if (wantedHex.has(hex) || this.mempool.has(hex)) continue;
      if (this.seen.has(hex) || this.rejected.has(hex) || this.inFlight.has(hex)) continue;
      wantedHex.add(hex);
      wanted.push(id);
    }
    if (wanted.length === 0) return;
    const allowed = state.bucket.takeUpTo(this.clock.monotonic(), wanted.length);
    if (allowed < wanted.length) {
      const dropped = wanted.length - allowed;
      for (const id of wanted.splice(allowed)) wantedHex.delete(id.toString("hex"));
      if (this.opts.overLimitScore > 0) {
        this.network.misbehaving(
          peer,
          this.opts.overLimitScore,
          `transaction relay over ${this.opts.rateLimitPerSec} tx/s: ${dropped} txids dropped`,
        );
      }
      if (wanted.length === 0) return;
    }
    for (const hex of wantedHex) this.inFlight.set(hex, true);
    let txs: Tx[];
    try {
      txs = await this.network.requestTxs(peer, wanted);
    } catch (e) {
      this.logger.debug("Fetching announced transactions failed", { count: wanted.length }, e);
      return;
    } finally {
      for (const hex of wantedHex) this.inFlight.delete(hex);
    }
    this.acceptFrom(peer, txs, wantedHex);
  }

  /** A peer asked for transactions: serve those in the mempool (at most maxServePerRequest). */
  onGetTxs(txids: Buffer[], peer?: P): Tx[] {
    const state = peer === undefined ? null : this.stateOf(peer);
    const out: Tx[] = [];
    for (const id of txids) {
      if (out.length >= this.opts.maxServePerRequest) break;
      const tx = this.mempool.get(id);
      if (!tx) continue;
      out.push(tx);
      state?.known.set(id.toString("hex"), true);
    }
    return out;
  }

  /**
   * For the network's broadcastTxInv: the txids this peer is not known to have, which are then
   * marked known (the caller is about to announce them).
   */
  filterUnknown(peer: P, txids: Buffer[]): Buffer[] {
    const { known } = this.stateOf(peer);
    const out: Buffer[] = [];
    for (const id of txids) {
      const hex = id.toString("hex");
      if (known.has(hex)) continue;
      known.set(hex, true);
      out.push(id);
    }
    return out;
  }

  /** Whether the peer is known to have this txid. */
  knows(peer: P, txid: Buffer): boolean {
    return this.stateOf(peer).known.has(txid.toString("hex"));
  }

  markKnown(peer: P, txids: Buffer[]): void {
    const { known } = this.stateOf(peer);
    for (const id of txids) known.set(id.toString("hex"), true);
  }

  private acceptFrom(peer: P, txs: Tx[], requested: Set<string>): void {
    this.batch = { from: peer, accepted: [] };
    try {
      for (const tx of txs) {
        const id = txidOf(tx);
        const hex = id.toString("hex");
        // Unrequested transactions are ignored: accepting them would bypass the rate limit.
        if (!requested.has(hex)) continue;
        requested.delete(hex);
        if (this.mempool.has(hex)) continue;
        try {
          this.mempool.accept(tx);
        } catch (e) {
          if (!(e instanceof MempoolError)) {
            this.logger.warn("Unexpected error accepting a relayed transaction", { txid: hex }, e);
            continue;
          }
          this.onRejected(peer, hex, e);
        }
      }
    } finally {
      const { accepted } = this.batch;
      this.batch = null;
      if (accepted.length > 0) this.network.broadcastTxInv(accepted, peer);
    }
  }

  private onRejected(peer: P, hex: string, e: MempoolError): void {
    if (e.code === "ALREADY_KNOWN") {
      this.seen.set(hex, true);
      return;
    }
    if (isCacheableRejection(e)) this.rejected.set(hex, e.code);
    const penalty = reportRelayError(
      this.network,
      peer,
      new RelayError(
        "INVALID_TX",
        `invalid transaction ${hex}: ${e.message}`,
        `transaction ${hex} breaks ${e.ruleCode ?? e.code}: ${e.message}`,
        rejectionPenalty(e),
      ),
    );
    this.logger.debug("Relayed transaction rejected", {
      txid: hex,
      code: e.code,
      rule: e.ruleCode,
      penalty,
      reason: e.message,
    });
  }

  private onTxAdded(txid: Buffer): void {
    const hex = txid.toString("hex");
    const fresh = !this.seen.has(hex);
    this.seen.set(hex, true);
    if (this.batch) {
      this.batch.accepted.push(txid);
      return;
    }
    if (this.reorgBatch) {
      if (fresh || this.forceAnnounce) this.reorgBatch.push(txid);
      return;
    }
    if (fresh || this.forceAnnounce) this.announce(txid);
  }

  /** Txids per announcement; the protocol's TxInv cap (MAX_TXS_PER_MESSAGE in p2p/messages.ts). */
  private static readonly ANNOUNCE_CHUNK = 1_000;

  private flushReorgBatch(): void {
    const ids = this.reorgBatch ?? [];
    this.reorgBatch = null;
    const n = TxRelay.ANNOUNCE_CHUNK;
    for (let i = 0; i < ids.length; i += n) {
      this.network.broadcastTxInv(ids.slice(i, i + n));
    }
  }

  private stateOf(peer: P): PeerRelayState {
    const isObject = (typeof peer === "object" && peer !== null) || typeof peer === "function";
    const existing = isObject ? this.peers.get(peer as object) : this.primitivePeers.get(peer);
    if (existing) return existing;
    const state: PeerRelayState = {
      known: new BoundedMap(Math.max(1, this.opts.knownPerPeer)),
      bucket: new TokenBucket(this.opts.rateLimitPerSec, this.opts.rateLimitBurst, this.clock.monotonic()),
    };
    if (isObject) this.peers.set(peer as object, state);
    else this.primitivePeers.set(peer, state);
    return state;
  }
}

function stripUndefined<T extends object>(obj: T): T {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as T;
}
