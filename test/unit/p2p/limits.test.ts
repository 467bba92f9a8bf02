import assert from "node:assert/strict";
import { test } from "node:test";
import { FRAME_HEADER_SIZE } from "../../../src/p2p/constants.js";
import { decodeMessage, GoodbyeReason, MsgType } from "../../../src/p2p/messages.js";
import type { Connection } from "../../../src/p2p/transport.js";
import { FAST, FAST_MAX_REDIAL_MS, stopAll, testKey, VirtualNet, type TestNode } from "./harness.js";

// Every test runs on its own virtual network. This file uses 10.4.0.0/24.

interface RawResult {
  /** The connection, once the dial has completed. */
  conn: Connection | null;
  /** First frame type received, or null if none yet. */
  first: MsgType | null;
  goodbye: GoodbyeReason | null;
  closed: boolean;
}

/** A raw connection from `localHost` that records the first frame the node sends. */
function rawConnect(v: VirtualNet, addr: string, localHost: string): RawResult {
  const r: RawResult = { conn: null, first: null, goodbye: null, closed: false };
  let buf = Buffer.alloc(0);
  v.dial(localHost, addr).then(
    (conn) => {
      r.conn = conn;
      conn.onData((d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (r.first !== null || buf.length < FRAME_HEADER_SIZE) return;
        const type = buf.readUInt16LE(4) as MsgType;
        const len = buf.readUInt32LE(6);
        if (buf.length < FRAME_HEADER_SIZE + len) return;
        r.first = type;
        if (type === MsgType.Goodbye) {
          const m = decodeMessage(type, buf.subarray(FRAME_HEADER_SIZE, FRAME_HEADER_SIZE + len));
          if (m.type === MsgType.Goodbye) r.goodbye = m.reason as GoodbyeReason;
        }
      });
      conn.onClose(() => (r.closed = true));
    },
    () => (r.closed = true),
  );
  return r;
}

test("per-IP limit: 200 connection attempts from one IP get at most maxConnectionsPerIp; other IPs still get in", async () => {
  const v = new VirtualNet(401);
  let n: TestNode | undefined;
  let other: TestNode | undefined;
  let n2: TestNode | undefined;
  const raws: RawResult[] = [];
  try {
    // Three handshakes at once from one IP, so the per-IP connection cap is what is measured here
    // (the handshake share per IP has its own test below).
    n = await v.startNode("10.4.0.1", {
      maxConnectionsPerIp: 3,
      connectRatePerMinute: 10,
      maxHandshakingPerIp: 3,
    });
    for (let i = 0; i < 200; i++) raws.push(rawConnect(v, n.addr, "10.4.0.50"));
    await v.until(() => raws.every((r) => r.first !== null), "every attempt answered", 10_000);
    const accepted = raws.filter((r) => r.first === MsgType.Hello);
    const refused = raws.filter((r) => r.first === MsgType.Goodbye);
    assert.equal(accepted.length, 3, "exactly the per-IP limit got a handshake");
    assert.equal(refused.length, 197, "every other attempt got a Goodbye");
    assert.ok(
      refused.every(
        (r) => r.goodbye === GoodbyeReason.TOO_MANY_FROM_IP || r.goodbye === GoodbyeReason.RATE_LIMITED,
      ),
      "each refusal says too many from the IP or rate-limited",
    );
    assert.ok(n.pm.handshakingCount <= 3, `at most 3 in the handshake (${n.pm.handshakingCount})`);
    await v.until(() => refused.every((r) => r.closed), "refused sockets closed");

    // Once those close, the IP has used its 10 per minute: rate-limited, not let in.
    for (const r of accepted) r.conn?.destroy();
    await v.until(() => n!.pm.handshakingCount === 0, "accepted raw sockets gone");
    const again = rawConnect(v, n.addr, "10.4.0.50");
    raws.push(again);
    await v.until(() => again.first !== null, "answered");
    assert.equal(again.goodbye, GoodbyeReason.RATE_LIMITED, "the 11th attempt in a minute is rate-limited");

    // With the rate limit out of the way, the concurrency cap alone holds at 3.
    n2 = await v.startNode("10.4.0.9", {
      maxConnectionsPerIp: 3,
      connectRatePerMinute: 100_000,
      maxHandshakingPerIp: 3,
    });
    const burst: RawResult[] = [];
    for (let i = 0; i < 200; i++) burst.push(rawConnect(v, n2.addr, "10.4.0.51"));
    raws.push(...burst);
    await v.until(() => burst.every((r) => r.first !== null), "every attempt answered", 10_000);
    assert.equal(burst.filter((r) => r.first === MsgType.Hello).length, 3, "3 of the burst got a handshake");
    assert.ok(
      burst
        .filter((r) => r.first === MsgType.Goodbye)
        .every((r) => r.goodbye === GoodbyeReason.TOO_MANY_FROM_IP),
      "the rest of the burst: too many from the IP",
    );

    // Another IP is served as usual.
    other = await v.startNode("10.4.0.2", { bootstrapPeers: [n.addr] });
    await v.until(() => n!.pm.getPeer(other!.id) !== undefined, "a peer from another IP connects");
    assert.ok(n.pm.disconnects.get("too_many_from_ip")! > 0, "too_many_from_ip counted");
    assert.ok(n.pm.disconnects.get("rate_limited")! > 0, "rate_limited counted");
  } finally {
    for (const r of raws) r.conn?.destroy();
    await stopAll([n, n2, other]);
  }
});

