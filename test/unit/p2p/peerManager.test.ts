import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { nullLogger } from "../../../src/logging/index.js";
import { GoodbyeReason, MsgType, type Message } from "../../../src/p2p/messages.js";
import { PING_REFRESH_INTERVALS } from "../../../src/p2p/constants.js";
import { Peer } from "../../../src/p2p/peer.js";
import { PeerManager, PeerManagerError, type PeerInfo } from "../../../src/p2p/peerManager.js";
import type { Transport } from "../../../src/p2p/transport.js";
import { SeededRandom } from "../../../src/util/random.js";
import {
  CountingTransport,
  FAST,
  FAST_MAX_REDIAL_MS,
  makeLocal,
  PORT,
  stopAll,
  testKey,
  VirtualNet,
  type TestNode,
} from "./harness.js";

// Every test runs on its own virtual network. This file uses 10.3.0.0/24 (and addresses where
// nothing listens in 10.6.0.0/24).

test("handshake: two managers see one ready peer each, with the right ids and directions", async () => {
  const v = new VirtualNet(301);
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  try {
    a = await v.startNode("10.3.0.1", {}, { height: 7 });
    const ready: string[] = [];
    a.pm.events.on("peerReady", (p) => ready.push(p.nodeIdHex));
    b = await v.startNode("10.3.0.2", { bootstrapPeers: [a.addr] }, { height: 3 });
    await v.until(() => a!.pm.peers().length === 1 && b!.pm.peers().length === 1, "both ready");
    const [pa] = a.pm.peers();
    const [pb] = b.pm.peers();
    assert.equal(pa!.nodeIdHex, b.id, "a's peer is b");
    assert.equal(pb!.nodeIdHex, a.id, "b's peer is a");
    assert.equal(pa!.direction, "inbound", "b dialled a: inbound at a");
    assert.equal(pb!.direction, "outbound", "and outbound at b");
    assert.equal(pa!.ip, "10.3.0.2", "b dialled from its own listen IP");
    assert.deepEqual(ready, [b.id], "one peerReady event at a, for b");
    assert.deepEqual(a.pm.connectionCounts(), { total: 1, inbound: 1, outbound: 0 }, "a's counts");
    assert.deepEqual(b.pm.connectionCounts(), { total: 1, inbound: 0, outbound: 1 }, "b's counts");
    // Heights come from the handshake and then every ping.
    assert.equal(pb!.height, 7, "a's height from the handshake");
    a.tip.height = 9;
    const tookHeight = await v.until(() => pb!.height === 9, "height from a ping/pong");
    assert.ok(tookHeight <= FAST.pingIntervalMs, `the next ping carried it (${tookHeight} ms)`);
    await v.until(() => a!.pm.peerInfo()[0]!.pingtime !== null, "a measured an RTT", FAST.pingIntervalMs);
    const info = a.pm.peerInfo()[0]!;
    assert.equal(info.nodeid, b.id, "peerInfo: nodeid");
    assert.equal(info.inbound, true, "peerInfo: inbound");
    assert.equal(info.listenaddr, b.addr, "peerInfo: listenaddr");
    assert.equal(info.masternode, false, "peerInfo: masternode");
    assert.equal(info.whitelisted, false, "peerInfo: whitelisted");
    assert.equal(info.operator, null, "peerInfo: operator");
    assert.equal(typeof info.conntime, "number", "peerInfo: conntime");
    assert.ok(
      info.bytessent > 0 && info.bytesrecv > 0,
      `bytes sent ${info.bytessent}, received ${info.bytesrecv}`,
    );
    assert.equal(info.addr, b.pm.peerInfo()[0]!.addrlocal, "a's remote address is b's local one");
    // The book learned b's listen address first-hand.
    assert.equal(a.pm.addressBook.get(b.addr)?.nodeId, b.id, "the book has b's listen address with its id");
  } finally {
    await stopAll([a, b]);
  }
});

