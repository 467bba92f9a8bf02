// HeartbeatService on a ManualClock over a fake network: the schedule, seq, the announcement
// budget, relay decisions (masternodes relay to masternode peers; full nodes relay nothing and
// poll the list instead) and penalties. The loopback tests (heartbeatNetwork.test.ts) run it
// over real PeerManagers.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { KeyPair } from "../../../src/crypto/ed25519.js";
import { createMemoryLogger } from "../../../src/logging/index.js";
import {
  HeartbeatService,
  VERDICT_PENALTY,
  type HeartbeatNetwork,
} from "../../../src/masternode/heartbeatService.js";
import type { MasternodeLiveness } from "../../../src/masternode/liveness.js";
import { attestationHash, heartbeatHash, signAttestation } from "../../../src/masternode/livenessMessages.js";
import { encodeHeartbeat, MsgType, type Message } from "../../../src/p2p/messages.js";
import type { Peer } from "../../../src/p2p/peer.js";
import { rateLimitsFor } from "../../../src/p2p/rateLimits.js";
import { TokenBucket } from "../../../src/util/tokenBucket.js";
import { ManualClock } from "../../../src/util/clock.js";
import { SeededRandom } from "../../../src/util/random.js";
import { fakePeer, heartbeat, livenessRig, opKey, opKeys, type FakePeer } from "./helpers.js";

/** Every hash announced to `p` by LivenessInv, in order. */
function invHashes(p: FakePeer): string[] {
  return p.sent.flatMap((m) =>
    m.type === MsgType.LivenessInv ? m.hashes.map((h) => h.toString("hex")) : [],
  );
}

function scores(net: { penalties: Array<{ score: number }> }): number[] {
  return net.penalties.map((p) => p.score);
}

class FakeNetwork implements HeartbeatNetwork {
  readonly penalties: Array<{ peer: string; score: number; reason: string; evidence?: string }> = [];
  constructor(readonly list: FakePeer[]) {}
  broadcast(msg: Message, filter?: (p: Peer) => boolean): number {
    let n = 0;
    for (const p of this.list) {
      if (p.state !== "ready" || (filter && !filter(p as unknown as Peer))) continue;
      p.send(msg);
      n++;
    }
    return n;
  }
  peers(): Peer[] {
    return this.list as unknown as Peer[];
  }
  misbehaving(peer: Peer, score: number, reason: string, evidence?: string): void {
    this.penalties.push({ peer: peer.addr, score, reason, ...(evidence !== undefined ? { evidence } : {}) });
  }
}

function service(
  liveness: MasternodeLiveness,
  clock: ManualClock,
  network: FakeNetwork,
  operatorKey: KeyPair | null,
  opts = { heartbeatIntervalMs: 1_000, announceIntervalMs: 30_000 },
): HeartbeatService {
  return new HeartbeatService(opts, {
    clock,
    random: new SeededRandom(1),
    logger: createMemoryLogger({ level: "debug" }),
    liveness,
    network,
    operatorKey,
    nodeId: Buffer.alloc(32, 0xee),
    serviceAddress: () => "127.0.5.200:24200",
    tip: () => ({ height: 3, hash: Buffer.alloc(32, 3) }),
  });
}

const asPeer = (p: FakePeer): Peer => p as unknown as Peer;
const ofType = (p: FakePeer, t: MsgType): Message[] => p.sent.filter((m) => m.type === t);
/** Lets the promise chains of settled requests run (in-flight counts drop in their `finally`). */
const settle = (): Promise<void> => new Promise((r) => setImmediate(r));
/** GetMnList requests made of `p`. */
const listRequests = (p: FakePeer): number => p.requested.filter((m) => m.type === MsgType.GetMnList).length;

