import { checkHostPort } from "../config/hostPort.js";
import { encodeAddress, type NetworkName } from "../crypto/address.js";
import {
  findByOperator,
  MAX_REGISTRY_SIZE,
  type MasternodeEntry,
  type Registry,
} from "../consensus/registry.js";
import { tierName, type TierName } from "../consensus/tier.js";
import type { Logger } from "../logging/index.js";
import {
  MAX_WITNESSES_PER_HEARTBEAT,
  type Attestation,
  type Heartbeat,
  type MnAnnounce,
} from "../p2p/messages.js";
import { BoundedMap } from "../util/boundedMap.js";
import type { Clock } from "../util/clock.js";
import {
  attestationHash,
  heartbeatHash,
  isDesignatedWitness,
  mnAnnounceHash,
  verifyAttestation,
  verifyHeartbeat,
  verifyMnAnnounce,
} from "./livenessMessages.js";

/**
 * The outcome of checking one piece of liveness evidence. The HeartbeatService turns each into
 * a relay decision and a penalty (VERDICT_PENALTY there); the compiler checks that every verdict
 * has one.
 *
 * - new: accepted (relay heartbeats and attestations once);
 * - duplicate: already have exactly this (for a heartbeat: the masternode's latest); ignored,
 *   no penalty (relays cross all the time);
 * - unknown-operator: the key is not in the chain's registry;
 * - bad-signature: does not verify under the registered key;
 * - replay: an older (or equal) seq / timestamp than one already accepted from that masternode,
 *   including an exact copy of a heartbeat older than its latest;
 * - future: timestamped beyond our clock plus the allowed drift;
 * - stale: too old to say anything about liveness now; ignored;
 * - unknown-heartbeat: an attestation of a heartbeat we do not hold (yet); ignored;
 * - full: the heartbeat already has MAX_WITNESSES_PER_HEARTBEAT witnesses; ignored;
 * - invalid: well signed but meaningless (a self-attestation, an unusable address);
 * - mismatch: an announcement arriving directly from a connection that is not that masternode.
 */
export type LivenessVerdict =
  | "new"
  | "duplicate"
  | "unknown-operator"
  | "bad-signature"
  | "replay"
  | "future"
  | "stale"
  | "unknown-heartbeat"
  | "full"
  | "invalid"
  | "mismatch";

export type HeartbeatVerdict = Extract<
  LivenessVerdict,
  "new" | "duplicate" | "unknown-operator" | "bad-signature" | "replay" | "future" | "stale"
>;
export type AttestationVerdict = Extract<
  LivenessVerdict,
  | "new"
  | "duplicate"
  | "unknown-operator"
  | "bad-signature"
  | "future"
  | "stale"
  | "unknown-heartbeat"
  | "full"
  | "invalid"
>;
export type AnnounceVerdict = Extract<
  LivenessVerdict,
  | "new"
  | "duplicate"
  | "unknown-operator"
  | "bad-signature"
  | "replay"
  | "future"
  | "stale"
  | "invalid"
  | "mismatch"
>;

/**
 * Where evidence came from. "gossip" is news: a heartbeat pushed to us as it happened, so our
 * receipt time is when the masternode was last seen. "list" is history (an MnList answer): it
 * says no more than the masternode's own timestamp, capped at our clock.
 */
export type EvidenceSource = "gossip" | "list";

/** The connection an announcement arrived on; announcements are never relayed. */
export interface AnnounceSource {
  /** Operator key the peer proved in its handshake, or null. */
  operatorPubkey: Buffer | null;
  nodeId: Buffer;
}

export interface AnnounceResult {
  verdict: AnnounceVerdict;
  /** For "new": where the masternode listens and its node id, for the address book. */
  address: string | null;
  nodeId: Buffer | null;
}

export interface LivenessOptions {
  /** A masternode is active while its last sign of life is at most this old. */
  windowMs: number;
  /** Evidence timestamped further than this ahead of our clock is refused as "future". */
  maxClockDriftMs: number;
  /** Announcements older than this are stale (they are re-sent every announce interval). */
  announceMaxAgeMs?: number;
}

export interface LivenessModules {
  clock: Clock;
  logger: Logger;
  /** The registry at our tip, derived from the chain: the only source of masternode keys. */
  registry: () => Registry;
  /** Our operator key when we run a masternode, else null. */
  selfOperator: Buffer | null;
}