test("reserved slots: with ordinary inbound slots full, a masternode still connects and an ordinary peer is refused", async () => {
  const v = new VirtualNet(402);
  const nodes: TestNode[] = [];
  try {
    const mnOperator = testKey("limits/reserved-operator");
    const isRegisteredMasternode = (pk: Buffer): boolean => pk.equals(mnOperator.publicKey);
    // 4 inbound slots, 2 of them kept for masternodes: 2 ordinary slots.
    const n = await v.startNode(
      "10.4.0.3",
      { maxInbound: 4, reservedMasternodeSlots: 2 },
      { isRegisteredMasternode },
    );
    nodes.push(n);
    for (const ip of ["10.4.0.4", "10.4.0.5"]) {
      const o = await v.startNode(ip, { bootstrapPeers: [n.addr] });
      nodes.push(o);
      await v.until(() => n.pm.getPeer(o.id) !== undefined, `ordinary ${ip} connects`);
    }
    const third = await v.startNode("10.4.0.6");
    nodes.push(third);
    third.pm.addNode(n.addr, "onetry");
    await v.until(() => (third.pm.disconnects.get("too_many_peers") ?? 0) > 0, "third ordinary peer refused");
    assert.equal(n.pm.getPeer(third.id), undefined, "n does not keep the third ordinary peer");
    assert.equal(third.pm.peers().length, 0, "the third ordinary peer has no peer");

    const mn = await v.startNode("10.4.0.7", { bootstrapPeers: [n.addr] }, { operatorKey: mnOperator });
    nodes.push(mn);
    await v.until(() => n.pm.getPeer(mn.id) !== undefined, "masternode takes a reserved slot");
    const info = n.pm.peerInfo().find((p) => p.nodeid === mn.id)!;
    assert.equal(info.masternode, true, "seen as a masternode");
    assert.equal(info.operator, mnOperator.publicKey.toString("hex"), "with its operator key");
    assert.deepEqual(
      n.pm.connectionCounts(),
      { total: 3, inbound: 3, outbound: 0 },
      "two ordinary peers and the masternode",
    );
    // An operator key the registry does not accept is an ordinary peer.
    const fake = await v.startNode("10.4.0.8", {}, { operatorKey: testKey("limits/unregistered-operator") });
    nodes.push(fake);
    fake.pm.addNode(n.addr, "onetry");
    await v.until(
      () => (fake.pm.disconnects.get("too_many_peers") ?? 0) > 0,
      "unregistered operator key refused",
    );
  } finally {
    await stopAll(nodes);
  }
});

const ping = (i: number) =>
  ({ type: MsgType.Ping, nonce: i, height: 0, tipHash: Buffer.alloc(32), timestamp: 0 }) as const;

