import { dirname, join } from "node:path";
import { isIP, isIPv4 } from "node:net";
import { checkHostPort } from "../config/hostPort.js";
import type { Logger } from "../logging/index.js";
import { BoundedMap } from "../util/boundedMap.js";
import type { Clock, TimerHandle } from "../util/clock.js";
import { CodedError } from "../util/codedError.js";
import type { Random } from "../util/random.js";
import { TypedEmitter } from "../util/typedEmitter.js";
import {
  AddressBook,
  formatAddress,
  isDialableIp,
  isUnspecifiedHost,
  parseDialable,
  parseIpAddress,
  type ParsedAddress,
} from "./addressBook.js";
import { BanManager, banSubject, type BanEntry } from "./banManager.js";
import { PROOF_SCORE } from "./constants.js";
import { netgroupsOf } from "./netgroup.js";
import { encodeFrame } from "./frame.js";
import {
  encodeMessage,
  goodbyeReasonName,
  GoodbyeReason,
  MAX_PEERS_PER_MESSAGE,
  MsgType,
  type Message,
  type PeerAddress,
} from "./messages.js";
import {
  BAN_LIST_FILE,
  defaultPeerManagerOptions,
  type BackoffPolicy,
  type PeerManagerOptions,
} from "./options.js";
import { Peer, type Direction, type LocalInfo, type MisbehaviourKind } from "./peer.js";
import { rateLimitsFor, sendBudget, type LivenessRateContext, type RateLimitTable } from "./rateLimits.js";
import { TokenBucket } from "../util/tokenBucket.js";
import type { Connection, Listener, Transport } from "./transport.js";

export interface PeerManagerModules {
  clock: Clock;
  random: Random;
  logger: Logger;
  transport: Transport;
  local: LocalInfo;
  /** Whether an operator key belongs to a masternode registered on chain. */
  isRegisteredMasternode?: (operatorPubkey: Buffer) => boolean;
  /** How many masternodes the registry holds besides us (the link floor is min(k, this)). */
  registeredMasternodeCount?: () => number;
  /**
   * The registry size and heartbeat interval that size each new peer's heartbeat and attestation
   * limits (they are relayed, so what one link carries grows with the registry).
   */
  livenessRateContext?: () => LivenessRateContext;
  /**
   * Every message of a ready peer that the manager does not handle itself (it keeps GetPeers and
   * Peers): the node's router (src/relay/router.ts). Without one, such messages are dropped.
   */
  route?: (peer: Peer, msg: Message) => void;
}

export interface PeerClosedEvent {
  peer: Peer;
  reason: GoodbyeReason;
  message: string;
  byUs: boolean;
}

export interface PeerManagerEvents {
  /** A peer finished its handshake and is the one connection to its node id. */
  peerReady: Peer;
  /** Fires once for every peer that fired peerReady. */
  peerClosed: PeerClosedEvent;
  /** A ready peer's height or tip changed. */
  peerState: Peer;
  /**
   * A connection ended before it became a peer: refused in its handshake (another genesis or
   * network, a bad signature, …) or lost. `address` is the dialled "host:port" for an outbound
   * connection and the remote IP for an inbound one. Sync counts WRONG_GENESIS refusals here.
   */
  handshakeFailed: HandshakeFailedEvent;
  /** The node lost its last peer (true) or has one again after being cut off (false). */
  isolation: { isolated: boolean; since: number };
}

export interface HandshakeFailedEvent {
  address: string;
  direction: Direction;
  reason: GoodbyeReason;
  message: string;
  byUs: boolean;
}

/** Whether the node is cut off from every peer, and since when (epoch ms). */
export interface IsolationStatus {
  isolated: boolean;
  since: number | null;
}

export type PeerManagerErrorCode =
  "INVALID_ADDRESS" | "ALREADY_ADDED" | "NOT_ADDED" | "WHITELISTED" | "NETWORK_DISABLED" | "NOT_STARTED";
/** Errors from the operator API (bad address, unknown addnode entry, …). Network input never throws. */
export class PeerManagerError extends CodedError<PeerManagerErrorCode> {}

/** One row of getpeerinfo. */
export interface PeerInfo {
  nodeid: string;
  /** The connection's remote "ip:port". */
  addr: string;
  /** The connection's local "ip:port". */
  addrlocal: string;
  /** The peer's dialable listen address, or "" when it has none. */
  listenaddr: string;
  inbound: boolean;
  /** Proved an operator key that the registry accepts. */
  masternode: boolean;
  whitelisted: boolean;
  /** The operator key it proved, in hex, or null. */
  operator: string | null;
  services: number;
  version: number;
  subver: string;
  height: number;
  tiphash: string;
  /** Last round trip in seconds, null before the first pong. */
  pingtime: number | null;
  /** Seconds since the epoch. */
  conntime: number;
  lastrecv: number;
  bytessent: number;
  bytesrecv: number;
}

export interface ConnectionCounts {
  total: number;
  inbound: number;
  outbound: number;
}

/** What each side sees of one connection when deciding which of two to keep. */
export interface DedupView {
  direction: Direction;
  /** The remote node id. */
  remoteId: Buffer;
  /** Order in which this node accepted or established the connection (larger = newer). */
  seq: number;
}

/**
 * Which connection to keep when a second one to the same node id becomes ready: the one dialled
 * by the smaller node id (bytewise); if both were dialled by the same side, the newer one. The
 * dialer of a connection is us when it is outbound, else the remote. Both ends compute the
 * same answer, so exactly one link survives a simultaneous dial. Returns true to keep
 * `incoming` (and close `existing`).
 */
export function keepIncoming(localId: Buffer, existing: DedupView, incoming: DedupView): boolean {
  const dialer = (c: DedupView): Buffer => (c.direction === "outbound" ? localId : c.remoteId);
  const cmp = Buffer.compare(dialer(incoming), dialer(existing));
  if (cmp !== 0) return cmp < 0;
  return incoming.seq > existing.seq;
}

type TargetSource = "bootstrap" | "addnode" | "masternode";

/** An address dialled forever (bootstrap, addnode, registered masternodes): never given up. */
interface PermanentTarget {
  key: string;
  host: string;
  port: number;
  sources: Set<TargetSource>;
  failures: number;
  retryAt: number;
  masternode: boolean;
}

interface DialTarget {
  key: string;
  host: string;
  port: number;
  /** addnode onetry: no retries. */
  oneTry: boolean;
}

interface PeerMeta {
  seq: number;
  conn: Connection;
  target: DialTarget | null;
  /** peerReady was emitted. */
  announced: boolean;
  readyAt: number;
  /** The peer's dialable listen address, once its Hello is in. */
  listen: ParsedAddress | null;
  /** Our budget for the rate-limited messages we send it (mirrors its limits, with margin). */
  getPeersBudget: TokenBucket;
  peersBudget: TokenBucket;
  /** It asked for peers and is owed an answer. */
  owesPeers: boolean;
  /** Addresses waiting to be relayed to it, keyed by address. */
  relay: Map<string, PeerAddress>;
}

// Sizes of the manager's own tables. Each is keyed by something a remote can vary, so each is bounded.
/** Per-IP buckets for the inbound connection rate. */
const MAX_RATE_BUCKETS = 10_000;
/** Addresses whose node id we learned in a handshake. */
const MAX_ADDR_NODE_IDS = 10_000;
/** Addresses found to be our own. */
const MAX_SELF_ADDRS = 64;
/** Permanent targets (bootstrap + addnode + masternode addresses). */
const MAX_PERMANENT_TARGETS = 2_000;
/** Whitelist entries. */
const MAX_WHITELIST = 10_000;
/** Distinct reasons in the disconnect and ban counters. */
const MAX_COUNTER_KEYS = 64;
/** Delay before an extra dial-loop tick when new addresses arrive or a peer leaves. */
const SOON_TICK_MS = 20;
/** Retry period for relays held back by the send budget. */
const RELAY_RETRY_MS = 1_000;
/**
 * Connectivity coming back resets the redial backoff. "Coming back" is a new contact (an inbound
 * connection, a successful dial) after at least this many ping intervals (and 5 s) without one,
 * or while the node has no peer at all. On a healthy network contacts come and go without
 * resetting anything, so an address that is really dead keeps its long backoff.
 */
const CONNECTIVITY_GAP_PING_INTERVALS = 2;
const MIN_CONNECTIVITY_GAP_MS = 5_000;
/**
 * A node with no peer for this many ping intervals says so (a warning, then one every
 * ISOLATION_LOG_REPEAT_MS); a restart or a brief gap between links is not worth a warning.
 */
const ISOLATION_WARN_PING_INTERVALS = 3;
const ISOLATION_LOG_REPEAT_MS = 60_000;

