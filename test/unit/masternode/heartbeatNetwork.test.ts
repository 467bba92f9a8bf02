// HeartbeatService over real PeerManagers on a virtual network (one ManualClock per test):
// relay once per hop, attestations, spoofed and replayed heartbeats penalised, and a newcomer's
// view filled from one MnList.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { findByOperator, type Registry } from "../../../src/consensus/registry.js";
import { KeyPair } from "../../../src/crypto/ed25519.js";
import { HeartbeatService, type HeartbeatNetwork } from "../../../src/masternode/heartbeatService.js";
import { livenessOptions, MasternodeLiveness } from "../../../src/masternode/liveness.js";
import { attestationHash, heartbeatHash, signHeartbeat } from "../../../src/masternode/livenessMessages.js";
import { decodeMessage, MsgType, type Heartbeat, type Message } from "../../../src/p2p/messages.js";
import { MAX_TRICKLE_MS } from "../../../src/masternode/livenessRelay.js";
import { SeededRandom } from "../../../src/util/random.js";
import { stopAll, testKey, VirtualNet, type TestNode } from "../p2p/harness.js";
import { heartbeat, opKey, opKeys, registryOf } from "./helpers.js";

/** Long enough that no timer fires during a test: every heartbeat here is sent on purpose. */
const HEARTBEAT_MS = 60_000;
const ANNOUNCE_MS = 600_000;

interface Received {
  type: "heartbeat" | "attestation";
  hash: string;
  from: string;
}

interface MnNode {
  t: TestNode;
  liveness: MasternodeLiveness;
  service: HeartbeatService;
  operator: KeyPair | null;
  penalties: Array<{ peer: string; score: number; reason: string }>;
  received: Received[];
  announced: Array<{ address: string; nodeId: string }>;
}

const nodes: MnNode[] = [];
const plain: TestNode[] = [];

after(async () => {
  for (const n of nodes) n.service.stop();
  await stopAll([...nodes.map((n) => n.t), ...plain]);
});

async function mnNode(
  v: VirtualNet,
  host: string,
  registry: Registry,
  operator: KeyPair | null,
  extras: { key?: KeyPair; blacklist?: string[] } = {},
): Promise<MnNode> {
  const clock = v.clock;
  const t = await v.startNode(
    host,
    { blacklist: extras.blacklist ?? [] },
    {
      operatorKey: operator,
      isRegisteredMasternode: (pk) => findByOperator(registry, pk) !== undefined,
      ...(extras.key ? { key: extras.key } : {}),
    },
  );
  const liveness = new MasternodeLiveness(livenessOptions(HEARTBEAT_MS, ANNOUNCE_MS), {
    clock,
    logger: t.logger,
    registry: () => registry,
    selfOperator: operator?.publicKey ?? null,
  });
  const penalties: MnNode["penalties"] = [];
  const network: HeartbeatNetwork = {
    broadcast: (m, f) => t.pm.broadcast(m, f),
    peers: () => t.pm.peers(),
    misbehaving: (p, score, reason, evidence) => {
      penalties.push({ peer: p.nodeIdHex, score, reason });
      t.pm.misbehaving(p, score, reason, evidence);
    },
  };
  const announced: MnNode["announced"] = [];
  const service = new HeartbeatService(
    { heartbeatIntervalMs: HEARTBEAT_MS, announceIntervalMs: ANNOUNCE_MS },
    {
      clock,
      random: new SeededRandom(nodes.length + 1),
      logger: t.logger,
      liveness,
      network,
      operatorKey: operator,
      nodeId: t.key.publicKey,
      serviceAddress: () => t.addr,
      tip: () => t.tip,
      onAnnounced: (address, nodeId) => announced.push({ address, nodeId: nodeId.toString("hex") }),
    },
  );
  const received: Received[] = [];
  t.onMessage((peer, msg) => {
    // Counted whether it came alone or in a LivenessBatch (the relay by inventory).
    const items: Message[] =
      msg.type === MsgType.LivenessBatch
        ? [
            ...msg.heartbeats.map((b) => decodeMessage(MsgType.Heartbeat, b)),
            ...msg.attestations.map((b) => decodeMessage(MsgType.Attestation, b)),
          ]
        : [msg];
    for (const m of items) {
      if (m.type === MsgType.Heartbeat) {
        received.push({ type: "heartbeat", hash: heartbeatHash(m).toString("hex"), from: peer.nodeIdHex });
      } else if (m.type === MsgType.Attestation) {
        received.push({
          type: "attestation",
          hash: attestationHash(m).toString("hex"),
          from: peer.nodeIdHex,
        });
      }
    }
    service.handle(peer, msg);
  });
  t.pm.events.on("peerReady", (p) => service.onPeerReady(p));
  service.start();
  const n: MnNode = { t, liveness, service, operator, penalties, received, announced };
  nodes.push(n);
  return n;
}

