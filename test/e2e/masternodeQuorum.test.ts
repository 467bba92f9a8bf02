/**
 * Production needs min_masternodes (3) active masternodes, with real nodes (TimeNode in this
 * process, real LMDB, real TCP on their own loopback IPs; 1 s blocks, 0.5 s heartbeats, so a
 * silent masternode goes inactive after 2.5 s): with 4 masternodes, stopping 2 halts
 * production, and masternodestatus on the survivors says why; starting one again resumes it.
 * A probe records, for every block any producer makes, how many active masternodes that producer
 * saw when it decided to produce: never fewer than 3.
 *
 * This file uses 127.0.73.0/24.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { trapEscapes, type NodeHandle } from "./helpers/nodes.js";
import { MnDevnet, probeProduction, sleep, waitFor } from "./helpers/masternodes.js";

const BLOCK_MS = 1_000;
const HEARTBEAT_MS = 500;
const MIN = 3;

interface StatusJson {
  status: string;
  reason: string;
  activemasternodes: number;
  minmasternodes: number;
}

const status = (h: NodeHandle): Promise<StatusJson> => h.rpc.call<StatusJson>("masternodestatus");

void describe("production needs 3 active masternodes (real nodes)", () => {
  let net: MnDevnet;
  const escapes = trapEscapes();
  // Installed before any node exists, so it sees every block made in this file.
  const probe = probeProduction();

  before(async () => {
    net = await MnDevnet.create({
      name: "quorum",
      nodes: [1, 2, 3, 4].map((i) => ({ host: `127.0.73.${i}` })),
      blockTime: BLOCK_MS / 1000,
      heartbeatInterval: HEARTBEAT_MS / 1000,
      minMasternodes: MIN,
    });
  });

  after(async () => {
    probe.restore();
    escapes.release();
    await net?.cleanup();
    assert.deepEqual(escapes.errors, [], "nothing escaped to the process");
  });

  it("with 4 masternodes, stopping 2 halts production with the reason over RPC; starting one again resumes it; nobody produces while it sees fewer than 3", async () => {
    const [a, b, c] = [net.node(0), net.node(1), net.node(2)];
    const d = net.node(3);
    await net.waitAgree(3, 20_000);
    // Whose producer is whose: a restart makes a new one, so collect them as nodes (re)start.
    const names = new Map<unknown, string>();
    const learn = (): void => {
      for (const h of net.running()) if (h.n.producer) names.set(h.n.producer, h.name);
    };
    learn();

    await Promise.all([c.stop(), d.stop()]);
    const stoppedAt = Date.now();
    // Within the liveness window the survivors still count the stopped ones; then they wait.
    await waitFor(
      "both survivors to report waiting: 2/3 active masternodes",
      async () => {
        const st = await Promise.all([status(a), status(b)]);
        return st.every((s) => s.status === "waiting" && s.reason === "waiting: 2/3 active masternodes");
      },
      { timeoutMs: 5 * HEARTBEAT_MS + 5_000, detail: () => net.describe() },
    );
    const waitingAfter = Date.now() - stoppedAt;
    for (const h of [a, b]) {
      const st = await status(h);
      assert.equal(st.activemasternodes, 2);
      assert.equal(st.minmasternodes, MIN);
      assert.equal(st.reason, "waiting: 2/3 active masternodes");
    }
    // Production has halted: nothing in three block times.
    const halted = { a: a.n.chain.height, b: b.n.chain.height, records: probe.records.length };
    await sleep(3 * BLOCK_MS);
    assert.equal(a.n.chain.height, halted.a, "no block while 2 of 4 are active");
    assert.equal(b.n.chain.height, halted.b, "no block while 2 of 4 are active");
    assert.equal(probe.records.length, halted.records, "no producer made a block");
    assert.equal((await status(a)).status, "waiting");

    // One comes back: 3 active, production resumes, and the three agree.
    await c.start();
    learn();
    const resumed = await net.waitAgree(Math.max(halted.a, halted.b) + 3, 30_000, "production to resume");
    assert.ok(resumed.height >= halted.a + 3);
    for (const h of [a, b, c]) {
      const st = await status(h);
      assert.ok(st.activemasternodes >= MIN, `${h.name} sees ${st.activemasternodes}`);
    }
    learn();

    // Every block made in this test, by any producer, was made while it saw at least 3.
    assert.ok(probe.records.length >= 6, `blocks were produced (${probe.records.length})`);
    const low = probe.records.filter((r) => r.active < MIN);
    assert.deepEqual(
      low.map((r) => `${names.get(r.producer) ?? "?"} made height ${r.height} seeing ${r.active}`),
      [],
      "a producer made a block while it saw fewer than 3 active masternodes",
    );
    // ...and every one of them is accounted for by a known producer.
    assert.ok(probe.records.every((r) => names.has(r.producer)));
    const byNode = new Map<string, number>();
    for (const r of probe.records)
      byNode.set(names.get(r.producer)!, (byNode.get(names.get(r.producer)!) ?? 0) + 1);
    console.log(
      `quorum: waiting after ${waitingAfter} ms; blocks made per node ${JSON.stringify(Object.fromEntries(byNode))}; ` +
        `fewest active seen when producing: ${Math.min(...probe.records.map((r) => r.active))}`,
    );
  });
});
