import { readJsonState, writeFileAtomic } from "../util/stateFile.js";
import { isIP } from "node:net";
import type { Logger } from "../logging/index.js";
import { BoundedMap } from "../util/boundedMap.js";
import type { Clock } from "../util/clock.js";
import { normaliseHost } from "./transport.js";

/**
 * Where a ban came from:
 * - proof: the peer sent something no honest node sends (a bad signature, an invalid block, a
 *   malformed frame); banned at once, for longer on each repeat;
 * - flood: requests far beyond any honest need crossed the score threshold; a short ban that
 *   never escalates;
 * - manual: `setban`; config: the blacklist.
 */
export type BanSource = "proof" | "flood" | "manual" | "config";

export interface BanEntry {
  /** An IP address, or a node id in lowercase hex (config blacklists may name either). */
  subject: string;
  createdAt: number;
  /** Epoch ms when the ban ends, or null for a permanent ban. */
  until: number | null;
  /** What the peer did, e.g. "INVALID_BLOCK: block 3f2a… breaks BAD_MERKLE_ROOT". */
  reason: string;
  source: BanSource;
  /**
   * The proof: what was received, in enough detail to check it (hashes, the rule, the first bytes
   * of a bad frame in hex), or the offences that crossed a flood threshold. "" for manual and
   * config bans.
   */
  evidence: string;
  /** The offender's node id (hex), when it had completed a handshake; else null. */
  nodeId: string | null;
}

/** How the caller describes one piece of proof. */
export interface ProofReport {
  reason: string;
  evidence: string;
  nodeId: string | null;
}

export interface BanManagerOptions {
  /** JSON file the bans are kept in, or null to keep them in memory only. */
  file: string | null;
  /** At most this many bans, score tables and offence counters (each). */
  capacity: number;
  /** A flood score total of at least this, within the window, bans the IP for floodBanMs. */
  scoreThreshold: number;
  /** Flood scores older than this are forgotten. */
  scoreWindowMs: number;
  /**
   * Ban lengths for the 1st, 2nd, … proof ban of one IP; every ban past the end of the list
   * lasts as long as the last one. Never permanent: addresses change hands.
   */
  escalationMs: readonly number[];
  /** Length of a flood ban. It never escalates. */
  floodBanMs: number;
  /** Length of a manual ban when the operator gives none. */
  manualBanMs: number;
}

export const defaultBanManagerOptions: BanManagerOptions = {
  file: null,
  // 10,000 entries: a ban list that grows without bound is a memory leak an attacker controls.
  capacity: 10_000,
  // 100 points within an hour, as in the original's "violations within an hour".
  scoreThreshold: 100,
  scoreWindowMs: 60 * 60 * 1000,
  // Proof bans 10 min, then 1 h, then 24 h for every later one. The original's last step was
  // permanent; an IP may be reassigned, and `setban` can still ban for longer by hand.
  escalationMs: [10 * 60 * 1000, 60 * 60 * 1000, 24 * 60 * 60 * 1000],
  // 5 min, the original's first step, and never more: a flood is not proof of malice.
  floodBanMs: 5 * 60 * 1000,
  // 24 h, as Bitcoin's setban does by default.
  manualBanMs: 24 * 60 * 60 * 1000,
};

const NODE_ID_RE = /^[0-9a-f]{64}$/;
/** Scores kept per IP; the threshold is reached long before, since every event scores at least 1. */
const MAX_EVENTS_PER_IP = 128;

/**
 * The canonical form of a ban subject: an IP without brackets (IPv4-mapped IPv6 as IPv4), or a
 * node id in lowercase hex. Null when it is neither.
 */
export function banSubject(s: string): string | null {
  let t = s.trim();
  if (t.startsWith("[") && t.endsWith("]")) t = t.slice(1, -1);
  if (NODE_ID_RE.test(t.toLowerCase())) return t.toLowerCase();
  if (isIP(t) === 0) return null;
  return normaliseHost(t.toLowerCase());
}