const NODE_ID_HEX = /^[0-9a-fA-F]{64}$/;

type FilterEntry = { kind: "ip"; value: string } | { kind: "id"; value: string };

/** An IP (port optional, IPv6 optionally in brackets) or a 64-hex node id, canonicalised. */
function parseFilterEntry(s: string): FilterEntry | null {
  const t = s.trim();
  if (NODE_ID_HEX.test(t)) return { kind: "id", value: t.toLowerCase() };
  const direct = banSubject(t);
  if (direct !== null) return { kind: "ip", value: direct };
  const hp = checkHostPort(t);
  if (hp.ok && isIP(hp.value.host) !== 0) {
    const ip = banSubject(hp.value.host);
    if (ip !== null) return { kind: "ip", value: ip };
  }
  return null;
}

function increment(map: Map<string, number>, key: string): void {
  const k = map.has(key) || map.size < MAX_COUNTER_KEYS ? key : "other";
  map.set(k, (map.get(k) ?? 0) + 1);
}

/**
 * The connection manager: one Peer per node id, connection limits, reconnects with backoff,
 * bans, discovery through GetPeers/Peers, and the operator's controls.
 *
 * Single source of truth: `ready` (node id → Peer) holds the peers that completed their
 * handshake; `handshaking` holds the rest. Every count (per IP, inbound, outbound) is computed
 * from these two, never kept beside them.
 */
export class PeerManager {
  readonly events = new TypedEmitter<PeerManagerEvents>();
  readonly opts: PeerManagerOptions;
  readonly addressBook: AddressBook;
  readonly banManager: BanManager;
  /** Closed connections per Goodbye reason name (including refusals at accept time). */
  readonly disconnects = new Map<string, number>();
  /** Bans per reason (misbehaviour kind, "manual"). */
  readonly bans = new Map<string, number>();

  private readonly log: Logger;
  private readonly localId: Buffer;
  private readonly peerLocal: LocalInfo;
  private readonly rateLimits: RateLimitTable;
  private readonly ready = new Map<string, Peer>();
  private readonly handshaking = new Set<Peer>();
  private readonly meta = new Map<Peer, PeerMeta>();
  /** Addresses with a transport dial in flight. */
  private readonly dialing = new Set<string>();
  private readonly permanent = new Map<string, PermanentTarget>();
  private readonly masternodeAddrs = new Set<string>();
  private readonly whitelistIps = new Set<string>();
  private readonly whitelistIds = new Set<string>();
  private readonly addrToNode = new BoundedMap<string, string>(MAX_ADDR_NODE_IDS);
  private readonly selfAddrs = new BoundedMap<string, true>(MAX_SELF_ADDRS);
  private readonly inboundRate = new BoundedMap<string, TokenBucket>(MAX_RATE_BUCKETS);
  /** Addresses an operator disconnected: not dialled before the time stored (epoch ms). */
  private readonly heldOff = new BoundedMap<string, number>(MAX_PERMANENT_TARGETS);
  private listener: Listener | null = null;
  private active = true;
  private started = false;
  private stopping = false;
  private seq = 0;
  private timers: TimerHandle[] = [];
  private soonTimer: TimerHandle | null = null;
  private relayTimer: TimerHandle | null = null;
  /** Monotonic time of the last new contact (inbound connection or successful dial). */
  private lastContactAt = Number.NEGATIVE_INFINITY;
  /** When the node last had no ready peer (epoch ms), or null while it has one. */
  private isolatedSince: number | null = null;
  private isolationWarnedAt: number | null = null;

  constructor(
    opts: Partial<PeerManagerOptions>,
    private readonly modules: PeerManagerModules,
  ) {
    this.opts = { ...defaultPeerManagerOptions, ...opts };
    this.log = modules.logger.child({ module: "p2p" });
    this.localId = modules.local.nodeKey.publicKey;
    this.rateLimits = rateLimitsFor(this.opts.pingIntervalMs);
    const local = modules.local;
    this.peerLocal = {
      network: local.network,
      magic: local.magic,
      genesisHash: local.genesisHash,
      nodeKey: local.nodeKey,
      operatorKey: local.operatorKey,
      listenAddr: () => this.advertisedAddress(),
      services: () => local.services(),
      tip: () => local.tip(),
    };
    this.events.onListenerError = (event, err) =>
      this.log.error("PeerManager event listener threw", { event }, err);
    this.addressBook = new AddressBook(
      { file: this.opts.addressBookFile, capacity: this.opts.addressBookCapacity },
      { clock: modules.clock, logger: this.log },
    );
    const banFile =
      this.opts.banListFile !== undefined
        ? this.opts.banListFile
        : this.opts.addressBookFile
          ? join(dirname(this.opts.addressBookFile), BAN_LIST_FILE)
          : null;
    this.banManager = new BanManager(
      {
        file: banFile,
        capacity: this.opts.banListCapacity,
        scoreThreshold: this.opts.banScoreThreshold,
        scoreWindowMs: this.opts.banScoreWindowMs,
        escalationMs: this.opts.banEscalationMs,
        floodBanMs: this.opts.floodBanMs,
        manualBanMs: this.opts.manualBanMs,
      },
      { clock: modules.clock, logger: this.log },
    );
    for (const w of this.opts.whitelist) {
      if (!this.addWhitelistEntry(w)) this.log.warn("Ignoring a bad whitelist entry", { entry: w });
    }
  }

  // --- lifecycle -------------------------------------------------------------------------

  /** Loads the address book and bans, listens, and starts the dial loop. Call once. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    await Promise.all([this.addressBook.load(), this.banManager.load()]);
    if (this.stopping) return;
    for (const b of this.opts.blacklist) {
      const f = parseFilterEntry(b);
      if (!f) {
        this.log.warn("Ignoring a bad blacklist entry", { entry: b });
        continue;
      }
      this.banManager.ban(f.value, null, "blacklisted in config", "config");
    }
    for (const b of this.opts.bootstrapPeers) {
      if (!this.addPermanent(b, "bootstrap")) this.log.warn("Ignoring a bad bootstrap peer", { peer: b });
    }
    if (this.opts.listen) {
      const { host, port } = this.opts.listen;
      const listener = await this.modules.transport.listen(host, port, (c) => this.onInbound(c));
      if (this.stopping) {
        await listener.close();
        return;
      }
      this.listener = listener;
      this.log.info("Listening for peers", {
        address: this.localAddress,
        advertised: this.advertisedAddress(),
      });
    }
    const clock = this.modules.clock;
    this.timers.push(
      clock.setInterval(() => this.dialTick(), this.opts.dialIntervalMs),
      clock.setInterval(() => this.discoveryTick(), this.opts.discoveryIntervalMs),
      clock.setInterval(() => void this.saveIfDirty(), this.opts.saveIntervalMs),
    );
    if (this.ready.size === 0) this.isolatedSince = clock.now();
    this.dialTick();
  }

  /** Closes every peer with SHUTDOWN, stops listening, and saves the address book and bans. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    for (const t of this.timers) t.cancel();
    this.timers = [];
    this.soonTimer?.cancel();
    this.relayTimer?.cancel();
    for (const p of this.allPeers()) p.close(GoodbyeReason.SHUTDOWN, "node shutting down");
    const listener = this.listener;
    this.listener = null;
    if (listener) await listener.close();
    await Promise.all([this.addressBook.save(), this.banManager.save()]);
  }

  /** The bound listen address ("host:port"), or null when not listening. */
  get localAddress(): string | null {
    return this.listener ? formatAddress(this.listener.host, this.listener.port) : null;
  }

  get networkActive(): boolean {
    return this.active;
  }

  /** Connections mid-handshake. */
  get handshakingCount(): number {
    return this.handshaking.size;
  }

  /** Outbound dials whose TCP connect is still in flight. */
  get dialingCount(): number {
    return this.dialing.size;
  }

  /** Whether the node has no ready peer, and since when. */
  isolation(): IsolationStatus {
    return { isolated: this.isolatedSince !== null, since: this.isolatedSince };
  }

  /** Ready links to distinct registered masternodes (proven in the handshake). */
  masternodeLinks(): number {
    let n = 0;
    for (const p of this.ready.values()) if (this.isMasternodePeer(p)) n++;
    return n;
  }

  /** The link floor k in force: masternodeLinkFloor, or every other registered masternode when fewer. */
  masternodeLinkFloor(): number {
    const registered = this.modules.registeredMasternodeCount?.() ?? this.opts.masternodeLinkFloor;
    return Math.max(0, Math.min(this.opts.masternodeLinkFloor, registered));
  }

  // --- operator API --------------------------------------------------------------------

  peers(): Peer[] {
    return [...this.ready.values()];
  }

