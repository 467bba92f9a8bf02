import { readJsonState, writeFileAtomic } from "../util/stateFile.js";
import { isIPv4, isIPv6 } from "node:net";
import type { Logger } from "../logging/index.js";
import type { Clock } from "../util/clock.js";

/** How an address was learned. "handshake" is first-hand: the node id was proven on a connection. */
export type AddressSource = "handshake" | "peers" | "bootstrap" | "manual";

export interface AddressEntry {
  /** Canonical "host:port" (IPv6 in brackets): the key. */
  address: string;
  host: string;
  port: number;
  /** Node id in hex, or "" when unknown. */
  nodeId: string;
  services: number;
  /** Epoch ms when the node was last heard of (first- or second-hand). */
  lastSeen: number;
  /** Epoch ms of the last completed handshake with it, 0 if never. */
  lastSuccess: number;
  /** Epoch ms of our last dial, 0 if never. */
  lastAttempt: number;
  /** Failed dials since the last success. */
  failures: number;
  /** Do not dial before this (epoch ms): the reconnect backoff. */
  retryAt: number;
  /** A handshake on this address proved a registered masternode's operator key. */
  masternode: boolean;
  source: AddressSource;
}

export interface AddressBookOptions {
  /** JSON file, or null to keep the book in memory only. */
  file: string | null;
  capacity: number;
}

export interface ParsedAddress {
  host: string;
  port: number;
  /** Canonical "host:port". */
  key: string;
}

