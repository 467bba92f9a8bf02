/**
 * The outbound side of PeerManager: the dial loop, dials and their backoff, the permanent
 * targets (bootstrap, addnode, registered masternode addresses; their table is
 * permanentTargets.ts) and the addresses the manager has learned about (node id per address,
 * our own addresses, operator hold-offs), with the backoff resets when connectivity comes back
 * or a link proves stable or stalls.
 */
import { isIP, isIPv4 } from "node:net";
import { checkHostPort } from "../config/hostPort.js";
import { BoundedMap } from "../util/boundedMap.js";
import type { TimerHandle } from "../util/clock.js";
import type { Random } from "../util/random.js";
import {
  formatAddress,
  isDialableIp,
  isUnspecifiedHost,
  parseDialable,
  parseIpAddress,
  type AddressBook,
  type ParsedAddress,
} from "./addressBook.js";
import type { BanManager } from "./banManager.js";
import { PeerManagerError } from "./errors.js";
import type { CollaboratorModules, DialerFns, DialTarget } from "./interface.js";
import { GoodbyeReason } from "./messages.js";
import { netgroupsOf } from "./netgroup.js";
import type { BackoffPolicy, PeerManagerOptions } from "./options.js";
import type { Peer } from "./peer.js";
import { readyAtOf, type PeerEntry, type PeerTable } from "./peerTable.js";
import { MAX_PERMANENT_TARGETS, PermanentTargets } from "./permanentTargets.js";
import type { Transport } from "./transport.js";

// Sizes of the dialer's own tables. Each is keyed by something a remote can vary, so each is bounded.
/** Addresses whose node id we learned in a handshake. */
const MAX_ADDR_NODE_IDS = 10_000;
/** Addresses found to be our own. */
const MAX_SELF_ADDRS = 64;
/** Delay before an extra dial-loop tick when new addresses arrive or a peer leaves. */
const SOON_TICK_MS = 20;
/**
 * Connectivity coming back resets the redial backoff. "Coming back" is a new contact (an inbound
 * connection, a successful dial) after at least this many ping intervals (and 5 s) without one,
 * or while the node has no peer at all. On a healthy network contacts come and go without
 * resetting anything, so an address that is really dead keeps its long backoff.
 */
const CONNECTIVITY_GAP_PING_INTERVALS = 2;
const MIN_CONNECTIVITY_GAP_MS = 5_000;

/** Shuffles `a` in place (Fisher–Yates with the injected Random) and returns it. */
export function shuffle<T>(a: T[], random: Random): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = random.int(i + 1);
    const tmp = a[i] as T;
    a[i] = a[j] as T;
    a[j] = tmp;
  }
  return a;
}

export interface DialerModules extends CollaboratorModules {
  opts: PeerManagerOptions;
  table: PeerTable;
  addressBook: AddressBook;
  banManager: BanManager;
  transport: Transport;
  random: Random;
  fns: DialerFns;
}

