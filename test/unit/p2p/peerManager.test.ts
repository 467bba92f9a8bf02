import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { KeyPair } from "../../../src/crypto/ed25519.js";
import { nullLogger } from "../../../src/logging/index.js";
import { GoodbyeReason, MsgType, type Message } from "../../../src/p2p/messages.js";
import { Peer } from "../../../src/p2p/peer.js";
import { PeerManager, PeerManagerError, type PeerInfo } from "../../../src/p2p/peerManager.js";
import { TcpTransport, type Connection, type Transport } from "../../../src/p2p/transport.js";
import { ManualClock, SystemClock } from "../../../src/util/clock.js";
import { CryptoRandom, SeededRandom } from "../../../src/util/random.js";
import {
  CountingTransport,
  deadPort,
  makeLocal,
  sleep,
  startNode,
  stopAll,
  waitFor,
  type TestNode,
} from "./harness.js";

// This file uses 127.0.3.0/24 (and dead addresses in 127.0.6.0/24).

test("handshake: two managers see one ready peer each, with the right ids and directions", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  try {
    a = await startNode("127.0.3.1", {}, { height: 7 });
    b = await startNode("127.0.3.2", { bootstrapPeers: [a.addr] }, { height: 3 });
    const ready: string[] = [];
    a.pm.events.on("peerReady", (p) => ready.push(p.nodeIdHex));
    await waitFor(() => a!.pm.peers().length === 1 && b!.pm.peers().length === 1, "both ready");
    const [pa] = a.pm.peers();
    const [pb] = b.pm.peers();
    assert.equal(pa!.nodeIdHex, b.id);
    assert.equal(pb!.nodeIdHex, a.id);
    assert.equal(pa!.direction, "inbound");
    assert.equal(pb!.direction, "outbound");
    assert.equal(pa!.ip, "127.0.3.2", "b dialled from its own listen IP");
    assert.deepEqual(ready, [b.id]);
    assert.deepEqual(a.pm.connectionCounts(), { total: 1, inbound: 1, outbound: 0 });
    assert.deepEqual(b.pm.connectionCounts(), { total: 1, inbound: 0, outbound: 1 });
    // Heights come from the handshake and then every ping.
    assert.equal(pb!.height, 7);
    a.tip.height = 9;
    await waitFor(() => pb!.height === 9, "height from a ping/pong");
    await waitFor(() => a!.pm.peerInfo()[0]!.pingtime !== null, "a measured an RTT");
    const info = a.pm.peerInfo()[0]!;
    assert.equal(info.nodeid, b.id);
    assert.equal(info.inbound, true);
    assert.equal(info.listenaddr, b.addr);
    assert.equal(info.masternode, false);
    assert.equal(info.whitelisted, false);
    assert.equal(info.operator, null);
    assert.equal(typeof info.conntime, "number");
    assert.ok(info.bytessent > 0 && info.bytesrecv > 0);
    assert.equal(info.addr, b.pm.peerInfo()[0]!.addrlocal);
    // The book learned b's listen address first-hand.
    assert.equal(a.pm.addressBook.get(b.addr)?.nodeId, b.id);
  } finally {
    await stopAll([a, b]);
  }
});