test("a request flood → a 5 min flood ban; the banned IP cannot reconnect until clearBanned; others are still served", async () => {
  const v = new VirtualNet(403);
  let n: TestNode | undefined;
  let flooder: TestNode | undefined;
  let good: TestNode | undefined;
  try {
    n = await v.startNode("10.4.0.10");
    good = await v.startNode("10.4.0.12", { bootstrapPeers: [n.addr] });
    flooder = await v.startNode("10.4.0.11", { bootstrapPeers: [n.addr] });
    await v.until(
      () => n!.pm.peers().length === 2 && flooder!.pm.getPeer(n!.id) !== undefined,
      "both connected, on both sides",
    );
    const link = flooder.pm.getPeer(n.id)!;
    // GetPeers: 5 per minute, a burst of 5. 500 of them is a flood far beyond any honest need.
    for (let i = 0; i < 500; i++) link.send({ type: MsgType.GetPeers });
    await v.until(() => n!.pm.getPeer(flooder!.id) === undefined, "flooder disconnected");
    const bans = n.pm.listBanned();
    assert.equal(bans.length, 1, "one ban");
    assert.equal(bans[0]!.subject, "10.4.0.11", "of the flooder's IP");
    assert.equal(bans[0]!.source, "flood", "from flood scores");
    assert.equal(bans[0]!.until! - bans[0]!.createdAt, 5 * 60 * 1000, "a flood ban lasts 5 minutes");
    assert.match(bans[0]!.evidence, /GetPeers over its rate limit/, "the ban names what it saw");
    assert.equal(bans[0]!.nodeId, flooder.id, "the ban names the node id");
    assert.equal(n.pm.bans.get("REQUEST_FLOOD"), 1, "counted once as REQUEST_FLOOD");
    await v.until(() => (flooder!.pm.disconnects.get("banned") ?? 0) >= 3, "the flooder keeps being refused");
    assert.equal(n.pm.getPeer(flooder.id), undefined, "the flooder is not let back in");
    // The good peer never noticed.
    const g = n.pm.getPeer(good.id)!;
    assert.equal(g.state, "ready", "the good peer is still ready");
    const before = g.lastMessageAt;
    await v.until(() => g.lastMessageAt > before, "good peer still talking");

    assert.equal(n.pm.clearBanned(), 1, "clearBanned lifts the one ban");
    await v.until(
      () => n!.pm.getPeer(flooder!.id) !== undefined,
      "the flooder reconnects once the ban is cleared",
    );
  } finally {
    await stopAll([n, flooder, good]);
  }
});

test("liveness over its rate limit is dropped, never scored: 500 pings at once leave no score and no ban", async () => {
  const v = new VirtualNet(404);
  let n: TestNode | undefined;
  let p: TestNode | undefined;
  try {
    n = await v.startNode("10.4.0.15");
    p = await v.startNode("10.4.0.16", { bootstrapPeers: [n.addr] });
    await v.until(
      () => n!.pm.getPeer(p!.id) !== undefined && p!.pm.getPeer(n!.id) !== undefined,
      "connected",
    );
    const link = p.pm.getPeer(n.id)!;
    // What a link delivers when it resumes after a stall: a burst far over the ping bucket.
    for (let i = 0; i < 500; i++) link.send(ping(i));
    const peerOnN = n.pm.getPeer(p.id)!;
    await v.until(() => peerOnN.droppedOverLimit > 400, "the excess is dropped");
    assert.equal(n.pm.banManager.score("10.4.0.16"), 0, "no flood score");
    assert.equal(n.pm.listBanned().length, 0, "no ban");
    assert.equal(peerOnN.state, "ready", "the link stays up");
  } finally {
    await stopAll([n, p]);
  }
});

