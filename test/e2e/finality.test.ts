/**
 * Finality between real nodes (TimeNode, real LMDB, real TCP on loopback): six masternodes of
 * equal weight vote on every block.
 * - All six up: every block becomes final before the tip is two blocks past it, at every node,
 *   and every node agrees on the final block at each height.
 * - Two stopped: 4 of 6 is exactly 2/3, not more. Production goes on and finality pauses.
 * - One of them back: 5 of 6. Finality catches up to the tip, certifying the blocks made meanwhile.
 * - A node that was away learns the final block from the certificate its peers send on connect.
 *
 * This file uses 127.0.140.0/24.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { cleanupAll, Devnet, waitFor, type NodeHandle } from "./helpers/nodes.js";

const BLOCK_S = 1;

void describe("finality (real nodes)", () => {
  let net: Devnet | undefined;
  let nodes: NodeHandle[];

  before(async () => {
    net = await Devnet.create({
      name: "finality",
      nodes: Array.from({ length: 6 }, (_, i) => ({
        host: `127.0.140.${i + 1}`,
        masternode: true,
        produce: true,
        bootstrap: i === 0 ? [] : [0],
      })),
      blockTime: BLOCK_S,
    });
    nodes = net.nodes;
  });

  after(async () => {
    await cleanupAll(net);
  });

  const up = (): NodeHandle[] => nodes.filter((n) => n.running);
  const describeAll = (): string =>
    nodes
      .map((n) =>
        n.running
          ? `${n.name} h=${n.n.chain.height} final=${n.n.chain.finality.finalizedHeight} justified=${n.n.chain.finality.tracker.highestJustified.epoch} lock=${JSON.stringify(n.n.voter?.currentLock)} votes=${JSON.stringify(n.n.finality.counts)}`
          : `${n.name} stopped`,
      )
      .join("\n");

  it("six of six: every block is final before the tip is two blocks past it, and all agree", async (t) => {
    await waitFor("height 3 everywhere", () => nodes.every((n) => n.n.chain.height >= 3), {
      timeoutMs: 30_000,
      detail: describeAll,
    });
    // Watch node 0 for 8 blocks: at each new tip, the block two below it is final.
    const n0 = nodes[0]!.n;
    const lagBlocks: number[] = [];
    const connectedAt = new Map<number, number>();
    const lagMs: number[] = [];
    const offTip = n0.chain.events.on("tip", (tip) => {
      connectedAt.set(tip.height, Date.now());
      lagBlocks.push(tip.height - n0.chain.finality.finalizedHeight);
    });
    const offFinal = n0.chain.events.on("finalized", (e) => {
      const h = Math.floor(e.checkpoint.epoch / 2);
      const at = connectedAt.get(h);
      if (at !== undefined) lagMs.push(Date.now() - at);
    });
    const start = n0.chain.height;
    try {
      await waitFor("8 more blocks", () => n0.chain.height >= start + 8, {
        timeoutMs: 60_000,
        detail: describeAll,
      });
      await waitFor("the last of them final", () => n0.chain.finality.finalizedHeight >= start + 8, {
        timeoutMs: 10_000,
        detail: describeAll,
      });
    } finally {
      offTip();
      offFinal();
    }
    lagMs.sort((a, b) => a - b);
    t.diagnostic(
      `lag at each new tip (blocks): ${lagBlocks.join(" ")}; final after connect (ms): ${lagMs.join(" ")}`,
    );
    assert.ok(lagBlocks.length >= 8);
    assert.ok(
      Math.max(...lagBlocks) <= 1,
      `a block was not final until the tip was ${Math.max(...lagBlocks)} past it`,
    );
    // One chain of final blocks: every node has the same block at every final height.
    const f = Math.min(...nodes.map((n) => n.n.chain.finality.finalizedHeight));
    for (let h = 1; h <= f; h++) {
      const hashes = new Set(nodes.map((n) => n.n.chain.getHashAtHeight(h)!.toString("hex")));
      assert.equal(hashes.size, 1, `height ${h}`);
    }
  });

  it("two stopped: 4 of 6 is not more than 2/3, so finality pauses while production goes on; one back, it catches up", async () => {
    await nodes[4]!.stop();
    await nodes[5]!.stop();
    const n0 = nodes[0]!.n;
    // Votes in flight when they stopped may still finalise a block or two.
    await waitFor(
      "the tip moves past the last final block",
      () => n0.chain.height >= n0.chain.finality.finalizedHeight + 2,
      {
        timeoutMs: 20_000,
        detail: describeAll,
      },
    );
    const pausedAt = n0.chain.finality.finalizedHeight;
    const tipAt = n0.chain.height;
    await waitFor("4 more blocks without the two", () => n0.chain.height >= tipAt + 4, {
      timeoutMs: 30_000,
      detail: describeAll,
    });
    assert.ok(
      up().every((n) => n.n.chain.finality.finalizedHeight <= pausedAt + 1),
      `finality moved with only 4 of 6 voting:\n${describeAll()}`,
    );
    await nodes[4]!.start();
    const target = n0.chain.height;
    await waitFor(
      "finality catches up past the blocks made meanwhile, everywhere",
      () => up().every((n) => n.n.chain.finality.finalizedHeight >= target),
      { timeoutMs: 30_000, detail: describeAll },
    );
    // The node that came back took the final block from its peers' certificates and votes.
    assert.ok(nodes[4]!.n.chain.finality.finalizedHeight >= target);
  });

  it("a node that was away learns the final block from its peers on connect", async () => {
    const away = nodes[5]!;
    await away.start();
    const n0 = nodes[0]!.n;
    await waitFor(
      "the returning node's final height reaches node 0's",
      () =>
        away.n.chain.finality.finalizedHeight >= n0.chain.finality.finalizedHeight - 1 &&
        away.n.chain.finality.finalizedHeight > 0,
      { timeoutMs: 30_000, detail: describeAll },
    );
    const h = away.n.chain.finality.finalizedHeight;
    assert.ok(away.n.chain.finality.finalized.hash.equals(n0.chain.getHashAtHeight(h)!));
  });
});