  getPeer(nodeIdHex: string): Peer | undefined {
    return this.ready.get(nodeIdHex.toLowerCase());
  }

  connectionCounts(): ConnectionCounts {
    let inbound = 0;
    for (const p of this.ready.values()) if (p.direction === "inbound") inbound++;
    return { total: this.ready.size, inbound, outbound: this.ready.size - inbound };
  }

  peerInfo(): PeerInfo[] {
    const out: PeerInfo[] = [];
    for (const p of this.ready.values()) {
      const m = this.meta.get(p);
      out.push({
        nodeid: p.nodeIdHex,
        addr: p.addr,
        addrlocal: m ? formatAddress(m.conn.localHost, m.conn.localPort) : "",
        listenaddr: m?.listen?.key ?? "",
        inbound: p.direction === "inbound",
        masternode: this.isMasternodePeer(p),
        whitelisted: this.isWhitelisted(p),
        operator: p.operatorPubkey ? p.operatorPubkey.toString("hex") : null,
        services: p.hello?.services ?? 0,
        version: p.hello?.version ?? 0,
        subver: p.hello?.userAgent ?? "",
        height: p.height,
        tiphash: p.tipHash.toString("hex"),
        pingtime: p.rttMs === null ? null : p.rttMs / 1000,
        conntime: Math.floor(p.connectedAt / 1000),
        lastrecv: Math.floor(p.lastMessageAt / 1000),
        bytessent: p.bytesOut,
        bytesrecv: p.bytesIn,
      });
    }
    return out;
  }

  /**
   * "add": dial `addr` and keep retrying it forever; "remove": stop that; "onetry": dial it once
   * now. Throws PeerManagerError on a bad address or an add/remove that does not apply.
   */
  addNode(addr: string, command: "add" | "remove" | "onetry"): void {
    const hp = checkHostPort(addr);
    if (!hp.ok) throw new PeerManagerError("INVALID_ADDRESS", `bad address ${addr}: ${hp.problem}`);
    const key = formatAddress(hp.value.host, hp.value.port);
    if (command === "add") {
      if (this.permanent.get(key)?.sources.has("addnode")) {
        throw new PeerManagerError("ALREADY_ADDED", `${key} was already added`);
      }
      this.addPermanent(key, "addnode");
      this.scheduleSoonTick();
    } else if (command === "remove") {
      const t = this.permanent.get(key);
      if (!t?.sources.has("addnode")) throw new PeerManagerError("NOT_ADDED", `${key} has not been added`);
      t.sources.delete("addnode");
      if (t.sources.size === 0) this.permanent.delete(key);
    } else {
      if (!this.started || this.stopping)
        throw new PeerManagerError("NOT_STARTED", "the network is not running");
      if (!this.active) throw new PeerManagerError("NETWORK_DISABLED", "the network is disabled");
      if (this.isConnectedAddress(key) || this.dialing.has(key)) return;
      this.dial({ key, host: hp.value.host, port: hp.value.port, oneTry: true });
    }
  }

  /**
   * Disconnects the peer with this node id, connection address or listen address. Returns
   * whether one was found. The address is held off for its class's maximum backoff, so the
   * dial loop does not simply reconnect it.
   */
  disconnect(addrOrNodeId: string): boolean {
    const s = addrOrNodeId.trim();
    const id = s.toLowerCase();
    let found = false;
    for (const p of this.allPeers()) {
      const m = this.meta.get(p);
      if ((p.hello && p.nodeIdHex === id) || p.addr === s || m?.listen?.key === s || m?.target?.key === s) {
        p.close(GoodbyeReason.MANUAL_DISCONNECT, "disconnected by the operator");
        found = true;
      }
    }
    return found;
  }

  /**
   * Bans (or lifts the ban on) an IP or node id. "add" without `seconds` bans for
   * manualBanMs (24 h). Banning disconnects every peer from it. Whitelisted subjects cannot be
   * banned. Returns false for a "remove" that found no ban.
   */
  setBan(subject: string, command: "add" | "remove", seconds?: number): boolean {
    const f = parseFilterEntry(subject);
    if (!f) throw new PeerManagerError("INVALID_ADDRESS", `not an IP address or node id: ${subject}`);
    if (command === "remove") return this.banManager.unban(f.value);
    if ((f.kind === "ip" ? this.whitelistIps : this.whitelistIds).has(f.value)) {
      throw new PeerManagerError(
        "WHITELISTED",
        `${f.value} is whitelisted; remove it from the whitelist first`,
      );
    }
    const ms =
      seconds !== undefined && Number.isFinite(seconds) && seconds > 0
        ? seconds * 1000
        : this.opts.manualBanMs;
    this.banManager.ban(f.value, ms, "manual", "manual");
    increment(this.bans, "manual");
    this.disconnectSubject(f, GoodbyeReason.BANNED, "banned by the operator");
    return true;
  }

  listBanned(): BanEntry[] {
    return this.banManager.list();
  }

  /** Lifts every ban except the config blacklist's. Returns how many were lifted. */
  clearBanned(): number {
    return this.banManager.clear();
  }

  /**
   * false: closes every peer with NETWORK_DISABLED, refuses inbound connections and stops
   * dialling. true: resumes, redialling permanent targets at once and the address book.
   */
  setNetworkActive(active: boolean): void {
    if (this.active === active) return;
    this.active = active;
    if (!active) {
      this.log.warn("Network disabled: closing every peer");
      for (const p of this.allPeers()) p.close(GoodbyeReason.NETWORK_DISABLED, "network disabled");
      return;
    }
    this.log.info("Network enabled");
    for (const t of this.permanent.values()) t.retryAt = 0;
    this.dialTick();
  }

  getWhitelist(): string[] {
    return [...this.whitelistIps, ...this.whitelistIds];
  }

  /** Whitelists an IP or node id (lifting any ban on it). Throws on a bad entry. */
  addWhitelist(entry: string): boolean {
    const f = parseFilterEntry(entry);
    if (!f) throw new PeerManagerError("INVALID_ADDRESS", `not an IP address or node id: ${entry}`);
    const added = this.addWhitelistEntry(entry);
    this.banManager.unban(f.value);
    return added;
  }

  removeWhitelist(entry: string): boolean {
    const f = parseFilterEntry(entry);
    if (!f) throw new PeerManagerError("INVALID_ADDRESS", `not an IP address or node id: ${entry}`);
    return (f.kind === "ip" ? this.whitelistIps : this.whitelistIds).delete(f.value);
  }

  /**
   * The service addresses of registered masternodes: dialled forever, with the masternode
   * backoff. Replaces the previous list.
   */
  setMasternodeAddresses(addrs: string[]): void {
    const next = new Set<string>();
    for (const a of addrs) {
      const hp = checkHostPort(a);
      if (!hp.ok) {
        this.log.debug("Ignoring a bad masternode address", { address: a });
        continue;
      }
      next.add(formatAddress(hp.value.host, hp.value.port));
      if (next.size >= MAX_PERMANENT_TARGETS) {
        this.log.warn("Too many masternode addresses; dialling the first ones only", {
          max: MAX_PERMANENT_TARGETS,
        });
        break;
      }
    }
    for (const key of this.masternodeAddrs) {
      if (next.has(key)) continue;
      const t = this.permanent.get(key);
      t?.sources.delete("masternode");
      if (t && t.sources.size === 0) this.permanent.delete(key);
    }
    this.masternodeAddrs.clear();
    for (const key of next) {
      this.masternodeAddrs.add(key);
      this.addPermanent(key, "masternode");
    }
    this.scheduleSoonTick();
  }

  /**
   * Reports misbehaviour found above the P2P layer. A score of PROOF_SCORE (100) is proof: a bad
   * signature, an invalid block or transaction, garbage where a block was promised; `evidence`
   * is kept with the ban. Below that it is a soft offence (flood score). Network faults (late,
   * stale or duplicate gossip, timeouts) must not be reported at all.
   */
  misbehaving(peer: Peer, score: number, reason: string, evidence: string = reason): void {
    this.onMisbehaviour(peer, "INVALID_DATA", score, reason, evidence);
  }

  /** Sends `msg` to every ready peer, inbound and outbound alike, that passes `filter`. */
  broadcast(msg: Message, filter?: (p: Peer) => boolean): number {
    let n = 0;
    for (const p of this.ready.values()) {
      try {
        if (filter && !filter(p)) continue;
        p.send(msg);
        n++;
      } catch (e) {
        this.log.error("Broadcast to a peer failed", { peer: p.addr }, e);
      }
    }
    return n;
  }

  // --- inbound ---------------------------------------------------------------------------