test("a flood ban expires on its own; a manual ban disconnects at once", async () => {
  const v = new VirtualNet(405);
  let n: TestNode | undefined;
  let f: TestNode | undefined;
  try {
    n = await v.startNode("10.4.0.13", { floodBanMs: 400 });
    f = await v.startNode("10.4.0.14", { bootstrapPeers: [n.addr] });
    await v.until(
      () => n!.pm.getPeer(f!.id) !== undefined && f!.pm.getPeer(n!.id) !== undefined,
      "connected",
    );
    const link = f.pm.getPeer(n.id)!;
    for (let i = 0; i < 300; i++) link.send({ type: MsgType.GetMnList, reqId: i + 1 });
    await v.until(() => n!.pm.listBanned().length === 1, "banned");
    await v.until(() => n!.pm.getPeer(f!.id) !== undefined, "back after the 400 ms ban", 5_000);
    assert.equal(n.pm.listBanned().length, 0, "the flood ban is gone");

    n.pm.setBan("10.4.0.14", "add", 3600);
    await v.until(() => n!.pm.getPeer(f!.id) === undefined, "manual ban disconnects");
    // 10 of f's longest redial delays (400 ms + 20%): f keeps redialling its bootstrap peer n.
    const refusedBefore = f.pm.disconnects.get("banned") ?? 0;
    await v.advance(10 * FAST_MAX_REDIAL_MS);
    const refused = (f.pm.disconnects.get("banned") ?? 0) - refusedBefore;
    assert.ok(refused >= 5, `f kept redialling and was refused (${refused} times)`);
    assert.equal(n.pm.getPeer(f.id), undefined, "and keeps it out");
    assert.equal(n.pm.setBan("10.4.0.14", "remove"), true, "setban remove finds the ban");
    await v.until(() => n!.pm.getPeer(f!.id) !== undefined, "back after setban remove");
  } finally {
    await stopAll([n, f]);
  }
});

test("a registered masternode that floods requests is disconnected, never banned", async () => {
  const v = new VirtualNet(406);
  let n: TestNode | undefined;
  let mn: TestNode | undefined;
  try {
    const op = testKey("limits/flooding-masternode");
    const isRegisteredMasternode = (pk: Buffer): boolean => pk.equals(op.publicKey);
    n = await v.startNode("10.4.0.17", {}, { isRegisteredMasternode });
    mn = await v.startNode(
      "10.4.0.18",
      { bootstrapPeers: [n.addr] },
      { operatorKey: op, isRegisteredMasternode },
    );
    await v.until(
      () => n!.pm.getPeer(mn!.id) !== undefined && mn!.pm.getPeer(n!.id) !== undefined,
      "connected",
    );
    const first = n.pm.getPeer(mn.id)!;
    for (let i = 0; i < 300; i++) mn.pm.getPeer(n.id)!.send({ type: MsgType.GetPeers });
    await v.until(() => first.state === "closed", "disconnected");
    assert.equal(first.closeReason, GoodbyeReason.RATE_LIMITED, "closed as rate-limited");
    assert.equal(n.pm.listBanned().length, 0, "a masternode's address is never banned for a soft offence");
    await v.until(() => n!.pm.getPeer(mn!.id) !== undefined, "and it comes back");
  } finally {
    await stopAll([n, mn]);
  }
});

test("a whitelisted peer is never banned, but proof still disconnects it", async () => {
  const v = new VirtualNet(407);
  let n: TestNode | undefined;
  let w: TestNode | undefined;
  try {
    n = await v.startNode("10.4.0.20", { whitelist: ["10.4.0.21"] });
    w = await v.startNode("10.4.0.21", { bootstrapPeers: [n.addr] });
    await v.until(
      () => n!.pm.getPeer(w!.id) !== undefined && w!.pm.getPeer(n!.id) !== undefined,
      "connected",
    );
    const link = w.pm.getPeer(n.id)!;
    for (let i = 0; i < 500; i++) link.send({ type: MsgType.GetPeers });
    await v.until(
      () => n!.logger.records.some((r) => r.level === "warn" && /Whitelisted peer misbehaved/.test(r.msg)),
      "the violation is logged",
    );
    // 10 ping intervals (100 ms): time for a late ban or disconnect to show.
    await v.advance(10 * FAST.pingIntervalMs);
    assert.equal(n.pm.listBanned().length, 0, "a whitelisted peer is not banned");
    assert.equal(n.pm.getPeer(w.id)?.state, "ready", "still connected");
    assert.equal(n.pm.peerInfo()[0]?.whitelisted, true, "shown as whitelisted");

    // Block validation reports an invalid block: disconnected, still not banned, and back soon.
    const peer = n.pm.getPeer(w.id)!;
    n.pm.misbehaving(peer, 100, "invalid block");
    assert.equal(peer.state, "closed", "proof disconnects at once");
    assert.equal(peer.closeReason, GoodbyeReason.MISBEHAVIOUR, "as misbehaviour");
    assert.equal(n.pm.listBanned().length, 0, "and still does not ban");
    await v.until(() => n!.pm.getPeer(w!.id) !== undefined, "the whitelisted peer reconnects");
  } finally {
    await stopAll([n, w]);
  }
});

