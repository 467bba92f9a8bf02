import type { KeyPair } from "../crypto/ed25519.js";
import type { Logger } from "../logging/index.js";
import { MAX_FRAME_PAYLOAD } from "../p2p/constants.js";
import {
  HEARTBEAT_SIZE,
  mnAnnounceSize,
  MsgType,
  type AttestationMsg,
  type GetMnListMsg,
  type HeartbeatMsg,
  type Message,
  type MnAnnounceMsg,
  type MnListMsg,
  type LivenessBatchMsg,
  decodeMessage,
  encodeAttestation,
  encodeHeartbeat,
} from "../p2p/messages.js";
import { CodecError } from "../codec/index.js";
import { ListPoller } from "./listPoller.js";
import { LivenessRelay, trickleIntervalMs } from "./livenessRelay.js";
import type { Peer } from "../p2p/peer.js";
import type { Clock, TimerHandle } from "../util/clock.js";
import type { Random } from "../util/random.js";
import type { LivenessVerdict, MasternodeLiveness } from "./liveness.js";
import {
  attestationHash,
  isDesignatedWitness,
  heartbeatHash,
  signAttestation,
  signHeartbeat,
} from "./livenessMessages.js";
import { OwnAnnouncement } from "./ownAnnouncement.js";

export interface HeartbeatServiceOptions {
  /** How often a masternode signs and broadcasts a heartbeat. */
  heartbeatIntervalMs: number;
  /**
   * How often a masternode re-sends its announcement to each peer. At least
   * MIN_ANNOUNCE_INTERVAL_MS (30 s): with the one sent on connect, that is at most 3 per minute
   * per peer, so it can never trip the receiver's limit of 3 per minute (rateLimits.ts).
   */
  announceIntervalMs: number;
}

/** The network as the service sees it: PeerManager fits this structurally. */
export interface HeartbeatNetwork {
  broadcast(msg: Message, filter?: (p: Peer) => boolean): number;
  peers(): Peer[];
  misbehaving(peer: Peer, score: number, reason: string, evidence?: string): void;
}

export interface HeartbeatServiceModules {
  clock: Clock;
  /** Picks the peer a full node polls for the masternode list. */
  random: Random;
  logger: Logger;
  liveness: MasternodeLiveness;
  network: HeartbeatNetwork;
  /** Our operator key when this node runs a masternode, else null. */
  operatorKey: KeyPair | null;
  /** Our node id (node key), which our announcement binds to the operator key. */
  nodeId: Buffer;
  /** "host:port" peers should dial; when unusable, the registered service address is announced. */
  serviceAddress: () => string;
  tip: () => { height: number; hash: Buffer };
  /** A masternode announced where it listens (new, verified): feed the address book. */
  onAnnounced?: (address: string, nodeId: Buffer) => void;
}

/** The receiver allows 3 announcements per minute; one on connect plus one per 30 s fits. */
export const MIN_ANNOUNCE_INTERVAL_MS = 30_000;

/**
 * Misbehaviour score per verdict. Only a forged signature is proof (100: a ban at once, with the
 * message as evidence). Everything else is what honest gossip looks like on a real network, and
 * costs nothing: a replay is a copy that lost a race against a fresher one (after a stall a link
 * delivers minutes of them at once), an unknown operator comes from a peer whose chain is a
 * block apart, a future timestamp from a skewed clock, a mismatched or invalid announcement from
 * an implementation that differs from ours. They are dropped, never relayed.
 */
export const VERDICT_PENALTY: Record<LivenessVerdict, number> = {
  new: 0,
  duplicate: 0,
  stale: 0,
  "unknown-heartbeat": 0,
  full: 0,
  "unknown-operator": 0,
  "bad-signature": 100,
  replay: 0,
  future: 0,
  invalid: 0,
  mismatch: 0,
};

/** MnList answers are trimmed to this many bytes so they always fit in one frame. */
const MN_LIST_BYTE_BUDGET = MAX_FRAME_PAYLOAD - 1_024;
/** At most this many GetMnList requests in flight at once. */
const MAX_LIST_REQUESTS_IN_FLIGHT = 2;
/** Lists wanted per liveness window: enough to fill a newcomer's view from independent peers. */
const LIST_ANSWERS_WANTED = 3;
/** How long to wait for an MnList. */
const LIST_TIMEOUT_MS = 30_000;