  private onInbound(conn: Connection): void {
    try {
      const ip = conn.remoteHost;
      if (this.stopping) return this.refuse(conn, GoodbyeReason.SHUTDOWN, "node shutting down");
      if (!this.active) return this.refuse(conn, GoodbyeReason.NETWORK_DISABLED, "network disabled");
      const whitelisted = this.whitelistIps.has(ip);
      if (!whitelisted) {
        if (this.banManager.isBanned(ip)) return this.refuse(conn, GoodbyeReason.BANNED, "banned");
        // Every attempt costs a token, refused or not, so hammering only makes it worse.
        const now = this.modules.clock.now();
        const perMinute = this.opts.connectRatePerMinute;
        const bucket = this.inboundRate.get(ip) ?? new TokenBucket(perMinute / 60, perMinute, now);
        this.inboundRate.set(ip, bucket);
        if (!bucket.take(now)) {
          return this.refuse(
            conn,
            GoodbyeReason.RATE_LIMITED,
            `at most ${perMinute} new connections per minute`,
          );
        }
        let fromIp = 0;
        for (const p of this.allPeers()) if (p.direction === "inbound" && p.ip === ip) fromIp++;
        if (fromIp >= this.opts.maxConnectionsPerIp) {
          return this.refuse(
            conn,
            GoodbyeReason.TOO_MANY_FROM_IP,
            `at most ${this.opts.maxConnectionsPerIp} per IP`,
          );
        }
      }
      // Connectivity is back (or never left): whatever we were waiting to redial is worth a try.
      this.connectivityReturned();
      const slot = this.handshakeSlotRefusal(ip, whitelisted);
      if (slot) return this.refuse(conn, GoodbyeReason.TOO_MANY_PEERS, slot);
      // Inbound slots full: a masternode may still be let in at its handshake (it may evict an
      // ordinary peer, or the limits stretch below the masternode floor), so only refuse when
      // even that cannot happen: no ordinary inbound peer to evict and the floor is met.
      const counts = this.connectionCounts();
      if (
        (counts.inbound >= this.opts.maxInbound || this.ready.size >= this.opts.maxPeers) &&
        this.evictionCandidate() === null &&
        this.masternodeLinks() >= this.masternodeLinkFloor()
      ) {
        return this.refuse(conn, GoodbyeReason.TOO_MANY_PEERS, "inbound slots are full");
      }
      this.attach(conn, "inbound", null);
    } catch (e) {
      this.log.error("Accepting a connection failed", { remote: conn.remoteHost }, e);
      conn.destroy();
    }
  }

  /**
   * Why an inbound connection gets no handshake slot, or null. Each IP may hold at most
   * maxHandshakingPerIp slots and each narrow or wide netgroup maxHandshakingPerNetgroup (local
   * ranges are not grouped). When all maxHandshaking slots are taken, the connection that has
   * waited longest without completing its Hello is closed to make room: an honest handshake
   * takes milliseconds, so only slot holders that drip their bytes are ever evicted.
   */
  private handshakeSlotRefusal(ip: string, whitelisted: boolean): string | null {
    const inbound = [...this.handshaking].filter((p) => p.direction === "inbound");
    if (!whitelisted) {
      const groups = netgroupsOf(ip);
      let sameIp = 0;
      let sameNarrow = 0;
      let sameWide = 0;
      for (const p of inbound) {
        if (p.ip === ip) sameIp++;
        if (groups.local) continue;
        const g = netgroupsOf(p.ip);
        if (g.narrow === groups.narrow) sameNarrow++;
        if (g.wide === groups.wide) sameWide++;
      }
      if (sameIp >= this.opts.maxHandshakingPerIp) {
        return `at most ${this.opts.maxHandshakingPerIp} handshakes in progress per IP`;
      }
      if (
        sameNarrow >= this.opts.maxHandshakingPerNetgroup ||
        sameWide >= this.opts.maxHandshakingPerNetgroup
      ) {
        return `at most ${this.opts.maxHandshakingPerNetgroup} handshakes in progress per netgroup`;
      }
    }
    if (inbound.length < this.opts.maxHandshaking) return null;
    let victim: Peer | null = null;
    for (const p of inbound) {
      if (p.helloReceived) continue;
      if (!victim || p.connectedAt < victim.connectedAt) victim = p;
    }
    if (!victim) return "too many handshakes in progress";
    victim.close(
      GoodbyeReason.HANDSHAKE_TIMEOUT,
      "Hello too slow; its handshake slot went to a newer connection",
    );
    return null;
  }

  /**
   * A new contact. When it ends a gap (CONNECTIVITY_GAP_PING_INTERVALS without one),
   * connectivity has come back: every permanent target and every address that once worked is
   * redialled at once, from a fresh backoff. `justDialled` keeps its own backoff: whether it
   * works is decided by its handshake, and a node that accepts TCP and then refuses us must not
   * be redialled in a loop.
   */
  private connectivityReturned(justDialled?: string): void {
    const now = this.modules.clock.monotonic();
    const gap = Math.max(MIN_CONNECTIVITY_GAP_MS, CONNECTIVITY_GAP_PING_INTERVALS * this.opts.pingIntervalMs);
    const returned = now - this.lastContactAt >= gap;
    this.lastContactAt = now;
    if (!returned) return;
    let reset = 0;
    for (const t of this.permanent.values()) {
      if ((t.failures === 0 && t.retryAt === 0) || t.key === justDialled) continue;
      t.failures = 0;
      t.retryAt = 0;
      reset++;
    }
    reset += this.addressBook.resetBackoffOfKnownGood(justDialled);
    if (reset > 0) {
      this.log.debug("Connectivity is back: redialling without waiting for backoff", { addresses: reset });
      this.scheduleSoonTick();
    }
  }

  /** Turns a connection away before any handshake: a Goodbye, then close. */
  private refuse(conn: Connection, reason: GoodbyeReason, message: string): void {
    increment(this.disconnects, goodbyeReasonName(reason));
    this.log.debug("Refused a connection", {
      remote: formatAddress(conn.remoteHost, conn.remotePort),
      reason: goodbyeReasonName(reason),
      message,
    });
    try {
      // Keep reading (and dropping) so the remote's close is seen and the socket goes away; a
      // socket nobody reads would linger half-open and hold up the listener's close.
      conn.onData(() => undefined);
      conn.write(
        encodeFrame(
          this.modules.local.magic,
          MsgType.Goodbye,
          encodeMessage({ type: MsgType.Goodbye, reason, message }),
        ),
      );
      conn.end();
    } catch {
      conn.destroy();
    }
  }

  // --- peers -----------------------------------------------------------------------------

  private attach(conn: Connection, direction: Direction, target: DialTarget | null): void {
    const now = this.modules.clock.now();
    const getPeers = sendBudget(this.rateLimits[MsgType.GetPeers] ?? [1, 1]);
    const peersLimit = sendBudget(this.rateLimits[MsgType.Peers] ?? [1, 1]);
    const peer: Peer = new Peer(
      conn,
      this.peerLocal,
      {
        direction,
        pingIntervalMs: this.opts.pingIntervalMs,
        rateLimits: this.modules.livenessRateContext
          ? rateLimitsFor(this.opts.pingIntervalMs, this.modules.livenessRateContext())
          : this.rateLimits,
        isPrivileged: () => this.isPrivileged(peer),
        handshakeTimeoutMs: this.opts.handshakeTimeoutMs,
        helloTimeoutMs: this.opts.helloTimeoutMs,
      },
      { clock: this.modules.clock, random: this.modules.random, logger: this.log },
    );
    this.meta.set(peer, {
      seq: ++this.seq,
      conn,
      target,
      announced: false,
      readyAt: 0,
      listen: null,
      getPeersBudget: new TokenBucket(getPeers[0], getPeers[1], now),
      peersBudget: new TokenBucket(peersLimit[0], peersLimit[1], now),
      owesPeers: false,
      relay: new Map(),
    });
    this.handshaking.add(peer);
    peer.events.onListenerError = (event, err) =>
      this.log.error("Peer event handler threw", { event, peer: peer.addr }, err);
    peer.events.on("ready", (p) => this.onPeerReady(p));
    peer.events.on("closed", (e) => this.onPeerClosed(e));
    peer.events.on("message", (e) => this.onPeerMessage(e.peer, e.msg));
    peer.events.on("state", (p) => {
      if (this.ready.get(p.nodeIdHex) === p) this.events.emit("peerState", p);
    });
    peer.events.on("misbehaviour", (e) => this.onMisbehaviour(e.peer, e.kind, e.score, e.detail, e.evidence));
    peer.start();
  }