/** "host:port", with an IPv6 host in brackets. */
export function formatAddress(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** True for an IP a node can be dialled at: not unspecified, multicast or broadcast. */
export function isDialableIp(host: string): boolean {
  if (isIPv4(host)) {
    if (host === "0.0.0.0" || host === "255.255.255.255") return false;
    const first = Number(host.split(".")[0]);
    // 0.0.0.0/8 is "this network", 224.0.0.0/4 multicast, 240.0.0.0/4 reserved.
    return first !== 0 && first < 224;
  }
  if (isIPv6(host)) {
    const h = host.toLowerCase();
    if (h === "::" || h === "0:0:0:0:0:0:0:0") return false;
    return !h.startsWith("ff");
  }
  return false;
}

/** True for a host that means "every interface" (a listener's, never a dialable one). */
export function isUnspecifiedHost(host: string): boolean {
  const h = host.toLowerCase();
  return h === "0.0.0.0" || h === "::" || h === "0:0:0:0:0:0:0:0";
}

/**
 * Parses "host:port" where host is an IP literal (IPv6 in brackets). Returns null for anything
 * else, including hostnames, port 0 and out-of-range ports. Unspecified hosts are returned (the
 * caller may substitute the connection's IP); use parseDialable to reject them.
 */
export function parseIpAddress(s: string): ParsedAddress | null {
  if (typeof s !== "string" || s.length === 0 || s.length > 64) return null;
  let host: string;
  let portText: string;
  if (s.startsWith("[")) {
    const m = /^\[([0-9A-Fa-f:.]+)\]:([0-9]{1,5})$/.exec(s);
    if (!m) return null;
    host = (m[1] ?? "").toLowerCase();
    portText = m[2] ?? "";
    if (!isIPv6(host)) return null;
    // An IPv4-mapped IPv6 address is the IPv4 host.
    if (host.startsWith("::ffff:") && isIPv4(host.slice(7))) host = host.slice(7);
  } else {
    const m = /^([0-9.]+):([0-9]{1,5})$/.exec(s);
    if (!m) return null;
    host = m[1] ?? "";
    portText = m[2] ?? "";
    if (!isIPv4(host)) return null;
  }
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return null;
  return { host, port, key: formatAddress(host, port) };
}

/** parseIpAddress, and the host must be dialable. */
export function parseDialable(s: string): ParsedAddress | null {
  const p = parseIpAddress(s);
  return p && isDialableIp(p.host) ? p : null;
}

const NODE_ID_HEX = /^[0-9a-f]{64}$/;
const ZERO_ID = "0".repeat(64);
const SOURCES: readonly AddressSource[] = ["handshake", "peers", "bootstrap", "manual"];

/** `a` is a worse entry to keep than `b`: more failures, then heard of longer ago. */
function worse(a: AddressEntry, b: AddressEntry): boolean {
  if (a.failures !== b.failures) return a.failures > b.failures;
  return a.lastSeen < b.lastSeen;
}

/**
 * Known peer addresses, keyed by a node's advertised listen address ("host:port"). Entries are
 * validated on the way in, the book is bounded (the worst entry goes first: most failures, then
 * oldest lastSeen), and it is saved atomically (temporary file + rename) and reloaded at start.
 * The reconnect schedule of an address lives in its entry (failures, retryAt).
 */
export class AddressBook {
  private readonly map = new Map<string, AddressEntry>();
  private dirtyFlag = false;
  private saving: Promise<void> = Promise.resolve();

  constructor(
    readonly opts: AddressBookOptions,
    private readonly modules: { clock: Clock; logger: Logger },
  ) {}

  get size(): number {
    return this.map.size;
  }

  get dirty(): boolean {
    return this.dirtyFlag;
  }

  get(key: string): AddressEntry | undefined {
    return this.map.get(key);
  }

  has(key: string): boolean {
    return this.map.has(key);
  }

  entries(): AddressEntry[] {
    return [...this.map.values()];
  }

  /**
   * Adds or refreshes an address. Returns the entry, or null when the address is not dialable
   * or the book is full of entries better than this one. A node id learned first-hand
   * (source "handshake") is never overwritten by a second-hand one.
   */
  add(input: {
    address: string;
    nodeId?: Buffer | string;
    services?: number;
    lastSeen?: number;
    source: AddressSource;
  }): AddressEntry | null {
    const p = parseDialable(input.address);
    if (!p) return null;
    const now = this.modules.clock.now();
    const nodeId = normaliseNodeId(input.nodeId);
    // A timestamp from a peer is a claim: never in the future, never before the epoch.
    const lastSeen = Math.min(
      now,
      Math.max(0, Number.isFinite(input.lastSeen) ? (input.lastSeen ?? now) : now),
    );
    const services = Number.isInteger(input.services) ? (input.services ?? 0) >>> 0 : 0;
    const existing = this.map.get(p.key);
    if (existing) {
      if (lastSeen > existing.lastSeen) existing.lastSeen = lastSeen;
      const firstHand = input.source === "handshake";
      if (nodeId && (firstHand || existing.source !== "handshake" || !existing.nodeId)) {
        existing.nodeId = nodeId;
      }
      if (firstHand) {
        existing.source = "handshake";
        existing.services = services;
      } else if (existing.source !== "handshake" && input.services !== undefined) {
        existing.services = services;
      }
      this.dirtyFlag = true;
      return existing;
    }
    const entry: AddressEntry = {
      address: p.key,
      host: p.host,
      port: p.port,
      nodeId,
      services,
      lastSeen,
      lastSuccess: 0,
      lastAttempt: 0,
      failures: 0,
      retryAt: 0,
      masternode: false,
      source: input.source,
    };
    if (this.map.size >= this.opts.capacity) {
      const victim = this.worst();
      if (!victim || !worse(victim, entry)) return null;
      this.map.delete(victim.address);
    }
    this.map.set(p.key, entry);
    this.dirtyFlag = true;
    return entry;
  }

  remove(key: string): boolean {
    const had = this.map.delete(key);
    if (had) this.dirtyFlag = true;
    return had;
  }

  /**
   * A handshake succeeded with the node at `key`. Its failure count is left alone: only a
   * connection that lasts (resetFailures) proves the address good, so a node that accepts and
   * then drops us keeps escalating its backoff.
   */
  markConnected(key: string, info: { nodeId: Buffer | string; services: number; masternode: boolean }): void {
    const e = this.map.get(key);
    if (!e) return;
    const now = this.modules.clock.now();
    e.lastSuccess = now;
    e.lastSeen = now;
    e.nodeId = normaliseNodeId(info.nodeId) || e.nodeId;
    e.services = info.services >>> 0;
    if (info.masternode) e.masternode = true;
    e.source = "handshake";
    this.dirtyFlag = true;
  }

  /** The address held a connection long enough to count as good: forget its failures. */
  resetFailures(key: string): void {
    const e = this.map.get(key);
    if (!e || (e.failures === 0 && e.retryAt === 0)) return;
    e.failures = 0;
    e.retryAt = 0;
    this.dirtyFlag = true;
  }

  /**
   * Connectivity came back: every address that ever completed a handshake (but `except`) may be
   * dialled again at once, from a fresh backoff. Returns how many entries changed.
   */
  resetBackoffOfKnownGood(except?: string): number {
    let n = 0;
    for (const e of this.map.values()) {
      if (e.lastSuccess === 0 || (e.failures === 0 && e.retryAt === 0) || e.address === except) continue;
      e.failures = 0;
      e.retryAt = 0;
      n++;
    }
    if (n > 0) this.dirtyFlag = true;
    return n;
  }

  /** Records a dial, and when it may next be tried. */
  markAttempt(key: string, failures: number, retryAt: number): void {
    const e = this.map.get(key);
    if (!e) return;
    e.lastAttempt = this.modules.clock.now();
    e.failures = failures;
    e.retryAt = retryAt;
    this.dirtyFlag = true;
  }

  /**
   * Entries worth sharing with other nodes: fewer than `maxFailures` failures, most recently
   * heard of first.
   */
  good(limit: number, maxFailures: number): AddressEntry[] {
    return [...this.map.values()]
      .filter((e) => e.failures < maxFailures)
      .sort((a, b) => b.lastSeen - a.lastSeen)
      .slice(0, Math.max(0, limit));
  }

  /** Loads the file. A missing file means an empty book; a corrupt one is logged and ignored. */
  async load(): Promise<void> {
    const file = this.opts.file;
    if (!file) return;
    const data = await readJsonState(file, "address book", this.modules.logger);
    if (data === undefined) return;
    const entries = (data as { entries?: unknown } | null)?.entries;
    if (!Array.isArray(entries)) {
      this.modules.logger.warn("Address book file has an unexpected shape; starting empty", { file });
      return;
    }
    const now = this.modules.clock.now();
    let loaded = 0;
    let dropped = 0;
    for (const raw of entries) {
      if (this.map.size >= this.opts.capacity) break;
      const r = raw as Partial<Record<keyof AddressEntry, unknown>> | null;
      const p = r && typeof r.address === "string" ? parseDialable(r.address) : null;
      if (!r || !p || this.map.has(p.key)) {
        dropped++;
        continue;
      }
      const num = (v: unknown, max = now): number => {
        const n = Number(v);
        return Number.isFinite(n) && n >= 0 ? Math.min(n, max) : 0;
      };
      this.map.set(p.key, {
        address: p.key,
        host: p.host,
        port: p.port,
        nodeId: normaliseNodeId(typeof r.nodeId === "string" ? r.nodeId : undefined),
        services: num(r.services, 0xffffffff) >>> 0,
        lastSeen: num(r.lastSeen),
        lastSuccess: num(r.lastSuccess),
        lastAttempt: num(r.lastAttempt),
        failures: Math.floor(num(r.failures, 1_000_000)),
        retryAt: num(r.retryAt, Number.MAX_SAFE_INTEGER),
        masternode: r.masternode === true,
        source: SOURCES.includes(r.source as AddressSource) ? (r.source as AddressSource) : "peers",
      });
      loaded++;
    }
    this.modules.logger.info("Loaded address book", { file, entries: loaded, dropped });
  }

  /** Writes the book atomically (temporary file, then rename). Errors are logged, not thrown. */
  save(): Promise<void> {
    const file = this.opts.file;
    this.dirtyFlag = false;
    if (!file) return Promise.resolve();
    const text = JSON.stringify({ version: 1, entries: [...this.map.values()] });
    const run = async (): Promise<void> => {
      try {
        await writeFileAtomic(file, text);
      } catch (e) {
        this.dirtyFlag = true;
        this.modules.logger.warn("Cannot save the address book", { file }, e);
      }
    };
    this.saving = this.saving.then(run, run);
    return this.saving;
  }

  private worst(): AddressEntry | undefined {
    let w: AddressEntry | undefined;
    for (const e of this.map.values()) if (!w || worse(e, w)) w = e;
    return w;
  }
}

function normaliseNodeId(id: Buffer | string | undefined): string {
  if (id === undefined) return "";
  const hex = typeof id === "string" ? id.toLowerCase() : id.toString("hex");
  return NODE_ID_HEX.test(hex) && hex !== ZERO_ID ? hex : "";
}