describe("HeartbeatService: as a masternode", () => {
  const keys = opKeys("svc", 3);
  const [me, b, c] = keys as [KeyPair, KeyPair, KeyPair];

  it("heartbeats at once and every interval, with a seq that only grows, also across a restart", () => {
    const rig = livenessRig(keys, me);
    const peers = [fakePeer(1), fakePeer(2)];
    const net = new FakeNetwork(peers);
    const svc = service(rig.liveness, rig.clock, net, me);
    svc.start();
    assert.equal(rig.liveness.activeCount(), 1, "counts itself at once");
    rig.clock.advance(3_000);
    const seqs = ofType(peers[0]!, MsgType.Heartbeat).map((m) => (m.type === MsgType.Heartbeat ? m.seq : -1));
    assert.equal(seqs.length, 4);
    for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i]! > seqs[i - 1]!);
    assert.ok(seqs[0]! >= rig.clock.now() - 3_000, "seq starts from the clock");
    svc.stop();
    // A restart with the clock stepped back: seq still moves past everything seen from us.
    const last = seqs.at(-1)!;
    rig.clock.set(rig.clock.now() - 10_000);
    const again = service(rig.liveness, rig.clock, net, me);
    again.sendHeartbeat();
    const m = ofType(peers[0]!, MsgType.Heartbeat).at(-1);
    assert.ok(m?.type === MsgType.Heartbeat && m.seq > last);
  });

  it("does not heartbeat or announce while its key is not registered", () => {
    const rig = livenessRig([b, c], me);
    const peer = fakePeer(1);
    const svc = service(rig.liveness, rig.clock, new FakeNetwork([peer]), me);
    svc.start();
    svc.onPeerReady(asPeer(peer));
    rig.clock.advance(60_000);
    assert.deepEqual(peer.sent, []);
    svc.stop();
  });

  it("announces on connect and then periodically, never faster than the receiver's 3/min", () => {
    const rig = livenessRig(keys, me);
    const peers = [fakePeer(1)];
    const net = new FakeNetwork(peers);
    const svc = service(rig.liveness, rig.clock, net, me, {
      heartbeatIntervalMs: 1_000,
      announceIntervalMs: 30_000,
    });
    svc.start();
    const [rate, burst] = rateLimitsFor(2_000)[MsgType.MnAnnounce]!;
    const receiver = new TokenBucket(rate, burst, rig.clock.now());
    let checked = 0;
    const drain = (): void => {
      for (const m of ofType(peers[0]!, MsgType.MnAnnounce).slice(checked)) {
        assert.ok(receiver.take(rig.clock.now()), "announcement over the receiver's limit");
        assert.ok(m.type === MsgType.MnAnnounce && m.address === "127.0.5.200:24200");
        checked++;
      }
    };
    // Connect just before the periodic tick, and reconnect-like extra onPeerReady calls.
    rig.clock.advance(29_999);
    svc.onPeerReady(asPeer(peers[0]!));
    drain();
    for (let s = 0; s < 600; s++) {
      rig.clock.advance(1_000);
      drain();
    }
    assert.ok(checked >= 20 && checked <= 22, `about one per 30 s, got ${checked}`);
    svc.stop();
  });

  it("refuses an interval under 30 s (it would trip the receiver's limit)", () => {
    const rig = livenessRig(keys, me);
    const peer = fakePeer(1);
    const svc = service(rig.liveness, rig.clock, new FakeNetwork([peer]), me, {
      heartbeatIntervalMs: 1_000,
      announceIntervalMs: 1_000,
    });
    svc.start();
    rig.clock.advance(60_000);
    assert.ok(ofType(peer, MsgType.MnAnnounce).length <= 2);
    svc.stop();
  });

  it("relays a new heartbeat by inventory to the masternode peers not known to have it, serves it, and attests it to masternode peers only", () => {
    const rig = livenessRig(keys, me);
    // Masternode peers (their operator keys registered), a full node, and a peer that proved an
    // operator key nobody registered: the last two hear of nothing.
    const from = fakePeer(1, b);
    const other = fakePeer(2, c);
    const knowing = fakePeer(3, b);
    const full = fakePeer(4);
    const unregistered = fakePeer(5, opKey("svc-stranger", 9));
    const net = new FakeNetwork([from, other, knowing, full, unregistered]);
    const svc = service(rig.liveness, rig.clock, net, me);
    const hb = heartbeat(b, rig.clock);
    const hash = heartbeatHash(hb);
    knowing.markKnown(hash);
    assert.equal(svc.handle(asPeer(from), { type: MsgType.Heartbeat, ...hb }), true);
    assert.equal(rig.liveness.rowFor(b.publicKey, "devnet")?.witnesses, 1, "we attested it");
    const mine = attestationHash(
      signAttestation(me, {
        heartbeatHash: hash,
        operatorPubkey: b.publicKey,
        seq: hb.seq,
        timestamp: rig.clock.now(),
      }),
    );
    // Everything waits for the trickle, then goes out as hashes, once per masternode peer: the
    // heartbeat to those without it, our attestation to all of them (sent at once, it could
    // overtake the heartbeat).
    assert.deepEqual(invHashes(other), [], "nothing before the trickle");
    svc.relay.flush();
    svc.relay.flush();
    assert.deepEqual(invHashes(from), [mine.toString("hex")], "the heartbeat never goes back to its sender");
    assert.deepEqual(invHashes(knowing), [mine.toString("hex")]);
    assert.deepEqual(invHashes(other), [hash.toString("hex"), mine.toString("hex")]);
    assert.deepEqual(full.sent, [], "a full-node peer is told of neither");
    assert.deepEqual(unregistered.sent, [], "nor a peer whose operator key is not registered");
    assert.equal(ofType(other, MsgType.Heartbeat).length + ofType(other, MsgType.Attestation).length, 0);
    // Asked for it, we send its exact bytes; an unknown hash is skipped.
    svc.handle(asPeer(other), { type: MsgType.GetLiveness, hashes: [hash, Buffer.alloc(32, 9)] });
    const batch = ofType(other, MsgType.LivenessBatch)[0]!;
    assert.ok(batch.type === MsgType.LivenessBatch);
    assert.deepEqual(batch.heartbeats, [encodeHeartbeat(hb)]);
    assert.deepEqual(batch.attestations, []);
    // The same heartbeat again, from another peer: nothing more goes out, and no penalty.
    svc.handle(asPeer(other), { type: MsgType.Heartbeat, ...hb });
    svc.relay.flush();
    assert.equal(invHashes(other).length, 2);
    assert.deepEqual(net.penalties, []);
    // A new attestation by c counts, and goes no further: attestations travel one hop.
    const att = signAttestation(c, {
      heartbeatHash: hash,
      operatorPubkey: b.publicKey,
      seq: hb.seq,
      timestamp: rig.clock.now(),
    });
    svc.handle(asPeer(other), { type: MsgType.Attestation, ...att });
    svc.handle(asPeer(knowing), { type: MsgType.Attestation, ...att });
    svc.relay.flush();
    assert.equal(invHashes(other).length, 2);
    assert.equal(invHashes(knowing).length, 1);
    assert.deepEqual(invHashes(from), [mine.toString("hex")]);
    assert.deepEqual(full.sent, []);
    assert.equal(rig.liveness.rowFor(b.publicKey, "devnet")?.witnesses, 2);
  });

  it("asks an announcer only for hashes it lacks and nobody is sending; a batch counts as the messages in it", () => {
    const rig = livenessRig(keys, me);
    const p1 = fakePeer(1);
    const p2 = fakePeer(2);
    const net = new FakeNetwork([p1, p2]);
    const svc = service(rig.liveness, rig.clock, net, me);
    const unknown = Buffer.alloc(32, 7);
    svc.handle(asPeer(p1), { type: MsgType.LivenessInv, hashes: [unknown] });
    svc.handle(asPeer(p2), { type: MsgType.LivenessInv, hashes: [unknown] });
    assert.equal(ofType(p1, MsgType.GetLiveness).length, 1);
    assert.equal(ofType(p2, MsgType.GetLiveness).length, 0, "already asked p1");
    rig.clock.advance(5_001);
    svc.handle(asPeer(p2), { type: MsgType.LivenessInv, hashes: [unknown] });
    assert.equal(ofType(p2, MsgType.GetLiveness).length, 1, "p1 never answered: ask the next announcer");
    const hb = heartbeat(b, rig.clock);
    const hash = heartbeatHash(hb);
    svc.handle(asPeer(p2), {
      type: MsgType.LivenessBatch,
      heartbeats: [encodeHeartbeat(hb)],
      attestations: [],
    });
    assert.equal(rig.liveness.rowFor(b.publicKey, "devnet")?.status, "active");
    svc.handle(asPeer(p1), { type: MsgType.LivenessInv, hashes: [hash] });
    assert.equal(ofType(p1, MsgType.GetLiveness).length, 1, "held now: not asked again");
    assert.deepEqual(net.penalties, []);
    // A malformed item in a batch is proof against its sender.
    svc.handle(asPeer(p1), { type: MsgType.LivenessBatch, heartbeats: [Buffer.alloc(10)], attestations: [] });
    assert.deepEqual(scores(net), [100]);
  });

  it("penalises only proof (a forged signature, with the heartbeat as evidence); stale, replayed, unknown and future gossip cost nothing", () => {
    const rig = livenessRig(keys, me);
    const peer = fakePeer(1);
    const net = new FakeNetwork([peer]);
    const svc = service(rig.liveness, rig.clock, net, me);
    const stranger = opKey("svc-stranger", 0);
    const now = rig.clock.now();
    svc.handle(asPeer(peer), { type: MsgType.Heartbeat, ...heartbeat(stranger, rig.clock) });
    svc.handle(asPeer(peer), {
      type: MsgType.Heartbeat,
      ...heartbeat(stranger, rig.clock),
      operatorPubkey: b.publicKey,
    });
    svc.handle(asPeer(peer), { type: MsgType.Heartbeat, ...heartbeat(b, rig.clock, { seq: now + 10 }) });
    svc.handle(asPeer(peer), { type: MsgType.Heartbeat, ...heartbeat(b, rig.clock, { seq: now + 5 }) });
    svc.handle(asPeer(peer), {
      type: MsgType.Heartbeat,
      ...heartbeat(c, rig.clock, { timestamp: now + 60_000 }),
    });
    svc.handle(asPeer(peer), {
      type: MsgType.Heartbeat,
      ...heartbeat(c, rig.clock, { timestamp: now - 60_000 }),
    });
    assert.deepEqual(
      net.penalties.map((p) => [p.score, p.reason]),
      [[100, "heartbeat bad-signature"]],
    );
    assert.match(
      net.penalties[0]!.evidence ?? "",
      /^heartbeat [0-9a-f]{64} of [0-9a-f]{64} seq \d+ .*signature [0-9a-f]{128}$/,
    );
    for (const v of [
      "stale",
      "duplicate",
      "replay",
      "unknown-operator",
      "future",
      "invalid",
      "mismatch",
    ] as const)
      assert.equal(VERDICT_PENALTY[v], 0, v);
  });

  it("answers GetMnList with its snapshot, and takes an MnList through the same checks", () => {
    const rig = livenessRig(keys, me);
    const peer = fakePeer(1);
    const net = new FakeNetwork([peer]);
    const svc = service(rig.liveness, rig.clock, net, me);
    svc.start();
    svc.handle(asPeer(peer), { type: MsgType.Heartbeat, ...heartbeat(b, rig.clock) });
    svc.handle(asPeer(peer), { type: MsgType.GetMnList, reqId: 77 });
    const list = ofType(peer, MsgType.MnList)[0];
    assert.ok(list?.type === MsgType.MnList);
    assert.equal(list.reqId, 77);
    assert.equal(list.heartbeats.length, 2, "ours and b's");
    assert.equal(list.announces.length, 1, "ours (made when announcing)");
    svc.stop();

    // A newcomer takes that list; a forged entry in it costs the sender 100.
    const fresh = livenessRig(keys, null, undefined, rig.clock);
    const announced: string[] = [];
    const newcomer = new HeartbeatService(
      { heartbeatIntervalMs: 1_000, announceIntervalMs: 30_000 },
      {
        clock: rig.clock,
        random: new SeededRandom(2),
        logger: createMemoryLogger({ level: "info" }),
        liveness: fresh.liveness,
        network: net,
        operatorKey: null,
        nodeId: Buffer.alloc(32, 1),
        serviceAddress: () => "",
        tip: () => ({ height: 0, hash: Buffer.alloc(32) }),
        onAnnounced: (address) => announced.push(address),
      },
    );
    const forged = { ...heartbeat(opKey("svc-stranger", 1), rig.clock), operatorPubkey: c.publicKey };
    newcomer.onMnList(asPeer(peer), { ...list, heartbeats: [...list.heartbeats, forged] });
    assert.equal(fresh.liveness.activeCount(), 2);
    assert.deepEqual(announced, ["127.0.5.200:24200"]);
    assert.deepEqual(
      net.penalties.map((p) => p.score),
      [100],
    );
  });
});