test("simultaneous dial, 50 times: exactly one connection survives, the same one on both sides", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  try {
    // A long hold after a manual disconnect, so only the test's own dials happen.
    const opts = {
      connectRatePerMinute: 100_000,
      ordinaryBackoff: { baseMs: 50, maxMs: 600_000, maxAttempts: 10 },
    };
    a = await startNode("127.0.3.3", opts);
    b = await startNode("127.0.3.4", opts);
    const smaller = Buffer.compare(a.key.publicKey, b.key.publicKey) < 0 ? a : b;
    const settled = (n: TestNode): boolean => n.pm.peers().length === 1 && n.pm.handshakingCount === 0;
    const empty = (n: TestNode): boolean => n.pm.peers().length === 0 && n.pm.handshakingCount === 0;
    for (let i = 0; i < 50; i++) {
      a.pm.addNode(b.addr, "onetry");
      b.pm.addNode(a.addr, "onetry");
      await waitFor(() => settled(a!) && settled(b!), `round ${i}: one connection each`);
      await sleep(20);
      assert.ok(settled(a) && settled(b), `round ${i}: still exactly one after settling`);
      const ia: PeerInfo = a.pm.peerInfo()[0]!;
      const ib: PeerInfo = b.pm.peerInfo()[0]!;
      assert.equal(ia.nodeid, b.id);
      assert.equal(ib.nodeid, a.id);
      assert.equal(ia.addr, ib.addrlocal, `round ${i}: same TCP connection (a's remote = b's local)`);
      assert.equal(ib.addr, ia.addrlocal, `round ${i}: same TCP connection (b's remote = a's local)`);
      assert.notEqual(ia.inbound, ib.inbound);
      const keptDialledBySmaller = smaller === a ? !ia.inbound : !ib.inbound;
      assert.ok(keptDialledBySmaller, `round ${i}: the link dialled by the smaller id survived`);
      assert.equal(a.pm.disconnect(b.id), true);
      await waitFor(() => empty(a!) && empty(b!), `round ${i}: disconnected`);
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
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  try {
    a = await startNode("127.0.3.18");
    b = await startNode("127.0.3.19", { bootstrapPeers: [a.addr] });
    await waitFor(() => a!.pm.peers().length === 1 && b!.pm.peers().length === 1, "connected");
    const pa = a.pm.peers()[0]!;
    const pb = b.pm.peers()[0]!;
    const link = a.pm.peerInfo()[0]!.addr;
    const pongsSeen = { a: 0, b: 0 };
    let lastA = pa.rttMs;
    let lastB = pb.rttMs;
    const timer = setInterval(() => {
      if (pa.rttMs !== lastA) {
        pongsSeen.a++;
        lastA = pa.rttMs;
      }
      if (pb.rttMs !== lastB) {
        pongsSeen.b++;
        lastB = pb.rttMs;
      }
    }, 5);
    await sleep(52 * 100);
    clearInterval(timer);
    assert.equal(pa.state, "ready");
    assert.equal(pb.state, "ready");
    assert.equal(a.pm.peers()[0], pa, "the same Peer object");
    assert.equal(a.pm.peerInfo()[0]!.addr, link, "the same TCP connection");
    assert.equal(a.pm.disconnects.size + b.pm.disconnects.size, 0, "nothing was ever closed");
    // Pongs arrive on both sides, inbound and outbound alike (the original lost them on outbound).
    assert.ok(pongsSeen.a > 10 && pongsSeen.b > 10, `RTT updates: ${pongsSeen.a} / ${pongsSeen.b}`);
  } finally {
    await stopAll([a, b]);
  }
});

test("a peer reconnecting from new ephemeral ports is counted once", async () => {
  let a: TestNode | undefined;
  const clients: Peer[] = [];
  try {
    a = await startNode("127.0.3.5");
    const [host, port] = [a.host, Number(a.addr.split(":")[1])];
    const bKey = KeyPair.generate();
    const local = makeLocal(bKey);
    local.listenAddr = () => "127.0.3.6:24999";
    const transport = new TcpTransport();
    const modules = { clock: new SystemClock(), random: new CryptoRandom(), logger: nullLogger };
    const closedReasons: GoodbyeReason[] = [];
    for (let i = 0; i < 5; i++) {
      const conn: Connection = await transport.dial(host, port, { timeoutMs: 1_000, localHost: "127.0.3.6" });
      const peer = new Peer(
        conn,
        local,
        { direction: "outbound", pingIntervalMs: 100, rateLimits: {} },
        modules,
      );
      peer.events.on("closed", (e) => closedReasons.push(e.reason));
      clients.push(peer);
      peer.start();
      await waitFor(() => peer.state === "ready", `connection ${i} ready`);
      await waitFor(
        () => a!.pm.peers().length === 1 && a!.pm.peers()[0]!.port === conn.localPort,
        `a keeps only connection ${i}`,
      );
      assert.equal(a.pm.connectionCounts().total, 1);
      assert.equal(a.pm.peerInfo().length, 1);
    }
    await waitFor(() => closedReasons.length === 4, "the four older connections closed");
    assert.ok(closedReasons.every((r) => r === GoodbyeReason.DUPLICATE_CONNECTION));
    assert.equal(clients.filter((c) => c.state === "ready").length, 1);
    assert.equal(a.pm.addressBook.size, 1, "one book entry for the node, keyed by its listen address");
    assert.ok(a.pm.addressBook.has("127.0.3.6:24999"));
  } finally {
    for (const c of clients) c.close(GoodbyeReason.SHUTDOWN);
    await stopAll([a]);
  }
});

test("reconnect: a restarted peer on the same address is reconnected", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  let b2: TestNode | undefined;
  try {
    const bKey = KeyPair.generate();
    b = await startNode("127.0.3.7", {}, { key: bKey });
    const port = Number(b.addr.split(":")[1]);
    a = await startNode("127.0.3.8", { bootstrapPeers: [b.addr] });
    await waitFor(() => a!.pm.getPeer(bKey.publicKey.toString("hex")) !== undefined, "a connects to b");
    const closed: string[] = [];
    a.pm.events.on("peerClosed", (e) => closed.push(GoodbyeReason[e.reason]));
    await b.pm.stop();
    await waitFor(() => a!.pm.peers().length === 0, "a notices b is gone");
    assert.deepEqual(closed, ["SHUTDOWN"]);
    await sleep(150); // a few failed redials while b is down
    b2 = await startNode("127.0.3.7", {}, { key: bKey, port });
    const took = await waitFor(
      () => a!.pm.getPeer(b2!.id)?.state === "ready",
      "a reconnects to the restarted b",
    );
    assert.ok(took < 5_000);
    assert.equal(b2.pm.peers()[0]?.nodeIdHex, a.id);
  } finally {
    await stopAll([a, b, b2]);
  }
});

