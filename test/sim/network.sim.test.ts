/**
 * Real nodes on MemoryTransport and a ManualClock (test/sim/harness.ts): the mesh forms, blocks
 * are produced and agreed, and a partition heals to the majority's chain with no ban between
 * honest nodes. A fixed seed; virtual time only.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Sim } from "./harness.js";

void describe("simulation: 4 masternodes on MemoryTransport", () => {
  let sim: Sim;
  before(async () => {
    sim = await Sim.create({ seed: 7, masternodes: 4, blockTimeMs: 2_000, minMasternodes: 3 });
  });
  after(async () => {
    await sim?.stop();
  });

  it("forms a full mesh and produces one chain on virtual time", async (t) => {
    await sim.until("a full mesh", () => sim.meshed(), 30_000);
    const ms = await sim.until("10 blocks on one tip", () => sim.agree(10), 120_000);
    t.diagnostic(`10 blocks agreed after ${ms} ms of virtual time`);
    // 2 s blocks: 10 of them take at least 20 s of virtual time, and not much more with all producers up.
    assert.ok(ms >= 18_000 && ms <= 40_000, `${ms} ms`);
  });

  it("3 | 1: the majority goes on, the isolated node waits; healed, it takes the majority's chain; no bans", async (t) => {
    const [a, b, c, d] = sim.nodes as [
      (typeof sim.nodes)[0],
      (typeof sim.nodes)[0],
      (typeof sim.nodes)[0],
      (typeof sim.nodes)[0],
    ];
    const start = d.n.chain.height;
    sim.net.partition([[a.host, b.host, c.host], [d.host]]);
    await sim.advance(30_000);
    assert.equal(d.n.chain.height, start, "the lone node (1 of 3 needed) produced nothing");
    assert.match(d.n.producer!.status.reason, /waiting: 1\/3 active masternodes/);
    const majority = a.n.chain.tip;
    assert.ok(majority.height >= start + 8, `the majority went on to ${majority.height}`);
    assert.ok(
      [b, c].every((n) => n.n.chain.tip.hash.equals(majority.hash) || n.n.chain.height >= majority.height),
    );
    sim.net.heal();
    const healed = await sim.until("one tip after the heal", () => sim.agree(majority.height), 60_000);
    t.diagnostic(`one tip ${healed} ms of virtual time after the heal`);
    assert.ok(
      d.n.chain.isMain(d.n.chain.getIndex(majority.hash)!),
      "the lone node took the majority's branch",
    );
    await sim.until("the mesh back", () => sim.meshed(), 60_000);
    for (const n of sim.nodes) assert.deepEqual(n.n.peers.listBanned(), [], `${n.name} banned nobody`);
    const after = a.n.chain.height;
    await sim.until("production with all four", () => sim.agree(after + 3), 60_000);
  });
});