/** The dial loop and address state of PeerManager (see the file comment). */
export class Dialer {
  private readonly opts: PeerManagerOptions;
  private readonly table: PeerTable;
  private readonly addressBook: AddressBook;
  private readonly log: CollaboratorModules["log"];
  private readonly fns: DialerFns;
  /** Addresses with a transport dial in flight. */
  private readonly dialing = new Set<string>();
  private readonly permanent: PermanentTargets;
  private readonly addrToNode = new BoundedMap<string, string>(MAX_ADDR_NODE_IDS);
  private readonly selfAddrs = new BoundedMap<string, true>(MAX_SELF_ADDRS);
  /** Addresses an operator disconnected: not dialled before the time stored (epoch ms). */
  private readonly heldOff = new BoundedMap<string, number>(MAX_PERMANENT_TARGETS);
  private soonTimer: TimerHandle | null = null;
  /** Monotonic time of the last new contact (inbound connection or successful dial). */
  private lastContactAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly modules: DialerModules) {
    this.opts = modules.opts;
    this.table = modules.table;
    this.addressBook = modules.addressBook;
    this.log = modules.log;
    this.fns = modules.fns;
    this.permanent = new PermanentTargets(modules.log);
  }

  /** Outbound dials whose TCP connect is still in flight. */
  get dialingCount(): number {
    return this.dialing.size;
  }

  get permanentCount(): number {
    return this.permanent.size;
  }

  /** The earliest retry time of the permanent targets (epoch ms), Infinity when there are none. */
  nextPermanentRetry(): number {
    return this.permanent.nextRetry();
  }

  stop(): void {
    this.soonTimer?.cancel();
  }

  // --- operator API ----------------------------------------------------------------------

  /** Makes the config's bootstrap peers permanent targets (at start). */
  addBootstrapPeers(): void {
    for (const b of this.opts.bootstrapPeers) {
      if (!this.permanent.add(b, "bootstrap")) this.log.warn("Ignoring a bad bootstrap peer", { peer: b });
    }
  }

  /** PeerManager.addNode: see there. */
  addNode(addr: string, command: "add" | "remove" | "onetry"): void {
    const hp = checkHostPort(addr);
    if (!hp.ok) throw new PeerManagerError("INVALID_ADDRESS", `bad address ${addr}: ${hp.problem}`);
    const key = formatAddress(hp.value.host, hp.value.port);
    if (command === "add") {
      if (this.permanent.get(key)?.sources.has("addnode")) {
        throw new PeerManagerError("ALREADY_ADDED", `${key} was already added`);
      }
      this.permanent.add(key, "addnode");
      this.scheduleSoonTick();
    } else if (command === "remove") {
      const t = this.permanent.get(key);
      if (!t?.sources.has("addnode")) throw new PeerManagerError("NOT_ADDED", `${key} has not been added`);
      t.sources.delete("addnode");
      if (t.sources.size === 0) this.permanent.delete(key);
    } else {
      const lifecycle = this.modules.lifecycle;
      if (!lifecycle.started || lifecycle.stopping)
        throw new PeerManagerError("NOT_STARTED", "the network is not running");
      if (!lifecycle.active) throw new PeerManagerError("NETWORK_DISABLED", "the network is disabled");
      if (this.isConnectedAddress(key) || this.dialing.has(key)) return;
      this.dial({ key, host: hp.value.host, port: hp.value.port, oneTry: true });
    }
  }

  /** PeerManager.setMasternodeAddresses: see there. */
  setMasternodeAddresses(addrs: string[]): void {
    this.permanent.setMasternodeAddresses(addrs);
    this.scheduleSoonTick();
  }

  /** The network was enabled again: every permanent target is due at once. */
  retryPermanentNow(): void {
    for (const t of this.permanent.values()) t.retryAt = 0;
  }

  // --- a peer's life ---------------------------------------------------------------------

  /**
   * A handshake finished: sets the entry's dialable listen address and records the node id of
   * that address and of the dialled one. Returns the listen address.
   */
  learnAddresses(entry: PeerEntry): ParsedAddress | null {
    const id = entry.peer.nodeIdHex;
    const listen = this.dialableListenAddr(entry);
    entry.listen = listen;
    if (entry.target) this.addrToNode.set(entry.target.key, id);
    if (listen) this.addrToNode.set(listen.key, id);
    return listen;
  }

  /**
   * An admitted peer's addresses go into the address book as connected. Returns whether its
   * listen address is news (not in the book, or under another node id).
   */
  recordConnected(entry: PeerEntry, masternode: boolean): boolean {
    const { peer, target, listen } = entry;
    const id = peer.nodeIdHex;
    const services = peer.hello?.services ?? 0;
    let isNew = false;
    if (listen) {
      const before = this.addressBook.get(listen.key);
      isNew = !before || before.nodeId !== id;
      if (this.addressBook.add({ address: listen.key, nodeId: id, services, source: "handshake" })) {
        this.addressBook.markConnected(listen.key, { nodeId: id, services, masternode });
      }
    }
    if (target) {
      const key = target.key;
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
    return isNew;
  }

  /** A connection ended (its entry already left the table): backoff resets, hold-offs, redials. */
  afterClosed(entry: PeerEntry, e: { reason: GoodbyeReason; message: string; byUs: boolean }): void {
    const { peer, listen, target } = entry;
    const { reason, byUs } = e;
    const lifecycle = this.modules.lifecycle;
    // A link that lasted proves its addresses good: their backoff starts over.
    const readyAt = readyAtOf(entry.phase);
    const stable = readyAt > 0 && this.modules.clock.now() - readyAt >= this.opts.stableConnectionMs;
    if (stable) {
      for (const key of [listen?.key, target?.key]) {
        if (key === undefined) continue;
        this.addressBook.resetFailures(key);
        const t = this.permanent.get(key);
        if (t) t.failures = 0;
      }
    }
    // A stalled link is replaced at once: redial its addresses now, whichever side dialled. If
    // the route is still black-holed the dial fails and the backoff takes over.
    if (reason === GoodbyeReason.STALLED && !lifecycle.stopping) {
      for (const key of [listen?.key, target?.key]) {
        const t = key === undefined ? undefined : this.permanent.get(key);
        if (t) t.retryAt = 0;
        if (key !== undefined && this.addressBook.get(key)) this.addressBook.resetFailures(key);
      }
      this.log.info("Link stalled; redialling", {
        peer: peer.addr,
        nodeId: peer.nodeIdHex.slice(0, 16),
        detail: e.message,
      });
    } else if (reason === GoodbyeReason.MANUAL_DISCONNECT) {
      if (listen) this.holdOff(listen.key);
      if (target) this.holdOff(target.key);
    } else if (target && !lifecycle.stopping) {
      this.afterOutboundClosed(target, peer, reason, byUs);
    }
    if (!lifecycle.stopping) this.scheduleSoonTick();
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
    if (this.fns.isMasternodePeer(peer)) this.markMasternodeAddr(key);
    this.recordFailure(key);
  }

  /**
   * A new contact. When it ends a gap (CONNECTIVITY_GAP_PING_INTERVALS without one),
   * connectivity has come back: every permanent target and every address that once worked is
   * redialled at once, from a fresh backoff. `justDialled` keeps its own backoff: whether it
   * works is decided by its handshake, and a node that accepts TCP and then refuses us must not
   * be redialled in a loop.
   */
  connectivityReturned(justDialled?: string): void {
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

  // --- dialling --------------------------------------------------------------------------

  scheduleSoonTick(): void {
    const lifecycle = this.modules.lifecycle;
    if (this.soonTimer || lifecycle.stopping || !lifecycle.started) return;
    this.soonTimer = this.modules.clock.setTimeout(() => {
      this.soonTimer = null;
      this.tick();
    }, SOON_TICK_MS);
  }

  /**
   * Fills free outbound slots: permanent targets first, then the address book. Below the
   * masternode link floor, registered masternodes are dialled even when the outbound slots are
   * full (up to the floor's shortfall), so the floor never waits for an ordinary peer to leave.
   */
  tick(): void {
    const lifecycle = this.modules.lifecycle;
    if (!lifecycle.started || lifecycle.stopping || !lifecycle.active) return;
    try {
      this.fns.checkIsolation();
      let outboundInUse = this.dialing.size;
      for (const p of this.table.all()) if (p.direction === "outbound") outboundInUse++;
      const total = this.table.readyCount + this.table.handshakingCount + this.dialing.size;
      const shortfall = Math.max(0, this.fns.masternodeLinkFloor() - this.fns.masternodeLinks());
      const slots = Math.min(
        this.opts.maxOutbound - outboundInUse,
        this.opts.maxPeers - total,
        this.opts.maxDialsPerTick,
      );
      // A masternode fills its slots with masternodes first; a full node dials them only up to
      // its floor, and fills the rest from the address book.
      const mnSlots = Math.min(
        this.opts.masternodesFillOutbound ? Math.max(slots, shortfall) : shortfall,
        this.opts.maxDialsPerTick,
      );
      if (Math.max(slots, mnSlots) <= 0) return;
      const now = this.modules.clock.now();
      const busy = this.busyAddresses();
      const chosen: DialTarget[] = [];
      // Masternode targets first (up to mnSlots), then the other permanent targets; in random
      // order within each: in registry order, every full node dialled the same first few
      // masternodes, filled their ordinary slots and was refused (of 100 masternodes, a handful
      // held 50 full nodes each and the rest none, in a 400-node simulation).
      const permanent = shuffle([...this.permanent.values()], this.modules.random).sort(
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
        const candidates = shuffle(
          this.addressBook
            .entries()
            .filter(
              (e) =>
                !this.permanent.has(e.address) &&
                e.retryAt <= now &&
                e.failures < this.backoffPolicy(e.address).maxAttempts &&
                this.mayDial(e.address, e.host, busy),
            ),
          this.modules.random,
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
    for (const [p, m] of this.table.list())
      if (p.direction === "outbound") add(m.target?.key, m.target?.host ?? p.ip);
    for (const key of this.dialing) {
      const a = parseIpAddress(key);
      if (a) add(key, a.host);
    }
    return out;
  }

  private dial(target: DialTarget): void {
    this.dialing.add(target.key);
    const localHost = this.dialLocalHost(target.host);
    this.log.debug("Dialling", { address: target.key, localHost });
    const lifecycle = this.modules.lifecycle;
    this.modules.transport
      .dial(target.host, target.port, {
        timeoutMs: this.opts.dialTimeoutMs,
        ...(localHost ? { localHost } : {}),
      })
      .then(
        (conn) => {
          this.dialing.delete(target.key);
          if (lifecycle.stopping || !lifecycle.active) {
            conn.destroy();
            return;
          }
          this.connectivityReturned(target.key);
          this.fns.attach(conn, "outbound", target);
        },
        (err: unknown) => {
          this.dialing.delete(target.key);
          this.log.debug("Dial failed", {
            address: target.key,
            error: err instanceof Error ? err.message : String(err),
          });
          if (!target.oneTry && !lifecycle.stopping) this.recordFailure(target.key);
        },
      )
      .catch((e: unknown) => {
        this.dialing.delete(target.key);
        this.log.error("Handling a dial result failed", { address: target.key }, e);
      });
  }

  /** Our listen IP, when it is a specific one of the target's family, so peers see our own IP. */
  private dialLocalHost(targetHost: string): string | undefined {
    const host = this.fns.bound()?.host ?? this.opts.listen?.host;
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
    if (isIP(host) !== 0 && !this.fns.isWhitelistedIp(host) && this.modules.banManager.isBanned(host))
      return false;
    const id = this.addrToNode.get(key);
    if (id !== undefined && !this.fns.isWhitelistedId(id) && this.modules.banManager.isBanned(id))
      return false;
    return !this.isConnectedAddress(key);
  }

  /** The address's node id (learned in a handshake) is connected. */
  private isConnectedAddress(key: string): boolean {
    const id = this.addrToNode.get(key);
    return id !== undefined && this.table.hasReady(id);
  }

  /** Addresses with a connection or dial in flight: connection addresses, targets, listen addresses. */
  private busyAddresses(): Set<string> {
    const busy = new Set<string>(this.dialing);
    for (const [p, m] of this.table.list()) {
      busy.add(p.addr);
      if (m.target) busy.add(m.target.key);
      if (m.listen) busy.add(m.listen.key);
    }
    return busy;
  }

  // --- backoff ---------------------------------------------------------------------------

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
      this.permanent.isMasternodeAddress(key) ||
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

  // --- addresses -------------------------------------------------------------------------

  /** The address is one of ours: found to reach ourselves, the bound listen address, or the external one. */
  isOwnAddress(key: string): boolean {
    if (this.selfAddrs.has(key)) return true;
    const bound = this.fns.bound();
    if (bound && key === formatAddress(bound.host, bound.port)) return true;
    return this.opts.externalAddress !== undefined && key === this.opts.externalAddress;
  }

  /** `ip` is the host of a registered masternode's service address. */
  isMasternodeIp(ip: string): boolean {
    return this.permanent.isMasternodeIp(ip);
  }

  /**
   * The address a peer can be dialled at: for an outbound peer, the one we dialled; otherwise its
   * Hello listen address, with an unspecified host (0.0.0.0, ::) replaced by the connection's IP.
   */
  private dialableListenAddr(entry: PeerEntry): ParsedAddress | null {
    const peer = entry.peer;
    if (entry.target) {
      const t = parseDialable(entry.target.key);
      if (t) return t;
    }
    const p = parseIpAddress(peer.hello?.listenAddr ?? "");
    if (!p) return null;
    if (isUnspecifiedHost(p.host)) return parseDialable(formatAddress(peer.ip, p.port));
    return isDialableIp(p.host) ? p : null;
  }

  private isWhitelistedAddress(key: string): boolean {
    const p = parseIpAddress(key);
    if (p && this.fns.isWhitelistedIp(p.host)) return true;
    const id = this.addrToNode.get(key);
    return id !== undefined && this.fns.isWhitelistedId(id);
  }
}