/** Counters for status and metrics. Keys are verdicts and message kinds: a fixed, small set. */
export interface HeartbeatStats {
  heartbeatsSent: number;
  attestationsSent: number;
  announcesSent: number;
  listsServed: number;
  listsReceived: number;
  /** "heartbeat:new", "attestation:duplicate", "announce:mismatch", … */
  verdicts: Map<string, number>;
}

type Kind = "heartbeat" | "attestation" | "announce" | "list";

/**
 * Liveness gossip over P2P. As a masternode it heartbeats every interval and announces itself to
 * each peer on connect and then every announce interval; it attests other masternodes'
 * heartbeats it is designated for (the witness lottery), and relays new heartbeats to its
 * masternode peers by inventory (LivenessRelay; attestations go one hop, from their witness).
 * For every node it checks incoming heartbeats, attestations and announcements through
 * MasternodeLiveness, penalises senders of bad evidence, and serves and asks for the masternode
 * list. A full node relays nothing: it keeps its view (display only) fresh by polling one peer
 * for the list every half liveness window (ListPoller).
 */
export class HeartbeatService {
  readonly stats: HeartbeatStats = {
    heartbeatsSent: 0,
    attestationsSent: 0,
    announcesSent: 0,
    listsServed: 0,
    listsReceived: 0,
    verdicts: new Map(),
  };
  private readonly announceIntervalMs: number;
  private timers: TimerHandle[] = [];
  private lastSeq = -1;
  /** When we last sent each peer our announcement (a WeakMap: it goes with the peer). */
  private readonly announcedTo = new WeakMap<Peer, number>();
  private listsInFlight = 0;
  /** Relays heartbeats and attestations by inventory (livenessRelay.ts). */
  readonly relay: LivenessRelay;
  /** Local times of recent MnList answers; at most LIST_ANSWERS_WANTED kept. */
  private listAnswers: number[] = [];
  /** A full node's polls for the list (listPoller.ts). */
  private readonly poller: ListPoller;
  /** Our own announcement, signed again only when due (ownAnnouncement.ts). */
  private readonly own: OwnAnnouncement;
  private started = false;

  constructor(
    private readonly opts: HeartbeatServiceOptions,
    private readonly modules: HeartbeatServiceModules,
  ) {
    this.announceIntervalMs = Math.max(MIN_ANNOUNCE_INTERVAL_MS, opts.announceIntervalMs);
    this.own = new OwnAnnouncement(this.announceIntervalMs, modules);
    this.relay = new LivenessRelay(trickleIntervalMs(opts.heartbeatIntervalMs), {
      clock: modules.clock,
      logger: modules.logger,
      network: modules.network,
      isMasternode: () => this.isMasternode(),
      isMasternodePeer: (p) => this.isMasternodePeer(p),
      has: (h) => modules.liveness.hasSeen(h),
    });
    this.poller = new ListPoller(modules.liveness.windowMs, {
      clock: modules.clock,
      random: modules.random,
      logger: modules.logger,
      peers: () => modules.network.peers(),
      isMasternode: () => this.isMasternode(),
      isMasternodePeer: (p) => this.isMasternodePeer(p),
      canRequest: () => this.listsInFlight < MAX_LIST_REQUESTS_IN_FLIGHT,
      request: (p) => this.requestList(p),
    });
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    const { clock } = this.modules;
    this.relay.start();
    this.timers.push(clock.setInterval(() => this.heartbeatTick(), this.opts.heartbeatIntervalMs));
    if (this.modules.operatorKey) {
      this.timers.push(clock.setInterval(() => this.announceTick(), this.announceIntervalMs));
    }
    this.poller.start();
    // Heartbeat at once, so this masternode counts itself active from the start.
    this.heartbeatTick();
  }

  stop(): void {
    this.relay.stop();
    this.poller.stop();
    for (const t of this.timers) t.cancel();
    this.timers = [];
    this.started = false;
  }

  /** How often a full node polls for the masternode list (ListPoller.intervalMs). */
  get pollIntervalMs(): number {
    return this.poller.intervalMs;
  }

  /** Sign and broadcast a heartbeat now (when we are a registered masternode). Returns whether it did. */
  sendHeartbeat(): boolean {
    const key = this.modules.operatorKey;
    const { liveness, network, clock } = this.modules;
    if (!key || !liveness.isRegistered(key.publicKey)) return false;
    const now = clock.now();
    // seq keeps increasing across restarts without stored state: it starts from the clock, and
    // never falls below anything already seen from us (an older run's heartbeat, say).
    const seq = Math.max(this.lastSeq + 1, now, liveness.lastSeq(key.publicKey) + 1);
    this.lastSeq = seq;
    const tip = this.modules.tip();
    const hb = signHeartbeat(key, { seq, timestamp: now, height: tip.height, tipHash: tip.hash });
    liveness.recordOwnHeartbeat(hb);
    const hash = heartbeatHash(hb);
    // Our own goes to every peer at once, full nodes included (a full node does not pass it on);
    // the pool lets masternodes that are not our peers fetch it by inventory from those that are.
    network.broadcast({ type: MsgType.Heartbeat, ...hb }, (p) => this.markFor(p, hash));
    this.relay.relay("heartbeat", hash, encodeHeartbeat(hb));
    this.stats.heartbeatsSent++;
    return true;
  }

