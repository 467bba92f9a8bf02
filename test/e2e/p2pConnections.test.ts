/**
 * The life of a connection between real nodes (TimeNode, real LMDB, real TCP on loopback IPs):
 * simultaneous dials, reconnects from new ephemeral ports, ping/pong in both directions, a
 * silent peer, a restarted peer, and a link that must never be cycled.
 *
 * This file uses 127.0.8.0/24.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { KeyPair } from "../../src/crypto/ed25519.js";
import { MsgType } from "../../src/p2p/messages.js";
import type { PeerInfo } from "../../src/p2p/peerManager.js";
import { cleanupAll, Devnet, DEVNET, sleep, waitFor, type NodeHandle } from "./helpers/nodes.js";
import { destroyAllRawPeers, RawPeer } from "./helpers/rawPeer.js";

const devnets: Devnet[] = [];

async function devnet(opts: Parameters<typeof Devnet.create>[0]): Promise<Devnet> {
  const d = await Devnet.create(opts);
  devnets.push(d);
  return d;
}

/** Nothing in flight: no TCP dial and no handshake pending. */
function settled(n: NodeHandle): boolean {
  return n.n.peers.handshakingCount === 0 && n.n.peers.dialingCount === 0;
}

function rawTo(
  net: Devnet,
  node: NodeHandle,
  ip: string,
  extra: { key?: KeyPair; operatorKey?: KeyPair; answerPings?: boolean } = {},
): Promise<RawPeer> {
  return RawPeer.connect({
    target: node.p2p,
    localHost: ip,
    magic: DEVNET.magic,
    network: "devnet",
    genesisHash: net.genesisHash,
    ...extra,
  });
}

async function connected(a: NodeHandle, b: NodeHandle, timeoutMs = 10_000): Promise<void> {
  await waitFor(
    `${a.name} and ${b.name} connected`,
    () => a.peerIds().includes(b.nodeId) && b.peerIds().includes(a.nodeId),
    { timeoutMs: timeoutMs, detail: () => `${a.describe()}\n${b.describe()}` },
  );
}