test("proof bans at once with its evidence: an invalid block reported from above", async () => {
  const v = new VirtualNet(408);
  let n: TestNode | undefined;
  let b: TestNode | undefined;
  try {
    n = await v.startNode("10.4.0.22");
    b = await v.startNode("10.4.0.23", { bootstrapPeers: [n.addr] });
    await v.until(() => n!.pm.getPeer(b!.id) !== undefined, "connected");
    n.pm.misbehaving(
      n.pm.getPeer(b.id)!,
      100,
      "invalid block: BAD_MERKLE_ROOT",
      "block 00ab breaks BAD_MERKLE_ROOT",
    );
    const [ban] = n.pm.listBanned();
    assert.ok(ban, "banned at once");
    assert.equal(ban.subject, "10.4.0.23", "b's IP");
    assert.equal(ban.source, "proof", "a proof ban");
    assert.equal(ban.reason, "INVALID_DATA: invalid block: BAD_MERKLE_ROOT", "the reason");
    assert.equal(ban.evidence, "block 00ab breaks BAD_MERKLE_ROOT", "the evidence");
    assert.equal(ban.nodeId, b.id, "b's node id");
    assert.equal(ban.until! - ban.createdAt, 10 * 60 * 1000, "a first proof ban lasts 10 minutes");
    await v.until(() => n!.pm.getPeer(b!.id) === undefined, "disconnected");
  } finally {
    await stopAll([n, b]);
  }
});

test("garbage in Peers is skipped and never scored; valid entries are kept; our own id is skipped", async () => {
  const v = new VirtualNet(409);
  let n: TestNode | undefined;
  let s: TestNode | undefined;
  try {
    n = await v.startNode("10.4.0.30", { maxOutbound: 0 });
    s = await v.startNode("10.4.0.31", { bootstrapPeers: [n.addr] });
    await v.until(
      () => n!.pm.getPeer(s!.id) !== undefined && s!.pm.getPeer(n!.id) !== undefined,
      "connected",
    );
    const id = (b: number): Buffer => Buffer.alloc(32, b);
    s.pm.getPeer(n.id)!.send({
      type: MsgType.Peers,
      peers: [
        { nodeId: id(1), address: "10.4.0.99:1234", services: 1, lastSeen: 0 },
        { nodeId: id(2), address: "not an address", services: 0, lastSeen: 0 },
        { nodeId: id(3), address: "0.0.0.0:5", services: 0, lastSeen: 0 },
        { nodeId: id(4), address: "224.0.0.1:5", services: 0, lastSeen: 0 },
        { nodeId: n.key.publicKey, address: "10.4.0.98:1", services: 0, lastSeen: 0 },
        { nodeId: id(5), address: n.addr, services: 0, lastSeen: 0 },
      ],
    });
    await v.until(() => n!.pm.addressBook.has("10.4.0.99:1234"), "valid entry added");
    assert.equal(n.pm.addressBook.get("10.4.0.99:1234")?.nodeId, id(1).toString("hex"), "with its node id");
    assert.ok(!n.pm.addressBook.has("0.0.0.0:5"), "an unspecified address");
    assert.ok(!n.pm.addressBook.has("224.0.0.1:5"), "a multicast address");
    assert.ok(!n.pm.addressBook.has("10.4.0.98:1"), "an entry with our own node id");
    assert.ok(!n.pm.addressBook.has(n.addr), "our own address");
    assert.equal(n.pm.banManager.score("10.4.0.31"), 0, "garbage is not scored");
    assert.equal(n.pm.getPeer(s.id)?.state, "ready", "the sender stays connected");
  } finally {
    await stopAll([n, s]);
  }
});