  private onPeerReady(peer: Peer): void {
    const meta = this.meta.get(peer);
    if (!meta || peer.state !== "ready") return;
    this.handshaking.delete(peer);
    if (this.stopping) return peer.close(GoodbyeReason.SHUTDOWN, "node shutting down");
    if (!this.active) return peer.close(GoodbyeReason.NETWORK_DISABLED, "network disabled");
    const id = peer.nodeIdHex;
    const now = this.modules.clock.now();
    const listen = this.dialableListenAddr(peer, meta);
    meta.listen = listen;
    if (meta.target) this.addrToNode.set(meta.target.key, id);
    if (listen) this.addrToNode.set(listen.key, id);

    const whitelisted = this.isWhitelisted(peer);
    if (!whitelisted && (this.banManager.isBanned(id) || this.banManager.isBanned(peer.ip))) {
      return peer.close(GoodbyeReason.BANNED, "banned");
    }
    const existing = this.ready.get(id);
    if (existing) {
      const em = this.meta.get(existing);
      const keep =
        !em ||
        keepIncoming(
          this.localId,
          { direction: existing.direction, remoteId: existing.nodeId, seq: em.seq },
          { direction: peer.direction, remoteId: peer.nodeId, seq: meta.seq },
        );
      if (!keep) return peer.close(GoodbyeReason.DUPLICATE_CONNECTION, "already connected to this node");
    } else {
      const refusal = this.slotRefusal(peer);
      if (refusal) return peer.close(refusal.reason, refusal.message);
    }

    this.ready.set(id, peer);
    meta.readyAt = now;
    if (this.isolatedSince !== null) {
      const since = this.isolatedSince;
      this.isolatedSince = null;
      if (this.isolationWarnedAt !== null) {
        this.log.info("Connected again after being cut off from every peer", {
          seconds: Math.round((now - since) / 1000),
          peer: peer.addr,
        });
      }
      this.isolationWarnedAt = null;
      this.events.emit("isolation", { isolated: false, since });
    }
    // Closing the loser emits its peerClosed before this one's peerReady.
    existing?.close(GoodbyeReason.DUPLICATE_CONNECTION, "replaced by a newer connection");
    if (peer.state !== "ready" || this.ready.get(id) !== peer) return;

    const masternode = this.isMasternodePeer(peer);
    const services = peer.hello?.services ?? 0;
    let isNew = false;
    if (listen) {
      const before = this.addressBook.get(listen.key);
      isNew = !before || before.nodeId !== id;
      if (this.addressBook.add({ address: listen.key, nodeId: id, services, source: "handshake" })) {
        this.addressBook.markConnected(listen.key, { nodeId: id, services, masternode });
      }
    }
    if (meta.target) {
      const key = meta.target.key;
      if (
        key !== listen?.key &&
        parseDialable(key) &&
        this.addressBook.add({ address: key, nodeId: id, services, source: "handshake" })
      ) {
        this.addressBook.markConnected(key, { nodeId: id, services, masternode });
      }
      const t = this.permanent.get(key);
      if (t && masternode) t.masternode = true;
    }
    meta.announced = true;
    this.log.info("Peer connected", {
      peer: peer.addr,
      nodeId: id.slice(0, 16),
      direction: peer.direction,
      height: peer.height,
      masternode,
      whitelisted,
    });
    this.events.emit("peerReady", peer);
    if (peer.state !== "ready") return;
    // Discovery: ask every new peer for addresses, and tell the others about a new node.
    if (meta.getPeersBudget.take(now)) peer.send({ type: MsgType.GetPeers });
    if (isNew && listen) {
      this.queueRelay({ nodeId: peer.nodeId, address: listen.key, services, lastSeen: now }, peer);
    }
  }

  /**
   * Why a new ready peer does not fit, or null when it does (possibly after evicting an ordinary
   * inbound peer to make room for a privileged one).
   * - Below the masternode link floor, a registered masternode always fits: the limits stretch.
   * - A privileged peer (masternode, whitelisted) that finds the inbound or total limit reached
   *   evicts an ordinary inbound peer (evictionCandidate) when there is one.
   * - An ordinary inbound peer also needs a free ordinary slot and room in its netgroups.
   */
  private slotRefusal(peer: Peer): { reason: GoodbyeReason; message: string } | null {
    const full = (message: string): { reason: GoodbyeReason; message: string } => ({
      reason: GoodbyeReason.TOO_MANY_PEERS,
      message,
    });
    const masternode = this.isMasternodePeer(peer);
    if (masternode && this.masternodeLinks() < this.masternodeLinkFloor()) return null;
    const privileged = masternode || this.isWhitelisted(peer);
    const counts = this.connectionCounts();
    const overTotal = this.ready.size >= this.opts.maxPeers;
    if (peer.direction === "outbound") {
      if (overTotal && !(privileged && this.evict("a masternode or whitelisted peer needs the slot")))
        return full(`at most ${this.opts.maxPeers} peers`);
      return counts.outbound >= this.opts.maxOutbound
        ? full(`at most ${this.opts.maxOutbound} outbound peers`)
        : null;
    }
    if (counts.inbound >= this.opts.maxInbound || overTotal) {
      if (privileged && this.evict("a masternode or whitelisted peer needs the slot")) return null;
      return full(
        overTotal ? `at most ${this.opts.maxPeers} peers` : `at most ${this.opts.maxInbound} inbound peers`,
      );
    }
    if (privileged) return null;
    let ordinary = 0;
    for (const p of this.ready.values()) if (p.direction === "inbound" && !this.isPrivileged(p)) ordinary++;
    const ordinarySlots = Math.max(0, this.opts.maxInbound - this.opts.reservedMasternodeSlots);
    if (ordinary >= ordinarySlots)
      return full(`ordinary inbound slots are full (${ordinarySlots}); the rest are kept for masternodes`);
    const groups = netgroupsOf(peer.ip);
    if (!groups.local) {
      let narrow = 0;
      let wide = 0;
      for (const p of this.ready.values()) {
        if (p.direction !== "inbound" || this.isPrivileged(p)) continue;
        const g = netgroupsOf(p.ip);
        if (g.narrow === groups.narrow) narrow++;
        if (g.wide === groups.wide) wide++;
      }
      const maxNarrow = this.opts.maxInboundPerNetgroup;
      if (narrow >= maxNarrow || wide >= 2 * maxNarrow) {
        return {
          reason: GoodbyeReason.TOO_MANY_FROM_NETGROUP,
          message: `at most ${maxNarrow} ordinary inbound peers per ${groups.narrow.slice(3)} and ${2 * maxNarrow} per ${groups.wide.slice(3)}`,
        };
      }
    }
    return null;
  }

  /**
   * The ordinary inbound peer to evict for a privileged one, or null: from the wide netgroup
   * holding the most ordinary inbound peers, the newest (it has given us the least). Masternode,
   * whitelisted and outbound peers are never evicted.
   */
  private evictionCandidate(): Peer | null {
    const byGroup = new Map<string, Peer[]>();
    for (const p of this.ready.values()) {
      if (p.direction !== "inbound" || this.isPrivileged(p)) continue;
      const g = netgroupsOf(p.ip).wide;
      const list = byGroup.get(g) ?? [];
      list.push(p);
      byGroup.set(g, list);
    }
    let victim: Peer | null = null;
    let victimRank: [number, number] = [-1, -1];
    for (const list of byGroup.values()) {
      for (const p of list) {
        const rank: [number, number] = [list.length, this.meta.get(p)?.seq ?? 0];
        if (rank[0] > victimRank[0] || (rank[0] === victimRank[0] && rank[1] > victimRank[1])) {
          victim = p;
          victimRank = rank;
        }
      }
    }
    return victim;
  }

  /** Evicts evictionCandidate(); returns whether one was evicted. */
  private evict(why: string): boolean {
    const victim = this.evictionCandidate();
    if (!victim) return false;
    this.log.info("Evicting an ordinary inbound peer", { peer: victim.addr, why });
    victim.close(GoodbyeReason.EVICTED, why);
    return true;
  }