test("simultaneous dial, 50 times: exactly one connection survives, the same one on both sides", async () => {
  const v = new VirtualNet(302);
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  try {
    // A long hold after a manual disconnect, so only the test's own dials happen.
    const opts = {
      connectRatePerMinute: 100_000,
      ordinaryBackoff: { baseMs: 50, maxMs: 600_000, maxAttempts: 10 },
    };
    a = await v.startNode("10.3.0.3", opts);
    b = await v.startNode("10.3.0.4", opts);
    const smaller = Buffer.compare(a.key.publicKey, b.key.publicKey) < 0 ? a : b;
    const settled = (n: TestNode): boolean => n.pm.peers().length === 1 && n.pm.handshakingCount === 0;
    const empty = (n: TestNode): boolean => n.pm.peers().length === 0 && n.pm.handshakingCount === 0;
    for (let i = 0; i < 50; i++) {
      a.pm.addNode(b.addr, "onetry");
      b.pm.addNode(a.addr, "onetry");
      await v.until(() => settled(a!) && settled(b!), `round ${i}: one connection each`);
      // 10 dial (and ping) intervals of 100 ms: no late duplicate, no redial, no late close.
      await v.advance(10 * FAST.dialIntervalMs);
      assert.ok(settled(a) && settled(b), `round ${i}: still exactly one after settling`);
      const ia: PeerInfo = a.pm.peerInfo()[0]!;
      const ib: PeerInfo = b.pm.peerInfo()[0]!;
      assert.equal(ia.nodeid, b.id, `round ${i}: a's peer is b`);
      assert.equal(ib.nodeid, a.id, `round ${i}: b's peer is a`);
      assert.equal(ia.addr, ib.addrlocal, `round ${i}: same connection (a's remote = b's local)`);
      assert.equal(ib.addr, ia.addrlocal, `round ${i}: same connection (b's remote = a's local)`);
      assert.notEqual(ia.inbound, ib.inbound, `round ${i}: inbound on one side, outbound on the other`);
      const keptDialledBySmaller = smaller === a ? !ia.inbound : !ib.inbound;
      assert.ok(keptDialledBySmaller, `round ${i}: the link dialled by the smaller id survived`);
      assert.equal(a.pm.disconnect(b.id), true, `round ${i}: disconnect finds b`);
      await v.until(() => empty(a!) && empty(b!), `round ${i}: disconnected`);
    }
    // Duplicates were closed as duplicates, and nothing else went wrong.
    const dup =
      (a.pm.disconnects.get("duplicate_connection") ?? 0) +
      (b.pm.disconnects.get("duplicate_connection") ?? 0);
    assert.ok(dup > 0, "some rounds really raced");
    for (const n of [a, b]) {
      for (const reason of n.pm.disconnects.keys()) {
        assert.ok(["duplicate_connection", "manual_disconnect"].includes(reason), `unexpected ${reason}`);
      }
    }
  } finally {
    await stopAll([a, b]);
  }
});