test("blacklist: a listed IP is refused at accept time, a listed node id after its handshake", async () => {
  const v = new VirtualNet(410);
  const nodes: TestNode[] = [];
  try {
    const badKey = testKey("limits/blacklisted-node");
    const n = await v.startNode("10.4.0.40", {
      blacklist: ["10.4.0.41:24000", badKey.publicKey.toString("hex")],
    });
    nodes.push(n);
    const byIp = await v.startNode("10.4.0.41");
    const byId = await v.startNode("10.4.0.42", {}, { key: badKey });
    const ok = await v.startNode("10.4.0.43");
    nodes.push(byIp, byId, ok);
    for (const x of [byIp, byId, ok]) x.pm.addNode(n.addr, "onetry");
    await v.until(() => n.pm.getPeer(ok.id) !== undefined, "an unlisted peer connects");
    await v.until(
      () => (byIp.pm.disconnects.get("banned") ?? 0) > 0 && (byId.pm.disconnects.get("banned") ?? 0) > 0,
      "both listed peers told they are banned",
    );
    assert.equal(n.pm.peers().length, 1, "only the unlisted peer");
    const listed = n.pm.listBanned();
    assert.deepEqual(
      listed.map((b) => [b.subject, b.until, b.source]).sort(),
      [
        ["10.4.0.41", null, "config"],
        [badKey.publicKey.toString("hex"), null, "config"],
      ].sort(),
      "both listed as permanent config bans",
    );
    assert.equal(n.pm.clearBanned(), 0, "config bans stay");
  } finally {
    await stopAll(nodes);
  }
});

test("handshake slots: bounded; when full, the connection that has waited longest for its Hello gives way", async () => {
  const v = new VirtualNet(411);
  let n: TestNode | undefined;
  const raws: RawResult[] = [];
  try {
    n = await v.startNode("10.4.0.50", {
      maxHandshaking: 3,
      maxConnectionsPerIp: 1,
      connectRatePerMinute: 1,
      whitelist: ["10.4.0.60"],
    });
    // Five silent connections from one whitelisted IP (no per-IP caps): only three sit in the
    // handshake at once, and each newcomer evicts the oldest that never sent its Hello.
    for (let i = 0; i < 5; i++) {
      raws.push(rawConnect(v, n.addr, "10.4.0.60"));
      await v.until(() => raws[i]!.first !== null, `attempt ${i} answered`);
    }
    assert.deepEqual(
      raws.map((r) => r.first),
      [MsgType.Hello, MsgType.Hello, MsgType.Hello, MsgType.Hello, MsgType.Hello],
      "every attempt got a handshake",
    );
    await v.until(() => raws[0]!.closed && raws[1]!.closed, "the two oldest gave way");
    assert.equal(n.pm.handshakingCount, 3, "three in the handshake");
    assert.ok(!raws[2]!.closed && !raws[3]!.closed && !raws[4]!.closed, "the three newest are still open");
  } finally {
    for (const r of raws) r.conn?.destroy();
    await stopAll([n]);
  }
});

test("handshake slots: at most maxHandshakingPerIp from one IP; a silent connection is dropped at the Hello deadline", async () => {
  const v = new VirtualNet(412);
  let n: TestNode | undefined;
  const raws: RawResult[] = [];
  try {
    n = await v.startNode("10.4.0.51", {
      maxHandshakingPerIp: 2,
      maxConnectionsPerIp: 10,
      connectRatePerMinute: 100,
      helloTimeoutMs: 600,
    });
    for (let i = 0; i < 3; i++) {
      raws.push(rawConnect(v, n.addr, "10.4.0.61"));
      await v.until(() => raws[i]!.first !== null, `attempt ${i} answered`);
    }
    assert.deepEqual(
      raws.map((r) => r.first),
      [MsgType.Hello, MsgType.Hello, MsgType.Goodbye],
      "two handshakes from one IP, the third refused",
    );
    assert.equal(raws[2]!.goodbye, GoodbyeReason.TOO_MANY_PEERS, "as too many peers");
    // Another address is not held back by that one.
    const other = rawConnect(v, n.addr, "10.4.0.62");
    raws.push(other);
    await v.until(() => other.first !== null, "other answered");
    assert.equal(other.first, MsgType.Hello, "another IP gets its handshake");
    // Nobody sent a Hello: after 600 ms every one of them is gone.
    await v.until(
      () => raws[0]!.closed && raws[1]!.closed && other.closed,
      "dropped at the Hello deadline",
      5_000,
    );
    assert.equal(n.pm.handshakingCount, 0, "nobody left in the handshake");
    assert.ok((n.pm.disconnects.get("handshake_timeout") ?? 0) >= 3, "three handshake timeouts");
  } finally {
    for (const r of raws) r.conn?.destroy();
    await stopAll([n]);
  }
});
