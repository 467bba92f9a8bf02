// HeartbeatService over real PeerManagers on a virtual network (one ManualClock per test):
// relay once per hop among masternodes, attestations, spoofed and replayed heartbeats penalised,
// a newcomer's view filled from one MnList, and a full node kept current by polling alone.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { findByOperator, type Registry } from "../../../src/consensus/registry.js";
import { KeyPair } from "../../../src/crypto/ed25519.js";
import { HeartbeatService, type HeartbeatNetwork } from "../../../src/masternode/heartbeatService.js";
import { livenessOptions, MasternodeLiveness } from "../../../src/masternode/liveness.js";
import { attestationHash, heartbeatHash, signHeartbeat } from "../../../src/masternode/livenessMessages.js";
import { decodeMessage, MsgType, type Message, type MnListMsg } from "../../../src/p2p/messages.js";
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
  /** Every liveness relay message it received, by type name ("LivenessInv", …). */
  relayed: string[];
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
  extras: { key?: KeyPair; blacklist?: string[]; heartbeatMs?: number } = {},
): Promise<MnNode> {
  const heartbeatMs = extras.heartbeatMs ?? HEARTBEAT_MS;
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
  const liveness = new MasternodeLiveness(livenessOptions(heartbeatMs, ANNOUNCE_MS), {
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
    { heartbeatIntervalMs: heartbeatMs, announceIntervalMs: ANNOUNCE_MS },
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
  const relayed: string[] = [];
  t.onMessage((peer, msg) => {
    if (RELAY_TYPES.has(msg.type)) relayed.push(MsgType[msg.type]);
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
  const n: MnNode = { t, liveness, service, operator, penalties, received, relayed, announced };
  nodes.push(n);
  return n;
}

const RELAY_TYPES: ReadonlySet<MsgType> = new Set([
  MsgType.LivenessInv,
  MsgType.GetLiveness,
  MsgType.LivenessBatch,
  MsgType.Attestation,
]);

const connected = (a: TestNode, b: TestNode): boolean => a.pm.getPeer(b.id) !== undefined;

/** Masternodes A, B and C at `${hostPrefix}1..3`, all linked, each seeing the others active. */
async function meshOfThree(
  v: VirtualNet,
  tag: string,
  hostPrefix: string,
  heartbeatMs?: number,
): Promise<{ registry: Registry; a: MnNode; b: MnNode; c: MnNode }> {
  const ops = opKeys(tag, 3);
  const registry = registryOf(ops);
  const extras = heartbeatMs === undefined ? {} : { heartbeatMs };
  const [a, b, c] = [
    await mnNode(v, `${hostPrefix}1`, registry, ops[0]!, extras),
    await mnNode(v, `${hostPrefix}2`, registry, ops[1]!, extras),
    await mnNode(v, `${hostPrefix}3`, registry, ops[2]!, extras),
  ];
  b.t.pm.addNode(a.t.addr, "add");
  c.t.pm.addNode(a.t.addr, "add");
  c.t.pm.addNode(b.t.addr, "add");
  await v.until(
    () => [a, b, c].every((n) => n.liveness.activeCount() === 3),
    "A, B and C see each other (from the lists swapped on connect)",
  );
  return { registry, a, b, c };
}

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
    await v.until(() => a.liveness.lastSeq(opB.publicKey) === seqB, "A has B's heartbeat");
    // Not a masternode, the rogue is relayed nothing: it gets B's heartbeat from A's list.
    let list: MnListMsg | null = null;
    void toA
      .request((reqId) => ({ type: MsgType.GetMnList, reqId }), [MsgType.MnList], 1_000)
      .then((m) => (list = m));
    await v.until(() => list !== null, "A's list");
    const real = list!.heartbeats.find((h) => h.seq === seqB);
    assert.ok(real, "B's heartbeat in A's list");
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
    const { registry, a, b, c } = await meshOfThree(v, "net-list", "10.50.0.2");

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

  it("a full node keeps every masternode active through polling alone, and relays nothing", async () => {
    const v = new VirtualNet(904);
    // 10 s heartbeats: a 50 s window, a poll every 25 s.
    const heartbeatMs = 10_000;
    const { registry, a, b, c } = await meshOfThree(v, "net-poll", "10.50.0.3", heartbeatMs);
    // A full node linked to A and B only: C's heartbeats reach it through their lists alone.
    const d = await mnNode(v, "10.50.0.34", registry, null, { heartbeatMs, blacklist: [c.t.id] });
    d.t.pm.addNode(a.t.addr, "add");
    d.t.pm.addNode(b.t.addr, "add");
    await v.until(() => connected(d.t, a.t) && connected(d.t, b.t), "D linked to A and B");
    await v.until(() => d.liveness.activeCount() === 3, "D sees all three");
    const polledBefore = d.service.stats.listsReceived;
    for (const n of [a, b, c, d]) n.relayed.length = 0;

    // Four windows, checked every second: nobody flaps to inactive on D.
    const windowMs = d.liveness.windowMs;
    for (let t = 0; t < 4 * windowMs; t += 1_000) {
      await v.advance(1_000, 100);
      assert.equal(d.liveness.activeCount(), 3, `all three active on D at +${t + 1_000} ms`);
    }
    const polls = d.service.stats.listsReceived - polledBefore;
    assert.ok(polls >= 7 && polls <= 9, `a list every half window: ${polls} in four windows`);
    assert.equal(connected(d.t, c.t), false, "D never linked to C");
    assert.ok((d.service.stats.verdicts.get("list:new") ?? 0) > 0, "C's heartbeats came in lists");
    assert.deepEqual(d.relayed, [], "D is relayed nothing, attestations included");
    for (const n of [a, b]) {
      const fromD = n.received.filter((r) => r.from === d.t.id);
      assert.deepEqual(fromD, [], `D passes nothing on to ${n.t.host}`);
    }
    assert.deepEqual(d.service.relay.stats, { invSent: 0, invReceived: 0, requested: 0, served: 0 });
    // The masternodes still gossip among themselves.
    assert.ok(c.relayed.includes("LivenessInv"), "C hears of heartbeats by inventory");
    for (const n of [a, b, c, d]) assert.deepEqual(n.penalties, [], "nobody is penalised");
  });
});
