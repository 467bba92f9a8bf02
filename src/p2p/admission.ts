/**
 * Who may connect and who stays: the inbound gate (bans, the connection rate, the per-IP limit,
 * the handshake slots and their per-IP and per-netgroup shares), the admission of a peer whose
 * handshake finished (bans, one connection per node id with its tie-break, the peer limits,
 * reserved masternode slots, netgroup limits, eviction), the whitelist and blacklist, and the
 * peer policy for misbehaviour. PeerManager delegates to it; it reads the peer table and never
 * changes a phase.
 */
import { isIP } from "node:net";
import { checkHostPort } from "../config/hostPort.js";
import { BoundedMap } from "../util/boundedMap.js";
import { TokenBucket } from "../util/tokenBucket.js";
import { formatAddress } from "./addressBook.js";
import { banSubject, type BanManager } from "./banManager.js";
import { PROOF_SCORE } from "./constants.js";
import { PeerManagerError } from "./errors.js";
import { encodeFrame } from "./frame.js";
import type { AdmissionFns, CollaboratorModules, DedupView, PeerManagerModules } from "./interface.js";
import { encodeMessage, goodbyeReasonName, GoodbyeReason, MsgType } from "./messages.js";
import { netgroupsOf } from "./netgroup.js";
import type { PeerManagerOptions } from "./options.js";
import type { LocalInfo, MisbehaviourKind, Peer } from "./peer.js";
import type { PeerEntry, PeerTable } from "./peerTable.js";
import type { Connection } from "./transport.js";

/** Per-IP buckets for the inbound connection rate. */
const MAX_RATE_BUCKETS = 10_000;
/** Whitelist entries. */
const MAX_WHITELIST = 10_000;
/** Distinct reasons in the disconnect and ban counters. */
const MAX_COUNTER_KEYS = 64;

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