describe("HeartbeatService: our announcement in list answers", () => {
  const keys = opKeys("svc-ann", 2);
  const me = keys[0]!;

  it("is signed once per half announce interval, not once per answer; the announce tick signs anew", () => {
    const rig = livenessRig(keys, me);
    const peer = fakePeer(1);
    const svc = service(rig.liveness, rig.clock, new FakeNetwork([peer]), me);
    svc.start();
    const served = (): Buffer => {
      svc.handle(asPeer(peer), { type: MsgType.GetMnList, reqId: 1 });
      const list = ofType(peer, MsgType.MnList).at(-1);
      assert.ok(list?.type === MsgType.MnList && list.announces.length === 1);
      return list.announces[0]!.signature;
    };
    const first = served();
    rig.clock.advance(5_000);
    assert.ok(served().equals(first), "an answer 5 s later repeats the announcement");
    rig.clock.advance(10_000);
    const second = served();
    assert.ok(!second.equals(first), "15 s (half of 30 s) after it, an answer signs a fresh one");
    // Each answer's receivers check a new announcement's signature; a repeat costs them a hash.
    const receiver = livenessRig(keys, null, undefined, rig.clock).liveness;
    const ann = ofType(peer, MsgType.MnList).at(-1)!;
    assert.ok(ann.type === MsgType.MnList);
    assert.equal(receiver.onAnnounce(ann.announces[0]!).verdict, "new");
    assert.equal(receiver.onAnnounce(ann.announces[0]!).verdict, "duplicate");
    rig.clock.advance(1_000);
    const before = ofType(peer, MsgType.MnAnnounce).length;
    svc.sendAnnouncements();
    const ticked = ofType(peer, MsgType.MnAnnounce).slice(before);
    assert.equal(ticked.length, 1);
    assert.ok(ticked[0]!.type === MsgType.MnAnnounce && !ticked[0]!.signature.equals(second));
    svc.stop();
  });
});