interface ScoreEvent {
  at: number;
  score: number;
  reason: string;
}

/** Longest reason and evidence kept per ban (the file and the RPC answer stay bounded). */
const MAX_REASON = 200;
const MAX_EVIDENCE = 1_024;

function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

/** "12 × GetBlocks over its rate limit; 3 × GetHeaders …": what crossed a flood threshold. */
function summariseEvents(events: readonly ScoreEvent[]): string {
  const counts = new Map<string, number>();
  for (const e of events) counts.set(e.reason, (counts.get(e.reason) ?? 0) + 1);
  return [...counts].map(([r, n]) => `${n} × ${r}`).join("; ");
}

interface BanFile {
  version: 1 | 2;
  bans: BanEntry[];
  offences: Array<[string, number]>;
}

/**
 * Bans per IP (and per node id, for config blacklists and setban). Two paths lead to a ban:
 * - proof (banForProof) bans at once: 10 min, then 1 h, then 24 h for each later offence;
 * - flood scores (addFloodScore) add up per IP over a sliding hour; crossing the threshold bans
 *   for 5 min and never escalates.
 * Faults of the network (timeouts, late or stale gossip, bursts after a stall) reach neither.
 * Whitelists and masternode exemptions are the caller's business. Every ban keeps its evidence.
 * Every table is bounded; bans are saved to a JSON file when asked.
 */
export class BanManager {
  readonly opts: BanManagerOptions;
  private readonly bans = new Map<string, BanEntry>();
  private readonly scores: BoundedMap<string, ScoreEvent[]>;
  /** Proof bans so far, per IP: the escalation step of the next one. */
  private readonly offences: BoundedMap<string, number>;
  private dirtyFlag = false;
  private saving: Promise<void> = Promise.resolve();

  constructor(
    opts: Partial<BanManagerOptions>,
    private readonly modules: { clock: Clock; logger: Logger },
  ) {
    this.opts = { ...defaultBanManagerOptions, ...opts };
    this.scores = new BoundedMap(this.opts.capacity);
    this.offences = new BoundedMap(this.opts.capacity);
  }

  get dirty(): boolean {
    return this.dirtyFlag;
  }

  get size(): number {
    return this.bans.size;
  }

  /** The ban in force on `subject` (IP or node id), or undefined. Expired bans are dropped. */
  banOf(subject: string): BanEntry | undefined {
    const key = banSubject(subject);
    if (key === null) return undefined;
    const b = this.bans.get(key);
    if (!b) return undefined;
    if (b.until !== null && b.until <= this.modules.clock.now()) {
      this.bans.delete(key);
      this.dirtyFlag = true;
      return undefined;
    }
    return b;
  }

  isBanned(subject: string): boolean {
    return this.banOf(subject) !== undefined;
  }

  /** The IP's score within the window. */
  score(ip: string): number {
    const key = banSubject(ip);
    if (key === null) return 0;
    return this.liveEvents(key).reduce((s, e) => s + e.score, 0);
  }

  /** Proof bans this IP has had. */
  offenceCount(ip: string): number {
    const key = banSubject(ip);
    return key === null ? 0 : (this.offences.get(key) ?? 0);
  }

  /**
   * Adds a flood score to an IP (requests far beyond any honest need). At the threshold the IP is
   * banned for floodBanMs, which never escalates, unless `exempt` (a registered masternode's
   * address): then the score is reset and `crossed` tells the caller to disconnect instead.
   * An IP already banned gets no further score (it is being disconnected).
   */
  addFloodScore(
    ip: string,
    score: number,
    reason: string,
    opts: { exempt?: boolean; nodeId?: string | null } = {},
  ): { total: number; crossed: boolean; ban: BanEntry | null } {
    const none = { total: 0, crossed: false, ban: null };
    const key = banSubject(ip);
    if (key === null || !(score > 0)) return none;
    if (this.isBanned(key)) return none;
    const now = this.modules.clock.now();
    const events = this.liveEvents(key);
    events.push({ at: now, score, reason });
    if (events.length > MAX_EVENTS_PER_IP) events.splice(0, events.length - MAX_EVENTS_PER_IP);
    this.scores.set(key, events);
    const total = events.reduce((s, e) => s + e.score, 0);
    if (total < this.opts.scoreThreshold) return { total, crossed: false, ban: null };
    this.scores.delete(key);
    if (opts.exempt) return { total, crossed: true, ban: null };
    const evidence = summariseEvents(events);
    const ban = this.ban(key, this.opts.floodBanMs, reason, "flood", {
      evidence,
      nodeId: opts.nodeId ?? null,
    });
    return { total, crossed: true, ban };
  }