test("no cycling: one link stays up, unchanged, across 50 ping intervals", async () => {
  const v = new VirtualNet(303);
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  try {
    a = await v.startNode("10.3.0.18");
    b = await v.startNode("10.3.0.19", { bootstrapPeers: [a.addr] });
    await v.until(() => a!.pm.peers().length === 1 && b!.pm.peers().length === 1, "connected");
    const pa = a.pm.peers()[0]!;
    const pb = b.pm.peers()[0]!;
    const link = a.pm.peerInfo()[0]!.addr;
    // A pong sets the RTT: cleared before each ping interval, it is set again only by a pong.
    const pongsSeen = { a: 0, b: 0 };
    for (let i = 0; i < 52; i++) {
      pa.rttMs = null;
      pb.rttMs = null;
      await v.advance(FAST.pingIntervalMs);
      if (pa.rttMs !== null) pongsSeen.a++;
      if (pb.rttMs !== null) pongsSeen.b++;
    }
    assert.equal(pa.state, "ready", "a's peer is still ready");
    assert.equal(pb.state, "ready", "b's peer is still ready");
    assert.equal(a.pm.peers()[0], pa, "the same Peer object");
    assert.equal(a.pm.peerInfo()[0]!.addr, link, "the same connection");
    assert.equal(a.pm.disconnects.size + b.pm.disconnects.size, 0, "nothing was ever closed");
    // Pongs arrive on both sides, inbound and outbound alike (the original lost them on outbound):
    // the dialer (b) pings every interval; the accepting side (a), answered by b's pings, pings
    // every PING_REFRESH_INTERVALS to keep its own RTT.
    assert.deepEqual(
      pongsSeen,
      { a: 52 / PING_REFRESH_INTERVALS, b: 52 },
      "a pong in every interval at the dialer, every 4th at the listener",
    );
  } finally {
    await stopAll([a, b]);
  }
});

test("a peer reconnecting from new ephemeral ports is counted once", async () => {
  const v = new VirtualNet(304);
  let a: TestNode | undefined;
  const clients: Peer[] = [];
  try {
    a = await v.startNode("10.3.0.5");
    const local = makeLocal(testKey("ephemeral-b"));
    local.listenAddr = () => "10.3.0.6:24999";
    const modules = { clock: v.clock, random: v.random(), logger: nullLogger };
    const closedReasons: GoodbyeReason[] = [];
    const ports = new Set<number>();
    for (let i = 0; i < 5; i++) {
      const conn = await v.dial("10.3.0.6", a.addr);
      ports.add(conn.localPort);
      const peer = new Peer(
        conn,
        local,
        { direction: "outbound", pingIntervalMs: 100, rateLimits: {} },
        modules,
      );
      peer.events.on("closed", (e) => closedReasons.push(e.reason));
      clients.push(peer);
      peer.start();
      await v.until(() => peer.state === "ready", `connection ${i} ready`);
      await v.until(
        () => a!.pm.peers().length === 1 && a!.pm.peers()[0]!.port === conn.localPort,
        `a keeps only connection ${i}`,
      );
      assert.equal(a.pm.connectionCounts().total, 1, `connection ${i}: one connection`);
      assert.equal(a.pm.peerInfo().length, 1, `connection ${i}: one peer`);
    }
    assert.equal(ports.size, 5, "five different ephemeral ports");
    await v.until(() => closedReasons.length === 4, "the four older connections closed");
    assert.ok(
      closedReasons.every((r) => r === GoodbyeReason.DUPLICATE_CONNECTION),
      `each closed as a duplicate (${closedReasons.map((r) => GoodbyeReason[r]).join(", ")})`,
    );
    assert.equal(clients.filter((c) => c.state === "ready").length, 1, "one client still ready");
    assert.equal(a.pm.addressBook.size, 1, "one book entry for the node, keyed by its listen address");
    assert.ok(a.pm.addressBook.has("10.3.0.6:24999"), "the entry is its listen address");
  } finally {
    for (const c of clients) c.close(GoodbyeReason.SHUTDOWN);
    await stopAll([a]);
  }
});