test("backoff: an ordinary address is given up after its limit, a bootstrap peer never", async () => {
  let a: TestNode | undefined;
  try {
    const transport = new CountingTransport();
    const deadBoot = `127.0.6.1:${await deadPort("127.0.6.1")}`;
    const deadBook = `127.0.6.2:${await deadPort("127.0.6.2")}`;
    a = await startNode(
      "127.0.3.9",
      {
        bootstrapPeers: [deadBoot],
        ordinaryBackoff: { baseMs: 10, maxMs: 40, maxAttempts: 3 },
        masternodeBackoff: { baseMs: 10, maxMs: 40, maxAttempts: 5 },
        dialIntervalMs: 50,
      },
      { transport },
    );
    a.pm.addressBook.add({ address: deadBook, source: "peers" });
    await waitFor(
      () => transport.count(deadBoot) >= 12,
      "bootstrap redialled past the ordinary limit",
      5_000,
    );
    assert.equal(transport.count(deadBook), 3, "the book address was tried exactly 3 times");
    await sleep(300);
    assert.equal(transport.count(deadBook), 3, "and never again");
    const before = transport.count(deadBoot);
    await waitFor(() => transport.count(deadBoot) > before + 2, "the bootstrap peer is still retried");
    assert.equal(a.pm.addressBook.get(deadBook)?.failures, 3);
  } finally {
    await stopAll([a]);
  }
});