void describe("P2P connections (real nodes)", () => {
  after(async () => {
    destroyAllRawPeers();
    await cleanupAll(...devnets);
  });

  it("simultaneous dial, 50 times: both nodes end with exactly one connection to each other", async () => {
    // Every round makes two inbound connections per IP; lift the per-IP connect rate (10/min by
    // default) so it is the dial race that is tested, not the rate limiter.
    const net = await devnet({
      name: "simdial",
      nodes: [
        { host: "127.0.8.1", network: { connect_rate_per_minute: 10_000 } },
        { host: "127.0.8.2", network: { connect_rate_per_minute: 10_000 } },
      ],
      phantomAddress: "127.0.8.250:1",
    });
    const [a, b] = [net.node(0), net.node(1)];
    const dups = (): number => a.disconnects("duplicate_connection") + b.disconnects("duplicate_connection");
    // The rule both sides compute: keep the connection dialled by the smaller node id.
    const aSmaller = Buffer.compare(Buffer.from(a.nodeId, "hex"), Buffer.from(b.nodeId, "hex")) < 0;
    let raced = 0;
    for (let round = 1; round <= 50; round++) {
      const dupBefore = dups();
      // The same instant: both dials start in one tick, before either side's event loop runs.
      a.n.peers.addNode(b.p2p, "onetry");
      b.n.peers.addNode(a.p2p, "onetry");
      await waitFor(
        `round ${round}: exactly one connection on each side`,
        () =>
          settled(a) &&
          settled(b) &&
          a.n.peers.connectionCounts().total === 1 &&
          b.n.peers.connectionCounts().total === 1,
        { timeoutMs: 5_000, detail: () => `${a.describe()}\n${b.describe()}`, stepMs: 2 },
      );
      assert.equal(await a.connectionCount(), 1, `round ${round}: A's getconnectioncount`);
      assert.equal(await b.connectionCount(), 1, `round ${round}: B's getconnectioncount`);
      const [pa] = await a.peerInfo();
      const [pb] = await b.peerInfo();
      assert.ok(pa && pb);
      assert.equal(pa.nodeid, b.nodeId);
      assert.equal(pb.nodeid, a.nodeId);
      // Both kept the same TCP connection.
      assert.equal(pa.addr, pb.addrlocal, `round ${round}: the two sides kept different connections`);
      assert.equal(pa.addrlocal, pb.addr);
      assert.notEqual(pa.inbound, pb.inbound);
      if (dups() > dupBefore) {
        // Both dials completed and one was closed as a duplicate: the survivor is the smaller id's.
        raced++;
        assert.equal(pa.inbound, !aSmaller, `round ${round}: kept the larger node id's dial`);
      }
      a.n.peers.disconnect(b.nodeId);
      await waitFor(
        `round ${round}: disconnected`,
        () =>
          settled(a) &&
          settled(b) &&
          a.n.peers.connectionCounts().total === 0 &&
          b.n.peers.connectionCounts().total === 0,
        { timeoutMs: 5_000, detail: () => `${a.describe()}\n${b.describe()}`, stepMs: 2 },
      );
    }
    // The race really happened: in some rounds both dials completed and one was closed as a duplicate.
    assert.ok(raced > 0, "no round produced two connections to dedup");
  });

  it("ephemeral ports: a peer reconnecting from new ports is counted once", async () => {
    const net = await devnet({
      name: "ephemeral",
      nodes: [{ host: "127.0.8.3" }],
      phantomAddress: "127.0.8.250:1",
    });
    const a = net.node(0);
    const key = KeyPair.generate();
    const id = key.publicKey.toString("hex");
    const peers: RawPeer[] = [];
    for (let i = 0; i < 6; i++) {
      // Same node key, same IP, a new ephemeral source port each time; the old socket stays open.
      const p = await rawTo(net, a, "127.0.8.20", { key, answerPings: true });
      await p.handshake();
      peers.push(p);
      const prev = peers[i - 1];
      if (prev) {
        assert.notEqual(prev.localPort, p.localPort);
        assert.equal(await prev.waitClosed(), "duplicate_connection", "the older connection is replaced");
      }
      const info = await a.peerInfo();
      assert.equal(await a.connectionCount(), 1, `reconnect ${i}: ${JSON.stringify(info)}`);
      assert.equal(info.length, 1);
      assert.equal(info[0]!.nodeid, id);
      assert.equal(info[0]!.addr, `127.0.8.20:${p.localPort}`, "the entry is the newest connection");
    }
    peers.at(-1)!.destroy();
    await waitFor("A drops the last test peer", async () => (await a.connectionCount()) === 0);
  });

  it("ping and pong in both directions: both sides learn the other's height and RTT within one interval", async () => {
    const pingInterval = 0.2;
    // P produces (0.5 s blocks); F is a full node that dials P (a registered masternode).
    const net = await devnet({
      name: "pingpong",
      nodes: [{ host: "127.0.8.4", masternode: true, produce: true }, { host: "127.0.8.5" }],
      pingInterval,
      blockTime: 0.5,
    });
    const [p, f] = [net.node(0), net.node(1)];
    await connected(p, f);
    const grace = 300;
    const measured: number[] = [];
    for (let i = 0; i < 3; i++) {
      const h0 = p.n.chain.height;
      await waitFor(`P produces a block above ${h0}`, () => p.n.chain.height > h0, {
        timeoutMs: 5_000,
        detail: () => p.describe(),
      });
      const h = p.n.chain.height;
      const t0 = performance.now();
      // Polled through RPC: P's view of F and F's view of P both reach height h.
      let last: [PeerInfo[], PeerInfo[]] = [[], []];
      await waitFor(
        `both sides see height ${h}`,
        async () => {
          last = [await p.peerInfo(), await f.peerInfo()];
          return last.every(
            (info) => info.length === 1 && info[0]!.height >= h && info[0]!.pingtime !== null,
          );
        },
        { timeoutMs: 5_000, detail: () => JSON.stringify(last), stepMs: 5 },
      );
      measured.push(performance.now() - t0);
      const [[pf], [fp]] = last;
      assert.equal(pf!.nodeid, f.nodeId);
      assert.equal(pf!.inbound, true);
      assert.equal(fp!.nodeid, p.nodeId);
      assert.equal(fp!.inbound, false);
      assert.equal(fp!.masternode, true, "F sees P's proven operator key");
      for (const x of [pf!, fp!]) {
        assert.equal(typeof x.pingtime, "number");
        assert.ok(x.pingtime! >= 0 && x.pingtime! < 1, `RTT ${x.pingtime} s`);
      }
    }
    const worst = Math.max(...measured);
    assert.ok(
      worst <= pingInterval * 1000 + grace,
      `heights took ${measured.map((m) => m.toFixed(0)).join(", ")} ms to show on both sides (interval ${pingInterval * 1000} ms + ${grace} ms grace)`,
    );
  });

  it("a silent peer is dropped as stalled after 3 silent ping intervals, masternode or not; one that talks but never answers pings hits ping_timeout", async () => {
    const pingMs = 200;
    const operator = KeyPair.generate();
    const net = await devnet({
      name: "silent",
      nodes: [{ host: "127.0.8.6" }],
      pingInterval: pingMs / 1000,
      extraMasternodes: [{ key: operator, address: "127.0.8.250:1" }],
    });
    const a = net.node(0);
    const before = { stalled: a.disconnects("stalled"), ping: a.disconnects("ping_timeout") };
    // Both complete the handshake and then never send another byte.
    const ordinary = await rawTo(net, a, "127.0.8.21");
    const masternode = await rawTo(net, a, "127.0.8.22", { operatorKey: operator });
    const t0 = performance.now();
    await Promise.all([ordinary.handshake(), masternode.handshake()]);
    await waitFor("both silent peers listed", async () => (await a.connectionCount()) === 2);
    const mnInfo = (await a.peerInfo()).find((x) => x.nodeid === masternode.nodeId);
    assert.equal(mnInfo?.masternode, true, "the masternode test peer proved its registered operator key");
    // A dead link is replaced fast whoever is on the other end: silence is not a class privilege.
    assert.equal(await ordinary.waitClosed(5_000), "stalled");
    assert.equal(await masternode.waitClosed(5_000), "stalled");
    const took = performance.now() - t0;
    assert.ok(took >= 3 * pingMs, `dropped after ${took.toFixed(0)} ms, not before 3 silent intervals`);
    assert.ok(took <= 20 * pingMs, `dropped within ${took.toFixed(0)} ms`);
    assert.equal(a.disconnects("stalled"), before.stalled + 2);

    // A peer that keeps talking (its own pings) but never answers ours: ping_timeout, after its misses.
    const talker = await rawTo(net, a, "127.0.8.23");
    await talker.handshake();
    let nonce = 0;
    const timer = setInterval(
      () =>
        talker.send({
          type: MsgType.Ping,
          nonce: ++nonce,
          height: 0,
          tipHash: net.genesisHash,
          timestamp: Date.now(),
        }),
      pingMs,
    );
    try {
      const t1 = performance.now();
      assert.equal(await talker.waitClosed(10_000), "ping_timeout");
      const t = performance.now() - t1;
      assert.ok(t >= 3 * pingMs, `ping_timeout after ${t.toFixed(0)} ms`);
      assert.ok(talker.received(MsgType.Ping).length >= 3, "it was pinged at least 3 times first");
    } finally {
      clearInterval(timer);
    }
    assert.equal(a.disconnects("ping_timeout"), before.ping + 1);
    assert.equal(await a.connectionCount(), 0);
  });

  it("restart: a stopped and restarted peer is reconnected by the node that had it as bootstrap", async () => {
    // B never dials (max_outbound 0), so the link can only come back through A's redial. B starts
    // first, so A's first dial succeeds and its backoff starts from zero failures.
    const net = await devnet({
      name: "restart",
      nodes: [
        { host: "127.0.8.7", bootstrap: [1] },
        { host: "127.0.8.8", network: { max_outbound: 0 } },
      ],
      phantomAddress: "127.0.8.250:1",
      start: false,
    });
    const [a, b] = [net.node(0), net.node(1)];
    await b.start();
    await a.start();
    await connected(a, b, 3_000);
    const before = (await a.peerInfo())[0]!;
    await b.stop();
    await waitFor("A sees B gone", () => a.n.peers.connectionCounts().total === 0, {
      timeoutMs: 5_000,
      detail: () => a.describe(),
    });
    assert.ok(a.disconnects("shutdown") >= 1, a.describe());
    await b.start();
    const t0 = performance.now();
    // A retries its bootstrap peer after one failure's backoff: 5 s ±20% for an ordinary peer.
    await connected(a, b, 10_000);
    const reconnectMs = performance.now() - t0;
    const [pa] = await a.peerInfo();
    const [pb] = await b.peerInfo();
    assert.equal(await a.connectionCount(), 1);
    assert.equal(await b.connectionCount(), 1);
    assert.equal(pa!.nodeid, b.nodeId, "B kept its node key across the restart");
    assert.equal(pa!.inbound, false, "A dialled");
    assert.equal(pa!.addr, b.p2p);
    assert.equal(pb!.inbound, true);
    assert.notEqual(pa!.addrlocal, before.addrlocal, "a new connection from a new ephemeral port");
    // At most the 6 s backoff, plus one 1 s dial-loop tick, plus slack.
    assert.ok(reconnectMs < 8_000, `reconnected after ${reconnectMs.toFixed(0)} ms`);
  });

  it("no cycling: a link stays up, the same connection, across 50+ ping intervals", async () => {
    const pingMs = 100;
    const net = await devnet({
      name: "nocycle",
      nodes: [{ host: "127.0.8.9" }, { host: "127.0.8.10", bootstrap: [0] }],
      pingInterval: pingMs / 1000,
      phantomAddress: "127.0.8.250:1",
    });
    const [a, b] = [net.node(0), net.node(1)];
    await connected(a, b);
    const closed: string[] = [];
    for (const n of [a, b]) {
      n.n.peers.events.on("peerClosed", (e) => closed.push(`${n.name}: ${e.reason} ${e.message}`));
    }
    const [pa0] = await a.peerInfo();
    const [pb0] = await b.peerInfo();
    await sleep(55 * pingMs);
    const [pa1, ...restA] = await a.peerInfo();
    const [pb1, ...restB] = await b.peerInfo();
    assert.deepEqual(closed, [], "no connection was closed");
    assert.equal(restA.length + restB.length, 0);
    for (const [x0, x1] of [
      [pa0!, pa1!],
      [pb0!, pb1!],
    ] as const) {
      assert.equal(x1.nodeid, x0.nodeid);
      assert.equal(x1.addr, x0.addr, "same remote port");
      assert.equal(x1.addrlocal, x0.addrlocal, "same local port");
      assert.equal(x1.conntime, x0.conntime, "conntime unchanged");
      assert.notEqual(x1.pingtime, null);
      // ~50 pings and ~50 pongs each way (66 bytes a frame): the link was live, not idle.
      assert.ok(x1.bytesrecv - x0.bytesrecv >= 60 * 66, `only ${x1.bytesrecv - x0.bytesrecv} bytes received`);
    }
    assert.equal(a.disconnects("ping_timeout") + b.disconnects("ping_timeout"), 0);
  });
});
