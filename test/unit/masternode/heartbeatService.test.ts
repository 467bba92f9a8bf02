// HeartbeatService on a ManualClock over a fake network: the schedule, seq, the announcement
// budget, relay decisions and penalties. The loopback tests (heartbeatNetwork.test.ts) run it
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
import { heartbeatHash, signAttestation } from "../../../src/masternode/livenessMessages.js";
import { MsgType, type Message } from "../../../src/p2p/messages.js";
import type { Peer } from "../../../src/p2p/peer.js";
import { rateLimitsFor } from "../../../src/p2p/rateLimits.js";
import { TokenBucket } from "../../../src/util/tokenBucket.js";
import { ManualClock } from "../../../src/util/clock.js";
import { heartbeat, livenessRig, opKey, opKeys } from "./helpers.js";

interface FakePeer {
  addr: string;
  nodeId: Buffer;
  nodeIdHex: string;
  operatorPubkey: Buffer | null;
  state: "ready" | "closed";
  sent: Message[];
  known: Set<string>;
  send(m: Message): void;
  markKnown(h: Buffer): void;
  knows(h: Buffer): boolean;
  request(): Promise<never>;
}

function fakePeer(i: number, operator: KeyPair | null = null): FakePeer {
  const nodeId = KeyPair.fromSeed(Buffer.alloc(32, 100 + i)).publicKey;
  return {
    addr: `127.0.5.${i}:1`,
    nodeId,
    nodeIdHex: nodeId.toString("hex"),
    operatorPubkey: operator?.publicKey ?? null,
    state: "ready",
    sent: [],
    known: new Set(),
    send(m) {
      this.sent.push(m);
    },
    markKnown(h) {
      this.known.add(h.toString("hex"));
    },
    knows(h) {
      return this.known.has(h.toString("hex"));
    },
    request: () => Promise.reject(new Error("fake peers serve no lists")),
  };
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

  it("relays a new heartbeat once to the peers not known to have it, and attests it", () => {
    const rig = livenessRig(keys, me);
    const from = fakePeer(1);
    const other = fakePeer(2);
    const knowing = fakePeer(3);
    const net = new FakeNetwork([from, other, knowing]);
    const svc = service(rig.liveness, rig.clock, net, me);
    const hb = heartbeat(b, rig.clock);
    knowing.markKnown(heartbeatHash(hb));
    assert.equal(svc.handle(asPeer(from), { type: MsgType.Heartbeat, ...hb }), true);
    assert.equal(ofType(from, MsgType.Heartbeat).length, 0, "never echoed to its sender");
    assert.equal(ofType(other, MsgType.Heartbeat).length, 1);
    assert.equal(ofType(knowing, MsgType.Heartbeat).length, 0);
    // Our attestation goes to everyone (none of them has it yet).
    for (const p of [from, other, knowing]) {
      const atts = ofType(p, MsgType.Attestation);
      assert.equal(atts.length, 1);
      const att = atts[0]!;
      assert.ok(att.type === MsgType.Attestation && att.witnessPubkey.equals(me.publicKey));
    }
    assert.equal(rig.liveness.rowFor(b.publicKey, "devnet")?.witnesses, 1);
    // The same heartbeat again, from another peer: nothing more goes out, and no penalty.
    svc.handle(asPeer(other), { type: MsgType.Heartbeat, ...hb });
    assert.equal(ofType(other, MsgType.Heartbeat).length, 1);
    assert.equal(ofType(from, MsgType.Attestation).length, 1);
    assert.deepEqual(net.penalties, []);
    // A new attestation by c is relayed once to the peers that did not send it.
    const att = signAttestation(c, {
      heartbeatHash: heartbeatHash(hb),
      operatorPubkey: b.publicKey,
      seq: hb.seq,
      timestamp: rig.clock.now(),
    });
    svc.handle(asPeer(other), { type: MsgType.Attestation, ...att });
    svc.handle(asPeer(knowing), { type: MsgType.Attestation, ...att });
    assert.equal(ofType(other, MsgType.Attestation).length, 1);
    assert.equal(ofType(from, MsgType.Attestation).length, 2);
    assert.equal(ofType(knowing, MsgType.Attestation).length, 2);
    assert.equal(rig.liveness.rowFor(b.publicKey, "devnet")?.witnesses, 2);
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