test("reconnect: a restarted peer on the same address is reconnected", async () => {
  const v = new VirtualNet(305);
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  let b2: TestNode | undefined;
  try {
    const bKey = testKey("restarted-b");
    b = await v.startNode("10.3.0.7", {}, { key: bKey });
    a = await v.startNode("10.3.0.8", { bootstrapPeers: [b.addr] });
    await v.until(() => a!.pm.getPeer(bKey.publicKey.toString("hex")) !== undefined, "a connects to b");
    const closed: string[] = [];
    a.pm.events.on("peerClosed", (e) => closed.push(GoodbyeReason[e.reason]));
    await b.pm.stop();
    await v.until(() => a!.pm.peers().length === 0, "a notices b is gone");
    assert.deepEqual(closed, ["SHUTDOWN"], "b said goodbye with SHUTDOWN");
    await v.advance(150); // a few failed redials while b is down (the backoff starts at 50 ms)
    b2 = await v.startNode("10.3.0.7", {}, { key: bKey, port: PORT });
    const took = await v.until(
      () => a!.pm.getPeer(b2!.id)?.state === "ready",
      "a reconnects to the restarted b",
    );
    // The next redial is at most one maximal backoff away, and the dial loop ticks every 100 ms.
    const bound = FAST_MAX_REDIAL_MS + FAST.dialIntervalMs;
    assert.ok(took <= bound, `reconnected ${took} ms after the restart (at most ${bound})`);
    assert.equal(b2.pm.peers()[0]?.nodeIdHex, a.id, "the restarted b has a as its peer");
  } finally {
    await stopAll([a, b, b2]);
  }
});

test("backoff: an ordinary address is given up after its limit, a bootstrap peer never", async () => {
  const v = new VirtualNet(306);
  let a: TestNode | undefined;
  try {
    // Nothing listens at either address: every dial is refused at once.
    const deadBoot = `10.6.0.1:${PORT}`;
    const deadBook = `10.6.0.2:${PORT}`;
    let transport!: CountingTransport;
    const dialIntervalMs = 50;
    a = await v.startNode(
      "10.3.0.9",
      {
        bootstrapPeers: [deadBoot],
        ordinaryBackoff: { baseMs: 10, maxMs: 40, maxAttempts: 3 },
        masternodeBackoff: { baseMs: 10, maxMs: 40, maxAttempts: 5 },
        dialIntervalMs,
      },
      { transport: (inner) => (transport = new CountingTransport(inner, v.clock)) },
    );
    a.pm.addressBook.add({ address: deadBook, source: "peers" });
    await v.until(
      () => transport.count(deadBoot) >= 12,
      "bootstrap redialled past the ordinary limit",
      5_000,
    );
    assert.equal(transport.count(deadBook), 3, "the book address was tried exactly 3 times");
    // 10 dial intervals (50 ms), each longer than the address's longest backoff (40 ms + 20%).
    await v.advance(10 * dialIntervalMs);
    assert.equal(transport.count(deadBook), 3, "and never again");
    const before = transport.count(deadBoot);
    await v.until(() => transport.count(deadBoot) > before + 2, "the bootstrap peer is still retried");
    assert.equal(a.pm.addressBook.get(deadBook)?.failures, 3, "the book counts 3 failures");
  } finally {
    await stopAll([a]);
  }
});

test("backoff: a node that completes the handshake and then drops us is given up too", async () => {
  const v = new VirtualNet(307);
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  try {
    // b has no ordinary inbound slot: it refuses every ordinary peer right after the handshake.
    b = await v.startNode("10.3.0.40", { maxInbound: 1, reservedMasternodeSlots: 1 });
    let transport!: CountingTransport;
    const dialIntervalMs = 50;
    a = await v.startNode(
      "10.3.0.41",
      { ordinaryBackoff: { baseMs: 10, maxMs: 40, maxAttempts: 4 }, dialIntervalMs },
      { transport: (inner) => (transport = new CountingTransport(inner, v.clock)) },
    );
    a.pm.addressBook.add({ address: b.addr, source: "peers" });
    await v.until(() => (a!.pm.disconnects.get("too_many_peers") ?? 0) >= 4, "refused four times", 5_000);
    // 10 dial intervals (50 ms), each longer than the address's longest backoff (40 ms + 20%).
    await v.advance(10 * dialIntervalMs);
    assert.equal(
      transport.count(b.addr),
      4,
      "a handshake that is dropped at once does not reset the backoff",
    );
    assert.equal(a.pm.peers().length, 0, "a has no peer");
  } finally {
    await stopAll([a, b]);
  }
});