/** Counts one more `key` (at most MAX_COUNTER_KEYS distinct keys; the rest go to "other"). */
export function increment(map: Map<string, number>, key: string): void {
  const k = map.has(key) || map.size < MAX_COUNTER_KEYS ? key : "other";
  map.set(k, (map.get(k) ?? 0) + 1);
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

export interface AdmissionModules extends CollaboratorModules {
  opts: PeerManagerOptions;
  table: PeerTable;
  banManager: BanManager;
  local: LocalInfo;
  /** The on-chain masternode registry, as PeerManager's modules give it. */
  registry: Pick<PeerManagerModules, "isRegisteredMasternode" | "registeredMasternodeCount">;
  /** PeerManager's public counters: closed connections per Goodbye reason, bans per reason. */
  counters: { disconnects: Map<string, number>; bans: Map<string, number> };
  fns: AdmissionFns;
}

/** The peer is admitted: whether it is whitelisted, and the ready peer it replaces, if any. */
export interface Admitted {
  whitelisted: boolean;
  existing: Peer | undefined;
}

/** The admission and peer policy of PeerManager (see the file comment). */
export class Admission {
  private readonly opts: PeerManagerOptions;
  private readonly table: PeerTable;
  private readonly banManager: BanManager;
  private readonly log: CollaboratorModules["log"];
  private readonly localId: Buffer;
  private readonly whitelistIps = new Set<string>();
  private readonly whitelistIds = new Set<string>();
  private readonly inboundRate = new BoundedMap<string, TokenBucket>(MAX_RATE_BUCKETS);

  constructor(private readonly modules: AdmissionModules) {
    this.opts = modules.opts;
    this.table = modules.table;
    this.banManager = modules.banManager;
    this.log = modules.log;
    this.localId = modules.local.nodeKey.publicKey;
    for (const w of this.opts.whitelist) {
      if (!this.addWhitelistEntry(w)) this.log.warn("Ignoring a bad whitelist entry", { entry: w });
    }
  }

  // --- inbound ---------------------------------------------------------------------------

  /** A new inbound connection: refused at once, or attached for its handshake. */
  onInbound(conn: Connection): void {
    const lifecycle = this.modules.lifecycle;
    try {
      const ip = conn.remoteHost;
      if (lifecycle.stopping) return this.refuse(conn, GoodbyeReason.SHUTDOWN, "node shutting down");
      if (!lifecycle.active) return this.refuse(conn, GoodbyeReason.NETWORK_DISABLED, "network disabled");
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
        for (const p of this.table.all()) if (p.direction === "inbound" && p.ip === ip) fromIp++;
        if (fromIp >= this.opts.maxConnectionsPerIp) {
          return this.refuse(
            conn,
            GoodbyeReason.TOO_MANY_FROM_IP,
            `at most ${this.opts.maxConnectionsPerIp} per IP`,
          );
        }
      }
      // Connectivity is back (or never left): whatever we were waiting to redial is worth a try.
      this.modules.fns.connectivityReturned();
      const slot = this.handshakeSlotRefusal(ip, whitelisted);
      if (slot) return this.refuse(conn, GoodbyeReason.TOO_MANY_PEERS, slot);
      // Inbound slots full: a masternode may still be let in at its handshake (it may evict an
      // ordinary peer, or the limits stretch below the masternode floor), so only refuse when
      // even that cannot happen: no ordinary inbound peer to evict and the floor is met.
      const counts = this.table.connectionCounts();
      if (
        (counts.inbound >= this.opts.maxInbound || this.table.readyCount >= this.opts.maxPeers) &&
        this.evictionCandidate() === null &&
        this.masternodeLinks() >= this.masternodeLinkFloor()
      ) {
        return this.refuse(conn, GoodbyeReason.TOO_MANY_PEERS, "inbound slots are full");
      }
      this.modules.fns.attach(conn, "inbound", null);
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
    const inbound = this.table.handshaking().filter((p) => p.direction === "inbound");
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

  /** Turns a connection away before any handshake: a Goodbye, then close. */
  private refuse(conn: Connection, reason: GoodbyeReason, message: string): void {
    increment(this.modules.counters.disconnects, goodbyeReasonName(reason));
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

  // --- a finished handshake --------------------------------------------------------------

  /**
   * Admits a peer whose handshake finished, or closes it (banned, a duplicate that loses the
   * tie-break, no slot) and returns null. An admitted peer may replace `existing`, the ready
   * peer with the same node id, which the caller closes once the new one holds the index.
   */
  admit(entry: PeerEntry): Admitted | null {
    const peer = entry.peer;
    const id = peer.nodeIdHex;
    const whitelisted = this.isWhitelisted(peer);
    if (!whitelisted && (this.banManager.isBanned(id) || this.banManager.isBanned(peer.ip))) {
      peer.close(GoodbyeReason.BANNED, "banned");
      return null;
    }
    const existing = this.table.readyPeer(id);
    if (existing) {
      const em = this.table.get(existing);
      const keep =
        !em ||
        keepIncoming(
          this.localId,
          { direction: existing.direction, remoteId: existing.nodeId, seq: em.seq },
          { direction: peer.direction, remoteId: peer.nodeId, seq: entry.seq },
        );
      if (!keep) {
        peer.close(GoodbyeReason.DUPLICATE_CONNECTION, "already connected to this node");
        return null;
      }
    } else {
      const refusal = this.slotRefusal(peer);
      if (refusal) {
        // A node that dialled us and finds us full gets addresses to dial instead. Without them
        // it knew no one else, so it came back here (every new node dials the same few bootstrap
        // nodes): 26,000 refused handshakes while 1,000 simulated nodes booted.
        if (refusal.reason === GoodbyeReason.TOO_MANY_PEERS && peer.direction === "inbound")
          this.modules.fns.sendAddresses(peer);
        peer.close(refusal.reason, refusal.message);
        return null;
      }
    }
    return { whitelisted, existing };
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
    const counts = this.table.connectionCounts();
    const overTotal = this.table.readyCount >= this.opts.maxPeers;
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
    for (const p of this.table.readyPeers())
      if (p.direction === "inbound" && !this.isPrivileged(p)) ordinary++;
    const ordinarySlots = Math.max(0, this.opts.maxInbound - this.opts.reservedMasternodeSlots);
    if (ordinary >= ordinarySlots)
      return full(`ordinary inbound slots are full (${ordinarySlots}); the rest are kept for masternodes`);
    const groups = netgroupsOf(peer.ip);
    if (!groups.local) {
      let narrow = 0;
      let wide = 0;
      for (const p of this.table.readyPeers()) {
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
    for (const p of this.table.readyPeers()) {
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
        const rank: [number, number] = [list.length, this.table.get(p)?.seq ?? 0];
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

  // --- who a peer is ---------------------------------------------------------------------

  /** Ready links to distinct registered masternodes (proven in the handshake). */
  masternodeLinks(): number {
    let n = 0;
    for (const p of this.table.readyPeers()) if (this.isMasternodePeer(p)) n++;
    return n;
  }

  /** The link floor k in force: masternodeLinkFloor, or every other registered masternode when fewer. */
  masternodeLinkFloor(): number {
    const registered = this.modules.registry.registeredMasternodeCount?.() ?? this.opts.masternodeLinkFloor;
    return Math.max(0, Math.min(this.opts.masternodeLinkFloor, registered));
  }

  /** Proved an operator key that the on-chain registry accepts. */
  isMasternodePeer(peer: Peer): boolean {
    const registry = this.modules.registry;
    if (!peer.operatorPubkey || !registry.isRegisteredMasternode) return false;
    try {
      return registry.isRegisteredMasternode(peer.operatorPubkey);
    } catch (e) {
      this.log.error("isRegisteredMasternode threw", {}, e);
      return false;
    }
  }

  /** Masternodes and whitelisted peers: reserved inbound slots and more ping slack. */
  isPrivileged(peer: Peer): boolean {
    return this.isWhitelisted(peer) || this.isMasternodePeer(peer);
  }

  isWhitelisted(peer: Peer): boolean {
    return this.whitelistIps.has(peer.ip) || (peer.hello !== null && this.whitelistIds.has(peer.nodeIdHex));
  }

  isWhitelistedIp(ip: string): boolean {
    return this.whitelistIps.has(ip);
  }

  isWhitelistedId(nodeIdHex: string): boolean {
    return this.whitelistIds.has(nodeIdHex);
  }

  // --- whitelist, blacklist, bans --------------------------------------------------------

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

  private addWhitelistEntry(entry: string): boolean {
    const f = parseFilterEntry(entry);
    if (!f) return false;
    if (this.whitelistIps.size + this.whitelistIds.size >= MAX_WHITELIST) return false;
    const set = f.kind === "ip" ? this.whitelistIps : this.whitelistIds;
    if (set.has(f.value)) return false;
    set.add(f.value);
    return true;
  }

  /** Bans the config blacklist (at start, once the ban list is loaded). */
  applyBlacklist(): void {
    for (const b of this.opts.blacklist) {
      const f = parseFilterEntry(b);
      if (!f) {
        this.log.warn("Ignoring a bad blacklist entry", { entry: b });
        continue;
      }
      this.banManager.ban(f.value, null, "blacklisted in config", "config");
    }
  }

  /** PeerManager.setBan: see there. */
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
    increment(this.modules.counters.bans, "manual");
    this.disconnectSubject(f, GoodbyeReason.BANNED, "banned by the operator");
    return true;
  }

  /**
   * Applies the peer policy (docs/PROTOCOL.md "Misbehaviour and bans"):
   * - score >= PROOF_SCORE is proof: the IP is banned at once (10 min, 1 h, then 24 h), with the
   *   evidence kept; a whitelisted peer is only disconnected;
   * - a lower score is a soft offence (a request flood): it adds to the IP's flood score, whose
   *   threshold bans for 5 min without escalation, or only disconnects when the peer is a
   *   registered masternode or comes from a registered masternode's address.
   */
  onMisbehaviour(peer: Peer, kind: MisbehaviourKind, score: number, detail: string, evidence: string): void {
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
      const bans = this.modules.counters.bans;
      if (score >= PROOF_SCORE) {
        const ban = this.banManager.banForProof(peer.ip, { reason, evidence, nodeId });
        increment(bans, kind);
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
      const exempt = this.isMasternodePeer(peer) || this.modules.fns.isMasternodeIp(peer.ip);
      const r = this.banManager.addFloodScore(peer.ip, score, reason, { exempt, nodeId });
      this.log.debug("Peer flooded requests", { peer: peer.addr, kind, score, total: r.total, detail });
      if (!r.crossed) return;
      if (r.ban) {
        increment(bans, kind);
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
    for (const p of this.table.all()) {
      const match = f.kind === "ip" ? p.ip === f.value : p.hello !== null && p.nodeIdHex === f.value;
      if (match) p.close(reason, message);
    }
  }
}
