import { dirname, join } from "node:path";
import type { Logger } from "../logging/index.js";
import type { TimerHandle } from "../util/clock.js";
import { TokenBucket } from "../util/tokenBucket.js";
import { TypedEmitter } from "../util/typedEmitter.js";
import { Admission, increment } from "./admission.js";
import { AddressBook, formatAddress } from "./addressBook.js";
import { BanManager, type BanEntry } from "./banManager.js";
import { Dialer, shuffle } from "./dialer.js";
import { Discovery } from "./discovery.js";
import type {
  ConnectionCounts,
  DialTarget,
  IsolationStatus,
  PeerClosedEvent,
  PeerInfo,
  PeerManagerEvents,
  PeerManagerModules,
} from "./interface.js";
import { goodbyeReasonName, GoodbyeReason, MsgType, type Message } from "./messages.js";
import { BAN_LIST_FILE, defaultPeerManagerOptions, type PeerManagerOptions } from "./options.js";
import { Peer, type Direction, type LocalInfo } from "./peer.js";
import type { WireMessage } from "./frame.js";
import { PeerTable, wasAnnounced } from "./peerTable.js";
import { rateLimitsFor, sendBudget, type RateLimitTable } from "./rateLimits.js";
import type { Connection, Listener } from "./transport.js";

// The public names of the connection manager live beside it; importers keep importing them from here.
export type {
  ConnectionCounts,
  DedupView,
  HandshakeFailedEvent,
  IsolationStatus,
  PeerClosedEvent,
  PeerInfo,
  PeerManagerEvents,
  PeerManagerModules,
} from "./interface.js";
export { PeerManagerError, type PeerManagerErrorCode } from "./errors.js";
export { keepIncoming } from "./admission.js";

/**
 * A node with no peer for this many ping intervals says so (a warning, then one every
 * ISOLATION_LOG_REPEAT_MS); a restart or a brief gap between links is not worth a warning.
 */
const ISOLATION_WARN_PING_INTERVALS = 3;
const ISOLATION_LOG_REPEAT_MS = 60_000;