test("backoff: jittered exponential delays, 5 s → 300 s (10 tries) and 2 s → 60 s for masternodes", async () => {
  // Virtual time, the default options: nothing listens at any of the three addresses, so every
  // dial is refused.
  const v = new VirtualNet(308);
  const transport = new CountingTransport(v.transport("10.3.0.50"), v.clock);
  const pm = new PeerManager(
    { bootstrapPeers: [`10.6.0.10:${PORT}`] },
    {
      clock: v.clock,
      random: new SeededRandom(7),
      logger: nullLogger,
      transport,
      local: makeLocal(testKey("backoff-jitter")),
    },
  );
  await pm.start();
  pm.addressBook.add({ address: `10.6.0.11:${PORT}`, source: "peers" });
  pm.setMasternodeAddresses([`10.6.0.12:${PORT}`]);
  await v.advance(4_000_000, 250);
  await pm.stop();
  const gaps = (k: string): number[] => {
    const ts = transport.times(k);
    return ts.slice(1).map((t, i) => t - ts[i]!);
  };
  const within = (gap: number, expected: number): boolean =>
    gap >= expected * 0.8 - 1 && gap <= expected * 1.2 + 1_000 + 300; // + one dial-loop tick
  // Ordinary (from the book): 10 tries, then given up.
  const ordinary = gaps(`10.6.0.11:${PORT}`);
  assert.equal(transport.count(`10.6.0.11:${PORT}`), 10, "the ordinary address was tried 10 times");
  const expectOrdinary = [5, 10, 20, 40, 80, 160, 300, 300, 300].map((s) => s * 1000);
  ordinary.forEach((g, i) =>
    assert.ok(within(g, expectOrdinary[i]!), `ordinary gap ${i}: ${g} vs ${expectOrdinary[i]}`),
  );
  // Bootstrap: the same growth, but retried forever at the maximum.
  const boot = gaps(`10.6.0.10:${PORT}`);
  assert.ok(boot.length > 15, `the bootstrap peer retried past 15 tries (${boot.length})`);
  boot.forEach((g, i) => assert.ok(within(g, expectOrdinary[Math.min(i, 8)]!), `bootstrap gap ${i}: ${g}`));
  // Masternode service address: 2 s doubling to 60 s, forever.
  const mn = gaps(`10.6.0.12:${PORT}`);
  const expectMn = [2, 4, 8, 16, 32, 60].map((s) => s * 1000);
  assert.ok(mn.length > 50, `masternode address retried past 50 tries (${mn.length})`);
  mn.forEach((g, i) => assert.ok(within(g, expectMn[Math.min(i, 5)]!), `masternode gap ${i}: ${g}`));
  // The jitter really varies the delays.
  assert.ok(new Set(mn.slice(10, 30)).size > 5, `distinct gaps: ${new Set(mn.slice(10, 30)).size}`);
});

test("setNetworkActive(false) drops every peer and refuses them; true brings them back", async () => {
  const v = new VirtualNet(309);
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  let c: TestNode | undefined;
  try {
    b = await v.startNode("10.3.0.10");
    c = await v.startNode("10.3.0.11", { bootstrapPeers: [] });
    a = await v.startNode("10.3.0.12", { bootstrapPeers: [b.addr] });
    c.pm.addNode(a.addr, "add");
    await v.until(() => a!.pm.peers().length === 2, "a has b (outbound) and c (inbound)");
    a.pm.setNetworkActive(false);
    assert.equal(a.pm.networkActive, false, "the network is off");
    await v.until(
      () => a!.pm.peers().length === 0 && b!.pm.peers().length === 0 && c!.pm.peers().length === 0,
      "all dropped",
    );
    // 10 of c's longest redial delays (400 ms + 20%): c keeps retrying a and is refused.
    await v.advance(10 * FAST_MAX_REDIAL_MS);
    assert.equal(a.pm.peers().length, 0, "a let nobody in");
    assert.ok((c.pm.disconnects.get("network_disabled") ?? 0) >= 2, "c was told the network is disabled");
    assert.throws(() => a!.pm.addNode(b!.addr, "onetry"), PeerManagerError, "addnode is refused while off");
    a.pm.setNetworkActive(true);
    await v.until(() => a!.pm.peers().length === 2, "both back", 5_000);
    assert.ok(a.pm.getPeer(b.id) && a.pm.getPeer(c.id), "b and c are both back");
  } finally {
    await stopAll([a, b, c]);
  }
});