  /** Send our announcement to every ready peer not announced to in the last half interval. */
  sendAnnouncements(): number {
    const ann = this.own.get(true);
    if (!ann) return 0;
    const now = this.modules.clock.now();
    let n = 0;
    for (const p of this.modules.network.peers()) {
      const last = this.announcedTo.get(p);
      if (last !== undefined && now - last < this.announceIntervalMs / 2) continue;
      if (this.sendAnnounce(p, ann)) n++;
    }
    return n;
  }

  /** A peer finished its handshake: announce ourselves to it, and ask it for the masternode list. */
  onPeerReady(peer: Peer): void {
    try {
      const ann = this.own.get();
      if (ann) this.sendAnnounce(peer, ann);
      if (this.wantList()) this.requestList(peer);
    } catch (e) {
      this.modules.logger.error("Liveness: handling a new peer failed", { peer: peer.addr }, e);
    }
  }

  /** Dispatches the liveness messages to their routes; returns false for any other type. */
  handle(peer: Peer, msg: Message): boolean {
    switch (msg.type) {
      case MsgType.Heartbeat:
        this.onHeartbeat(peer, msg);
        return true;
      case MsgType.Attestation:
        this.onAttestation(peer, msg);
        return true;
      case MsgType.MnAnnounce:
        this.onAnnounce(peer, msg);
        return true;
      case MsgType.GetMnList:
        this.onGetMnList(peer, msg);
        return true;
      case MsgType.LivenessInv:
        this.relay.onInv(peer, msg.hashes);
        return true;
      case MsgType.GetLiveness:
        this.relay.onGet(peer, msg.hashes);
        return true;
      case MsgType.LivenessBatch:
        this.onLivenessBatch(peer, msg);
        return true;
      default:
        return false;
    }
  }

  /**
   * The route for LivenessBatch: each item is checked as if it had come alone. An item that does
   * not decode is a malformed message: proof, as a malformed frame would be.
   */
  onLivenessBatch(peer: Peer, msg: LivenessBatchMsg): void {
    for (const [type, items] of [
      [MsgType.Heartbeat, msg.heartbeats],
      [MsgType.Attestation, msg.attestations],
    ] as const) {
      for (const bytes of items) {
        let item: Message;
        try {
          item = decodeMessage(type, bytes);
        } catch (e) {
          if (!(e instanceof CodecError)) throw e;
          this.modules.network.misbehaving(
            peer,
            100,
            `malformed ${MsgType[type]} in LivenessBatch: ${e.message}`,
            `LivenessBatch item ${bytes.subarray(0, 64).toString("hex")}`,
          );
          return;
        }
        if (item.type === MsgType.Heartbeat) this.onHeartbeat(peer, item);
        else if (item.type === MsgType.Attestation) this.onAttestation(peer, item);
      }
    }
  }

  /** The route for GetMnList: our latest announcements and heartbeats, within one frame. */
  onGetMnList(peer: Peer, msg: GetMnListMsg): void {
    this.serveList(peer, msg.reqId);
  }

  /** The route for Heartbeat. */
  onHeartbeat(peer: Peer, msg: HeartbeatMsg): void {
    const hash = heartbeatHash(msg);
    peer.markKnown(hash);
    const verdict = this.modules.liveness.onHeartbeat(msg, "gossip", hash);
    this.count("heartbeat", verdict);
    if (verdict !== "new") {
      this.penalise(peer, "heartbeat", verdict, () => heartbeatEvidence(msg, hash));
      return;
    }
    this.relay.relay("heartbeat", hash, encodeHeartbeat(msg), peer);
    this.attest(msg, hash);
  }

