/**
 * Real nodes on the simulator (scripts/sim/simulator.ts): the mesh forms, blocks are produced
 * and agreed, and a partition heals to the majority's chain with no ban between honest nodes.
 * A fixed seed; virtual time only.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Simulator, type SimNode } from "../../scripts/sim/simulator.js";

void describe("simulation: 4 masternodes, 2 s blocks", () => {
  let sim: Simulator;
  before(async () => {
    sim = await Simulator.create({
      seed: 7,
      nodes: 4,
      masternodes: 4,
      blockTimeMs: 2_000,
      minMasternodes: 3,
      link: { latencyMs: 1, jitterMs: 0, loss: 0, bandwidthBytesPerS: 0 },
      maxSkewMs: 0,
    });
  });
  after(async () => {
    await sim?.stop();
  });

  /** Whether every running node has a ready peer for each other running node. */
  const meshed = (): boolean =>
    sim.running().every((h) => {
      const ids = new Set(h.n.peers.peers().map((p) => p.nodeIdHex));
      return sim.running().every((o) => o === h || ids.has(o.nodeId));
    });
  /** Whether every running node is on one tip at height >= minHeight. */
  const agree = (minHeight: number): boolean => {
    const tips = new Set(sim.running().map((n) => n.tip.hash.toString("hex")));
    return tips.size === 1 && sim.running()[0]!.tip.height >= minHeight;
  };

  it("forms a full mesh and produces one chain on virtual time", async (t) => {
    await sim.runUntil("a full mesh", meshed, 30_000);
    const ms = await sim.runUntil("10 blocks on one tip", () => agree(10), 120_000, 50);
    t.diagnostic(`10 blocks agreed after ${ms} ms more of virtual time`);
    // 2 s blocks: 10 of them take about 20 s of virtual time with all producers up.
    assert.ok(ms >= 14_000 && ms <= 40_000, `${ms} ms`);
  });

  it("3 | 1: the majority goes on, the isolated node waits; healed, it takes the majority's chain; no bans", async (t) => {
    const [a, b, c, d] = sim.nodes as [SimNode, SimNode, SimNode, SimNode];
    sim.partition([[a, b, c], [d]]);
    // Its liveness view still counts the others for one window (5 heartbeats of 1 s): it may
    // fill a slot of its own meanwhile. After that it must wait.
    await sim.run(6_000);
    const start = d.tip.height;
    await sim.run(30_000);
    assert.equal(d.tip.height, start, "the lone node (1 of 3 needed) produced nothing");
    assert.match(d.n.producer!.status.reason, /waiting: 1\/3 active masternodes/);
    const majority = a.tip;
    assert.ok(majority.height >= start + 8, `the majority went on to ${majority.height}`);
    sim.heal(60_000);
    const healed = await sim.runUntil("one tip after the heal", () => agree(majority.height), 60_000, 50);
    t.diagnostic(`one tip ${healed} ms of virtual time after the heal`);
    assert.ok(
      d.n.chain.isMain(d.n.chain.getIndex(majority.hash)!),
      "the lone node took the majority's branch",
    );
    await sim.runUntil("the mesh back", meshed, 60_000);
    for (const n of sim.nodes) assert.deepEqual(n.n.peers.listBanned(), [], `${n.name} banned nobody`);
    const after = a.tip.height;
    await sim.runUntil("production with all four", () => agree(after + 3), 60_000, 50);
  });
});