test("address book persists across a restart and reconnects from it", async () => {
  const v = new VirtualNet(310);
  const dir = await mkdtemp(join(tmpdir(), "pm-book-"));
  let a: TestNode | undefined;
  let a2: TestNode | undefined;
  let b: TestNode | undefined;
  try {
    const file = join(dir, "peers.json");
    b = await v.startNode("10.3.0.13");
    const aKey = testKey("persisted-a");
    a = await v.startNode("10.3.0.14", { bootstrapPeers: [b.addr], addressBookFile: file }, { key: aKey });
    await v.until(() => a!.pm.peers().length === 1, "a connected");
    a.pm.setBan("10.3.0.99", "add");
    await a.pm.stop();
    const saved = JSON.parse(await readFile(file, "utf8")) as {
      entries: Array<{ address: string; nodeId: string }>;
    };
    assert.ok(
      saved.entries.some((e) => e.address === b!.addr && e.nodeId === b!.id),
      "the saved book has b with its node id",
    );
    await v.until(() => b!.pm.peers().length === 0, "b saw a leave");
    // No bootstrap this time: the book alone brings b back.
    a2 = await v.startNode("10.3.0.14", { addressBookFile: file }, { key: aKey });
    await v.until(() => a2!.pm.getPeer(b!.id) !== undefined, "a reconnects to b from its saved book");
    // Bans are kept beside the book and come back too.
    assert.deepEqual(
      a2.pm.listBanned().map((x) => x.subject),
      ["10.3.0.99"],
      "the ban came back",
    );
    assert.ok(JSON.parse(await readFile(join(dir, "banlist.json"), "utf8")), "banlist.json is saved");
  } finally {
    await stopAll([a, a2, b]);
    await rm(dir, { recursive: true, force: true });
  }
});

test("the address book is written when it first changes, then at most once per save interval", async () => {
  const v = new VirtualNet(312);
  const dir = await mkdtemp(join(tmpdir(), "pm-book-"));
  const nodes: Array<TestNode | undefined> = [];
  try {
    const file = join(dir, "peers.json");
    const [b, c] = [await v.startNode("10.3.0.17"), await v.startNode("10.3.0.18")];
    nodes.push(b, c);
    const a = await v.startNode("10.3.0.19", {
      bootstrapPeers: [b.addr],
      addressBookFile: file,
      addressBookSaveIntervalMs: 60_000,
    });
    nodes.push(a);
    // When each periodic save starts, in virtual time (the file itself is written by real I/O).
    const book = a.pm.addressBook;
    const save = book.save.bind(book);
    const saves: number[] = [];
    let lastSave: Promise<void> = Promise.resolve();
    book.save = () => {
      saves.push(v.clock.now());
      return (lastSave = save());
    };
    await v.until(() => saves.length >= 1 && a.pm.peers().length === 1, "a's first change is written");
    a.pm.addNode(c.addr, "onetry");
    await v.until(() => a.pm.getPeer(c.id) !== undefined, "a connects to c");
    // The ban list is still looked at every saveIntervalMs (200 ms here): 50 ticks go by.
    await v.advance(10_000, 100);
    assert.equal(saves.length, 1, "the book was written again within its interval");
    await v.until(() => saves.length >= 2, "the next write", 60_000, 250);
    assert.ok(
      saves[1]! - saves[0]! >= 60_000,
      `the next write came ${saves[1]! - saves[0]!} ms after the first`,
    );
    await lastSave;
    const written = JSON.parse(await readFile(file, "utf8")) as { entries: Array<{ address: string }> };
    assert.ok(
      written.entries.some((e) => e.address === c.addr),
      "the second write holds c",
    );
  } finally {
    await stopAll(nodes);
    await rm(dir, { recursive: true, force: true });
  }
});

