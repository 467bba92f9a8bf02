// HeartbeatService over real PeerManagers on loopback: relay once per hop, attestations, spoofed
// and replayed heartbeats penalised, and a newcomer's view filled from one MnList.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { findByOperator, type Registry } from "../../../src/consensus/registry.js";
import { KeyPair } from "../../../src/crypto/ed25519.js";
import { HeartbeatService, type HeartbeatNetwork } from "../../../src/masternode/heartbeatService.js";
import { livenessOptions, MasternodeLiveness } from "../../../src/masternode/liveness.js";
import { attestationHash, heartbeatHash, signHeartbeat } from "../../../src/masternode/livenessMessages.js";
import { MsgType, type Heartbeat } from "../../../src/p2p/messages.js";
import { SystemClock } from "../../../src/util/clock.js";
import { sleep, startNode, stopAll, waitFor, type TestNode } from "../p2p/harness.js";
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
  host: string,
  registry: Registry,
  operator: KeyPair | null,
  extras: { key?: KeyPair; blacklist?: string[] } = {},
): Promise<MnNode> {
  const clock = new SystemClock();
  const t = await startNode(
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
    if (msg.type === MsgType.Heartbeat) {
      received.push({ type: "heartbeat", hash: heartbeatHash(msg).toString("hex"), from: peer.nodeIdHex });
    } else if (msg.type === MsgType.Attestation) {
      received.push({
        type: "attestation",
        hash: attestationHash(msg).toString("hex"),
        from: peer.nodeIdHex,
      });
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

describe("HeartbeatService over loopback PeerManagers", () => {
  it("relays a heartbeat A→B→C exactly once per hop, and masternodes attest it", async () => {
    const ops = opKeys("net-line", 3);
    const [opA, opB, opC] = ops as [KeyPair, KeyPair, KeyPair];
    const registry = registryOf(ops);
    const keyA = KeyPair.generate();
    const keyC = KeyPair.generate();
    // A line: A and C refuse each other, so everything between them goes through B.
    const a = await mnNode("127.0.50.1", registry, opA, {
      key: keyA,
      blacklist: [keyC.publicKey.toString("hex")],
    });
    const b = await mnNode("127.0.50.2", registry, opB);
    const c = await mnNode("127.0.50.3", registry, opC, {
      key: keyC,
      blacklist: [keyA.publicKey.toString("hex")],
    });
    b.t.pm.addNode(a.t.addr, "add");
    await waitFor(
      () => a.liveness.activeCount() === 2 && b.liveness.activeCount() === 2,
      "A and B swap lists",
    );
    c.t.pm.addNode(b.t.addr, "add");
    await waitFor(() => connected(a.t, b.t) && connected(b.t, c.t), "A–B and B–C linked");
    // The lists swapped on connect: B and C see all three; A has not heard of C yet.
    await waitFor(
      () => b.liveness.activeCount() === 3 && c.liveness.activeCount() === 3,
      "B and C views filled from MnList",
    );
    assert.equal(a.liveness.activeCount(), 2);
    assert.equal(connected(a.t, c.t), false);

    for (const n of [a, b, c]) n.received.length = 0;
    assert.equal(a.service.sendHeartbeat(), true);
    const seq = a.liveness.lastSeq(opA.publicKey);
    await waitFor(() => c.liveness.lastSeq(opA.publicKey) === seq, "C has A's heartbeat");
    const witnesses = (n: MnNode): number => n.liveness.rowFor(opA.publicKey, "devnet")?.witnesses ?? 0;
    await waitFor(
      () => witnesses(a) === 2 && witnesses(b) === 2 && witnesses(c) === 2,
      "B's and C's attestations everywhere",
    );
    await sleep(300); // room for any extra copy to show up

    const hbs = (n: MnNode) => countBy(n.received, "heartbeat");
    assert.equal(hbs(a).size, 0, "B never echoes A's heartbeat back");
    assert.deepEqual([...hbs(b).values()], [1]);
    assert.deepEqual([...hbs(c).values()], [1]);
    assert.equal(b.received.find((r) => r.type === "heartbeat")?.from, a.t.id);
    assert.equal(c.received.find((r) => r.type === "heartbeat")?.from, b.t.id);
    // Attestations: A gets B's directly and C's through B; B gets C's; C gets B's. Each once.
    const atts = (n: MnNode) => countBy(n.received, "attestation");
    assert.equal(atts(a).size, 2);
    assert.equal(atts(b).size, 1);
    assert.equal(atts(c).size, 1);
    for (const n of [a, b, c])
      assert.ok(
        [...atts(n).values()].every((v) => v === 1),
        "no attestation twice",
      );
    for (const n of [a, b, c]) assert.deepEqual(n.penalties, []);

    // And C's heartbeat reaches A through B.
    c.service.sendHeartbeat();
    await waitFor(() => a.liveness.activeCount() === 3, "A sees C through B");
  });

  it("a spoofed heartbeat (unregistered key) and a replay are dropped unscored; a forgery is proof and bans the sender", async () => {
    const ops = opKeys("net-spoof", 2);
    const [opA, opB] = ops as [KeyPair, KeyPair];
    const registry = registryOf(ops);
    const a = await mnNode("127.0.50.11", registry, opA);
    const b = await mnNode("127.0.50.12", registry, opB);
    const rogue = await startNode("127.0.50.13");
    plain.push(rogue);
    const captured: Heartbeat[] = [];
    rogue.onMessage((_peer, msg) => {
      if (msg.type === MsgType.Heartbeat) captured.push(msg);
    });
    b.t.pm.addNode(a.t.addr, "add");
    rogue.pm.addNode(a.t.addr, "add");
    await waitFor(
      () => connected(a.t, b.t) && connected(a.t, rogue) && connected(rogue, a.t),
      "B and the rogue on A",
    );
    const toA = rogue.pm.getPeer(a.t.id)!;
    await waitFor(() => a.liveness.activeCount() === 2, "A sees B");

    b.service.sendHeartbeat();
    const seqB = b.liveness.lastSeq(opB.publicKey);
    await waitFor(() => captured.some((h) => h.seq === seqB), "the rogue got B's heartbeat through A");
    const real = captured.find((h) => h.seq === seqB)!;
    const stranger = opKey("net-spoof-stranger", 0);
    const now = Date.now();

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
    await waitFor(
      () =>
        (a.service.stats.verdicts.get("heartbeat:unknown-operator") ?? 0) >= 1 &&
        (a.service.stats.verdicts.get("heartbeat:replay") ?? 0) >= 1,
      "both seen by A",
    );
    // A stale copy and an unknown key are what honest gossip looks like after a stall or across
    // a block of registry difference: dropped, never scored.
    assert.deepEqual(fromRogue(), []);
    assert.equal(a.t.pm.banManager.score("127.0.50.13"), 0);
    assert.equal(a.liveness.lastSeq(opB.publicKey), seqB, "B's state untouched");
    assert.equal(a.liveness.isActive(stranger.publicKey), false);
    assert.equal(a.liveness.activeCount(), 2);

    // B's key with a signature that is not B's: 100, and the rogue's IP is banned.
    toA.send({
      type: MsgType.Heartbeat,
      ...heartbeat(stranger, new SystemClock()),
      operatorPubkey: opB.publicKey,
    });
    await waitFor(() => fromRogue().length === 1, "forgery penalised");
    assert.deepEqual(fromRogue()[0], { peer: rogue.id, score: 100, reason: "heartbeat bad-signature" });
    await waitFor(() => !connected(a.t, rogue), "the rogue is dropped");
    const ban = a.t.pm.listBanned().find((e) => e.subject === "127.0.50.13");
    assert.ok(ban);
    assert.equal(ban.source, "proof");
    assert.match(ban.evidence, /^heartbeat [0-9a-f]{64} of /, "the forged heartbeat is kept as evidence");
    assert.equal(connected(a.t, b.t), true, "B is not affected");
    assert.deepEqual(
      a.penalties.filter((p) => p.peer !== rogue.id),
      [],
    );
  });

  it("a newcomer fills its masternode list from one peer's MnList", async () => {
    const ops = opKeys("net-list", 3);
    const [opA, opB, opC] = ops as [KeyPair, KeyPair, KeyPair];
    const registry = registryOf(ops);
    const a = await mnNode("127.0.50.21", registry, opA);
    const b = await mnNode("127.0.50.22", registry, opB);
    const c = await mnNode("127.0.50.23", registry, opC);
    b.t.pm.addNode(a.t.addr, "add");
    c.t.pm.addNode(a.t.addr, "add");
    c.t.pm.addNode(b.t.addr, "add");
    await waitFor(
      () => [a, b, c].every((n) => n.liveness.activeCount() === 3),
      "A, B and C see each other (from the lists swapped on connect)",
    );

    // A non-masternode that may talk to A only. No heartbeat is sent from here on.
    const d = await mnNode("127.0.50.24", registry, null, { blacklist: [b.t.id, c.t.id] });
    d.t.pm.addNode(a.t.addr, "add");
    await waitFor(() => d.liveness.activeCount() === 3, "D sees all three active");
    assert.equal(d.service.stats.verdicts.get("heartbeat:new"), undefined, "nothing came by gossip");
    assert.equal(d.service.stats.verdicts.get("announce:new"), 1, "A announced itself directly");
    assert.ok(
      (d.service.stats.verdicts.get("list:new") ?? 0) >= 5,
      "3 heartbeats and B's and C's announcements",
    );
    const rows = d.liveness.list("devnet");
    const addrs = new Map([a, b, c].map((n) => [n.operator!.publicKey.toString("hex"), n.t.addr]));
    for (const r of rows) {
      assert.equal(r.status, "active");
      assert.notEqual(r.lastseen, null);
      assert.equal(r.address, addrs.get(r.pubkey), "the announced address");
    }
    assert.deepEqual(
      new Set(d.announced.map((x) => x.address)),
      new Set([a.t.addr, b.t.addr, c.t.addr]),
      "every address went to the onAnnounced hook",
    );
    assert.deepEqual(new Set(d.announced.map((x) => x.nodeId)), new Set([a.t.id, b.t.id, c.t.id]));
    assert.equal(connected(d.t, b.t) || connected(d.t, c.t), false);
  });
});