/** One row of masternodelist. */
export interface MasternodeRow {
  pubkey: string;
  /** Where it listens: from its latest announcement, else its registration. */
  address: string;
  tier: TierName;
  status: "active" | "inactive";
  /** Local time it was last seen alive, in seconds since the epoch, or null. */
  lastseen: number | null;
  /** Witness attestations of its latest heartbeat (at most MAX_WITNESSES_PER_HEARTBEAT). */
  witnesses: number;
  /** Height and seq its latest heartbeat reported, or null. */
  height: number | null;
  seq: number | null;
  /** Node id from its latest announcement, or null. */
  nodeid: string | null;
  rewardaddress: string;
  registeredheight: number;
}

/** What we hold of the network's liveness, for an MnList answer. */
export interface LivenessSnapshot {
  announces: MnAnnounce[];
  heartbeats: Heartbeat[];
}

/**
 * A masternode counts as active while its last heartbeat is at most this many heartbeat
 * intervals old: 300 s on mainnet (60 s heartbeats), where the original marked a masternode
 * offline after 300 s of silence. Five intervals ride out a lost heartbeat or two.
 */
export const LIVENESS_WINDOW_INTERVALS = 5;
/** Clock drift tolerated on liveness timestamps is the window, but never under 2 s. */
export const MIN_CLOCK_DRIFT_MS = 2_000;
/** An announcement stays usable for three announce intervals (one can be missed or late). */
export const ANNOUNCE_MAX_AGE_INTERVALS = 3;
/**
 * Heartbeat and attestation hashes remembered as seen: 50,000 covers 2.5 intervals of 20,000
 * masternodes (the registry cap), and much more on any real network.
 */
export const SEEN_CACHE_SIZE = 50_000;

/** The liveness options implied by the [masternode] intervals (config seconds, as ms here). */
export function livenessOptions(heartbeatIntervalMs: number, announceIntervalMs: number): LivenessOptions {
  const windowMs = LIVENESS_WINDOW_INTERVALS * heartbeatIntervalMs;
  return {
    windowMs,
    maxClockDriftMs: Math.max(MIN_CLOCK_DRIFT_MS, windowMs),
    announceMaxAgeMs: Math.max(windowMs, ANNOUNCE_MAX_AGE_INTERVALS * announceIntervalMs),
  };
}

interface MasternodeState {
  /** Highest heartbeat seq accepted; -1 before any. */
  lastSeq: number;
  heartbeat: Heartbeat | null;
  heartbeatHash: Buffer | null;
  /** Witness operator keys (hex) of `heartbeat`; at most MAX_WITNESSES_PER_HEARTBEAT. */
  witnesses: Set<string>;
  /** Local clock time of its last sign of life, or null. */
  lastSeen: number | null;
  announce: MnAnnounce | null;
  announceHash: Buffer | null;
}

/**
 * This node's view of which masternodes are alive, built from signed heartbeats, witness
 * attestations and announcements gossiped over P2P. Every key is checked against the registry
 * derived from the chain, never against the key a message names, so a heartbeat signed by an
 * unregistered or different key counts for nothing.
 *
 * The view is local and advisory: it decides whether this node produces (min_masternodes) and
 * what masternodelist shows, never whether a block is valid (DESIGN.md, consensus constraint 2).
 *
 * Bounded: per-masternode state exists only for registered operators (≤ MAX_REGISTRY_SIZE, pruned
 * when they leave the registry), and the seen-caches hold SEEN_CACHE_SIZE hashes each.
 */
export class MasternodeLiveness {
  private readonly states = new Map<string, MasternodeState>();
  private readonly seenHeartbeats: SeenHashes;
  private readonly seenAttestations: SeenHashes;
  private readonly announceMaxAgeMs: number;

  constructor(
    private readonly opts: LivenessOptions,
    private readonly modules: LivenessModules,
  ) {
    this.announceMaxAgeMs = opts.announceMaxAgeMs ?? opts.windowMs;
    // A copy arriving later than this after the original is past the window by its own
    // timestamp (at most maxClockDrift ahead when accepted), so checkTime refuses it anyway.
    const keepMs = 2 * opts.windowMs + opts.maxClockDriftMs;
    this.seenHeartbeats = new SeenHashes(SEEN_CACHE_SIZE, keepMs, modules.clock);
    this.seenAttestations = new SeenHashes(SEEN_CACHE_SIZE, keepMs, modules.clock);
  }