test("operator API: addnode, disconnect, whitelist, events and broadcast", async () => {
  const v = new VirtualNet(311);
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  try {
    const opts = { ordinaryBackoff: { baseMs: 50, maxMs: 5_000, maxAttempts: 10 } };
    a = await v.startNode("10.3.0.15", opts);
    b = await v.startNode("10.3.0.16", opts);
    assert.throws(() => a!.pm.addNode("not an address", "add"), PeerManagerError, "a bad address");
    assert.throws(() => a!.pm.addNode(b!.addr, "remove"), /has not been added/, "removing what is not there");
    a.pm.addNode(b.addr, "add");
    assert.throws(() => a!.pm.addNode(b!.addr, "add"), /already added/, "adding twice");
    await v.until(() => a!.pm.getPeer(b!.id) !== undefined, "addnode connects");

    const got: Message[] = [];
    b.onMessage((_peer, msg) => got.push(msg));
    // A route that throws is caught and logged; the manager and the peer go on.
    b.onMessage(() => {
      throw new Error("route bug");
    });
    const states: number[] = [];
    b.pm.events.on("peerState", (p) => states.push(p.height));
    assert.equal(a.pm.broadcast({ type: MsgType.NotFound, reqId: 0, message: "x" }), 1, "broadcast to b");
    assert.equal(
      a.pm.broadcast({ type: MsgType.NotFound, reqId: 0, message: "x" }, () => false),
      0,
      "a filter that refuses everyone",
    );
    a.tip.height = 42;
    await v.until(() => states.includes(42), "peerState with the new height");
    // The NotFound was unsolicited (Peer drops it) and never reaches the route; a GetHeaders does.
    a.pm.broadcast({ type: MsgType.GetHeaders, reqId: 1, locator: [], stopHash: Buffer.alloc(32), max: 1 });
    await v.until(() => got.some((m) => m.type === MsgType.GetHeaders), "routed message");
    assert.ok(
      !got.some((m) => m.type === MsgType.GetPeers || m.type === MsgType.Peers),
      "discovery stays inside",
    );
    assert.ok(
      b.logger.records.some((r) => r.level === "error" && /Message route threw/.test(r.msg)),
      "the route's throw is logged",
    );
    assert.ok(b.pm.getPeer(a.id), "the peer survives a route that threw");

    a.pm.addNode(b.addr, "remove");
    assert.equal(a.pm.disconnect("no-such-peer"), false, "disconnect of an unknown peer");
    assert.equal(a.pm.disconnect(b.addr), true, "disconnect by address");
    await v.until(() => a!.pm.peers().length === 0 && b!.pm.peers().length === 0, "disconnected");
    // 10 dial intervals (100 ms), well inside the 5 s hold-off a manual disconnect sets.
    await v.advance(10 * FAST.dialIntervalMs);
    assert.equal(a.pm.peers().length, 0, "a deliberate disconnect is not redialled at once");

    assert.deepEqual(a.pm.getWhitelist(), [], "the whitelist starts empty");
    assert.equal(a.pm.addWhitelist("10.3.0.16:24000"), true, "whitelist an address (its IP)");
    assert.equal(a.pm.addWhitelist(b.id.toUpperCase()), true, "whitelist a node id, any case");
    assert.deepEqual(a.pm.getWhitelist().sort(), ["10.3.0.16", b.id].sort(), "the IP and the id, canonical");
    assert.throws(() => a!.pm.addWhitelist("example.com"), PeerManagerError, "a host name is refused");
    assert.throws(() => a!.pm.setBan("10.3.0.16", "add"), /whitelisted/, "a whitelisted IP is not banned");
    assert.equal(a.pm.removeWhitelist("10.3.0.16"), true, "remove the IP");
    assert.equal(a.pm.removeWhitelist(b.id), true, "remove the id");
    assert.equal(a.pm.setBan("10.3.0.16", "add", 60), true, "now the IP can be banned");
    assert.equal(a.pm.listBanned()[0]?.subject, "10.3.0.16", "and is listed");
    assert.equal(a.pm.setBan("10.3.0.16", "remove"), true, "unbanned");
    assert.equal(a.pm.listBanned().length, 0, "the list is empty again");
    assert.throws(() => a!.pm.setBan("nope", "add"), PeerManagerError, "a bad ban subject");
  } finally {
    await stopAll([a, b]);
  }
});

