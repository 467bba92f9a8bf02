/**
 * The doctor on a node staged on a minority fork, with real nodes (TimeNode, LMDB, TCP on
 * loopback): three producing masternodes, and three more in the genesis that nobody runs, so no
 * block is ever final (3 of 6 is not more than 2/3) and any block may be invalidated. Node C
 * invalidates its tip: it moves to the parent and refuses every block built on the marked one,
 * while A and B go on together. C's doctor says it is on a minority fork and suggests
 * getchaintips; getchaintips shows the marked branch as invalid; reconsiderblock brings C back,
 * and the doctor's chain verdict is ok again.
 *
 * This file uses 127.0.143.0/24.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { cleanupAll, Devnet, waitFor, type NodeHandle } from "./helpers/nodes.js";

interface Doctor {
  ok: boolean;
  verdicts: Array<{ check: string; status: string; verdict: string; suggest: string | null }>;
}

void describe("doctor on a minority fork (real nodes)", () => {
  let net: Devnet | undefined;

  before(async () => {
    net = await Devnet.create({
      name: "doctor",
      blockTime: 0.5,
      phantomMasternodes: 3,
      phantomAddress: "127.0.143.1:1",
      nodes: [0, 1, 2].map((i) => ({
        host: `127.0.143.${i + 1}`,
        masternode: true,
        produce: true,
        bootstrap: i === 0 ? [] : [0],
      })),
    });
  });

  after(async () => {
    await cleanupAll(net);
  });

  const chainVerdict = async (h: NodeHandle): Promise<Doctor["verdicts"][number]> =>
    (await h.rpc.call<Doctor>("doctor")).verdicts.find((v) => v.check === "chain")!;

  it("a node that invalidated the network's branch is told it is on a minority fork; reconsiderblock heals it", async () => {
    const [a, b, c] = net!.nodes as [NodeHandle, NodeHandle, NodeHandle];
    await waitFor(
      "height 6 everywhere, one tip, full mesh",
      () =>
        [a, b, c].every((h) => h.n.chain.height >= 6 && h.n.peers.peers().length === 2) &&
        a.n.chain.tip.hash.equals(c.n.chain.tip.hash),
      { timeoutMs: 30_000, detail: () => net!.describe() },
    );
    assert.equal(c.n.chain.finality.finalizedHeight, 0, "nothing is final: 3 of 6 vote");
    // Three blocks deep, not the tip: C's own branch then starts three blocks behind and, with one
    // producer of three, never outweighs A and B's. (Marking the tip raced: when C held the next
    // round-0 slot, its replacement block plus that one outweighed the marked block, and A and B
    // followed C.)
    const marked = c.n.chain.getHashAtHeight(c.n.chain.height - 2)!.toString("hex");
    const oldTip = c.n.chain.tip.hash.toString("hex");
    const r = await c.rpc.call<{ marked: number }>("invalidateblock", [marked]);
    assert.ok(r.marked >= 1);
    const from = c.n.chain.height;
    await waitFor(
      "A and B 3 blocks further, C left behind",
      () => a.n.chain.height >= from + 3 && b.n.chain.height >= from + 3,
      {
        timeoutMs: 30_000,
        detail: () => net!.describe(),
      },
    );
    const v = await waitFor(
      "C's doctor: minority fork",
      async () => {
        const x = await chainVerdict(c);
        return x.status === "fail" ? x : undefined;
      },
      { timeoutMs: 30_000, stepMs: 250, detail: () => `${net!.describe()}\n${c.recentLogs(15)}` },
    );
    assert.match(v.verdict, /minority fork: 2 of 2 masternode peers are on another branch/);
    assert.equal(v.suggest, "time-cli getchaintips");
    const tips = await c.rpc.call<Array<{ hash: string; status: string }>>("getchaintips");
    assert.ok(
      // The marked block's branch, ending at C's old tip, is invalid.
      tips.some((t) => t.hash === oldTip && t.status === "invalid"),
      JSON.stringify(tips),
    );
    // A is on the majority's chain: at most a warning that one peer (C) is elsewhere.
    assert.notEqual((await chainVerdict(a)).status, "fail");

    await c.rpc.call("reconsiderblock", [marked]);
    await waitFor(
      "C back on A's chain",
      () =>
        c.n.chain.getIndex(a.n.chain.tip.hash) !== undefined &&
        c.n.chain.isMain(c.n.chain.getIndex(a.n.chain.tip.hash)!),
      {
        timeoutMs: 30_000,
        detail: () => net!.describe(),
      },
    );
    await waitFor(
      "C's doctor: the chain is ok again",
      async () => ((await chainVerdict(c)).status === "ok" ? true : undefined),
      { timeoutMs: 15_000, stepMs: 250 },
    );
  });
});
