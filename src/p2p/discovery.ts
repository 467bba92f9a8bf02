/**
 * Address discovery for PeerManager: GetPeers to every new peer and periodically to a random
 * one, the answer to a peer's GetPeers, the Peers it sends (into the address book), and the
 * one-hop relay of a new node's address to the other peers, all within our send budgets.
 */
import type { TimerHandle } from "../util/clock.js";
import { isDialableIp, parseIpAddress, type AddressBook } from "./addressBook.js";
import type { CollaboratorModules, DiscoveryFns } from "./interface.js";
import { MAX_PEERS_PER_MESSAGE, MsgType, type PeerAddress } from "./messages.js";
import type { PeerManagerOptions } from "./options.js";
import type { Peer } from "./peer.js";
import type { PeerEntry, PeerTable } from "./peerTable.js";

/** Retry period for relays held back by the send budget. */
const RELAY_RETRY_MS = 1_000;

export interface DiscoveryModules extends CollaboratorModules {
  opts: PeerManagerOptions;
  table: PeerTable;
  addressBook: AddressBook;
  /** Our node id (addresses claiming it are not ours to dial). */
  localId: Buffer;
  fns: DiscoveryFns;
}

/** GetPeers/Peers and the relay of addresses (see the file comment). */
export class Discovery {
  private readonly opts: PeerManagerOptions;
  private readonly table: PeerTable;
  private readonly addressBook: AddressBook;
  private readonly log: CollaboratorModules["log"];
  private relayTimer: TimerHandle | null = null;

  constructor(private readonly modules: DiscoveryModules) {
    this.opts = modules.opts;
    this.table = modules.table;
    this.addressBook = modules.addressBook;
    this.log = modules.log;
  }

  stop(): void {
    this.relayTimer?.cancel();
  }

  /**
   * A peer was announced: ask it for addresses, and tell the others about its listen address
   * when that is news (`isNew`).
   */
  onReady(entry: PeerEntry, isNew: boolean, services: number, now: number): void {
    const { peer, listen } = entry;
    if (entry.getPeersBudget.take(now)) peer.send({ type: MsgType.GetPeers });
    if (isNew && listen) {
      this.queueRelay({ nodeId: peer.nodeId, address: listen.key, services, lastSeen: now }, peer);
    }
  }

  /** A ready peer asked for peers: it is owed an answer, sent now or when the budget allows. */
  onGetPeers(peer: Peer, entry: PeerEntry): void {
    entry.owesPeers = true;
    this.flushPeers(peer, entry);
    if (entry.owesPeers) this.scheduleRelayFlush(RELAY_RETRY_MS);
  }

  onPeers(peer: Peer, entries: PeerAddress[]): void {
    let garbage = 0;
    let accepted = 0;
    for (const e of entries) {
      const p = parseIpAddress(e.address);
      if (!p) {
        garbage++;
        continue;
      }
      if (
        !isDialableIp(p.host) ||
        e.nodeId.equals(this.modules.localId) ||
        this.modules.fns.isOwnAddress(p.key)
      )
        continue;
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
    if (accepted > 0) this.modules.fns.scheduleSoonTick();
  }

  /** What we tell a peer that asks: our ready peers' listen addresses, then good book entries. */
  private peersAnswer(to: Peer): PeerAddress[] {
    const now = this.modules.clock.now();
    const out: PeerAddress[] = [];
    const seen = new Set<string>();
    const toEntry = this.table.get(to);
    if (toEntry?.listen) seen.add(toEntry.listen.key);
    for (const p of this.table.readyPeers()) {
      if (p === to) continue;
      const l = this.table.get(p)?.listen;
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
    for (const p of this.table.readyPeers()) {
      if (p === except) continue;
      const m = this.table.get(p);
      if (!m || m.relay.size >= MAX_PEERS_PER_MESSAGE) continue;
      m.relay.set(entry.address, entry);
    }
    this.scheduleRelayFlush(this.opts.relayDelayMs);
  }

  private scheduleRelayFlush(ms: number): void {
    if (this.relayTimer || this.modules.lifecycle.stopping) return;
    this.relayTimer = this.modules.clock.setTimeout(() => {
      this.relayTimer = null;
      let pending = false;
      for (const p of this.table.readyPeers()) {
        const m = this.table.get(p);
        if (!m) continue;
        this.flushPeers(p, m);
        if (m.owesPeers || m.relay.size > 0) pending = true;
      }
      if (pending) this.scheduleRelayFlush(RELAY_RETRY_MS);
    }, ms);
  }

  /** Our addresses to a peer about to be turned away (no slot), if our budget allows. */
  sendAddresses(peer: Peer): void {
    const entry = this.table.get(peer);
    if (!entry) return;
    entry.owesPeers = true;
    this.flushPeers(entry.peer, entry);
    entry.owesPeers = false;
  }

  /** Sends what a peer is owed (an answer and/or relays) in one Peers, if our budget allows. */
  private flushPeers(peer: Peer, entry: PeerEntry): void {
    if (!entry.owesPeers && entry.relay.size === 0) return;
    if (!entry.peersBudget.take(this.modules.clock.now())) return;
    const entries = entry.owesPeers ? this.peersAnswer(peer) : [];
    const have = new Set(entries.map((e) => e.address));
    for (const e of entry.relay.values()) {
      if (entries.length >= MAX_PEERS_PER_MESSAGE) break;
      if (!have.has(e.address)) entries.push(e);
    }
    entry.owesPeers = false;
    entry.relay.clear();
    peer.send({ type: MsgType.Peers, peers: entries });
  }

  /** Every discoveryIntervalMs: GetPeers to one random peer that our budget allows. */
  tick(): void {
    const lifecycle = this.modules.lifecycle;
    if (lifecycle.stopping || !lifecycle.active || this.table.readyCount === 0) return;
    try {
      const now = this.modules.clock.now();
      const peers = this.modules.fns.shuffle([...this.table.readyPeers()]);
      for (const p of peers) {
        if (this.table.get(p)?.getPeersBudget.take(now)) {
          p.send({ type: MsgType.GetPeers });
          return;
        }
      }
    } catch (e) {
      this.log.error("Discovery tick failed", {}, e);
    }
  }
}