  get windowMs(): number {
    return this.opts.windowMs;
  }

  /** Heartbeat hashes remembered as seen (bounded by SEEN_CACHE_SIZE). */
  get seenCacheSize(): number {
    return this.seenHeartbeats.size;
  }

  /** Masternodes with liveness state (never more than the registry holds, after prune). */
  get trackedCount(): number {
    return this.states.size;
  }

  isRegistered(pubkey: Buffer): boolean {
    return this.entryFor(pubkey) !== undefined;
  }

  /** Whether a heartbeat or attestation with this hash was accepted (relay dedup). */
  hasSeen(hash: Buffer): boolean {
    const key = seenKey(hash);
    return this.seenHeartbeats.has(key) || this.seenAttestations.has(key);
  }

  /** Masternodes in the chain's registry now. */
  registeredCount(): number {
    return this.modules.registry().length;
  }

  /** The registry entry for an operator key, from the chain's current registry. */
  entryFor(pubkey: Buffer): MasternodeEntry | undefined {
    return findByOperator(this.modules.registry(), pubkey);
  }

  /** Highest heartbeat seq accepted for this operator, or -1. */
  lastSeq(pubkey: Buffer): number {
    return this.states.get(pubkey.toString("hex"))?.lastSeq ?? -1;
  }

  /** Checks a heartbeat and, when it is new, records it as the masternode's latest sign of life. */
  onHeartbeat(
    hb: Heartbeat,
    source: EvidenceSource = "gossip",
    hash: Buffer = heartbeatHash(hb),
  ): HeartbeatVerdict {
    const hashKey = seenKey(hash);
    // Before any signature work: relays deliver the same heartbeat many times over. The latest
    // heartbeat of its masternode arriving again is such a relay crossing; a copy of an older one
    // is a replay (an honest peer relays a heartbeat only while it is the newest it has).
    if (this.seenHeartbeats.has(hashKey)) {
      const state = this.states.get(hb.operatorPubkey.toString("hex"));
      return state && hb.seq < state.lastSeq ? "replay" : "duplicate";
    }
    const entry = findByOperator(this.modules.registry(), hb.operatorPubkey);
    if (!entry) return "unknown-operator";
    if (!verifyHeartbeat(hb, entry.operatorPubkey)) return "bad-signature";
    const time = this.checkTime(hb.timestamp, this.opts.windowMs);
    if (time !== "ok") return time;
    const state = this.stateFor(entry.operatorPubkey);
    if (hb.seq <= state.lastSeq) return "replay";
    this.seenHeartbeats.add(hashKey);
    this.accept(state, hb, hash, source === "gossip" ? this.now() : Math.min(this.now(), hb.timestamp));
    return "new";
  }

  /** Records a heartbeat this node made (it is also marked seen, so its echoes are duplicates). */
  recordOwnHeartbeat(hb: Heartbeat): void {
    const self = this.modules.selfOperator;
    if (!self || !hb.operatorPubkey.equals(self)) {
      throw new Error("recordOwnHeartbeat: the heartbeat is not signed by our operator key");
    }
    const hash = heartbeatHash(hb);
    this.seenHeartbeats.add(seenKey(hash));
    // An unregistered masternode has no place in the view (the registry is the only roster).
    if (!this.isRegistered(self)) return;
    this.accept(this.stateFor(self), hb, hash, this.now());
  }

  /** Checks a witness attestation and records the witness against the attested heartbeat. */
  /** `hash` is attestationHash(att), when the caller has it already. */
  onAttestation(att: Attestation, hash: Buffer = attestationHash(att)): AttestationVerdict {
    const hashKey = seenKey(hash);
    if (this.seenAttestations.has(hashKey)) return "duplicate";
    const registry = this.modules.registry();
    const witness = findByOperator(registry, att.witnessPubkey);
    const attested = findByOperator(registry, att.operatorPubkey);
    if (!witness || !attested) return "unknown-operator";
    if (witness.operatorPubkey.equals(attested.operatorPubkey)) return "invalid";
    if (!isDesignatedWitness(att.heartbeatHash, witness.operatorPubkey, registry.length)) return "invalid";
    if (!verifyAttestation(att, witness.operatorPubkey)) return "bad-signature";
    const time = this.checkTime(att.timestamp, this.opts.windowMs);
    if (time !== "ok") return time;
    const state = this.states.get(attested.operatorPubkey.toString("hex"));
    if (!state?.heartbeatHash || att.seq > state.lastSeq) return "unknown-heartbeat";
    if (att.seq < state.lastSeq) return "stale";
    // Same seq, different heartbeat: the masternode signed two (or the witness saw another).
    if (!att.heartbeatHash.equals(state.heartbeatHash)) return "unknown-heartbeat";
    this.seenAttestations.add(hashKey);
    const witnessHex = witness.operatorPubkey.toString("hex");
    if (state.witnesses.has(witnessHex)) return "duplicate";
    if (state.witnesses.size >= MAX_WITNESSES_PER_HEARTBEAT) return "full";
    state.witnesses.add(witnessHex);
    return "new";
  }