  /** The route for Attestation. */
  onAttestation(peer: Peer, msg: AttestationMsg): void {
    const hash = attestationHash(msg);
    peer.markKnown(hash);
    const verdict = this.modules.liveness.onAttestation(msg, hash);
    this.count("attestation", verdict);
    if (verdict !== "new") {
      this.penalise(
        peer,
        "attestation",
        verdict,
        () =>
          `attestation ${hash.toString("hex")} by ${msg.witnessPubkey.toString("hex")} of ${msg.operatorPubkey.toString("hex")} seq ${msg.seq}, signature ${msg.signature.toString("hex")}`,
      );
      return;
    }
    // Never relayed: an attestation goes one hop, from its witness to the witness's peers.
  }

  /** The route for MnAnnounce. */
  onAnnounce(peer: Peer, msg: MnAnnounceMsg): void {
    const r = this.modules.liveness.onAnnounce(msg, {
      operatorPubkey: peer.operatorPubkey,
      nodeId: peer.nodeId,
    });
    this.count("announce", r.verdict);
    if (r.verdict !== "new" || r.address === null || r.nodeId === null) {
      this.penalise(
        peer,
        "announce",
        r.verdict,
        () =>
          `announcement of ${msg.operatorPubkey.toString("hex")} at ${msg.address} time ${msg.timestamp}, signature ${msg.signature.toString("hex")}`,
      );
      return;
    }
    this.modules.logger.debug("Received masternode announcement", {
      peer: peer.addr,
      operator: msg.operatorPubkey.toString("hex").slice(0, 16),
      address: r.address,
    });
    this.announced(r.address, r.nodeId);
  }

  /**
   * The answer to our GetMnList (requestList). An MnList is history: every entry goes through the
   * same checks, without relay or attestation.
   */
  onMnList(peer: Peer, msg: MnListMsg): void {
    const { liveness } = this.modules;
    let forged = 0;
    let fresh = 0;
    let firstForged = "";
    for (const ann of msg.announces) {
      const r = liveness.onAnnounce(ann);
      this.count("list", r.verdict);
      if (r.verdict === "bad-signature" && forged++ === 0) {
        firstForged = `announcement of ${ann.operatorPubkey.toString("hex")} at ${ann.address}, signature ${ann.signature.toString("hex")}`;
      }
      if (r.verdict === "new" && r.address !== null && r.nodeId !== null) {
        fresh++;
        this.announced(r.address, r.nodeId);
      }
    }
    for (const hb of msg.heartbeats) {
      const v = liveness.onHeartbeat(hb, "list");
      this.count("list", v);
      if (v === "bad-signature" && forged++ === 0) firstForged = heartbeatEvidence(hb, heartbeatHash(hb));
      if (v === "new") fresh++;
    }
    this.stats.listsReceived++;
    // The sender's registry or timing may differ from ours, so unknown keys, replays and stale
    // entries are not held against it; only a forged signature is.
    if (forged > 0) {
      this.modules.network.misbehaving(
        peer,
        VERDICT_PENALTY["bad-signature"],
        `MnList: ${forged} forged entries`,
        `first forged entry: ${firstForged}`,
      );
    }
    this.modules.logger.debug("Masternode list received", {
      peer: peer.addr,
      announces: msg.announces.length,
      heartbeats: msg.heartbeats.length,
      fresh,
    });
  }

  private serveList(peer: Peer, reqId: number): void {
    // Our own announcement goes into the answer (a fresh one when due, recorded in the view).
    this.own.get();
    const snap = this.modules.liveness.snapshot();
    let budget = MN_LIST_BYTE_BUDGET;
    const heartbeats = [];
    for (const hb of snap.heartbeats) {
      if (budget < HEARTBEAT_SIZE) break;
      budget -= HEARTBEAT_SIZE;
      heartbeats.push(hb);
    }
    const announces = [];
    for (const a of snap.announces) {
      const size = mnAnnounceSize(a);
      if (budget < size) break;
      budget -= size;
      announces.push(a);
    }
    peer.send({ type: MsgType.MnList, reqId, announces, heartbeats });
    this.stats.listsServed++;
  }

  // --- outgoing --------------------------------------------------------------------------

  private heartbeatTick(): void {
    try {
      this.modules.liveness.prune();
      this.sendHeartbeat();
    } catch (e) {
      this.modules.logger.error("Liveness: heartbeat tick failed", {}, e);
    }
  }

  private announceTick(): void {
    try {
      this.sendAnnouncements();
    } catch (e) {
      this.modules.logger.error("Liveness: announce tick failed", {}, e);
    }
  }

