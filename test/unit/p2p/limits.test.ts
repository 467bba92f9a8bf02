import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { test } from "node:test";
import { KeyPair } from "../../../src/crypto/ed25519.js";
import { FRAME_HEADER_SIZE } from "../../../src/p2p/constants.js";
import { decodeMessage, GoodbyeReason, MsgType } from "../../../src/p2p/messages.js";
import { sleep, startNode, stopAll, waitFor, type TestNode } from "./harness.js";

// This file uses 127.0.4.0/24.

interface RawResult {
  socket: Socket;
  /** First frame type received, or null if none yet. */
  first: MsgType | null;
  goodbye: GoodbyeReason | null;
  closed: boolean;
}

/** A raw TCP connection from `localHost` that records the first frame the node sends. */
function rawConnect(addr: string, localHost: string): RawResult {
  const [host, port] = [addr.split(":")[0]!, Number(addr.split(":")[1])];
  const socket = connect({ host, port, localAddress: localHost });
  const r: RawResult = { socket, first: null, goodbye: null, closed: false };
  let buf = Buffer.alloc(0);
  socket.on("data", (d: Buffer) => {
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
  socket.on("error", () => undefined);
  socket.on("close", () => (r.closed = true));
  return r;
}

test("per-IP limit: 200 connection attempts from one IP get at most maxConnectionsPerIp; other IPs still get in", async () => {
  let n: TestNode | undefined;
  let other: TestNode | undefined;
  let n2: TestNode | undefined;
  const raws: RawResult[] = [];
  try {
    // Three handshakes at once from one IP, so the per-IP connection cap is what is measured here
    // (the handshake share per IP has its own test below).
    n = await startNode("127.0.4.1", {
      maxConnectionsPerIp: 3,
      connectRatePerMinute: 10,
      maxHandshakingPerIp: 3,
    });
    for (let i = 0; i < 200; i++) raws.push(rawConnect(n.addr, "127.0.4.50"));
    await waitFor(() => raws.every((r) => r.first !== null), "every attempt answered", 10_000);
    const accepted = raws.filter((r) => r.first === MsgType.Hello);
    const refused = raws.filter((r) => r.first === MsgType.Goodbye);
    assert.equal(accepted.length, 3, "exactly the per-IP limit got a handshake");
    assert.equal(refused.length, 197);
    assert.ok(
      refused.every(
        (r) => r.goodbye === GoodbyeReason.TOO_MANY_FROM_IP || r.goodbye === GoodbyeReason.RATE_LIMITED,
      ),
    );
    assert.ok(n.pm.handshakingCount <= 3);
    await waitFor(() => refused.every((r) => r.closed), "refused sockets closed");

    // Once those close, the IP has used its 10 per minute: rate-limited, not let in.
    for (const r of accepted) r.socket.destroy();
    await waitFor(() => n!.pm.handshakingCount === 0, "accepted raw sockets gone");
    const again = rawConnect(n.addr, "127.0.4.50");
    raws.push(again);
    await waitFor(() => again.first !== null, "answered");
    assert.equal(again.goodbye, GoodbyeReason.RATE_LIMITED);

    // With the rate limit out of the way, the concurrency cap alone holds at 3.
    n2 = await startNode("127.0.4.9", {
      maxConnectionsPerIp: 3,
      connectRatePerMinute: 100_000,
      maxHandshakingPerIp: 3,
    });
    const burst: RawResult[] = [];
    for (let i = 0; i < 200; i++) burst.push(rawConnect(n2.addr, "127.0.4.51"));
    raws.push(...burst);
    await waitFor(() => burst.every((r) => r.first !== null), "every attempt answered", 10_000);
    assert.equal(burst.filter((r) => r.first === MsgType.Hello).length, 3);
    assert.ok(
      burst
        .filter((r) => r.first === MsgType.Goodbye)
        .every((r) => r.goodbye === GoodbyeReason.TOO_MANY_FROM_IP),
    );

    // Another IP is served as usual.
    other = await startNode("127.0.4.2", { bootstrapPeers: [n.addr] });
    await waitFor(() => n!.pm.getPeer(other!.id) !== undefined, "a peer from another IP connects");
    assert.ok(n.pm.disconnects.get("too_many_from_ip")! > 0);
    assert.ok(n.pm.disconnects.get("rate_limited")! > 0);
  } finally {
    for (const r of raws) r.socket.destroy();
    await stopAll([n, n2, other]);
  }
});

test("reserved slots: with ordinary inbound slots full, a masternode still connects and an ordinary peer is refused", async () => {
  const nodes: TestNode[] = [];
  try {
    const mnOperator = KeyPair.generate();
    const isRegisteredMasternode = (pk: Buffer): boolean => pk.equals(mnOperator.publicKey);
    // 4 inbound slots, 2 of them kept for masternodes: 2 ordinary slots.
    const n = await startNode(
      "127.0.4.3",
      { maxInbound: 4, reservedMasternodeSlots: 2 },
      { isRegisteredMasternode },
    );
    nodes.push(n);
    for (const ip of ["127.0.4.4", "127.0.4.5"]) {
      const o = await startNode(ip, { bootstrapPeers: [n.addr] });
      nodes.push(o);
      await waitFor(() => n.pm.getPeer(o.id) !== undefined, `ordinary ${ip} connects`);
    }
    const third = await startNode("127.0.4.6");
    nodes.push(third);
    third.pm.addNode(n.addr, "onetry");
    await waitFor(() => (third.pm.disconnects.get("too_many_peers") ?? 0) > 0, "third ordinary peer refused");
    assert.equal(n.pm.getPeer(third.id), undefined);
    assert.equal(third.pm.peers().length, 0);

    const mn = await startNode("127.0.4.7", { bootstrapPeers: [n.addr] }, { operatorKey: mnOperator });
    nodes.push(mn);
    await waitFor(() => n.pm.getPeer(mn.id) !== undefined, "masternode takes a reserved slot");
    const info = n.pm.peerInfo().find((p) => p.nodeid === mn.id)!;
    assert.equal(info.masternode, true);
    assert.equal(info.operator, mnOperator.publicKey.toString("hex"));
    assert.deepEqual(n.pm.connectionCounts(), { total: 3, inbound: 3, outbound: 0 });
    // An operator key the registry does not accept is an ordinary peer.
    const fake = await startNode("127.0.4.8", {}, { operatorKey: KeyPair.generate() });
    nodes.push(fake);
    fake.pm.addNode(n.addr, "onetry");
    await waitFor(
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
  let n: TestNode | undefined;
  let flooder: TestNode | undefined;
  let good: TestNode | undefined;
  try {
    n = await startNode("127.0.4.10");
    good = await startNode("127.0.4.12", { bootstrapPeers: [n.addr] });
    flooder = await startNode("127.0.4.11", { bootstrapPeers: [n.addr] });
    await waitFor(
      () => n!.pm.peers().length === 2 && flooder!.pm.getPeer(n!.id) !== undefined,
      "both connected, on both sides",
    );
    const link = flooder.pm.getPeer(n.id)!;
    // GetPeers: 5 per minute, a burst of 5. 500 of them is a flood far beyond any honest need.
    for (let i = 0; i < 500; i++) link.send({ type: MsgType.GetPeers });
    await waitFor(() => n!.pm.getPeer(flooder!.id) === undefined, "flooder disconnected");
    const bans = n.pm.listBanned();
    assert.equal(bans.length, 1);
    assert.equal(bans[0]!.subject, "127.0.4.11");
    assert.equal(bans[0]!.source, "flood");
    assert.equal(bans[0]!.until! - bans[0]!.createdAt, 5 * 60 * 1000, "a flood ban lasts 5 minutes");
    assert.match(bans[0]!.evidence, /GetPeers over its rate limit/, "the ban names what it saw");
    assert.equal(bans[0]!.nodeId, flooder.id);
    assert.equal(n.pm.bans.get("REQUEST_FLOOD"), 1);
    await waitFor(() => (flooder!.pm.disconnects.get("banned") ?? 0) >= 3, "the flooder keeps being refused");
    assert.equal(n.pm.getPeer(flooder.id), undefined);
    // The good peer never noticed.
    const g = n.pm.getPeer(good.id)!;
    assert.equal(g.state, "ready");
    const before = g.lastMessageAt;
    await waitFor(() => g.lastMessageAt > before, "good peer still talking");

    assert.equal(n.pm.clearBanned(), 1);
    await waitFor(
      () => n!.pm.getPeer(flooder!.id) !== undefined,
      "the flooder reconnects once the ban is cleared",
    );
  } finally {
    await stopAll([n, flooder, good]);
  }
});

test("liveness over its rate limit is dropped, never scored: 500 pings at once leave no score and no ban", async () => {
  let n: TestNode | undefined;
  let p: TestNode | undefined;
  try {
    n = await startNode("127.0.4.15");
    p = await startNode("127.0.4.16", { bootstrapPeers: [n.addr] });
    await waitFor(
      () => n!.pm.getPeer(p!.id) !== undefined && p!.pm.getPeer(n!.id) !== undefined,
      "connected",
    );
    const link = p.pm.getPeer(n.id)!;
    // What a link delivers when it resumes after a stall: a burst far over the ping bucket.
    for (let i = 0; i < 500; i++) link.send(ping(i));
    const peerOnN = n.pm.getPeer(p.id)!;
    await waitFor(() => peerOnN.droppedOverLimit > 400, "the excess is dropped");
    assert.equal(n.pm.banManager.score("127.0.4.16"), 0);
    assert.equal(n.pm.listBanned().length, 0);
    assert.equal(peerOnN.state, "ready", "the link stays up");
  } finally {
    await stopAll([n, p]);
  }
});

test("a flood ban expires on its own; a manual ban disconnects at once", async () => {
  let n: TestNode | undefined;
  let f: TestNode | undefined;
  try {
    n = await startNode("127.0.4.13", { floodBanMs: 400 });
    f = await startNode("127.0.4.14", { bootstrapPeers: [n.addr] });
    await waitFor(
      () => n!.pm.getPeer(f!.id) !== undefined && f!.pm.getPeer(n!.id) !== undefined,
      "connected",
    );
    const link = f.pm.getPeer(n.id)!;
    for (let i = 0; i < 300; i++) link.send({ type: MsgType.GetMnList, reqId: i + 1 });
    await waitFor(() => n!.pm.listBanned().length === 1, "banned");
    await waitFor(() => n!.pm.getPeer(f!.id) !== undefined, "back after the 400 ms ban", 5_000);
    assert.equal(n.pm.listBanned().length, 0);

    n.pm.setBan("127.0.4.14", "add", 3600);
    await waitFor(() => n!.pm.getPeer(f!.id) === undefined, "manual ban disconnects");
    await sleep(300);
    assert.equal(n.pm.getPeer(f.id), undefined, "and keeps it out");
    assert.equal(n.pm.setBan("127.0.4.14", "remove"), true);
    await waitFor(() => n!.pm.getPeer(f!.id) !== undefined, "back after setban remove");
  } finally {
    await stopAll([n, f]);
  }
});

test("a registered masternode that floods requests is disconnected, never banned", async () => {
  let n: TestNode | undefined;
  let mn: TestNode | undefined;
  try {
    const op = KeyPair.generate();
    const isRegisteredMasternode = (pk: Buffer): boolean => pk.equals(op.publicKey);
    n = await startNode("127.0.4.17", {}, { isRegisteredMasternode });
    mn = await startNode(
      "127.0.4.18",
      { bootstrapPeers: [n.addr] },
      { operatorKey: op, isRegisteredMasternode },
    );
    await waitFor(
      () => n!.pm.getPeer(mn!.id) !== undefined && mn!.pm.getPeer(n!.id) !== undefined,
      "connected",
    );
    const first = n.pm.getPeer(mn.id)!;
    for (let i = 0; i < 300; i++) mn.pm.getPeer(n.id)!.send({ type: MsgType.GetPeers });
    await waitFor(() => first.state === "closed", "disconnected");
    assert.equal(first.closeReason, GoodbyeReason.RATE_LIMITED);
    assert.equal(n.pm.listBanned().length, 0, "a masternode's address is never banned for a soft offence");
    await waitFor(() => n!.pm.getPeer(mn!.id) !== undefined, "and it comes back");
  } finally {
    await stopAll([n, mn]);
  }
});

test("a whitelisted peer is never banned, but proof still disconnects it", async () => {
  let n: TestNode | undefined;
  let w: TestNode | undefined;
  try {
    n = await startNode("127.0.4.20", { whitelist: ["127.0.4.21"] });
    w = await startNode("127.0.4.21", { bootstrapPeers: [n.addr] });
    await waitFor(
      () => n!.pm.getPeer(w!.id) !== undefined && w!.pm.getPeer(n!.id) !== undefined,
      "connected",
    );
    const link = w.pm.getPeer(n.id)!;
    for (let i = 0; i < 500; i++) link.send({ type: MsgType.GetPeers });
    await waitFor(
      () => n!.logger.records.some((r) => r.level === "warn" && /Whitelisted peer misbehaved/.test(r.msg)),
      "the violation is logged",
    );
    await sleep(200);
    assert.equal(n.pm.listBanned().length, 0);
    assert.equal(n.pm.getPeer(w.id)?.state, "ready", "still connected");
    assert.equal(n.pm.peerInfo()[0]?.whitelisted, true);

    // Block validation reports an invalid block: disconnected, still not banned, and back soon.
    const peer = n.pm.getPeer(w.id)!;
    n.pm.misbehaving(peer, 100, "invalid block");
    assert.equal(peer.state, "closed");
    assert.equal(peer.closeReason, GoodbyeReason.MISBEHAVIOUR);
    assert.equal(n.pm.listBanned().length, 0);
    await waitFor(() => n!.pm.getPeer(w!.id) !== undefined, "the whitelisted peer reconnects");
  } finally {
    await stopAll([n, w]);
  }
});

test("proof bans at once with its evidence: an invalid block reported from above", async () => {
  let n: TestNode | undefined;
  let b: TestNode | undefined;
  try {
    n = await startNode("127.0.4.22");
    b = await startNode("127.0.4.23", { bootstrapPeers: [n.addr] });
    await waitFor(() => n!.pm.getPeer(b!.id) !== undefined, "connected");
    n.pm.misbehaving(
      n.pm.getPeer(b.id)!,
      100,
      "invalid block: BAD_MERKLE_ROOT",
      "block 00ab breaks BAD_MERKLE_ROOT",
    );
    const [ban] = n.pm.listBanned();
    assert.ok(ban);
    assert.equal(ban.subject, "127.0.4.23");
    assert.equal(ban.source, "proof");
    assert.equal(ban.reason, "INVALID_DATA: invalid block: BAD_MERKLE_ROOT");
    assert.equal(ban.evidence, "block 00ab breaks BAD_MERKLE_ROOT");
    assert.equal(ban.nodeId, b.id);
    assert.equal(ban.until! - ban.createdAt, 10 * 60 * 1000, "a first proof ban lasts 10 minutes");
    await waitFor(() => n!.pm.getPeer(b!.id) === undefined, "disconnected");
  } finally {
    await stopAll([n, b]);
  }
});

test("garbage in Peers is skipped and never scored; valid entries are kept; our own id is skipped", async () => {
  let n: TestNode | undefined;
  let s: TestNode | undefined;
  try {
    n = await startNode("127.0.4.30", { maxOutbound: 0 });
    s = await startNode("127.0.4.31", { bootstrapPeers: [n.addr] });
    await waitFor(
      () => n!.pm.getPeer(s!.id) !== undefined && s!.pm.getPeer(n!.id) !== undefined,
      "connected",
    );
    const id = (b: number): Buffer => Buffer.alloc(32, b);
    s.pm.getPeer(n.id)!.send({
      type: MsgType.Peers,
      peers: [
        { nodeId: id(1), address: "127.0.4.99:1234", services: 1, lastSeen: 0 },
        { nodeId: id(2), address: "not an address", services: 0, lastSeen: 0 },
        { nodeId: id(3), address: "0.0.0.0:5", services: 0, lastSeen: 0 },
        { nodeId: id(4), address: "224.0.0.1:5", services: 0, lastSeen: 0 },
        { nodeId: n.key.publicKey, address: "127.0.4.98:1", services: 0, lastSeen: 0 },
        { nodeId: id(5), address: n.addr, services: 0, lastSeen: 0 },
      ],
    });
    await waitFor(() => n!.pm.addressBook.has("127.0.4.99:1234"), "valid entry added");
    assert.equal(n.pm.addressBook.get("127.0.4.99:1234")?.nodeId, id(1).toString("hex"));
    assert.ok(!n.pm.addressBook.has("0.0.0.0:5"));
    assert.ok(!n.pm.addressBook.has("224.0.0.1:5"));
    assert.ok(!n.pm.addressBook.has("127.0.4.98:1"), "an entry with our own node id");
    assert.ok(!n.pm.addressBook.has(n.addr), "our own address");
    assert.equal(n.pm.banManager.score("127.0.4.31"), 0);
    assert.equal(n.pm.getPeer(s.id)?.state, "ready");
  } finally {
    await stopAll([n, s]);
  }
});

test("blacklist: a listed IP is refused at accept time, a listed node id after its handshake", async () => {
  const nodes: TestNode[] = [];
  try {
    const badKey = KeyPair.generate();
    const n = await startNode("127.0.4.40", {
      blacklist: ["127.0.4.41:24000", badKey.publicKey.toString("hex")],
    });
    nodes.push(n);
    const byIp = await startNode("127.0.4.41");
    const byId = await startNode("127.0.4.42", {}, { key: badKey });
    const ok = await startNode("127.0.4.43");
    nodes.push(byIp, byId, ok);
    for (const x of [byIp, byId, ok]) x.pm.addNode(n.addr, "onetry");
    await waitFor(() => n.pm.getPeer(ok.id) !== undefined, "an unlisted peer connects");
    await waitFor(
      () => (byIp.pm.disconnects.get("banned") ?? 0) > 0 && (byId.pm.disconnects.get("banned") ?? 0) > 0,
      "both listed peers told they are banned",
    );
    assert.equal(n.pm.peers().length, 1);
    const listed = n.pm.listBanned();
    assert.deepEqual(
      listed.map((b) => [b.subject, b.until, b.source]).sort(),
      [
        ["127.0.4.41", null, "config"],
        [badKey.publicKey.toString("hex"), null, "config"],
      ].sort(),
    );
    assert.equal(n.pm.clearBanned(), 0, "config bans stay");
  } finally {
    await stopAll(nodes);
  }
});

test("handshake slots: bounded; when full, the connection that has waited longest for its Hello gives way", async () => {
  let n: TestNode | undefined;
  const raws: RawResult[] = [];
  try {
    n = await startNode("127.0.4.50", {
      maxHandshaking: 3,
      maxConnectionsPerIp: 1,
      connectRatePerMinute: 1,
      whitelist: ["127.0.4.60"],
    });
    // Five silent connections from one whitelisted IP (no per-IP caps): only three sit in the
    // handshake at once, and each newcomer evicts the oldest that never sent its Hello.
    for (let i = 0; i < 5; i++) {
      raws.push(rawConnect(n.addr, "127.0.4.60"));
      await waitFor(() => raws[i]!.first !== null, `attempt ${i} answered`);
    }
    assert.deepEqual(
      raws.map((r) => r.first),
      [MsgType.Hello, MsgType.Hello, MsgType.Hello, MsgType.Hello, MsgType.Hello],
    );
    await waitFor(() => raws[0]!.closed && raws[1]!.closed, "the two oldest gave way");
    assert.equal(n.pm.handshakingCount, 3);
    assert.ok(!raws[2]!.closed && !raws[3]!.closed && !raws[4]!.closed);
  } finally {
    for (const r of raws) r.socket.destroy();
    await stopAll([n]);
  }
});

test("handshake slots: at most maxHandshakingPerIp from one IP; a silent connection is dropped at the Hello deadline", async () => {
  let n: TestNode | undefined;
  const raws: RawResult[] = [];
  try {
    n = await startNode("127.0.4.51", {
      maxHandshakingPerIp: 2,
      maxConnectionsPerIp: 10,
      connectRatePerMinute: 100,
      helloTimeoutMs: 600,
    });
    for (let i = 0; i < 3; i++) {
      raws.push(rawConnect(n.addr, "127.0.4.61"));
      await waitFor(() => raws[i]!.first !== null, `attempt ${i} answered`);
    }
    assert.deepEqual(
      raws.map((r) => r.first),
      [MsgType.Hello, MsgType.Hello, MsgType.Goodbye],
    );
    assert.equal(raws[2]!.goodbye, GoodbyeReason.TOO_MANY_PEERS);
    // Another address is not held back by that one.
    const other = rawConnect(n.addr, "127.0.4.62");
    raws.push(other);
    await waitFor(() => other.first !== null, "other answered");
    assert.equal(other.first, MsgType.Hello);
    // Nobody sent a Hello: after 600 ms every one of them is gone.
    await waitFor(
      () => raws[0]!.closed && raws[1]!.closed && other.closed,
      "dropped at the Hello deadline",
      5_000,
    );
    assert.equal(n.pm.handshakingCount, 0);
    assert.ok((n.pm.disconnects.get("handshake_timeout") ?? 0) >= 3);
  } finally {
    for (const r of raws) r.socket.destroy();
    await stopAll([n]);
  }
});