  /**
   * Checks an announcement. `from` is the connection it arrived on, or undefined for an entry of
   * an MnList answer. A direct announcement must come from the masternode itself: the peer
   * proved that operator key in its handshake and runs under the announced node id.
   */
  onAnnounce(ann: MnAnnounce, from?: AnnounceSource): AnnounceResult {
    const reject = (verdict: AnnounceVerdict): AnnounceResult => ({ verdict, address: null, nodeId: null });
    const entry = findByOperator(this.modules.registry(), ann.operatorPubkey);
    if (!entry) return reject("unknown-operator");
    if (from && (!from.operatorPubkey?.equals(ann.operatorPubkey) || !from.nodeId.equals(ann.nodeId))) {
      return reject("mismatch");
    }
    // A copy of the announcement we hold (every MnList answer repeats it) costs only its hash.
    const state = this.states.get(entry.operatorPubkey.toString("hex"));
    const hash = mnAnnounceHash(ann);
    if (state?.announceHash?.equals(hash)) return reject("duplicate");
    const hp = checkHostPort(ann.address);
    if (!hp.ok) return reject("invalid");
    if (!verifyMnAnnounce(ann, entry.operatorPubkey)) return reject("bad-signature");
    const time = this.checkTime(ann.timestamp, this.announceMaxAgeMs);
    if (time !== "ok") return reject(time);
    if (state?.announce && ann.timestamp <= state.announce.timestamp) return reject("replay");
    const s = state ?? this.stateFor(entry.operatorPubkey);
    s.announce = ann;
    s.announceHash = hash;
    // Evidence of life: first-hand when it came straight from the masternode.
    const seen = from ? this.now() : Math.min(this.now(), ann.timestamp);
    if (s.lastSeen === null || seen > s.lastSeen) s.lastSeen = seen;
    return { verdict: "new", address: ann.address, nodeId: ann.nodeId };
  }

  /** Records this node's own announcement, so MnList answers carry it. */
  recordOwnAnnounce(ann: MnAnnounce): void {
    const self = this.modules.selfOperator;
    if (!self || !ann.operatorPubkey.equals(self) || !this.isRegistered(self)) return;
    const s = this.stateFor(self);
    s.announce = ann;
    s.announceHash = mnAnnounceHash(ann);
  }

  /** Registered, and seen alive within the window. */
  isActive(pubkey: Buffer): boolean {
    if (!this.isRegistered(pubkey)) return false;
    return this.fresh(this.states.get(pubkey.toString("hex"))?.lastSeen ?? null);
  }

  /** Registered masternodes seen alive within the window, this node included once it has heartbeated. */
  activeCount(): number {
    let n = 0;
    for (const e of this.modules.registry()) {
      if (this.fresh(this.states.get(e.operatorPubkey.toString("hex"))?.lastSeen ?? null)) n++;
    }
    return n;
  }

  /** masternodelist: every registered masternode, in registry order (by operator key). */
  list(network: NetworkName): MasternodeRow[] {
    return this.modules.registry().map((e) => this.row(e, network));
  }

  /** The masternodelist row of one registered masternode, or undefined when it is not registered. */
  rowFor(pubkey: Buffer, network: NetworkName): MasternodeRow | undefined {
    const e = this.entryFor(pubkey);
    return e ? this.row(e, network) : undefined;
  }