test("backoff: a node that completes the handshake and then drops us is given up too", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  try {
    // b has no ordinary inbound slot: it refuses every ordinary peer right after the handshake.
    b = await startNode("127.0.3.40", { maxInbound: 1, reservedMasternodeSlots: 1 });
    const transport = new CountingTransport();
    a = await startNode(
      "127.0.3.41",
      { ordinaryBackoff: { baseMs: 10, maxMs: 40, maxAttempts: 4 }, dialIntervalMs: 50 },
      { transport },
    );
    a.pm.addressBook.add({ address: b.addr, source: "peers" });
    await waitFor(() => (a!.pm.disconnects.get("too_many_peers") ?? 0) >= 4, "refused four times", 5_000);
    await sleep(400);
    assert.equal(
      transport.count(b.addr),
      4,
      "a handshake that is dropped at once does not reset the backoff",
    );
    assert.equal(a.pm.peers().length, 0);
  } finally {
    await stopAll([a, b]);
  }
});

test("backoff: jittered exponential delays, 5 s → 300 s (10 tries) and 2 s → 60 s for masternodes", async () => {
  // Virtual time: a transport that always fails, a manual clock and a seeded random source.
  const clock = new ManualClock();
  const dials = new Map<string, number[]>();
  const transport: Transport = {
    listen: () => Promise.reject(new Error("not listening")),
    dial: (host, port) => {
      const k = `${host}:${port}`;
      dials.set(k, [...(dials.get(k) ?? []), clock.now()]);
      return Promise.reject(new Error("connection refused"));
    },
  };
  const pm = new PeerManager(
    { bootstrapPeers: ["127.0.6.10:1"] },
    {
      clock,
      random: new SeededRandom(7),
      logger: nullLogger,
      transport,
      local: makeLocal(KeyPair.generate()),
    },
  );
  await pm.start();
  pm.addressBook.add({ address: "127.0.6.11:1", source: "peers" });
  pm.setMasternodeAddresses(["127.0.6.12:1"]);
  const flush = () => new Promise((r) => setImmediate(r));
  for (let t = 0; t < 4_000_000; t += 250) {
    clock.advance(250);
    await flush();
  }
  await pm.stop();
  const gaps = (k: string): number[] => {
    const ts = dials.get(k) ?? [];
    return ts.slice(1).map((t, i) => t - ts[i]!);
  };
  const within = (gap: number, expected: number): boolean =>
    gap >= expected * 0.8 - 1 && gap <= expected * 1.2 + 1_000 + 300; // + one dial-loop tick
  // Ordinary (from the book): 10 tries, then given up.
  const ordinary = gaps("127.0.6.11:1");
  assert.equal(dials.get("127.0.6.11:1")?.length, 10);
  const expectOrdinary = [5, 10, 20, 40, 80, 160, 300, 300, 300].map((s) => s * 1000);
  ordinary.forEach((g, i) =>
    assert.ok(within(g, expectOrdinary[i]!), `ordinary gap ${i}: ${g} vs ${expectOrdinary[i]}`),
  );
  // Bootstrap: the same growth, but retried forever at the maximum.
  const boot = gaps("127.0.6.10:1");
  assert.ok(boot.length > 15);
  boot.forEach((g, i) => assert.ok(within(g, expectOrdinary[Math.min(i, 8)]!), `bootstrap gap ${i}: ${g}`));
  // Masternode service address: 2 s doubling to 60 s, forever.
  const mn = gaps("127.0.6.12:1");
  const expectMn = [2, 4, 8, 16, 32, 60].map((s) => s * 1000);
  assert.ok(mn.length > 50, `masternode address retried past 50 tries (${mn.length})`);
  mn.forEach((g, i) => assert.ok(within(g, expectMn[Math.min(i, 5)]!), `masternode gap ${i}: ${g}`));
  // The jitter really varies the delays.
  assert.ok(new Set(mn.slice(10, 30)).size > 5);
});