test("outbound slots: the dial loop never exceeds maxOutbound", async () => {
  const v = new VirtualNet(312);
  const nodes: TestNode[] = [];
  try {
    for (let i = 0; i < 5; i++) nodes.push(await v.startNode(`10.3.0.${30 + i}`));
    const a = await v.startNode("10.3.0.29", { maxOutbound: 2 });
    nodes.push(a);
    for (const n of nodes.slice(0, 5)) a.pm.addressBook.add({ address: n.addr, source: "peers" });
    await v.until(() => a.pm.connectionCounts().outbound === 2, "two outbound");
    // 10 dial intervals (100 ms): the loop had ten chances to go over.
    await v.advance(10 * FAST.dialIntervalMs);
    // The others learn about a through discovery and dial it: those are inbound, not limited here.
    assert.equal(a.pm.connectionCounts().outbound, 2, "still two outbound");
    assert.equal(a.pm.dialingCount, 0, "and no dial in progress");
    assert.equal(a.pm.peers().filter((p) => p.direction === "outbound").length, 2, "two outbound peers");
  } finally {
    await stopAll(nodes);
  }
});

/** Also accepts on `alias`, as a dual-stack socket accepts its IPv4 address IPv4-mapped. */
function alsoListenOn(inner: Transport, alias: string): Transport {
  return {
    listen: async (host, port, onConnection) => {
      const l = await inner.listen(host, port, onConnection);
      const second = await inner.listen(alias, l.port, onConnection);
      return {
        host: l.host,
        port: l.port,
        close: async () => {
          await second.close();
          await l.close();
        },
      };
    },
    dial: (host, port, opts) => inner.dial(host, port, opts),
  };
}

test("self: dialling our own address is detected once and never repeated", async () => {
  const v = new VirtualNet(313);
  let a: TestNode | undefined;
  try {
    let transport!: CountingTransport;
    a = await v.startNode(
      "10.3.0.17",
      {},
      {
        transport: (inner) =>
          (transport = new CountingTransport(alsoListenOn(inner, "::ffff:10.3.0.17"), v.clock)),
      },
    );
    const self = a.addr;
    // Our own listener under an address string that is not our listen address.
    const alias = `[::ffff:10.3.0.17]:${self.split(":")[1]}`;
    a.pm.addNode(alias, "add");
    await v.until(() => (a!.pm.disconnects.get("self_connection") ?? 0) > 0, "self connection detected");
    // 10 of the longest redial delays (400 ms + 20%) of an addnode target, which is retried forever.
    await v.advance(10 * FAST_MAX_REDIAL_MS);
    assert.equal(transport.count(`::ffff:10.3.0.17:${self.split(":")[1]}`), 1, "dialled exactly once");
    assert.equal(a.pm.peers().length, 0, "no peer: a is not its own peer");
  } finally {
    await stopAll([a]);
  }
});