  private onPeerClosed(e: { peer: Peer; reason: GoodbyeReason; message: string; byUs: boolean }): void {
    const { peer, reason, byUs } = e;
    const meta = this.meta.get(peer);
    if (!meta) return;
    this.meta.delete(peer);
    this.handshaking.delete(peer);
    const id = peer.nodeIdHex;
    if (id && this.ready.get(id) === peer) this.ready.delete(id);
    increment(this.disconnects, goodbyeReasonName(reason));
    if (meta.announced && this.ready.size === 0 && this.isolatedSince === null && !this.stopping) {
      this.isolatedSince = this.modules.clock.now();
      this.events.emit("isolation", { isolated: true, since: this.isolatedSince });
    }
    const ctx = {
      peer: peer.addr,
      nodeId: id.slice(0, 16),
      reason: goodbyeReasonName(reason),
      message: e.message,
      byUs,
    };
    if (meta.announced) {
      this.log.info("Peer disconnected", ctx);
      this.events.emit("peerClosed", { peer, reason, message: e.message, byUs });
    } else {
      this.log.debug("Connection closed before it became a peer", ctx);
      this.events.emit("handshakeFailed", {
        address: meta.target?.key ?? peer.ip,
        direction: peer.direction,
        reason,
        message: e.message,
        byUs,
      });
    }
    // A link that lasted proves its addresses good: their backoff starts over.
    const stable =
      meta.readyAt > 0 && this.modules.clock.now() - meta.readyAt >= this.opts.stableConnectionMs;
    if (stable) {
      for (const key of [meta.listen?.key, meta.target?.key]) {
        if (key === undefined) continue;
        this.addressBook.resetFailures(key);
        const t = this.permanent.get(key);
        if (t) t.failures = 0;
      }
    }
    // A stalled link is replaced at once: redial its addresses now, whichever side dialled. If
    // the route is still black-holed the dial fails and the backoff takes over.
    if (reason === GoodbyeReason.STALLED && !this.stopping) {
      for (const key of [meta.listen?.key, meta.target?.key]) {
        const t = key === undefined ? undefined : this.permanent.get(key);
        if (t) t.retryAt = 0;
        if (key !== undefined && this.addressBook.get(key)) this.addressBook.resetFailures(key);
      }
      this.log.info("Link stalled; redialling", {
        peer: peer.addr,
        nodeId: id.slice(0, 16),
        detail: e.message,
      });
    } else if (reason === GoodbyeReason.MANUAL_DISCONNECT) {
      if (meta.listen) this.holdOff(meta.listen.key);
      if (meta.target) this.holdOff(meta.target.key);
    } else if (meta.target && !this.stopping) {
      this.afterOutboundClosed(meta.target, peer, reason, byUs);
    }
    if (!this.stopping) this.scheduleSoonTick();
  }

  /** Decides whether and when to redial an address after its connection ended. */
  private afterOutboundClosed(target: DialTarget, peer: Peer, reason: GoodbyeReason, byUs: boolean): void {
    const key = target.key;
    switch (reason) {
      case GoodbyeReason.SELF_CONNECTION:
        if (!this.selfAddrs.has(key))
          this.log.info("Address is our own; not dialling it again", { address: key });
        this.selfAddrs.set(key, true);
        this.addressBook.remove(key);
        return;
      case GoodbyeReason.DUPLICATE_CONNECTION:
      case GoodbyeReason.STALLED:
        return;
      case GoodbyeReason.SHUTDOWN:
      case GoodbyeReason.NETWORK_DISABLED:
      case GoodbyeReason.BANNED:
        if (byUs) return;
        break;
      default:
        break;
    }
    if (target.oneTry) return;
    if (this.isMasternodePeer(peer)) this.markMasternodeAddr(key);
    this.recordFailure(key);
  }

  private onPeerMessage(peer: Peer, msg: Message): void {
    const meta = this.meta.get(peer);
    if (!meta || this.ready.get(peer.nodeIdHex) !== peer) return;
    switch (msg.type) {
      case MsgType.GetPeers:
        meta.owesPeers = true;
        this.flushPeers(peer, meta);
        if (meta.owesPeers) this.scheduleRelayFlush(RELAY_RETRY_MS);
        return;
      case MsgType.Peers:
        this.onPeers(peer, msg.peers);
        return;
      default:
        try {
          this.modules.route?.(peer, msg);
        } catch (e) {
          // The node's router catches its handlers' errors; a bare seam that throws is logged
          // here so it never takes the peer (or the process) down.
          this.modules.logger.error("Message route threw", { peer: peer.addr, type: MsgType[msg.type] }, e);
        }
    }
  }

  /**
   * Applies the peer policy (docs/PROTOCOL.md "Misbehaviour and bans"):
   * - score >= PROOF_SCORE is proof: the IP is banned at once (10 min, 1 h, then 24 h), with the
   *   evidence kept; a whitelisted peer is only disconnected;
   * - a lower score is a soft offence (a request flood): it adds to the IP's flood score, whose
   *   threshold bans for 5 min without escalation, or only disconnects when the peer is a
   *   registered masternode or comes from a registered masternode's address.
   */
  private onMisbehaviour(
    peer: Peer,
    kind: MisbehaviourKind,
    score: number,
    detail: string,
    evidence: string,
  ): void {
    try {
      if (!(score > 0)) return;
      const reason = `${kind}: ${detail}`;
      const nodeId = peer.hello ? peer.nodeIdHex : null;
      if (this.isWhitelisted(peer)) {
        this.log.warn("Whitelisted peer misbehaved; it is never banned", {
          peer: peer.addr,
          kind,
          score,
          detail,
        });
        if (score >= PROOF_SCORE) peer.close(GoodbyeReason.MISBEHAVIOUR, detail);
        return;
      }
      if (score >= PROOF_SCORE) {
        const ban = this.banManager.banForProof(peer.ip, { reason, evidence, nodeId });
        increment(this.bans, kind);
        this.log.warn("Banned an IP on proof of misbehaviour", {
          ip: peer.ip,
          nodeId: nodeId?.slice(0, 16),
          kind,
          detail,
          evidence,
          until: ban.until === null ? "permanent" : new Date(ban.until).toISOString(),
        });
        this.disconnectSubject({ kind: "ip", value: ban.subject }, GoodbyeReason.BANNED, `banned: ${kind}`);
        return;
      }
      const exempt = this.isMasternodePeer(peer) || this.isMasternodeIp(peer.ip);
      const r = this.banManager.addFloodScore(peer.ip, score, reason, { exempt, nodeId });
      this.log.debug("Peer flooded requests", { peer: peer.addr, kind, score, total: r.total, detail });
      if (!r.crossed) return;
      if (r.ban) {
        increment(this.bans, kind);
        this.log.warn("Banned a flooding IP for a short while", {
          ip: peer.ip,
          kind,
          detail,
          until: r.ban.until === null ? "permanent" : new Date(r.ban.until).toISOString(),
        });
        this.disconnectSubject({ kind: "ip", value: r.ban.subject }, GoodbyeReason.BANNED, `banned: ${kind}`);
      } else {
        this.log.warn("A masternode flooded requests; disconnecting it, never banning it", {
          peer: peer.addr,
          kind,
          detail,
        });
        peer.close(GoodbyeReason.RATE_LIMITED, detail);
      }
    } catch (e) {
      this.log.error("Handling misbehaviour failed", { peer: peer.addr }, e);
    }
  }

  private disconnectSubject(f: FilterEntry, reason: GoodbyeReason, message: string): void {
    for (const p of this.allPeers()) {
      const match = f.kind === "ip" ? p.ip === f.value : p.hello !== null && p.nodeIdHex === f.value;
      if (match) p.close(reason, message);
    }
  }

  // --- discovery -------------------------------------------------------------------------

  private onPeers(peer: Peer, entries: PeerAddress[]): void {
    let garbage = 0;
    let accepted = 0;
    for (const e of entries) {
      const p = parseIpAddress(e.address);
      if (!p) {
        garbage++;
        continue;
      }
      if (!isDialableIp(p.host) || e.nodeId.equals(this.localId) || this.isOwnAddress(p.key)) continue;
      if (
        this.addressBook.add({
          address: p.key,
          nodeId: e.nodeId,
          services: e.services,
          lastSeen: e.lastSeen,
          source: "peers",
        })
      ) {
        accepted++;
      }
    }
    // Addresses are gossip: entries we cannot parse are skipped, never scored (another
    // implementation may write hostnames we do not accept).
    if (garbage > 0) this.log.debug("Skipped malformed addresses in Peers", { peer: peer.addr, garbage });
    if (accepted > 0) this.scheduleSoonTick();
  }

  /** What we tell a peer that asks: our ready peers' listen addresses, then good book entries. */
  private peersAnswer(to: Peer): PeerAddress[] {
    const now = this.modules.clock.now();
    const out: PeerAddress[] = [];
    const seen = new Set<string>();
    const toMeta = this.meta.get(to);
    if (toMeta?.listen) seen.add(toMeta.listen.key);
    for (const p of this.ready.values()) {
      if (p === to) continue;
      const l = this.meta.get(p)?.listen;
      if (!l || seen.has(l.key)) continue;
      seen.add(l.key);
      out.push({ nodeId: p.nodeId, address: l.key, services: p.hello?.services ?? 0, lastSeen: now });
    }
    const maxFailures = Math.min(3, this.opts.ordinaryBackoff.maxAttempts);
    for (const e of this.addressBook.good(MAX_PEERS_PER_MESSAGE, maxFailures)) {
      if (out.length >= MAX_PEERS_PER_MESSAGE) break;
      if (seen.has(e.address) || (e.nodeId && e.nodeId === to.nodeIdHex)) continue;
      seen.add(e.address);
      out.push({
        nodeId: e.nodeId ? Buffer.from(e.nodeId, "hex") : Buffer.alloc(32),
        address: e.address,
        services: e.services,
        lastSeen: e.lastSeen,
      });
    }
    return out.slice(0, MAX_PEERS_PER_MESSAGE);
  }