test("setNetworkActive(false) drops every peer and refuses them; true brings them back", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  let c: TestNode | undefined;
  try {
    b = await startNode("127.0.3.10");
    c = await startNode("127.0.3.11", { bootstrapPeers: [] });
    a = await startNode("127.0.3.12", { bootstrapPeers: [b.addr] });
    c.pm.addNode(a.addr, "add");
    await waitFor(() => a!.pm.peers().length === 2, "a has b (outbound) and c (inbound)");
    a.pm.setNetworkActive(false);
    assert.equal(a.pm.networkActive, false);
    await waitFor(
      () => a!.pm.peers().length === 0 && b!.pm.peers().length === 0 && c!.pm.peers().length === 0,
      "all dropped",
    );
    await sleep(400); // c keeps retrying a and is refused
    assert.equal(a.pm.peers().length, 0);
    assert.ok((c.pm.disconnects.get("network_disabled") ?? 0) >= 2, "c was told the network is disabled");
    assert.throws(() => a!.pm.addNode(b!.addr, "onetry"), PeerManagerError);
    a.pm.setNetworkActive(true);
    await waitFor(() => a!.pm.peers().length === 2, "both back", 5_000);
    assert.ok(a.pm.getPeer(b.id) && a.pm.getPeer(c.id));
  } finally {
    await stopAll([a, b, c]);
  }
});

test("address book persists across a restart and reconnects from it", async () => {
  const dir = await mkdtemp(join(tmpdir(), "pm-book-"));
  let a: TestNode | undefined;
  let a2: TestNode | undefined;
  let b: TestNode | undefined;
  try {
    const file = join(dir, "peers.json");
    b = await startNode("127.0.3.13");
    const aKey = KeyPair.generate();
    a = await startNode("127.0.3.14", { bootstrapPeers: [b.addr], addressBookFile: file }, { key: aKey });
    await waitFor(() => a!.pm.peers().length === 1, "a connected");
    a.pm.setBan("127.0.3.99", "add");
    await a.pm.stop();
    const saved = JSON.parse(await readFile(file, "utf8")) as {
      entries: Array<{ address: string; nodeId: string }>;
    };
    assert.ok(saved.entries.some((e) => e.address === b!.addr && e.nodeId === b!.id));
    await waitFor(() => b!.pm.peers().length === 0, "b saw a leave");
    // No bootstrap this time: the book alone brings b back.
    a2 = await startNode("127.0.3.14", { addressBookFile: file }, { key: aKey });
    await waitFor(() => a2!.pm.getPeer(b!.id) !== undefined, "a reconnects to b from its saved book");
    // Bans are kept beside the book and come back too.
    assert.deepEqual(
      a2.pm.listBanned().map((x) => x.subject),
      ["127.0.3.99"],
    );
    assert.ok(JSON.parse(await readFile(join(dir, "banlist.json"), "utf8")));
  } finally {
    await stopAll([a, a2, b]);
    await rm(dir, { recursive: true, force: true });
  }
});