  /** The latest still-usable announcement and heartbeat per registered masternode (for MnList). */
  snapshot(): LivenessSnapshot {
    const now = this.now();
    const out: LivenessSnapshot = { announces: [], heartbeats: [] };
    for (const e of this.modules.registry()) {
      const s = this.states.get(e.operatorPubkey.toString("hex"));
      if (!s) continue;
      if (s.announce && s.announce.timestamp >= now - this.announceMaxAgeMs) out.announces.push(s.announce);
      if (s.heartbeat && s.heartbeat.timestamp >= now - this.opts.windowMs) out.heartbeats.push(s.heartbeat);
    }
    return out;
  }

  /** Drops the state of masternodes that are no longer registered. Returns how many went. */
  prune(): number {
    const registry = this.modules.registry();
    let dropped = 0;
    for (const key of [...this.states.keys()]) {
      if (!findByOperator(registry, Buffer.from(key, "hex"))) {
        this.states.delete(key);
        dropped++;
      }
    }
    if (dropped > 0) this.modules.logger.debug("Pruned deregistered masternodes from liveness", { dropped });
    return dropped;
  }

  private row(e: MasternodeEntry, network: NetworkName): MasternodeRow {
    const s = this.states.get(e.operatorPubkey.toString("hex"));
    const lastSeen = s?.lastSeen ?? null;
    return {
      pubkey: e.operatorPubkey.toString("hex"),
      address: s?.announce?.address ?? e.address,
      tier: tierName(e.tier),
      status: this.fresh(lastSeen) ? "active" : "inactive",
      lastseen: lastSeen === null ? null : Math.floor(lastSeen / 1000),
      witnesses: s?.witnesses.size ?? 0,
      height: s?.heartbeat?.height ?? null,
      seq: s?.heartbeat?.seq ?? null,
      nodeid: s?.announce ? s.announce.nodeId.toString("hex") : null,
      rewardaddress: encodeAddress(e.rewardAddress, network),
      registeredheight: e.registeredHeight,
    };
  }

  private accept(state: MasternodeState, hb: Heartbeat, hash: Buffer, seenAt: number): void {
    state.lastSeq = Math.max(state.lastSeq, hb.seq);
    state.heartbeat = hb;
    state.heartbeatHash = hash;
    state.witnesses = new Set();
    if (state.lastSeen === null || seenAt > state.lastSeen) state.lastSeen = seenAt;
  }

  private stateFor(pubkey: Buffer): MasternodeState {
    const key = pubkey.toString("hex");
    let s = this.states.get(key);
    if (!s) {
      // Only registered operators get here; a registry that shrank leaves entries to prune.
      if (this.states.size >= MAX_REGISTRY_SIZE) this.prune();
      s = {
        lastSeq: -1,
        heartbeat: null,
        heartbeatHash: null,
        witnesses: new Set(),
        lastSeen: null,
        announce: null,
        announceHash: null,
      };
      this.states.set(key, s);
    }
    return s;
  }

  private checkTime(timestamp: number, maxAgeMs: number): "ok" | "future" | "stale" {
    const now = this.now();
    if (timestamp > now + this.opts.maxClockDriftMs) return "future";
    if (timestamp < now - maxAgeMs) return "stale";
    return "ok";
  }

  private fresh(lastSeen: number | null): boolean {
    return lastSeen !== null && lastSeen >= this.now() - this.opts.windowMs;
  }

  private now(): number {
    return this.modules.clock.now();
  }
}

/** The key of a hash in the seen caches: its bytes as a latin1 string (half the size of hex). */
function seenKey(hash: Buffer): string {
  return hash.toString("latin1");
}

/**
 * Hashes seen recently: at most `capacity`, and none older than `keepMs` (pruned from the oldest
 * as new ones arrive). Past that age a copy is refused by its timestamp, so remembering it longer
 * would only hold memory: at 20 heartbeats a second the cap alone took 40 minutes to reach.
 */
class SeenHashes {
  private readonly map: BoundedMap<string, number>;
  constructor(
    capacity: number,
    private readonly keepMs: number,
    private readonly clock: Clock,
  ) {
    this.map = new BoundedMap(capacity);
  }
  get size(): number {
    return this.map.size;
  }
  has(key: string): boolean {
    return this.map.has(key);
  }
  add(key: string): void {
    const now = this.clock.monotonic();
    for (const [k, at] of this.map.entries()) {
      if (now - at < this.keepMs) break;
      this.map.delete(k);
    }
    this.map.set(key, now);
  }
}
