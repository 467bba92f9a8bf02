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
    n = await startNode("127.0.4.1", { maxConnectionsPerIp: 3, connectRatePerMinute: 10 });
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
    n2 = await startNode("127.0.4.9", { maxConnectionsPerIp: 3, connectRatePerMinute: 100_000 });
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

test("rate limit → misbehaviour → ban; the banned IP cannot reconnect until clearBanned; others are still served", async () => {
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
    for (let i = 0; i < 500; i++) {
      link.send({ type: MsgType.Ping, nonce: i, height: 0, tipHash: Buffer.alloc(32), timestamp: 0 });
    }
    await waitFor(() => n!.pm.getPeer(flooder!.id) === undefined, "flooder disconnected");
    const bans = n.pm.listBanned();
    assert.equal(bans.length, 1);
    assert.equal(bans[0]!.subject, "127.0.4.11");
    assert.equal(bans[0]!.source, "misbehaviour");
    assert.equal(bans[0]!.until! - bans[0]!.createdAt, 5 * 60 * 1000, "first ban: 5 minutes");
    assert.equal(n.pm.bans.get("RATE_LIMITED"), 1);
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

test("a ban expires on its own; a manual ban disconnects at once", async () => {
  let n: TestNode | undefined;
  let f: TestNode | undefined;
  try {
    n = await startNode("127.0.4.13", { banEscalationMs: [400] });
    f = await startNode("127.0.4.14", { bootstrapPeers: [n.addr] });
    await waitFor(
      () => n!.pm.getPeer(f!.id) !== undefined && f!.pm.getPeer(n!.id) !== undefined,
      "connected",
    );
    const link = f.pm.getPeer(n.id)!;
    for (let i = 0; i < 300; i++)
      link.send({ type: MsgType.Ping, nonce: i, height: 0, tipHash: Buffer.alloc(32), timestamp: 0 });
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

test("a whitelisted peer is never banned, but a 100-score violation still disconnects it", async () => {
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
    for (let i = 0; i < 500; i++)
      link.send({ type: MsgType.Ping, nonce: i, height: 0, tipHash: Buffer.alloc(32), timestamp: 0 });
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

test("garbage in Peers is dropped with a small score; valid entries are kept; our own id is skipped", async () => {
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
    assert.equal(n.pm.banManager.score("127.0.4.31"), 5);
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

test("handshakes in progress are bounded; a whitelisted IP bypasses the per-IP limits", async () => {
  let n: TestNode | undefined;
  const raws: RawResult[] = [];
  try {
    n = await startNode("127.0.4.50", {
      maxHandshaking: 3,
      maxConnectionsPerIp: 1,
      connectRatePerMinute: 1,
      whitelist: ["127.0.4.60"],
    });
    // Five silent connections from one whitelisted IP: no per-IP cap, no rate limit, but only
    // three may sit in the handshake at once.
    for (let i = 0; i < 5; i++) {
      raws.push(rawConnect(n.addr, "127.0.4.60"));
      await waitFor(() => raws[i]!.first !== null, `attempt ${i} answered`);
    }
    assert.deepEqual(
      raws.map((r) => r.first),
      [MsgType.Hello, MsgType.Hello, MsgType.Hello, MsgType.Goodbye, MsgType.Goodbye],
    );
    assert.equal(raws[3]!.goodbye, GoodbyeReason.TOO_MANY_PEERS);
    assert.equal(n.pm.handshakingCount, 3);
    // Those three time out of the handshake and free their slots.
    for (const r of raws.slice(0, 3)) r.socket.destroy();
    await waitFor(() => n!.pm.handshakingCount === 0, "slots freed");
    const again = rawConnect(n.addr, "127.0.4.60");
    raws.push(again);
    await waitFor(() => again.first !== null, "answered");
    assert.equal(again.first, MsgType.Hello);
  } finally {
    for (const r of raws) r.socket.destroy();
    await stopAll([n]);
  }
});
