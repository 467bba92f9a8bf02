/**
 * Limits, rate limits, bans and the network switch, against real nodes (TimeNode, real LMDB,
 * real TCP on loopback IPs), with raw test peers where a misbehaving one is needed.
 *
 * This file uses 127.0.10.0/24 (nodes) and 127.0.11.0/24 (test peers).
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { encodeMessage, MsgType } from "../../src/p2p/messages.js";
import { RpcCallError } from "../../src/rpc/client.js";
import { cleanupAll, Devnet, DEVNET, sleep, waitFor, type NodeHandle } from "./helpers/nodes.js";
import { destroyAllRawPeers, RawPeer } from "./helpers/rawPeer.js";

const devnets: Devnet[] = [];

async function devnet(opts: Parameters<typeof Devnet.create>[0]): Promise<Devnet> {
  const d = await Devnet.create(opts);
  devnets.push(d);
  return d;
}

function rawOpts(net: Devnet, node: NodeHandle, ip: string, answerPings = true) {
  return {
    target: node.p2p,
    localHost: ip,
    magic: DEVNET.magic,
    network: "devnet",
    genesisHash: net.genesisHash,
    answerPings,
  };
}

interface BannedJson {
  address: string;
  ban_created: number;
  banned_until: number | null;
  reason: string;
  source: string;
  evidence: string;
  nodeid: string | null;
}

const banned = async (n: NodeHandle): Promise<BannedJson[]> => n.rpc.call<BannedJson[]>("listbanned");

void describe("P2P limits, rate limits and bans (real nodes)", () => {
  after(async () => {
    destroyAllRawPeers();
    await cleanupAll(...devnets);
  });

  it("200 connection attempts from one IP are capped at max_connections_per_ip (3)", async () => {
    // A generous per-IP connect rate, so the concurrent cap (not the rate limiter) is what bites.
    const net = await devnet({
      name: "perip",
      nodes: [{ host: "127.0.10.1", network: { max_connections_per_ip: 3, connect_rate_per_minute: 1_000 } }],
      phantomAddress: "127.0.10.250:1",
    });
    const a = net.node(0);
    const pm = a.n.peers;
    // The node has no other peer: every connection it holds comes from 127.0.11.1.
    let most = 0;
    const sample = (): void =>
      void (most = Math.max(most, pm.handshakingCount + pm.connectionCounts().total));
    const sampler = setInterval(sample, 1);
    try {
      const raws = Array.from({ length: 200 }, () => RawPeer.start(rawOpts(net, a, "127.0.11.1")));
      // Each accepted one completes a correct handshake as soon as the node's Hello arrives.
      const handshakes = raws.map(async (p) => {
        await p.waitFor(() => p.remoteHello !== null || p.closed, "Hello or refusal", 15_000);
        if (!p.closed) await p.handshake();
      });
      await Promise.all(handshakes);
      const accepted = raws.filter((p) => !p.closed);
      const refused = raws.filter((p) => p.closed);
      // At most 3 connections from one IP, and at most 2 of them in their handshake at once (its
      // share of the handshake slots): 2 or 3 get in, depending on how the attempts interleave.
      assert.ok(accepted.length >= 2 && accepted.length <= 3, `${accepted.length} got in`);
      assert.equal(refused.length, 200 - accepted.length);
      for (const p of refused) {
        assert.ok(
          p.goodbyeReason === "too_many_from_ip" || p.goodbyeReason === "too_many_peers",
          String(p.goodbyeReason),
        );
        assert.equal(p.remoteHello, null, "refused before any handshake");
      }
      assert.equal(await a.connectionCount(), accepted.length);
      assert.ok(
        a.disconnects("too_many_from_ip") + a.disconnects("too_many_peers") >= refused.length,
        a.describe(),
      );
      // Fill the third slot if the burst left it free, so the next step starts from 3.
      if (accepted.length === 2) {
        const third = RawPeer.start(rawOpts(net, a, "127.0.11.1"));
        await third.waitFor(() => third.remoteHello !== null || third.closed, "Hello or refusal");
        await third.handshake();
        accepted.push(third);
        await waitFor("three from the IP", () => pm.connectionCounts().total === 3, { timeoutMs: 5_000 });
      }
      // One leaves: its slot is free again, and the cap still holds for the next ones.
      accepted[0]!.destroy();
      await waitFor("the node drops the closed one", () => pm.connectionCounts().total === 2, {
        timeoutMs: 5_000,
      });
      const again = [
        RawPeer.start(rawOpts(net, a, "127.0.11.1")),
        RawPeer.start(rawOpts(net, a, "127.0.11.1")),
      ];
      await Promise.all(again.map((p) => p.waitFor(() => p.remoteHello !== null || p.closed, "answer")));
      assert.equal(again.filter((p) => !p.closed).length, 1, "one more fits, the next is refused");
      sample();
      assert.ok(most <= 3, `${most} connections from one IP at once`);
      assert.equal(await a.connectionCount(), 2);
    } finally {
      clearInterval(sampler);
      destroyAllRawPeers();
    }
  });

  it("reserved masternode slots: with ordinary slots full a registered masternode still connects; an ordinary peer gets too_many_peers", async () => {
    // N has 2 inbound slots, 1 of them reserved for masternodes, and never dials out. M's
    // operator key is in the genesis (registered at a phantom address, so N never dials it).
    const net = await devnet({
      name: "reserved",
      nodes: [
        {
          host: "127.0.10.2",
          network: { max_inbound: 2, reserved_masternode_slots: 1, max_outbound: 0 },
        },
        { host: "127.0.10.3", bootstrap: [0] },
        { host: "127.0.10.4", bootstrap: [0] },
        { host: "127.0.10.5", bootstrap: [0], masternode: true, registeredAddress: "127.0.10.251:1" },
      ],
      start: false,
    });
    const [n, o1, o2, m] = net.nodes as [NodeHandle, NodeHandle, NodeHandle, NodeHandle];
    await n.start();
    await o1.start();
    await waitFor("O1 takes the ordinary slot", () => n.peerIds().includes(o1.nodeId), {
      timeoutMs: 5_000,
      detail: () => n.describe(),
    });
    await o2.start();
    await waitFor(
      "O2 refused with too_many_peers",
      () => n.disconnects("too_many_peers") >= 1 && o2.disconnects("too_many_peers") >= 1,
      { timeoutMs: 5_000, detail: () => `${n.describe()}\n${o2.describe()}` },
    );
    assert.deepEqual(n.peerIds(), [o1.nodeId]);
    await m.start();
    await waitFor("M gets a reserved slot", () => n.peerIds().includes(m.nodeId), {
      timeoutMs: 5_000,
      detail: () => n.describe(),
    });
    const info = await n.peerInfo();
    assert.equal(info.length, 2);
    const mi = info.find((p) => p.nodeid === m.nodeId)!;
    assert.equal(mi.inbound, true);
    assert.equal(mi.masternode, true, "N sees M's proven, registered operator key");
    assert.equal(mi.operator, m.operatorKey!.publicKey.toString("hex"));
    assert.equal(info.find((p) => p.nodeid === o1.nodeId)?.masternode, false);
    // An ordinary peer trying again is still refused.
    const before = n.disconnects("too_many_peers");
    await o2.rpc.call("addnode", [n.p2p, "onetry"]);
    await waitFor("O2 refused again", () => n.disconnects("too_many_peers") > before, {
      timeoutMs: 5_000,
      detail: () => n.describe(),
    });
    assert.equal(await n.connectionCount(), 2);
    assert.ok(!n.peerIds().includes(o2.nodeId));
  });

  it("rate limits: a peer flooding GetPeers is scored, then flood-banned; it cannot reconnect until clearbanned; a ping flood is only dropped", async () => {
    const net = await devnet({
      name: "ratelimit",
      nodes: [{ host: "127.0.10.6" }, { host: "127.0.10.7", bootstrap: [0] }],
      phantomAddress: "127.0.10.250:1",
      start: false,
    });
    const [a, r] = [net.node(0), net.node(1)];
    await a.start();
    await r.start();
    await waitFor("A and its real peer R connected", () => a.peerIds().includes(r.nodeId), {
      timeoutMs: 5_000,
    });
    const ip = "127.0.11.2";
    const bans = a.n.peers.banManager;
    const x = await RawPeer.connect(rawOpts(net, a, ip));
    await x.handshake();
    // GetPeers is limited to 5 a minute (burst 5): five are served...
    for (let i = 0; i < 5; i++) x.send({ type: MsgType.GetPeers });
    await x.waitFor(() => x.received(MsgType.Peers).length >= 1, "a Peers answer");
    await sleep(50);
    assert.equal(bans.score(ip), 0, "within its limit: no penalty");
    // ...the sixth is over the limit: penalised (10 points), not yet banned.
    x.send({ type: MsgType.GetPeers });
    await waitFor("a penalty", () => bans.score(ip) === 10, {
      timeoutMs: 2_000,
      detail: () => `score ${bans.score(ip)}`,
    });
    assert.equal(x.closed, false);
    assert.equal((await banned(a)).length, 0);
    // Ten violations (100 points) ban the IP.
    for (let i = 0; i < 9; i++) x.send({ type: MsgType.GetPeers });
    assert.equal(await x.waitClosed(), "banned");
    const list = await banned(a);
    assert.equal(list.length, 1);
    assert.equal(list[0]!.address, ip);
    assert.equal(list[0]!.source, "flood");
    assert.match(list[0]!.reason, /REQUEST_FLOOD: GetPeers over its rate limit/);
    assert.equal(list[0]!.banned_until! - list[0]!.ban_created, 300, "a flood ban lasts 5 minutes");
    assert.match(list[0]!.evidence, /10 × REQUEST_FLOOD: GetPeers over its rate limit/);
    assert.equal(a.n.peers.bans.get("REQUEST_FLOOD"), 1);
    // The node kept serving its real peer on the same connection, and RPC answers.
    assert.deepEqual(a.peerIds(), [r.nodeId]);
    assert.equal(await r.connectionCount(), 1);
    // It cannot come back...
    const y = await RawPeer.connect(rawOpts(net, a, ip));
    assert.equal(await y.waitClosed(), "banned");
    assert.equal(y.remoteHello, null, "refused before the handshake");
    // ...until clearbanned.
    assert.equal(await a.rpc.call("clearbanned"), 1);
    assert.deepEqual(await banned(a), []);
    const z = await RawPeer.connect(rawOpts(net, a, ip));
    await z.handshake();
    await waitFor("the cleared peer is listed", () => a.n.peers.connectionCounts().total === 2, {
      timeoutMs: 5_000,
    });
    z.destroy();
    // Pings are limited too (3× the ping rate, burst 2 s' worth), but liveness over its limit is
    // dropped, never scored: 100 at once (what a link delivers when it resumes) cost nothing.
    const pingIp = "127.0.11.3";
    const f = await RawPeer.connect(rawOpts(net, a, pingIp));
    await f.handshake();
    const flood = Buffer.concat(
      Array.from({ length: 100 }, (_, i) => {
        const w = {
          type: MsgType.Ping,
          nonce: i,
          height: 0,
          tipHash: net.genesisHash,
          timestamp: Date.now(),
        } as const;
        return f.frameBytes(w.type, encodeMessage(w));
      }),
    );
    f.write(flood);
    await f.waitFor(() => f.received(MsgType.Pong).length >= 1, "pings within the limit answered");
    await sleep(300);
    assert.ok(f.received(MsgType.Pong).length < 100, "pings over the limit were not");
    assert.equal(f.closed, false, "the link stays");
    assert.equal(bans.score(pingIp), 0);
    assert.ok(!(await banned(a)).some((b) => b.address === pingIp));
    assert.equal(a.peerIds().length, 2);
    f.destroy();
  });

  it("banned IPs: setban refuses the IP until the ban expires, or until clearbanned", async () => {
    const net = await devnet({
      name: "setban",
      nodes: [
        // Many reconnects from one IP in this test: lift the per-IP connect rate out of the way.
        { host: "127.0.10.8", network: { connect_rate_per_minute: 1_000 } },
        { host: "127.0.10.9", bootstrap: [0] },
      ],
      phantomAddress: "127.0.10.250:1",
      start: false,
    });
    const [a, b] = [net.node(0), net.node(1)];
    await a.start();
    await b.start();
    await waitFor("A and B connected", () => a.peerIds().includes(b.nodeId), { timeoutMs: 5_000 });
    const ip = b.host;
    const refusedBefore = (): number => a.disconnects("banned");
    /** A connection from the banned IP (a test peer bound to B's address), refused or not. */
    const tryFromIp = async (): Promise<RawPeer> => {
      const p = await RawPeer.connect(rawOpts(net, a, ip));
      await p.waitFor(() => p.remoteHello !== null || p.closed, "Hello or refusal");
      return p;
    };

    // A 2-second ban.
    await a.rpc.call("setban", [ip, "add", 2]);
    const bannedAt = Date.now();
    await waitFor(
      "B dropped on both sides",
      async () => (await a.connectionCount()) === 0 && (await b.connectionCount()) === 0,
      { timeoutMs: 5_000 },
    );
    const [entry] = await banned(a);
    assert.equal(entry?.address, ip);
    assert.equal(entry.source, "manual");
    assert.ok(
      entry.banned_until !== null && Math.abs(entry.banned_until * 1000 - (bannedAt + 2_000)) < 1_500,
    );
    let n0 = refusedBefore();
    const p1 = await tryFromIp();
    assert.equal(p1.goodbyeReason, "banned");
    assert.equal(p1.remoteHello, null);
    await b.rpc.call("addnode", [a.p2p, "onetry"]);
    await waitFor("B's redial refused", () => refusedBefore() >= n0 + 2, {
      timeoutMs: 5_000,
      detail: () => a.describe(),
    });
    assert.equal(await b.connectionCount(), 0);
    // After the ban expires, the IP gets in again: a test peer, and B itself.
    await waitFor("the ban to expire", () => Date.now() > bannedAt + 2_100, { timeoutMs: 5_000 });
    const p2 = await tryFromIp();
    assert.equal(p2.closed, false, `still refused: ${p2.goodbyeReason}`);
    await p2.handshake();
    p2.destroy();
    await b.rpc.call("addnode", [a.p2p, "onetry"]);
    await waitFor("B reconnected", () => a.peerIds().includes(b.nodeId), {
      timeoutMs: 5_000,
      detail: () => a.describe(),
    });
    assert.deepEqual(await banned(a), []);

    // A ban without a time (24 h), lifted by clearbanned.
    await a.rpc.call("setban", [ip, "add"]);
    await waitFor("B dropped again", () => a.n.peers.connectionCounts().total === 0, { timeoutMs: 5_000 });
    n0 = refusedBefore();
    const p3 = await tryFromIp();
    assert.equal(p3.goodbyeReason, "banned");
    await b.rpc.call("addnode", [a.p2p, "onetry"]);
    await waitFor("B's redial refused", () => refusedBefore() >= n0 + 2, {
      timeoutMs: 5_000,
      detail: () => a.describe(),
    });
    assert.equal(await a.connectionCount(), 0);
    assert.equal(await a.rpc.call("clearbanned"), 1);
    await b.rpc.call("addnode", [a.p2p, "onetry"]);
    await waitFor("B reconnected after clearbanned", () => a.peerIds().includes(b.nodeId), {
      timeoutMs: 5_000,
      detail: () => a.describe(),
    });
    assert.equal(await b.connectionCount(), 1);
  });

  it("setnetworkactive false drops every peer; true brings them back", async () => {
    // A dials B and C (its bootstrap peers); B and C never dial, so every link goes through A.
    const net = await devnet({
      name: "netactive",
      nodes: [
        { host: "127.0.10.10", bootstrap: [1, 2] },
        { host: "127.0.10.11", network: { max_outbound: 0 } },
        { host: "127.0.10.12", network: { max_outbound: 0 } },
      ],
      phantomAddress: "127.0.10.250:1",
      start: false,
    });
    const [a, b, c] = [net.node(0), net.node(1), net.node(2)];
    await b.start();
    await c.start();
    await a.start();
    const counts = async (): Promise<number[]> =>
      Promise.all([a.connectionCount(), b.connectionCount(), c.connectionCount()]);
    await waitFor("A connected to B and C", async () => (await counts()).join() === "2,1,1", {
      timeoutMs: 5_000,
      detail: () => net.describe(),
    });
    assert.equal(await a.rpc.call("setnetworkactive", [false]), false);
    await waitFor("every link dropped", async () => (await counts()).join() === "0,0,0", {
      timeoutMs: 5_000,
      detail: () => net.describe(),
    });
    const info = await a.rpc.call<Record<string, unknown>>("getnetworkinfo");
    assert.equal(info.networkactive, false);
    assert.equal(info.connections, 0);
    assert.ok(b.disconnects("network_disabled") >= 1 && c.disconnects("network_disabled") >= 1);
    // While off, A refuses inbound connections and will not dial.
    const before = a.disconnects("network_disabled");
    await b.rpc.call("addnode", [a.p2p, "onetry"]);
    await waitFor("B's dial refused", () => a.disconnects("network_disabled") > before, {
      timeoutMs: 5_000,
      detail: () => a.describe(),
    });
    await assert.rejects(a.rpc.call("addnode", [b.p2p, "onetry"]), RpcCallError);
    await sleep(300);
    assert.deepEqual(await counts(), [0, 0, 0]);
    // On again: A redials its bootstrap peers at once.
    assert.equal(await a.rpc.call("setnetworkactive", [true]), true);
    await waitFor("links back", async () => (await counts()).join() === "2,1,1", {
      timeoutMs: 5_000,
      detail: () => net.describe(),
    });
    assert.equal((await a.rpc.call<Record<string, unknown>>("getnetworkinfo")).networkactive, true);
  });
});