  /**
   * Bans an IP (or node id) on proof. The 1st, 2nd, … proof ban of one subject lasts
   * escalationMs[0], [1], …, then the last entry for every later one. A subject already banned
   * keeps its ban.
   */
  banForProof(subject: string, proof: ProofReport): BanEntry {
    const key = banSubject(subject);
    if (key === null) throw new Error(`not an IP address or node id: ${subject}`);
    const existing = this.banOf(key);
    if (existing) return existing;
    const step = this.offences.get(key) ?? 0;
    this.offences.set(key, step + 1);
    const steps = this.opts.escalationMs;
    const duration = steps[Math.min(step, steps.length - 1)] ?? this.opts.floodBanMs;
    this.scores.delete(key);
    return this.ban(key, duration, proof.reason, "proof", { evidence: proof.evidence, nodeId: proof.nodeId });
  }

  /**
   * Bans `subject` for `durationMs` (null = permanently). Replaces any ban on it, except that
   * a config ban is never shortened. Throws on a subject that is neither an IP nor a node id.
   */
  ban(
    subject: string,
    durationMs: number | null,
    reason: string,
    source: BanSource,
    more: { evidence?: string; nodeId?: string | null } = {},
  ): BanEntry {
    const key = banSubject(subject);
    if (key === null) throw new Error(`not an IP address or node id: ${subject}`);
    const now = this.modules.clock.now();
    const existing = this.bans.get(key);
    if (existing?.source === "config") return existing;
    const entry: BanEntry = {
      subject: key,
      createdAt: now,
      until: durationMs === null ? null : now + Math.max(0, durationMs),
      reason: clip(reason, MAX_REASON),
      source,
      evidence: clip(more.evidence ?? "", MAX_EVIDENCE),
      nodeId: more.nodeId ?? null,
    };
    if (!existing && this.bans.size >= this.opts.capacity) this.evictOne();
    this.bans.set(key, entry);
    if (source !== "config") this.dirtyFlag = true;
    this.modules.logger.info("Banned", {
      subject: key,
      until: entry.until === null ? "permanent" : new Date(entry.until).toISOString(),
      reason: entry.reason,
      source,
      ...(entry.evidence ? { evidence: entry.evidence } : {}),
    });
    return entry;
  }

  /** Lifts a ban (not a config one) and forgets the subject's score and offences. */
  unban(subject: string): boolean {
    const key = banSubject(subject);
    if (key === null) return false;
    const b = this.bans.get(key);
    this.scores.delete(key);
    this.offences.delete(key);
    if (!b || b.source === "config") return false;
    this.bans.delete(key);
    this.dirtyFlag = true;
    return true;
  }

  /** Lifts every ban except the config blacklist's, and forgets all scores and offences. */
  clear(): number {
    let n = 0;
    for (const [k, b] of this.bans) {
      if (b.source === "config") continue;
      this.bans.delete(k);
      n++;
    }
    this.scores.clear();
    this.offences.clear();
    this.dirtyFlag = true;
    return n;
  }

  /** Bans in force, soonest to expire first, permanent ones last. */
  list(): BanEntry[] {
    const now = this.modules.clock.now();
    for (const [k, b] of this.bans) {
      if (b.until !== null && b.until <= now) {
        this.bans.delete(k);
        this.dirtyFlag = true;
      }
    }
    return [...this.bans.values()]
      .map((b) => ({ ...b }))
      .sort((a, b) => (a.until ?? Infinity) - (b.until ?? Infinity));
  }