test("operator API: addnode, disconnect, whitelist, events and broadcast", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  try {
    const opts = { ordinaryBackoff: { baseMs: 50, maxMs: 5_000, maxAttempts: 10 } };
    a = await startNode("127.0.3.15", opts);
    b = await startNode("127.0.3.16", opts);
    assert.throws(() => a!.pm.addNode("not an address", "add"), PeerManagerError);
    assert.throws(() => a!.pm.addNode(b!.addr, "remove"), /has not been added/);
    a.pm.addNode(b.addr, "add");
    assert.throws(() => a!.pm.addNode(b!.addr, "add"), /already added/);
    await waitFor(() => a!.pm.getPeer(b!.id) !== undefined, "addnode connects");

    const got: Message[] = [];
    b.onMessage((_peer, msg) => got.push(msg));
    // A route that throws is caught and logged; the manager and the peer go on.
    b.onMessage(() => {
      throw new Error("route bug");
    });
    const states: number[] = [];
    b.pm.events.on("peerState", (p) => states.push(p.height));
    assert.equal(a.pm.broadcast({ type: MsgType.NotFound, reqId: 0, message: "x" }), 1);
    assert.equal(
      a.pm.broadcast({ type: MsgType.NotFound, reqId: 0, message: "x" }, () => false),
      0,
    );
    a.tip.height = 42;
    await waitFor(() => states.includes(42), "peerState with the new height");
    // The NotFound was unsolicited (Peer drops it) and never reaches the route; a GetHeaders does.
    a.pm.broadcast({ type: MsgType.GetHeaders, reqId: 1, locator: [], stopHash: Buffer.alloc(32), max: 1 });
    await waitFor(() => got.some((m) => m.type === MsgType.GetHeaders), "routed message");
    assert.ok(
      !got.some((m) => m.type === MsgType.GetPeers || m.type === MsgType.Peers),
      "discovery stays inside",
    );
    assert.ok(b.logger.records.some((r) => r.level === "error" && /Message route threw/.test(r.msg)));
    assert.ok(b.pm.getPeer(a.id), "the peer survives a route that threw");

    a.pm.addNode(b.addr, "remove");
    assert.equal(a.pm.disconnect("no-such-peer"), false);
    assert.equal(a.pm.disconnect(b.addr), true);
    await waitFor(() => a!.pm.peers().length === 0 && b!.pm.peers().length === 0, "disconnected");
    await sleep(300);
    assert.equal(a.pm.peers().length, 0, "a deliberate disconnect is not redialled at once");

    assert.deepEqual(a.pm.getWhitelist(), []);
    assert.equal(a.pm.addWhitelist("127.0.3.16:24000"), true);
    assert.equal(a.pm.addWhitelist(b.id.toUpperCase()), true);
    assert.deepEqual(a.pm.getWhitelist().sort(), ["127.0.3.16", b.id].sort());
    assert.throws(() => a!.pm.addWhitelist("example.com"), PeerManagerError);
    assert.throws(() => a!.pm.setBan("127.0.3.16", "add"), /whitelisted/);
    assert.equal(a.pm.removeWhitelist("127.0.3.16"), true);
    assert.equal(a.pm.removeWhitelist(b.id), true);
    assert.equal(a.pm.setBan("127.0.3.16", "add", 60), true);
    assert.equal(a.pm.listBanned()[0]?.subject, "127.0.3.16");
    assert.equal(a.pm.setBan("127.0.3.16", "remove"), true);
    assert.equal(a.pm.listBanned().length, 0);
    assert.throws(() => a!.pm.setBan("nope", "add"), PeerManagerError);
  } finally {
    await stopAll([a, b]);
  }
});

test("outbound slots: the dial loop never exceeds maxOutbound", async () => {
  const nodes: TestNode[] = [];
  try {
    for (let i = 0; i < 5; i++) nodes.push(await startNode(`127.0.3.${30 + i}`));
    const a = await startNode("127.0.3.29", { maxOutbound: 2 });
    nodes.push(a);
    for (const n of nodes.slice(0, 5)) a.pm.addressBook.add({ address: n.addr, source: "peers" });
    await waitFor(() => a.pm.connectionCounts().outbound === 2, "two outbound");
    await sleep(400);
    // The others learn about a through discovery and dial it: those are inbound, not limited here.
    assert.equal(a.pm.connectionCounts().outbound, 2);
    assert.equal(a.pm.dialingCount, 0);
    assert.equal(a.pm.peers().filter((p) => p.direction === "outbound").length, 2);
  } finally {
    await stopAll(nodes);
  }
});

test("self: dialling our own address is detected once and never repeated", async () => {
  let a: TestNode | undefined;
  try {
    const transport = new CountingTransport();
    a = await startNode("127.0.3.17", {}, { transport });
    const self = a.addr;
    // Our own listener under an address string that is not our listen address.
    const alias = `[::ffff:127.0.3.17]:${self.split(":")[1]}`;
    a.pm.addNode(alias, "add");
    await waitFor(() => (a!.pm.disconnects.get("self_connection") ?? 0) > 0, "self connection detected");
    await sleep(400);
    assert.equal(transport.count(`::ffff:127.0.3.17:${self.split(":")[1]}`), 1, "dialled exactly once");
    assert.equal(a.pm.peers().length, 0);
  } finally {
    await stopAll([a]);
  }
});
