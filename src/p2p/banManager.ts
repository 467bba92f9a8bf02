import { readJsonState, writeFileAtomic } from "../util/stateFile.js";
import { isIP } from "node:net";
import type { Logger } from "../logging/index.js";
import { BoundedMap } from "../util/boundedMap.js";
import type { Clock } from "../util/clock.js";
import { normaliseHost } from "./transport.js";

/** Where a ban came from: a score that crossed the threshold, the operator, or the config blacklist. */
export type BanSource = "misbehaviour" | "manual" | "config";

export interface BanEntry {
  /** An IP address, or a node id in lowercase hex (config blacklists may name either). */
  subject: string;
  createdAt: number;
  /** Epoch ms when the ban ends, or null for a permanent ban. */
  until: number | null;
  reason: string;
  source: BanSource;
}

export interface BanManagerOptions {
  /** JSON file the bans are kept in, or null to keep them in memory only. */
  file: string | null;
  /** At most this many bans, score tables and offence counters (each). */
  capacity: number;
  /** A score total of at least this, within the window, bans the IP. */
  scoreThreshold: number;
  /** Misbehaviour older than this is forgotten. */
  scoreWindowMs: number;
  /**
   * Ban lengths for the 1st, 2nd, … misbehaviour ban of one IP; any ban past the end of the
   * list is permanent.
   */
  escalationMs: readonly number[];
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
  // The original escalated 5 min, then 1 h, then permanent.
  escalationMs: [5 * 60 * 1000, 60 * 60 * 1000],
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
}

interface BanFile {
  version: 1;
  bans: BanEntry[];
  offences: Array<[string, number]>;
}

/**
 * Bans per IP (and per node id, for config blacklists). Misbehaviour scores accumulate per IP
 * over a sliding hour; crossing the threshold bans the IP for 5 min, then 1 h, then for good.
 * Whitelists are the caller's business: the manager never asks this class about a whitelisted
 * peer. Every table is bounded; bans are saved to a JSON file when asked.
 */
export class BanManager {
  readonly opts: BanManagerOptions;
  private readonly bans = new Map<string, BanEntry>();
  private readonly scores: BoundedMap<string, ScoreEvent[]>;
  /** Misbehaviour bans so far, per IP: the escalation step of the next one. */
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

  /** Misbehaviour bans this IP has had. */
  offenceCount(ip: string): number {
    const key = banSubject(ip);
    return key === null ? 0 : (this.offences.get(key) ?? 0);
  }

  /**
   * Adds a misbehaviour score to an IP. Returns the ban this caused, or null. An IP already
   * banned gets no further score (it is being disconnected).
   */
  addScore(ip: string, score: number, reason: string): { total: number; ban: BanEntry | null } {
    const key = banSubject(ip);
    if (key === null || !(score > 0)) return { total: 0, ban: null };
    if (this.isBanned(key)) return { total: 0, ban: null };
    const now = this.modules.clock.now();
    const events = this.liveEvents(key);
    events.push({ at: now, score });
    if (events.length > MAX_EVENTS_PER_IP) events.splice(0, events.length - MAX_EVENTS_PER_IP);
    this.scores.set(key, events);
    const total = events.reduce((s, e) => s + e.score, 0);
    if (total < this.opts.scoreThreshold) return { total, ban: null };
    this.scores.delete(key);
    const step = this.offences.get(key) ?? 0;
    this.offences.set(key, step + 1);
    const duration = this.opts.escalationMs[step];
    const ban = this.ban(key, duration === undefined ? null : duration, reason, "misbehaviour");
    return { total, ban };
  }

  /**
   * Bans `subject` for `durationMs` (null = permanently). Replaces any ban on it, except that
   * a config ban is never shortened. Throws on a subject that is neither an IP nor a node id.
   */
  ban(subject: string, durationMs: number | null, reason: string, source: BanSource): BanEntry {
    const key = banSubject(subject);
    if (key === null) throw new Error(`not an IP address or node id: ${subject}`);
    const now = this.modules.clock.now();
    const existing = this.bans.get(key);
    if (existing?.source === "config") return existing;
    const entry: BanEntry = {
      subject: key,
      createdAt: now,
      until: durationMs === null ? null : now + Math.max(0, durationMs),
      reason,
      source,
    };
    if (!existing && this.bans.size >= this.opts.capacity) this.evictOne();
    this.bans.set(key, entry);
    if (source !== "config") this.dirtyFlag = true;
    this.modules.logger.info("Banned", {
      subject: key,
      until: entry.until === null ? "permanent" : new Date(entry.until).toISOString(),
      reason,
      source,
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
      const source: BanSource = b.source === "misbehaviour" ? "misbehaviour" : "manual";
      const createdAt = Number(b.createdAt);
      this.bans.set(key, {
        subject: key,
        createdAt: Number.isFinite(createdAt) ? createdAt : now,
        until,
        reason: typeof b.reason === "string" ? b.reason.slice(0, 200) : "",
        source,
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
      version: 1,
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