  /** Loads saved bans; a missing file is empty, a corrupt one is logged and ignored. */
  async load(): Promise<void> {
    const file = this.opts.file;
    if (!file) return;
    const data = await readJsonState(file, "ban list", this.modules.logger);
    if (data === undefined) return;
    const f = data as Partial<BanFile> | null;
    if (!f || typeof f !== "object" || !Array.isArray(f.bans)) {
      this.modules.logger.warn("Ban list file has an unexpected shape; starting without it", { file });
      return;
    }
    const now = this.modules.clock.now();
    let loaded = 0;
    for (const raw of f.bans.slice(0, this.opts.capacity)) {
      const b = raw as Partial<BanEntry> | null;
      if (!b || typeof b.subject !== "string") continue;
      const key = banSubject(b.subject);
      if (key === null || this.bans.has(key)) continue;
      const until = b.until === null ? null : Number(b.until);
      if (until !== null && (!Number.isFinite(until) || until <= now)) continue;
      // Version 1 files called proof and flood bans alike "misbehaviour".
      const raw2 = b as { source?: unknown };
      const source: BanSource =
        raw2.source === "flood" ? "flood" : raw2.source === "manual" ? "manual" : "proof";
      const createdAt = Number(b.createdAt);
      this.bans.set(key, {
        subject: key,
        createdAt: Number.isFinite(createdAt) ? createdAt : now,
        until,
        reason: typeof b.reason === "string" ? clip(b.reason, MAX_REASON) : "",
        source,
        evidence: typeof b.evidence === "string" ? clip(b.evidence, MAX_EVIDENCE) : "",
        nodeId: typeof b.nodeId === "string" && NODE_ID_RE.test(b.nodeId) ? b.nodeId : null,
      });
      loaded++;
    }
    if (Array.isArray(f.offences)) {
      for (const o of f.offences.slice(0, this.opts.capacity)) {
        if (!Array.isArray(o) || typeof o[0] !== "string") continue;
        const key = banSubject(o[0]);
        const n = Number(o[1]);
        if (key !== null && Number.isInteger(n) && n > 0) this.offences.set(key, Math.min(n, 1_000));
      }
    }
    if (loaded > 0) this.modules.logger.info("Loaded ban list", { file, bans: loaded });
  }

  /** Writes the bans (not the config ones) atomically: a temporary file, then a rename. */
  save(): Promise<void> {
    const file = this.opts.file;
    if (!file) {
      this.dirtyFlag = false;
      return Promise.resolve();
    }
    this.dirtyFlag = false;
    const data: BanFile = {
      version: 2,
      bans: this.list().filter((b) => b.source !== "config"),
      offences: [...this.offences.entries()],
    };
    const text = JSON.stringify(data, null, 1);
    const run = async (): Promise<void> => {
      try {
        await writeFileAtomic(file, text);
      } catch (e) {
        this.dirtyFlag = true;
        this.modules.logger.warn("Cannot save the ban list", { file }, e);
      }
    };
    this.saving = this.saving.then(run, run);
    return this.saving;
  }

  private liveEvents(key: string): ScoreEvent[] {
    const events = this.scores.get(key);
    if (!events) return [];
    const cutoff = this.modules.clock.now() - this.opts.scoreWindowMs;
    const live = events.filter((e) => e.at > cutoff);
    if (live.length === 0) this.scores.delete(key);
    return live;
  }

  /** Makes room: the temporary ban ending soonest goes first, then the oldest non-config one. */
  private evictOne(): void {
    let victim: BanEntry | undefined;
    for (const b of this.bans.values()) {
      if (b.source === "config") continue;
      if (!victim) victim = b;
      else if ((b.until ?? Infinity) < (victim.until ?? Infinity)) victim = b;
      else if (b.until === null && victim.until === null && b.createdAt < victim.createdAt) victim = b;
    }
    if (victim) this.bans.delete(victim.subject);
  }
}