  /** Queues a first-hand address for every other ready peer (one hop: never relayed again). */
  private queueRelay(entry: PeerAddress, except: Peer): void {
    for (const p of this.ready.values()) {
      if (p === except) continue;
      const m = this.meta.get(p);
      if (!m || m.relay.size >= MAX_PEERS_PER_MESSAGE) continue;
      m.relay.set(entry.address, entry);
    }
    this.scheduleRelayFlush(this.opts.relayDelayMs);
  }

  private scheduleRelayFlush(ms: number): void {
    if (this.relayTimer || this.stopping) return;
    this.relayTimer = this.modules.clock.setTimeout(() => {
      this.relayTimer = null;
      let pending = false;
      for (const p of this.ready.values()) {
        const m = this.meta.get(p);
        if (!m) continue;
        this.flushPeers(p, m);
        if (m.owesPeers || m.relay.size > 0) pending = true;
      }
      if (pending) this.scheduleRelayFlush(RELAY_RETRY_MS);
    }, ms);
  }

  /** Sends what a peer is owed (an answer and/or relays) in one Peers, if our budget allows. */
  private flushPeers(peer: Peer, meta: PeerMeta): void {
    if (!meta.owesPeers && meta.relay.size === 0) return;
    if (!meta.peersBudget.take(this.modules.clock.now())) return;
    const entries = meta.owesPeers ? this.peersAnswer(peer) : [];
    const have = new Set(entries.map((e) => e.address));
    for (const e of meta.relay.values()) {
      if (entries.length >= MAX_PEERS_PER_MESSAGE) break;
      if (!have.has(e.address)) entries.push(e);
    }
    meta.owesPeers = false;
    meta.relay.clear();
    peer.send({ type: MsgType.Peers, peers: entries });
  }

  /** Every discoveryIntervalMs: GetPeers to one random peer that our budget allows. */
  private discoveryTick(): void {
    if (this.stopping || !this.active || this.ready.size === 0) return;
    try {
      const now = this.modules.clock.now();
      const peers = this.shuffle([...this.ready.values()]);
      for (const p of peers) {
        if (this.meta.get(p)?.getPeersBudget.take(now)) {
          p.send({ type: MsgType.GetPeers });
          return;
        }
      }
    } catch (e) {
      this.log.error("Discovery tick failed", {}, e);
    }
  }

  // --- dialling --------------------------------------------------------------------------

  private scheduleSoonTick(): void {
    if (this.soonTimer || this.stopping || !this.started) return;
    this.soonTimer = this.modules.clock.setTimeout(() => {
      this.soonTimer = null;
      this.dialTick();
    }, SOON_TICK_MS);
  }

  /**
   * Fills free outbound slots: permanent targets first, then the address book. Below the
   * masternode link floor, registered masternodes are dialled even when the outbound slots are
   * full (up to the floor's shortfall), so the floor never waits for an ordinary peer to leave.
   */
  private dialTick(): void {
    if (!this.started || this.stopping || !this.active) return;
    try {
      this.checkIsolation();
      let outboundInUse = this.dialing.size;
      for (const p of this.allPeers()) if (p.direction === "outbound") outboundInUse++;
      const total = this.ready.size + this.handshaking.size + this.dialing.size;
      const shortfall = Math.max(0, this.masternodeLinkFloor() - this.masternodeLinks());
      const slots = Math.min(
        this.opts.maxOutbound - outboundInUse,
        this.opts.maxPeers - total,
        this.opts.maxDialsPerTick,
      );
      const mnSlots = Math.min(Math.max(slots, shortfall), this.opts.maxDialsPerTick);
      if (Math.max(slots, mnSlots) <= 0) return;
      const now = this.modules.clock.now();
      const busy = this.busyAddresses();
      const chosen: DialTarget[] = [];
      // Masternode targets first (up to mnSlots), then the other permanent targets.
      const permanent = [...this.permanent.values()].sort(
        (a, b) => Number(b.masternode) - Number(a.masternode),
      );
      for (const t of permanent) {
        if (chosen.length >= (t.masternode ? mnSlots : slots)) continue;
        if (t.retryAt <= now && this.mayDial(t.key, t.host, busy)) {
          chosen.push({ key: t.key, host: t.host, port: t.port, oneTry: false });
          busy.add(t.key);
        }
      }
      if (chosen.length < slots) {
        const perGroup = this.outboundPerWideNetgroup();
        const candidates = this.shuffle(
          this.addressBook
            .entries()
            .filter(
              (e) =>
                !this.permanent.has(e.address) &&
                e.retryAt <= now &&
                e.failures < this.backoffPolicy(e.address).maxAttempts &&
                this.mayDial(e.address, e.host, busy),
            ),
        );
        // Nodes we reached before first, then masternodes.
        candidates.sort(
          (a, b) =>
            Number(b.lastSuccess > 0) - Number(a.lastSuccess > 0) ||
            Number(b.masternode) - Number(a.masternode),
        );
        for (const e of candidates) {
          if (chosen.length >= slots) break;
          if (busy.has(e.address)) continue;
          // Outbound diversity: at most maxOutboundPerNetgroup address-book peers per /16 (/32).
          const g = netgroupsOf(e.host);
          if (!g.local && (perGroup.get(g.wide) ?? 0) >= this.opts.maxOutboundPerNetgroup) continue;
          perGroup.set(g.wide, (perGroup.get(g.wide) ?? 0) + 1);
          chosen.push({ key: e.address, host: e.host, port: e.port, oneTry: false });
          busy.add(e.address);
        }
      }
      for (const t of chosen) this.dial(t);
    } catch (e) {
      this.log.error("Dial loop failed", {}, e);
    }
  }

  /** Outbound address-book connections and dials (permanent targets aside) per wide netgroup. */
  private outboundPerWideNetgroup(): Map<string, number> {
    const out = new Map<string, number>();
    const add = (key: string | undefined, host: string): void => {
      if (key !== undefined && this.permanent.has(key)) return;
      const g = netgroupsOf(host);
      if (!g.local) out.set(g.wide, (out.get(g.wide) ?? 0) + 1);
    };
    for (const [p, m] of this.meta)
      if (p.direction === "outbound") add(m.target?.key, m.target?.host ?? p.ip);
    for (const key of this.dialing) {
      const a = parseIpAddress(key);
      if (a) add(key, a.host);
    }
    return out;
  }

  /** Says so when the node has been cut off from every peer for a while (then once a minute). */
  private checkIsolation(): void {
    const since = this.isolatedSince;
    if (since === null) return;
    const now = this.modules.clock.now();
    if (now - since < ISOLATION_WARN_PING_INTERVALS * this.opts.pingIntervalMs) return;
    if (this.isolationWarnedAt !== null && now - this.isolationWarnedAt < ISOLATION_LOG_REPEAT_MS) return;
    this.isolationWarnedAt = now;
    let nextRetry = Infinity;
    for (const t of this.permanent.values()) nextRetry = Math.min(nextRetry, t.retryAt);
    this.log.warn("Cut off from every peer", {
      seconds: Math.round((now - since) / 1000),
      permanentTargets: this.permanent.size,
      knownAddresses: this.addressBook.size,
      dialling: this.dialing.size,
      handshaking: this.handshaking.size,
      nextRetryInSeconds: Number.isFinite(nextRetry)
        ? Math.max(0, Math.round((nextRetry - now) / 1000))
        : null,
      networkActive: this.active,
    });
  }

  private dial(target: DialTarget): void {
    this.dialing.add(target.key);
    const localHost = this.dialLocalHost(target.host);
    this.log.debug("Dialling", { address: target.key, localHost });
    this.modules.transport
      .dial(target.host, target.port, {
        timeoutMs: this.opts.dialTimeoutMs,
        ...(localHost ? { localHost } : {}),
      })
      .then(
        (conn) => {
          this.dialing.delete(target.key);
          if (this.stopping || !this.active) {
            conn.destroy();
            return;
          }
          this.connectivityReturned(target.key);
          this.attach(conn, "outbound", target);
        },
        (err: unknown) => {
          this.dialing.delete(target.key);
          this.log.debug("Dial failed", {
            address: target.key,
            error: err instanceof Error ? err.message : String(err),
          });
          if (!target.oneTry && !this.stopping) this.recordFailure(target.key);
        },
      )
      .catch((e: unknown) => {
        this.dialing.delete(target.key);
        this.log.error("Handling a dial result failed", { address: target.key }, e);
      });
  }

