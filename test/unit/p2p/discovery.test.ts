import assert from "node:assert/strict";
import { test } from "node:test";
import { startNode, stopAll, waitFor, type TestNode } from "./harness.js";

// This file uses 127.0.7.0/24.

test("discovery: 12 nodes, each given only node 1 as bootstrap, all connect to each other", async () => {
  const nodes: TestNode[] = [];
  try {
    const N = 12;
    // Discovery runs on the connect-time GetPeers and first-hand relays; the periodic GetPeers
    // (1 s here) is only a backstop.
    const first = await startNode("127.0.7.1");
    nodes.push(first);
    const t0 = performance.now();
    const rest = await Promise.all(
      Array.from({ length: N - 1 }, (_, i) =>
        startNode(`127.0.7.${i + 2}`, { bootstrapPeers: [first.addr] }),
      ),
    );
    nodes.push(...rest);
    const ids = new Set(nodes.map((n) => n.id));
    const fullMesh = (): boolean =>
      nodes.every((n) => {
        const peers = n.pm.peers();
        return peers.length === N - 1 && peers.every((p) => ids.has(p.nodeIdHex) && p.nodeIdHex !== n.id);
      });
    await waitFor(fullMesh, "every node connected to every other", 20_000, 20);
    const took = performance.now() - t0;
    console.log(`discovery: ${N} nodes fully connected in ${Math.round(took)} ms`);
    // Both ends of every pair agree on which TCP connection links them (racing duplicates,
    // if any were still in flight, have been resolved).
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
    await waitFor(consistent, "both ends agree on every link", 5_000, 20);
    // One connection per pair: every link is outbound on exactly one side.
    let outbound = 0;
    for (const n of nodes) outbound += n.pm.connectionCounts().outbound;
    assert.equal(outbound, (N * (N - 1)) / 2);
    // Nobody was penalised for discovery traffic.
    for (const n of nodes) {
      assert.equal(n.pm.listBanned().length, 0);
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
    await new Promise((r) => setTimeout(r, 1_500));
    assert.equal(links(), before, "the same connections, 15 ping intervals later");
  } finally {
    await stopAll(nodes);
  }
});