const connected = (a: TestNode, b: TestNode): boolean => a.pm.getPeer(b.id) !== undefined;

function countBy(rs: Received[], type: Received["type"]): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of rs) if (r.type === type) m.set(r.hash, (m.get(r.hash) ?? 0) + 1);
  return m;
}

describe("HeartbeatService over PeerManagers on a virtual network", () => {
  it("relays a heartbeat A→B→C exactly once per hop, and masternodes attest it", async () => {
    const v = new VirtualNet(901);
    const ops = opKeys("net-line", 3);
    const [opA, opB, opC] = ops as [KeyPair, KeyPair, KeyPair];
    const registry = registryOf(ops);
    const keyA = testKey("heartbeat-net/a");
    const keyC = testKey("heartbeat-net/c");
    // A line: A and C refuse each other, so everything between them goes through B.
    const a = await mnNode(v, "10.50.0.1", registry, opA, {
      key: keyA,
      blacklist: [keyC.publicKey.toString("hex")],
    });
    const b = await mnNode(v, "10.50.0.2", registry, opB);
    const c = await mnNode(v, "10.50.0.3", registry, opC, {
      key: keyC,
      blacklist: [keyA.publicKey.toString("hex")],
    });
    b.t.pm.addNode(a.t.addr, "add");
    await v.until(
      () => a.liveness.activeCount() === 2 && b.liveness.activeCount() === 2,
      "A and B swap lists",
    );
    c.t.pm.addNode(b.t.addr, "add");
    await v.until(() => connected(a.t, b.t) && connected(b.t, c.t), "A–B and B–C linked");
    // The lists swapped on connect: B and C see all three; A has not heard of C yet.
    await v.until(
      () => b.liveness.activeCount() === 3 && c.liveness.activeCount() === 3,
      "B and C views filled from MnList",
    );
    assert.equal(a.liveness.activeCount(), 2, "A has not heard of C yet");
    assert.equal(connected(a.t, c.t), false, "A and C are not linked");

    for (const n of [a, b, c]) n.received.length = 0;
    assert.equal(a.service.sendHeartbeat(), true, "A sends a heartbeat");
    const seq = a.liveness.lastSeq(opA.publicKey);
    await v.until(() => c.liveness.lastSeq(opA.publicKey) === seq, "C has A's heartbeat");
    const witnesses = (n: MnNode): number => n.liveness.rowFor(opA.publicKey, "devnet")?.witnesses ?? 0;
    await v.until(
      () => witnesses(a) === 1 && witnesses(b) === 2 && witnesses(c) === 2,
      "each witness's attestation at its peers",
      // Two relays by inventory on the way to A: up to two trickle intervals each, plus requests.
      6 * MAX_TRICKLE_MS,
    );
    // Room for any extra copy to show up: several trickle intervals (relays go out by inventory
    // every trickle); the 60 s heartbeat timer stays far off, so no new heartbeat is sent meanwhile.
    await v.advance(5 * MAX_TRICKLE_MS);

    const hbs = (n: MnNode) => countBy(n.received, "heartbeat");
    assert.equal(hbs(a).size, 0, "B never echoes A's heartbeat back");
    assert.deepEqual([...hbs(b).values()], [1], "B gets A's heartbeat once");
    assert.deepEqual([...hbs(c).values()], [1], "C gets A's heartbeat once");
    assert.equal(b.received.find((r) => r.type === "heartbeat")?.from, a.t.id, "B has it from A");
    assert.equal(c.received.find((r) => r.type === "heartbeat")?.from, b.t.id, "C has it from B");
    // Attestations go one hop: A gets B's (not C's: C is not A's peer, and B does not relay
    // it); B gets C's; C gets B's. Each once.
    const atts = (n: MnNode) => countBy(n.received, "attestation");
    assert.equal(atts(a).size, 1, "A gets B's attestation only");
    assert.equal(atts(b).size, 1, "B gets C's attestation");
    assert.equal(atts(c).size, 1, "C gets B's attestation");
    for (const n of [a, b, c])
      assert.ok(
        [...atts(n).values()].every((v) => v === 1),
        "no attestation twice",
      );
    for (const n of [a, b, c]) assert.deepEqual(n.penalties, [], "nobody is penalised");

    // And C's heartbeat reaches A through B.
    c.service.sendHeartbeat();
    await v.until(() => a.liveness.activeCount() === 3, "A sees C through B");
  });

  it("a spoofed heartbeat (unregistered key) and a replay are dropped unscored; a forgery is proof and bans the sender", async () => {
    const v = new VirtualNet(902);
    const ops = opKeys("net-spoof", 2);
    const [opA, opB] = ops as [KeyPair, KeyPair];
    const registry = registryOf(ops);
    const a = await mnNode(v, "10.50.0.11", registry, opA);
    const b = await mnNode(v, "10.50.0.12", registry, opB);
    const rogue = await v.startNode("10.50.0.13");
    plain.push(rogue);
    const captured: Heartbeat[] = [];
    rogue.onMessage((peer, msg) => {
      // The rogue plays the relay protocol far enough to be sent heartbeats: it asks for them.
      if (msg.type === MsgType.LivenessInv) peer.send({ type: MsgType.GetLiveness, hashes: msg.hashes });
      if (msg.type === MsgType.LivenessBatch)
        for (const b of msg.heartbeats)
          captured.push(decodeMessage(MsgType.Heartbeat, b) as Heartbeat & Message);
    });
    b.t.pm.addNode(a.t.addr, "add");
    rogue.pm.addNode(a.t.addr, "add");
    await v.until(
      () => connected(a.t, b.t) && connected(a.t, rogue) && connected(rogue, a.t),
      "B and the rogue on A",
    );
    const toA = rogue.pm.getPeer(a.t.id)!;
    await v.until(() => a.liveness.activeCount() === 2, "A sees B");

    b.service.sendHeartbeat();
    const seqB = b.liveness.lastSeq(opB.publicKey);
    await v.until(
      () => captured.some((h) => h.seq === seqB),
      "the rogue got B's heartbeat through A",
      4 * MAX_TRICKLE_MS,
    );
    const real = captured.find((h) => h.seq === seqB)!;
    const stranger = opKey("net-spoof-stranger", 0);
    const now = v.clock.now();

    // An exact copy is a duplicate: relays cross all the time, so no penalty.
    toA.send({ type: MsgType.Heartbeat, ...real });
    // A key that is not registered.
    toA.send({
      type: MsgType.Heartbeat,
      ...signHeartbeat(stranger, { seq: now, timestamp: now, height: 0, tipHash: Buffer.alloc(32) }),
    });
    // A validly signed heartbeat of B's with an older seq than A accepted: a replay.
    const old = signHeartbeat(opB, {
      seq: seqB - 1_000,
      timestamp: now - 1_000,
      height: 0,
      tipHash: Buffer.alloc(32),
    });
    toA.send({ type: MsgType.Heartbeat, ...old });
    const fromRogue = () => a.penalties.filter((p) => p.peer === rogue.id);
    await v.until(
      () =>
        (a.service.stats.verdicts.get("heartbeat:unknown-operator") ?? 0) >= 1 &&
        (a.service.stats.verdicts.get("heartbeat:replay") ?? 0) >= 1,
      "both seen by A",
    );
    // A stale copy and an unknown key are what honest gossip looks like after a stall or across
    // a block of registry difference: dropped, never scored.
    assert.deepEqual(fromRogue(), [], "the rogue is not penalised");
    assert.equal(a.t.pm.banManager.score("10.50.0.13"), 0, "the rogue's IP is not scored");
    assert.equal(a.liveness.lastSeq(opB.publicKey), seqB, "B's state untouched");
    assert.equal(a.liveness.isActive(stranger.publicKey), false, "the stranger is not active");
    assert.equal(a.liveness.activeCount(), 2, "A still sees two masternodes");

    // B's key with a signature that is not B's: 100, and the rogue's IP is banned.
    toA.send({
      type: MsgType.Heartbeat,
      ...heartbeat(stranger, v.clock),
      operatorPubkey: opB.publicKey,
    });
    await v.until(() => fromRogue().length === 1, "forgery penalised");
    assert.deepEqual(
      fromRogue()[0],
      { peer: rogue.id, score: 100, reason: "heartbeat bad-signature" },
      "a forgery scores 100",
    );
    await v.until(() => !connected(a.t, rogue), "the rogue is dropped");
    const ban = a.t.pm.listBanned().find((e) => e.subject === "10.50.0.13");
    assert.ok(ban, "the rogue's IP is banned");
    assert.equal(ban.source, "proof", "a proof ban");
    assert.match(ban.evidence, /^heartbeat [0-9a-f]{64} of /, "the forged heartbeat is kept as evidence");
    assert.equal(connected(a.t, b.t), true, "B is not affected");
    assert.deepEqual(
      a.penalties.filter((p) => p.peer !== rogue.id),
      [],
      "nobody else is penalised",
    );
  });

  it("a newcomer fills its masternode list from one peer's MnList", async () => {
    const v = new VirtualNet(903);
    const ops = opKeys("net-list", 3);
    const [opA, opB, opC] = ops as [KeyPair, KeyPair, KeyPair];
    const registry = registryOf(ops);
    const a = await mnNode(v, "10.50.0.21", registry, opA);
    const b = await mnNode(v, "10.50.0.22", registry, opB);
    const c = await mnNode(v, "10.50.0.23", registry, opC);
    b.t.pm.addNode(a.t.addr, "add");
    c.t.pm.addNode(a.t.addr, "add");
    c.t.pm.addNode(b.t.addr, "add");
    await v.until(
      () => [a, b, c].every((n) => n.liveness.activeCount() === 3),
      "A, B and C see each other (from the lists swapped on connect)",
    );

    // A non-masternode that may talk to A only. No heartbeat is sent from here on.
    const d = await mnNode(v, "10.50.0.24", registry, null, { blacklist: [b.t.id, c.t.id] });
    d.t.pm.addNode(a.t.addr, "add");
    await v.until(() => d.liveness.activeCount() === 3, "D sees all three active");
    assert.equal(d.service.stats.verdicts.get("heartbeat:new"), undefined, "nothing came by gossip");
    assert.equal(d.service.stats.verdicts.get("announce:new"), 1, "A announced itself directly");
    assert.ok(
      (d.service.stats.verdicts.get("list:new") ?? 0) >= 5,
      "3 heartbeats and B's and C's announcements",
    );
    const rows = d.liveness.list("devnet");
    const addrs = new Map([a, b, c].map((n) => [n.operator!.publicKey.toString("hex"), n.t.addr]));
    for (const r of rows) {
      assert.equal(r.status, "active", `${r.pubkey} is active`);
      assert.notEqual(r.lastseen, null, `${r.pubkey} was seen`);
      assert.equal(r.address, addrs.get(r.pubkey), "the announced address");
    }
    assert.deepEqual(
      new Set(d.announced.map((x) => x.address)),
      new Set([a.t.addr, b.t.addr, c.t.addr]),
      "every address went to the onAnnounced hook",
    );
    assert.deepEqual(
      new Set(d.announced.map((x) => x.nodeId)),
      new Set([a.t.id, b.t.id, c.t.id]),
      "with every node id",
    );
    assert.equal(connected(d.t, b.t) || connected(d.t, c.t), false, "D talks to A only");
  });
});
