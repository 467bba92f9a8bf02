import assert from "node:assert/strict";
import { test } from "node:test";
import { FAST, stopAll, VirtualNet, type TestNode } from "./harness.js";

// Runs on its own virtual network, in 10.7.0.0/24.

test("discovery: 12 nodes, each given only node 1 as bootstrap, all connect to each other", async () => {
  const v = new VirtualNet(801);
  const nodes: TestNode[] = [];
  try {
    const N = 12;
    // Discovery runs on the connect-time GetPeers and first-hand relays; the periodic GetPeers
    // (1 s here) is only a backstop.
    const first = await v.startNode("10.7.0.1");
    nodes.push(first);
    const t0 = v.clock.now();
    const rest = await Promise.all(
      Array.from({ length: N - 1 }, (_, i) =>
        v.startNode(`10.7.0.${i + 2}`, { bootstrapPeers: [first.addr] }),
      ),
    );
    nodes.push(...rest);
    const ids = new Set(nodes.map((n) => n.id));
    const fullMesh = (): boolean =>
      nodes.every((n) => {
        const peers = n.pm.peers();
        return peers.length === N - 1 && peers.every((p) => ids.has(p.nodeIdHex) && p.nodeIdHex !== n.id);
      });
    await v.until(fullMesh, "every node connected to every other", 20_000);
    console.log(`discovery: ${N} nodes fully connected in ${v.clock.now() - t0} ms of virtual time`);
    // Both ends of every pair agree on which connection links them (racing duplicates, if any
    // were still in flight, have been resolved).
    const byId = new Map(nodes.map((n) => [n.id, n]));
    const consistent = (): boolean =>
      fullMesh() &&
      nodes.every((n) => n.pm.handshakingCount === 0 && n.pm.dialingCount === 0) &&
      nodes.every((n) =>
        n.pm.peerInfo().every((p) => {
          const other = byId
            .get(p.nodeid)!
            .pm.peerInfo()
            .find((q) => q.nodeid === n.id);
          return other !== undefined && other.addr === p.addrlocal && other.addrlocal === p.addr;
        }),
      );
    await v.until(consistent, "both ends agree on every link", 5_000);
    // One connection per pair: every link is outbound on exactly one side.
    let outbound = 0;
    for (const n of nodes) outbound += n.pm.connectionCounts().outbound;
    assert.equal(outbound, (N * (N - 1)) / 2, "one outbound side per pair");
    // Nobody was penalised for discovery traffic.
    for (const n of nodes) {
      assert.equal(n.pm.listBanned().length, 0, `${n.host} banned nobody`);
      for (const m of nodes) assert.equal(n.pm.banManager.score(m.host), 0, `${n.host} scored ${m.host}`);
    }
    // And the mesh holds (no cycling) over many ping intervals.
    const links = (): string =>
      nodes
        .map((n) =>
          n.pm
            .peerInfo()
            .map((p) => p.addr)
            .sort()
            .join(","),
        )
        .join(";");
    const before = links();
    // 15 ping intervals (100 ms), and with them a discovery round (1 s).
    await v.advance(15 * FAST.pingIntervalMs);
    assert.equal(links(), before, "the same connections, 15 ping intervals later");
  } finally {
    await stopAll(nodes);
  }
});

test("discovery: a bootstrap node with no slot left sends addresses with its refusal, so latecomers connect elsewhere", async () => {
  const v = new VirtualNet(803);
  const nodes: TestNode[] = [];
  try {
    // The only node anyone knows takes 3 ordinary inbound peers; then it is full.
    const seed = await v.startNode("10.7.2.1", { maxPeers: 3, maxInbound: 3, reservedMasternodeSlots: 0 });
    nodes.push(seed);
    // The first three take the seed's slots, one at a time; the other five find it full.
    for (let i = 0; i < 3; i++) {
      const n = await v.startNode(`10.7.2.${i + 2}`, { bootstrapPeers: [seed.addr] });
      nodes.push(n);
      await v.until(() => n.pm.peers().length > 0, `early node ${i} connected to the seed`, 5_000);
    }
    for (let i = 3; i < 8; i++)
      nodes.push(await v.startNode(`10.7.2.${i + 2}`, { bootstrapPeers: [seed.addr] }));
    const late = nodes.slice(4);
    assert.ok(late.every((n) => !n.pm.peers().some((p) => p.nodeIdHex === seed.id)));
    // Without addresses, a refused node knew only the full seed: it redialled it and stayed alone.
    await v.until(
      () => late.every((n) => n.pm.peers().some((p) => p.nodeIdHex !== seed.id)),
      "every latecomer connected to a node other than the full seed",
      30_000,
    );
    assert.ok(seed.pm.peers().length <= 3, "the seed kept its limit");
    assert.ok((seed.pm.disconnects.get("too_many_peers") ?? 0) > 0, "the seed did refuse the latecomers");
  } finally {
    await stopAll(nodes);
  }
});
