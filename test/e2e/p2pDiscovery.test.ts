/**
 * Discovery between real nodes: 12 TimeNodes (real LMDB, real TCP on 127.0.9.1–12), each
 * given only node 1 as its bootstrap peer, must all end up connected to each other. The genesis
 * lists only a phantom masternode (nothing listens at its address), so no node learns another's
 * address from the registry: everything comes through GetPeers/Peers.
 *
 * This file uses 127.0.9.0/24.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { cleanupAll, Devnet, waitFor } from "./helpers/nodes.js";

const N = 12;

void describe("P2P discovery (real nodes)", () => {
  let net: Devnet | undefined;

  after(async () => {
    await cleanupAll(net);
  });

  it(`${N} nodes, each given only node 1 as bootstrap, all connect to each other`, async () => {
    net = await Devnet.create({
      name: "discovery",
      nodes: Array.from({ length: N }, (_, i) => ({
        host: `127.0.9.${i + 1}`,
        ...(i === 0 ? {} : { bootstrap: [0] }),
      })),
      pingInterval: 0.5,
      phantomAddress: "127.0.9.250:1",
      start: false,
    });
    const nodes = net.nodes;
    // Node 1 first, so every bootstrap dial finds it listening.
    const t0 = performance.now();
    await nodes[0]!.start();
    await Promise.all(nodes.slice(1).map((n) => n.start()));
    await waitFor(
      `every node connected to the ${N - 1} others`,
      () => nodes.every((n) => n.n.peers.connectionCounts().total === N - 1),
      { timeoutMs: 20_000, detail: () => net!.describe() },
    );
    const ms = performance.now() - t0;
    console.log(
      `discovery: ${N} nodes with one bootstrap peer each were fully connected in ${ms.toFixed(0)} ms`,
    );
    // Checked through RPC: each node lists exactly the other 11 node ids, once each.
    for (const n of nodes) {
      const info = await n.peerInfo();
      const ids = info.map((p) => p.nodeid).sort();
      const want = nodes
        .filter((m) => m !== n)
        .map((m) => m.nodeId)
        .sort();
      assert.deepEqual(ids, want, `${n.name}'s peers`);
      assert.equal(await n.connectionCount(), N - 1);
    }
    // Everyone's address book holds everyone else's listen address.
    for (const n of nodes) {
      const book = new Set(n.n.peers.addressBook.entries().map((e) => e.address));
      for (const m of nodes) if (m !== n) assert.ok(book.has(m.p2p), `${n.name} has ${m.p2p} in its book`);
    }
  });
});