  /** As a registered masternode, witness another masternode's new heartbeat. */
  private attest(hb: HeartbeatMsg, hash: Buffer): void {
    const key = this.modules.operatorKey;
    const { liveness, clock } = this.modules;
    if (!key || hb.operatorPubkey.equals(key.publicKey) || !liveness.isRegistered(key.publicKey)) return;
    if (!isDesignatedWitness(hash, key.publicKey, liveness.registeredCount())) return;
    const att = signAttestation(key, {
      heartbeatHash: hash,
      operatorPubkey: hb.operatorPubkey,
      seq: hb.seq,
      timestamp: clock.now(),
    });
    // Record our own witness first: it dedups the echoes, and a full heartbeat needs no more.
    if (liveness.onAttestation(att) !== "new") return;
    const attHash = attestationHash(att);
    // To our own masternode peers only, and by inventory: sent at once it could overtake the
    // heartbeat it attests, which travels by inventory, and a peer drops an attestation of a
    // heartbeat it does not hold (a full node rarely holds it: it polls the list). Relaying
    // attestations further cost every node two messages for each heartbeat, to feed nothing but
    // the `witnesses` column of masternodelist.
    this.relay.relay("attestation", attHash, encodeAttestation(att));
    this.stats.attestationsSent++;
  }

  private sendAnnounce(peer: Peer, ann: MnAnnounceMsg): boolean {
    if (peer.state !== "ready") return false;
    peer.send(ann);
    this.announcedTo.set(peer, this.modules.clock.now());
    this.stats.announcesSent++;
    return true;
  }

  /** Ask for the list while we have had fewer than LIST_ANSWERS_WANTED answers this window. */
  private wantList(): boolean {
    const since = this.modules.clock.now() - this.modules.liveness.windowMs;
    this.listAnswers = this.listAnswers.filter((t) => t >= since);
    return (
      this.listsInFlight < MAX_LIST_REQUESTS_IN_FLIGHT &&
      this.listAnswers.length + this.listsInFlight < LIST_ANSWERS_WANTED
    );
  }

  private requestList(peer: Peer): void {
    this.listsInFlight++;
    void peer
      .request((reqId) => ({ type: MsgType.GetMnList, reqId }), [MsgType.MnList], LIST_TIMEOUT_MS)
      .then((m) => {
        this.listAnswers.push(this.modules.clock.now());
        if (this.listAnswers.length > LIST_ANSWERS_WANTED) this.listAnswers.shift();
        this.onMnList(peer, m);
      })
      .catch((e: unknown) => {
        this.modules.logger.debug("Masternode list request failed", {
          peer: peer.addr,
          error: e instanceof Error ? e.message : String(e),
        });
      })
      .finally(() => {
        this.listsInFlight--;
      });
  }

  private announced(address: string, nodeId: Buffer): void {
    try {
      this.modules.onAnnounced?.(address, nodeId);
    } catch (e) {
      this.modules.logger.error("Liveness: onAnnounced hook failed", { address }, e);
    }
  }

  // --- helpers ---------------------------------------------------------------------------

  /** A registered masternode: it relays liveness gossip; any other node polls the list instead. */
  private isMasternode(): boolean {
    const key = this.modules.operatorKey;
    return key !== null && this.modules.liveness.isRegistered(key.publicKey);
  }

  /** A peer that proved, in its handshake, an operator key registered at our tip. */
  private isMasternodePeer(p: Peer): boolean {
    return p.operatorPubkey !== null && this.modules.liveness.isRegistered(p.operatorPubkey);
  }

  /** Broadcast filter: send to a peer only if it is not known to have `hash`, and remember it. */
  private markFor(p: Peer, hash: Buffer): boolean {
    if (p.knows(hash)) return false;
    p.markKnown(hash);
    return true;
  }

  private penalise(peer: Peer, kind: Kind, verdict: LivenessVerdict, evidence: () => string): void {
    const score = VERDICT_PENALTY[verdict];
    if (score > 0) this.modules.network.misbehaving(peer, score, `${kind} ${verdict}`, evidence());
  }

  private count(kind: Kind, verdict: LivenessVerdict): void {
    const key = `${kind}:${verdict}`;
    this.stats.verdicts.set(key, (this.stats.verdicts.get(key) ?? 0) + 1);
  }
}

/** A heartbeat as ban evidence: enough to re-check its signature against the registered key. */
function heartbeatEvidence(hb: HeartbeatMsg | Omit<HeartbeatMsg, "type">, hash: Buffer): string {
  return `heartbeat ${hash.toString("hex")} of ${hb.operatorPubkey.toString("hex")} seq ${hb.seq} time ${hb.timestamp} height ${hb.height}, signature ${hb.signature.toString("hex")}`;
}