  /** Our listen IP, when it is a specific one of the target's family, so peers see our own IP. */
  private dialLocalHost(targetHost: string): string | undefined {
    const host = this.listener?.host ?? this.opts.listen?.host;
    if (!host || isIP(host) === 0 || isUnspecifiedHost(host)) return undefined;
    if (isIP(targetHost) !== 0 && isIP(targetHost) !== isIP(host)) return undefined;
    // A loopback source address cannot reach anything off the host.
    const loop = (h: string): boolean => (isIPv4(h) ? h.startsWith("127.") : h === "::1");
    if (loop(host) && isIP(targetHost) !== 0 && !loop(targetHost)) return undefined;
    return host;
  }

  private mayDial(key: string, host: string, busy: Set<string>): boolean {
    if (busy.has(key) || this.selfAddrs.has(key) || this.isOwnAddress(key)) return false;
    const held = this.heldOff.get(key);
    if (held !== undefined) {
      if (held > this.modules.clock.now()) return false;
      this.heldOff.delete(key);
    }
    if (isIP(host) !== 0 && !this.whitelistIps.has(host) && this.banManager.isBanned(host)) return false;
    const id = this.addrToNode.get(key);
    if (id !== undefined && !this.whitelistIds.has(id) && this.banManager.isBanned(id)) return false;
    return !this.isConnectedAddress(key);
  }

  /** The address's node id (learned in a handshake) is connected. */
  private isConnectedAddress(key: string): boolean {
    const id = this.addrToNode.get(key);
    return id !== undefined && this.ready.has(id);
  }

  /** Addresses with a connection or dial in flight: connection addresses, targets, listen addresses. */
  private busyAddresses(): Set<string> {
    const busy = new Set<string>(this.dialing);
    for (const [p, m] of this.meta) {
      busy.add(p.addr);
      if (m.target) busy.add(m.target.key);
      if (m.listen) busy.add(m.listen.key);
    }
    return busy;
  }

  /**
   * One more failure for `key`, and its next retry. A drop after a stable link counts as the
   * first failure, since its count was reset when the link closed.
   */
  private recordFailure(key: string): void {
    const now = this.modules.clock.now();
    const policy = this.backoffPolicy(key);
    const t = this.permanent.get(key);
    if (t) {
      t.failures++;
      t.retryAt = now + this.backoffDelay(t.failures, policy, true);
    }
    const e = this.addressBook.get(key);
    if (e) {
      const failures = e.failures + 1;
      this.addressBook.markAttempt(key, failures, now + this.backoffDelay(failures, policy, false));
      if (!t && failures >= policy.maxAttempts) {
        this.log.info("Giving up on an address", { address: key, failures });
      }
    }
  }

  /**
   * A deliberate disconnect: leave the address alone for its class's longest backoff. Kept apart
   * from the backoff, so connectivity coming back does not undo the operator's choice.
   */
  private holdOff(key: string): void {
    this.heldOff.set(key, this.modules.clock.now() + this.backoffPolicy(key).maxMs);
  }

  /**
   * Jittered exponential backoff: base · 2^(failures−1), capped at max. A permanent target
   * past maxAttempts stays at max forever.
   */
  private backoffDelay(failures: number, policy: BackoffPolicy, permanent: boolean): number {
    const exp = permanent && failures > policy.maxAttempts ? Infinity : Math.max(0, failures - 1);
    const raw = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(exp, 52));
    const jitter = this.opts.backoffJitter;
    return Math.max(0, Math.round(raw * (1 + jitter * (2 * this.modules.random.float() - 1))));
  }

  /** Masternodes (proven, or a registered service address) and whitelisted peers get the fast policy. */
  private backoffPolicy(key: string): BackoffPolicy {
    const fast =
      this.masternodeAddrs.has(key) ||
      this.permanent.get(key)?.masternode === true ||
      this.addressBook.get(key)?.masternode === true ||
      this.isWhitelistedAddress(key);
    return fast ? this.opts.masternodeBackoff : this.opts.ordinaryBackoff;
  }

  private markMasternodeAddr(key: string): void {
    const t = this.permanent.get(key);
    if (t) t.masternode = true;
    const e = this.addressBook.get(key);
    if (e) e.masternode = true;
  }

  private addPermanent(addr: string, source: TargetSource): boolean {
    const hp = checkHostPort(addr);
    if (!hp.ok) return false;
    const key = formatAddress(hp.value.host, hp.value.port);
    const existing = this.permanent.get(key);
    if (existing) {
      existing.sources.add(source);
      return true;
    }
    if (this.permanent.size >= MAX_PERMANENT_TARGETS) {
      this.log.warn("Too many permanent targets; ignoring one", { address: key, source });
      return false;
    }
    this.permanent.set(key, {
      key,
      host: hp.value.host,
      port: hp.value.port,
      sources: new Set([source]),
      failures: 0,
      retryAt: 0,
      masternode: source === "masternode",
    });
    return true;
  }

  // --- identity helpers ------------------------------------------------------------------

  /** What we put in Hello: the external address, else the bound listen address. */
  private advertisedAddress(): string {
    if (this.opts.externalAddress) return this.opts.externalAddress;
    if (this.listener) return formatAddress(this.listener.host, this.listener.port);
    return this.modules.local.listenAddr();
  }

  private isOwnAddress(key: string): boolean {
    if (this.selfAddrs.has(key)) return true;
    if (this.listener && key === formatAddress(this.listener.host, this.listener.port)) return true;
    return this.opts.externalAddress !== undefined && key === this.opts.externalAddress;
  }

  /**
   * The address a peer can be dialled at: for an outbound peer, the one we dialled; otherwise its
   * Hello listen address, with an unspecified host (0.0.0.0, ::) replaced by the connection's IP.
   */
  private dialableListenAddr(peer: Peer, meta: PeerMeta): ParsedAddress | null {
    if (meta.target) {
      const t = parseDialable(meta.target.key);
      if (t) return t;
    }
    const p = parseIpAddress(peer.hello?.listenAddr ?? "");
    if (!p) return null;
    if (isUnspecifiedHost(p.host)) return parseDialable(formatAddress(peer.ip, p.port));
    return isDialableIp(p.host) ? p : null;
  }

  private isWhitelisted(peer: Peer): boolean {
    return this.whitelistIps.has(peer.ip) || (peer.hello !== null && this.whitelistIds.has(peer.nodeIdHex));
  }

  private isWhitelistedAddress(key: string): boolean {
    const p = parseIpAddress(key);
    if (p && this.whitelistIps.has(p.host)) return true;
    const id = this.addrToNode.get(key);
    return id !== undefined && this.whitelistIds.has(id);
  }

  /** `ip` is the host of a registered masternode's service address. */
  private isMasternodeIp(ip: string): boolean {
    for (const key of this.masternodeAddrs) {
      const p = parseIpAddress(key);
      if (p && banSubject(p.host) === banSubject(ip)) return true;
    }
    return false;
  }

  /** Proved an operator key that the on-chain registry accepts. */
  private isMasternodePeer(peer: Peer): boolean {
    if (!peer.operatorPubkey || !this.modules.isRegisteredMasternode) return false;
    try {
      return this.modules.isRegisteredMasternode(peer.operatorPubkey);
    } catch (e) {
      this.log.error("isRegisteredMasternode threw", {}, e);
      return false;
    }
  }

  /** Masternodes and whitelisted peers: reserved inbound slots and more ping slack. */
  private isPrivileged(peer: Peer): boolean {
    return this.isWhitelisted(peer) || this.isMasternodePeer(peer);
  }

  private addWhitelistEntry(entry: string): boolean {
    const f = parseFilterEntry(entry);
    if (!f) return false;
    if (this.whitelistIps.size + this.whitelistIds.size >= MAX_WHITELIST) return false;
    const set = f.kind === "ip" ? this.whitelistIps : this.whitelistIds;
    if (set.has(f.value)) return false;
    set.add(f.value);
    return true;
  }

  private allPeers(): Peer[] {
    return [...this.meta.keys()];
  }

  private shuffle<T>(a: T[]): T[] {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.modules.random.int(i + 1);
      const tmp = a[i] as T;
      a[i] = a[j] as T;
      a[j] = tmp;
    }
    return a;
  }

  private async saveIfDirty(): Promise<void> {
    try {
      const jobs: Array<Promise<void>> = [];
      if (this.addressBook.dirty) jobs.push(this.addressBook.save());
      if (this.banManager.dirty) jobs.push(this.banManager.save());
      await Promise.all(jobs);
    } catch (e) {
      this.log.warn("Saving peer state failed", {}, e);
    }
  }
}