describe("HeartbeatService: as a full node", () => {
  const keys = opKeys("svc-full", 3);
  const [b, c] = keys as [KeyPair, KeyPair, KeyPair];
  const H = 1_000;
  const WINDOW = 5 * H;

  it("accepts a new heartbeat and relays nothing: no inventory, no attestation, nothing pooled", () => {
    // A node without an operator key, and one whose key is not registered: both full nodes here.
    for (const operatorKey of [null, opKey("svc-full-unregistered", 0)]) {
      const rig = livenessRig(keys, operatorKey);
      const from = fakePeer(1, b);
      const masternode = fakePeer(2, c);
      const full = fakePeer(3);
      const svc = service(rig.liveness, rig.clock, new FakeNetwork([from, masternode, full]), operatorKey);
      const hb = heartbeat(b, rig.clock);
      svc.handle(asPeer(from), { type: MsgType.Heartbeat, ...hb });
      assert.equal(rig.liveness.rowFor(b.publicKey, "devnet")?.status, "active", "accepted");
      assert.equal(svc.stats.verdicts.get("heartbeat:new"), 1);
      for (let i = 0; i < 5; i++) svc.relay.flush();
      for (const p of [from, masternode, full]) assert.deepEqual(p.sent, [], `${p.addr} is sent nothing`);
      assert.equal(svc.relay.sizes.pool, 0, "nothing pooled: nobody is told it could ask");
      svc.handle(asPeer(masternode), { type: MsgType.GetLiveness, hashes: [heartbeatHash(hb)] });
      assert.deepEqual(masternode.sent, [], "so nothing is served");
    }
  });

  it("polls one peer for the list every half window, a masternode peer first, and stops on stop()", async () => {
    const rig = livenessRig(keys, null);
    const mns = [fakePeer(1, b), fakePeer(2, c)];
    const others = [fakePeer(3), fakePeer(4), fakePeer(5)];
    const svc = service(rig.liveness, rig.clock, new FakeNetwork([...mns, ...others]), null);
    assert.equal(svc.pollIntervalMs, WINDOW / 2);
    svc.start();
    const polls = (): number => [...mns, ...others].reduce((n, p) => n + listRequests(p), 0);
    rig.clock.advance(WINDOW / 2 - 1);
    await settle();
    assert.equal(polls(), 0, "nothing before half a window");
    rig.clock.advance(1);
    await settle();
    assert.equal(polls(), 1, "one poll at half a window");
    // Four windows: one poll each half window, always of a masternode peer (each has budget for
    // these 8), and the draw is random: both are asked.
    for (let i = 2; i <= 8; i++) {
      rig.clock.advance(WINDOW / 2);
      await settle();
      assert.equal(polls(), i, `poll ${i}`);
    }
    assert.deepEqual(
      others.map(listRequests),
      [0, 0, 0],
      "full-node peers are not asked while a masternode peer can be",
    );
    assert.ok(
      mns.every((p) => listRequests(p) > 0),
      "the masternode peer is drawn at random",
    );
    svc.stop();
    rig.clock.advance(10 * WINDOW);
    await settle();
    assert.equal(polls(), 8, "no poll after stop()");
  });

  it("keeps at most 2 requests in flight, and never asks one peer faster than it accepts", async () => {
    const rig = livenessRig(keys, null);
    const hanging = fakePeer(1, b);
    // Never answered: the requests stay in flight.
    hanging.request = function (make) {
      this.requested.push(make(this.requested.length + 1));
      return new Promise<never>(() => {});
    };
    const svc = service(rig.liveness, rig.clock, new FakeNetwork([hanging]), null);
    svc.start();
    rig.clock.advance(10 * WINDOW);
    await settle();
    assert.equal(listRequests(hanging), 2, "MAX_LIST_REQUESTS_IN_FLIGHT");
    svc.stop();

    // One peer alone, answering at once (by failing): polls every half window would be 24 a
    // minute at H = 1 s; the peer takes 5 a minute (burst 5) and scores a flood past that.
    const lone = fakePeer(2, c);
    const svc2 = service(
      livenessRig(keys, null, undefined, rig.clock).liveness,
      rig.clock,
      new FakeNetwork([lone]),
      null,
    );
    svc2.start();
    const [rate, burst] = rateLimitsFor(2_000)[MsgType.GetMnList]!;
    const receiver = new TokenBucket(rate, burst, rig.clock.now());
    let checked = 0;
    for (let t = 0; t < 10 * 60_000; t += WINDOW / 2) {
      rig.clock.advance(WINDOW / 2);
      await settle();
      for (; checked < listRequests(lone); checked++) {
        assert.ok(receiver.take(rig.clock.now()), "a GetMnList over the receiver's limit");
      }
    }
    assert.ok(checked >= 40, `about 4 a minute, got ${checked}`);
    svc2.stop();
  });

  it("a registered masternode never polls (gossip keeps its view)", async () => {
    const rig = livenessRig(keys, b);
    const peer = fakePeer(1, c);
    const svc = service(rig.liveness, rig.clock, new FakeNetwork([peer]), b);
    svc.start();
    rig.clock.advance(10 * WINDOW);
    await settle();
    assert.equal(listRequests(peer), 0);
    svc.stop();
  });
});