/**
 * The connection manager: one Peer per node id, connection limits, reconnects with backoff,
 * bans, discovery through GetPeers/Peers, and the operator's controls.
 *
 * A facade over its collaborators, each handed the plain functions it needs at construction:
 * - PeerTable (peerTable.ts): every connection and its phase, with the node-id index of the
 *   ready peers kept inside; the single source of truth, from which every count is computed;
 * - Admission (admission.ts): the inbound gate, dedup, slots, whitelist, bans and peer policy;
 * - Dialer (dialer.ts): the dial loop, backoff, permanent and masternode addresses;
 * - Discovery (discovery.ts): GetPeers, Peers and the relay of addresses.
 * PeerManager itself owns the lifecycle, the Peers' events (it alone moves a peer through the
 * table's phases), the isolation state, and the operator API.
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
  private readonly peerLocal: LocalInfo;
  private readonly rateLimits: RateLimitTable;
  /** Written here only; the collaborators read the same object. */
  private readonly lifecycle = { started: false, stopping: false, active: true };
  private readonly table = new PeerTable();
  private readonly admission: Admission;
  private readonly dialer: Dialer;
  private readonly discovery: Discovery;
  private listener: Listener | null = null;
  private timers: TimerHandle[] = [];
  /** When the node last had no ready peer (epoch ms), or null while it has one. */
  private isolatedSince: number | null = null;
  /** When the periodic save last wrote the address book (0: its first change goes at the next tick). */
  private bookSavedAt = 0;
  private isolationWarnedAt: number | null = null;

  constructor(
    opts: Partial<PeerManagerOptions>,
    private readonly modules: PeerManagerModules,
  ) {
    this.opts = { ...defaultPeerManagerOptions, ...opts };
    this.log = modules.logger.child({ module: "p2p" });
    this.rateLimits = rateLimitsFor(this.opts.pingIntervalMs);
    const local = modules.local;
    // Everything as given (the plaintext option included), but the address we advertise.
    this.peerLocal = { ...local, listenAddr: () => this.advertisedAddress() };
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
    const shared = { clock: modules.clock, log: this.log, lifecycle: this.lifecycle };
    const attach = (conn: Connection, direction: Direction, target: DialTarget | null): void =>
      this.attach(conn, direction, target);
    // Reads the config whitelist (warning about bad entries).
    this.admission = new Admission({
      ...shared,
      opts: this.opts,
      table: this.table,
      banManager: this.banManager,
      local,
      registry: modules,
      counters: { disconnects: this.disconnects, bans: this.bans },
      fns: {
        attach,
        connectivityReturned: () => this.dialer.connectivityReturned(),
        isMasternodeIp: (ip) => this.dialer.isMasternodeIp(ip),
        sendAddresses: (peer) => this.discovery.sendAddresses(peer),
      },
    });
    this.dialer = new Dialer({
      ...shared,
      opts: this.opts,
      table: this.table,
      addressBook: this.addressBook,
      banManager: this.banManager,
      transport: modules.transport,
      random: modules.random,
      fns: {
        attach,
        checkIsolation: () => this.checkIsolation(),
        isMasternodePeer: (p) => this.admission.isMasternodePeer(p),
        masternodeLinks: () => this.admission.masternodeLinks(),
        masternodeLinkFloor: () => this.admission.masternodeLinkFloor(),
        isWhitelistedIp: (ip) => this.admission.isWhitelistedIp(ip),
        isWhitelistedId: (id) => this.admission.isWhitelistedId(id),
        bound: () => this.listener,
      },
    });
    this.discovery = new Discovery({
      ...shared,
      opts: this.opts,
      table: this.table,
      addressBook: this.addressBook,
      localId: local.nodeKey.publicKey,
      fns: {
        isOwnAddress: (key) => this.dialer.isOwnAddress(key),
        scheduleSoonTick: () => this.dialer.scheduleSoonTick(),
        shuffle: <T>(a: T[]): T[] => shuffle(a, modules.random),
      },
    });
  }

  // --- lifecycle -------------------------------------------------------------------------

  /** Loads the address book and bans, listens, and starts the dial loop. Call once. */
  async start(): Promise<void> {
    if (this.lifecycle.started) return;
    this.lifecycle.started = true;
    await Promise.all([this.addressBook.load(), this.banManager.load()]);
    if (this.lifecycle.stopping) return;
    this.admission.applyBlacklist();
    this.dialer.addBootstrapPeers();
    if (this.opts.listen) {
      const { host, port } = this.opts.listen;
      const listener = await this.modules.transport.listen(host, port, (c) => this.admission.onInbound(c));
      if (this.lifecycle.stopping) {
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
      clock.setInterval(() => this.dialer.tick(), this.opts.dialIntervalMs),
      clock.setInterval(() => this.discovery.tick(), this.opts.discoveryIntervalMs),
      clock.setInterval(() => void this.saveIfDirty(), this.opts.saveIntervalMs),
    );
    if (this.table.readyCount === 0) this.isolatedSince = clock.now();
    this.dialer.tick();
  }

  /** Closes every peer with SHUTDOWN, stops listening, and saves the address book and bans. */
  async stop(): Promise<void> {
    if (this.lifecycle.stopping) return;
    this.lifecycle.stopping = true;
    for (const t of this.timers) t.cancel();
    this.timers = [];
    this.dialer.stop();
    this.discovery.stop();
    for (const p of this.table.all()) p.close(GoodbyeReason.SHUTDOWN, "node shutting down");
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
    return this.lifecycle.active;
  }

  /** Connections mid-handshake. */
  get handshakingCount(): number {
    return this.table.handshakingCount;
  }

  /** Outbound dials whose TCP connect is still in flight. */
  get dialingCount(): number {
    return this.dialer.dialingCount;
  }

  /** Whether the node has no ready peer, and since when. */
  isolation(): IsolationStatus {
    return { isolated: this.isolatedSince !== null, since: this.isolatedSince };
  }

  /** Ready links to distinct registered masternodes (proven in the handshake). */
  masternodeLinks(): number {
    return this.admission.masternodeLinks();
  }

  /** The link floor k in force: masternodeLinkFloor, or every other registered masternode when fewer. */
  masternodeLinkFloor(): number {
    return this.admission.masternodeLinkFloor();
  }

  // --- operator API --------------------------------------------------------------------

  peers(): Peer[] {
    return [...this.table.readyPeers()];
  }

  getPeer(nodeIdHex: string): Peer | undefined {
    return this.table.readyPeer(nodeIdHex.toLowerCase());
  }

  connectionCounts(): ConnectionCounts {
    return this.table.connectionCounts();
  }

  peerInfo(): PeerInfo[] {
    const out: PeerInfo[] = [];
    for (const p of this.table.readyPeers()) {
      const m = this.table.get(p);
      out.push({
        nodeid: p.nodeIdHex,
        addr: p.addr,
        addrlocal: m ? formatAddress(m.conn.localHost, m.conn.localPort) : "",
        listenaddr: m?.listen?.key ?? "",
        inbound: p.direction === "inbound",
        masternode: this.admission.isMasternodePeer(p),
        whitelisted: this.admission.isWhitelisted(p),
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
        transport: p.encrypted ? "chacha20-poly1305" : "plaintext",
      });
    }
    return out;
  }

  /**
   * "add": dial `addr` and keep retrying it forever; "remove": stop that; "onetry": dial it once
   * now. Throws PeerManagerError on a bad address or an add/remove that does not apply.
   */
  addNode(addr: string, command: "add" | "remove" | "onetry"): void {
    this.dialer.addNode(addr, command);
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
    for (const p of this.table.all()) {
      const m = this.table.get(p);
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
    return this.admission.setBan(subject, command, seconds);
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
    if (this.lifecycle.active === active) return;
    this.lifecycle.active = active;
    if (!active) {
      this.log.warn("Network disabled: closing every peer");
      for (const p of this.table.all()) p.close(GoodbyeReason.NETWORK_DISABLED, "network disabled");
      return;
    }
    this.log.info("Network enabled");
    this.dialer.retryPermanentNow();
    this.dialer.tick();
  }

  getWhitelist(): string[] {
    return this.admission.getWhitelist();
  }

  /** Whitelists an IP or node id (lifting any ban on it). Throws on a bad entry. */
  addWhitelist(entry: string): boolean {
    return this.admission.addWhitelist(entry);
  }

  removeWhitelist(entry: string): boolean {
    return this.admission.removeWhitelist(entry);
  }

  /**
   * The service addresses of registered masternodes: dialled forever, with the masternode
   * backoff. Replaces the previous list.
   */
  setMasternodeAddresses(addrs: string[]): void {
    this.dialer.setMasternodeAddresses(addrs);
  }

  /**
   * Reports misbehaviour found above the P2P layer. A score of PROOF_SCORE (100) is proof: a bad
   * signature, an invalid block or transaction, garbage where a block was promised; `evidence`
   * is kept with the ban. Below that it is a soft offence (flood score). Network faults (late,
   * stale or duplicate gossip, timeouts) must not be reported at all.
   */
  misbehaving(peer: Peer, score: number, reason: string, evidence: string = reason): void {
    this.admission.onMisbehaviour(peer, "INVALID_DATA", score, reason, evidence);
  }

  /** Sends `msg` to every ready peer, inbound and outbound alike, that passes `filter`. */
  broadcast(msg: Message, filter?: (p: Peer) => boolean): number {
    let n = 0;
    // Encoded once, not once per peer (each peer seals it in its own session).
    let frame: WireMessage | null = null;
    for (const p of this.table.readyPeers()) {
      try {
        if (filter && !filter(p)) continue;
        frame ??= p.encode(msg);
        p.sendFrame(frame);
        n++;
      } catch (e) {
        this.log.error("Broadcast to a peer failed", { peer: p.addr }, e);
      }
    }
    return n;
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
        isPrivileged: () => this.admission.isPrivileged(peer),
        handshakeTimeoutMs: this.opts.handshakeTimeoutMs,
        helloTimeoutMs: this.opts.helloTimeoutMs,
      },
      { clock: this.modules.clock, random: this.modules.random, logger: this.log },
    );
    this.table.add(peer, {
      conn,
      target,
      getPeersBudget: new TokenBucket(getPeers[0], getPeers[1], now),
      peersBudget: new TokenBucket(peersLimit[0], peersLimit[1], now),
    });
    peer.events.onListenerError = (event, err) =>
      this.log.error("Peer event handler threw", { event, peer: peer.addr }, err);
    peer.events.on("ready", (p) => this.onPeerReady(p));
    peer.events.on("closed", (e) => this.onPeerClosed(e));
    peer.events.on("message", (e) => this.onPeerMessage(e.peer, e.msg));
    peer.events.on("state", (p) => {
      if (this.table.isReady(p)) this.events.emit("peerState", p);
    });
    peer.events.on("misbehaviour", (e) =>
      this.admission.onMisbehaviour(e.peer, e.kind, e.score, e.detail, e.evidence),
    );
    peer.start();
  }

  private onPeerReady(peer: Peer): void {
    const entry = this.table.get(peer);
    if (!entry || peer.state !== "ready") return;
    this.table.handshakeDone(entry);
    if (this.lifecycle.stopping) return peer.close(GoodbyeReason.SHUTDOWN, "node shutting down");
    if (!this.lifecycle.active) return peer.close(GoodbyeReason.NETWORK_DISABLED, "network disabled");
    const id = peer.nodeIdHex;
    const now = this.modules.clock.now();
    this.dialer.learnAddresses(entry);
    // Bans, then one connection per node id (the tie-break), else the peer limits.
    const admitted = this.admission.admit(entry);
    if (!admitted) return;
    const { whitelisted, existing } = admitted;

    this.table.promote(entry, now);
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
    if (peer.state !== "ready" || !this.table.isReady(peer)) return;

    const masternode = this.admission.isMasternodePeer(peer);
    const services = peer.hello?.services ?? 0;
    const isNew = this.dialer.recordConnected(entry, masternode);
    this.table.markAnnounced(entry);
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
    this.discovery.onReady(entry, isNew, services, now);
  }

  private onPeerClosed(e: PeerClosedEvent): void {
    const { peer, reason, byUs } = e;
    const entry = this.table.remove(peer);
    if (!entry) return;
    const id = peer.nodeIdHex;
    const announced = wasAnnounced(entry.phase);
    increment(this.disconnects, goodbyeReasonName(reason));
    if (announced && this.table.readyCount === 0 && this.isolatedSince === null && !this.lifecycle.stopping) {
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
    if (announced) {
      this.log.info("Peer disconnected", ctx);
      this.events.emit("peerClosed", { peer, reason, message: e.message, byUs });
    } else {
      this.log.debug("Connection closed before it became a peer", ctx);
      this.events.emit("handshakeFailed", {
        address: entry.target?.key ?? peer.ip,
        direction: peer.direction,
        reason,
        message: e.message,
        byUs,
      });
    }
    // Backoff resets (a stable or stalled link), hold-offs, redials.
    this.dialer.afterClosed(entry, e);
  }

  private onPeerMessage(peer: Peer, msg: Message): void {
    const entry = this.table.get(peer);
    if (!entry || !this.table.isReady(peer)) return;
    switch (msg.type) {
      case MsgType.GetPeers:
        this.discovery.onGetPeers(peer, entry);
        return;
      case MsgType.Peers:
        this.discovery.onPeers(peer, msg.peers);
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

  /** Says so when the node has been cut off from every peer for a while (then once a minute). */
  private checkIsolation(): void {
    const since = this.isolatedSince;
    if (since === null) return;
    const now = this.modules.clock.now();
    if (now - since < ISOLATION_WARN_PING_INTERVALS * this.opts.pingIntervalMs) return;
    if (this.isolationWarnedAt !== null && now - this.isolationWarnedAt < ISOLATION_LOG_REPEAT_MS) return;
    this.isolationWarnedAt = now;
    const nextRetry = this.dialer.nextPermanentRetry();
    this.log.warn("Cut off from every peer", {
      seconds: Math.round((now - since) / 1000),
      permanentTargets: this.dialer.permanentCount,
      knownAddresses: this.addressBook.size,
      dialling: this.dialer.dialingCount,
      handshaking: this.table.handshakingCount,
      nextRetryInSeconds: Number.isFinite(nextRetry)
        ? Math.max(0, Math.round((nextRetry - now) / 1000))
        : null,
      networkActive: this.lifecycle.active,
    });
  }

  /** What we put in Hello: the external address, else the bound listen address. */
  private advertisedAddress(): string {
    if (this.opts.externalAddress) return this.opts.externalAddress;
    if (this.listener) return formatAddress(this.listener.host, this.listener.port);
    return this.modules.local.listenAddr();
  }

  private async saveIfDirty(): Promise<void> {
    try {
      const jobs: Array<Promise<void>> = [];
      const now = this.modules.clock.now();
      if (this.addressBook.dirty && now - this.bookSavedAt >= this.opts.addressBookSaveIntervalMs) {
        this.bookSavedAt = now;
        jobs.push(this.addressBook.save());
      }
      if (this.banManager.dirty) jobs.push(this.banManager.save());
      await Promise.all(jobs);
    } catch (e) {
      this.log.warn("Saving peer state failed", {}, e);
    }
  }
}
