/**
 * Finality between real nodes (TimeNode, real LMDB, real TCP on loopback): six masternodes of
 * equal weight vote on every block.
 * - All six up: every block becomes final before the tip is two blocks past it, at every node,
 *   and every node agrees on the final block at each height.
 * - Two stopped: 4 of 6 is exactly 2/3, not more. Production goes on and finality pauses.
 * - One of them back: 5 of 6. Finality catches up to the tip, certifying the blocks made meanwhile.
 * - A node that was away learns the final block from the certificate its peers send on connect.
 * - A full node that joins late syncs from genesis and takes finality from the certificates the
 *   blocks carry; `timed verify` re-checks every one.
 * - Four stopped: 2 active are fewer than min_masternodes (3), so production stops too.
 * - Operators see it over RPC: getblockchaininfo, getblock (with the last final block's
 *   certificate) and getfinalitystatus.
 *
 * This file uses 127.0.140.0/24.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { cleanupAll, Devnet, sleep, waitFor, type NodeHandle } from "./helpers/nodes.js";
import { decodeFinalityTx, finalHeightOf } from "../../src/consensus/finalityTx.js";
import { eraOfFinalHeight } from "../../src/consensus/committee.js";
import { TxKind } from "../../src/primitives/tx.js";
import { verifyChain } from "../../src/node/verify.js";
import { dataDirPaths } from "../../src/node/dataDir.js";

const BLOCK_S = 1;

void describe("finality (real nodes)", () => {
  let net: Devnet | undefined;
  let nodes: NodeHandle[];

  before(async () => {
    net = await Devnet.create({
      name: "finality",
      nodes: [
        ...Array.from({ length: 6 }, (_, i) => ({
          host: `127.0.140.${i + 1}`,
          masternode: true,
          produce: true,
          // Production needs 3 active: it goes on with 2 of 6 stopped, not with 4.
          minMasternodes: 3,
          bootstrap: i === 0 ? [] : [0],
        })),
        // A full node that joins late and syncs from genesis.
        { host: "127.0.140.7", bootstrap: [0, 1], deferStart: true },
      ],
      blockTime: BLOCK_S,
    });
    nodes = net.nodes.slice(0, 6);
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

  it("operators see it over RPC: getblockchaininfo, getblock and getfinalitystatus", async () => {
    const rpc = nodes[0]!.rpc;
    const n0 = nodes[0]!.n;
    interface Cp {
      height: number;
      hash: string;
      epoch: number;
    }
    interface Status {
      finalized: Cp;
      justified: Cp;
      tip: number;
      lag: number;
      certificatevotes: number;
      votes: Record<string, number>;
      pendingvotes: number;
      offences: { count: number; recent: unknown[] };
      voter: { lock: { maxsource: number; maxtarget: number }; signed: number } | null;
    }
    interface BlockJson {
      hash: string;
      height: number;
      finalized: boolean;
      certificate: {
        source: { epoch: number; hash: string };
        target: { epoch: number; hash: string };
        votes: Array<{ voter: string; signature: string }>;
      } | null;
    }
    // The last final block carries its certificate; catch it before finality moves past it.
    const { s, b } = await waitFor(
      "getblock on the last final block, with its certificate",
      async () => {
        const s = await rpc.call<Status>("getfinalitystatus");
        const b = await rpc.call<BlockJson>("getblock", [s.finalized.hash]);
        return b.certificate ? { s, b } : undefined;
      },
      { timeoutMs: 10_000, stepMs: 50, detail: describeAll },
    );
    assert.ok(s.finalized.height >= 1);
    assert.equal(s.finalized.epoch, 2 * s.finalized.height);
    assert.equal(s.finalized.hash, await rpc.call<string>("getblockhash", [s.finalized.height]));
    assert.ok(s.justified.epoch > s.finalized.epoch, "the final block's second checkpoint is justified");
    assert.equal(s.lag, s.tip - s.finalized.height);
    assert.ok(s.lag >= 0 && s.lag <= 2, `lag ${s.lag}`);
    assert.ok(s.certificatevotes >= 5, "more than 2/3 of six equal voters");
    assert.ok(s.votes.counted! > 0 && s.votes.sent! > 0, JSON.stringify(s.votes));
    assert.equal(s.votes.invalid, 0);
    assert.deepEqual(s.offences, { count: 0, recent: [] });
    assert.ok(s.voter, "a masternode reports its voter");
    assert.ok(s.voter.signed > 0 && s.voter.lock.maxtarget >= s.finalized.epoch + 1, JSON.stringify(s.voter));
    assert.equal(b.height, s.finalized.height);
    assert.equal(b.finalized, true);
    assert.deepEqual(b.certificate!.source, { epoch: s.finalized.epoch, hash: b.hash });
    assert.deepEqual(b.certificate!.target, { epoch: s.finalized.epoch + 1, hash: b.hash });
    assert.ok(b.certificate!.votes.length >= 5);
    // Finality only moves up: a block reported final is at or below the final height read after
    // it, and one reported not final is above the final height read before it.
    const before = await rpc.call<{ finalizedheight: number; finalizedhash: string; blocks: number }>(
      "getblockchaininfo",
    );
    assert.ok(before.finalizedheight >= s.finalized.height && before.finalizedheight <= before.blocks);
    const tipBlock = await rpc.call<BlockJson>("getblock", [before.blocks]);
    const below = await rpc.call<BlockJson>("getblock", [1]);
    const fAfter = n0.chain.finality.finalizedHeight;
    if (tipBlock.finalized) assert.ok(tipBlock.height <= fAfter);
    else assert.ok(tipBlock.height > before.finalizedheight);
    assert.deepEqual([below.finalized, below.certificate], [true, null]);
    assert.ok(
      n0.chain.getHashAtHeight(before.finalizedheight)!.equals(Buffer.from(before.finalizedhash, "hex")),
    );
  });

  it("one stopped: 5 of 6 is more than 2/3, and every block is still final", async () => {
    await nodes[5]!.stop();
    const n0 = nodes[0]!.n;
    const start = n0.chain.height;
    await waitFor("4 more blocks with five", () => n0.chain.height >= start + 4, {
      timeoutMs: 30_000,
      detail: describeAll,
    });
    await waitFor(
      "the newest of them final everywhere",
      () => up().every((n) => n.n.chain.finality.finalizedHeight >= start + 4),
      {
        timeoutMs: 10_000,
        detail: describeAll,
      },
    );
  });

  it("two stopped: 4 of 6 is not more than 2/3, so finality pauses while production goes on; one back, it catches up", async () => {
    await nodes[4]!.stop();
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

  it("a full node that joins late syncs from genesis, takes finality from the certificates the blocks carry, and timed verify re-checks every one", async () => {
    const late = net!.nodes[6]!;
    await late.start();
    const n0 = nodes[0]!.n;
    await waitFor(
      "the late node at node 0's tip, with a final block",
      () => late.n.chain.height >= n0.chain.height - 1 && late.n.chain.finality.finalizedHeight > 0,
      { timeoutMs: 60_000, detail: describeAll },
    );
    // Blocks carry certificates: walk the late node's main chain and check each one's placement.
    const chain = late.n.chain;
    let certified = 0;
    let carriers = 0;
    for (let h = 1; h <= chain.height; h++) {
      const block = chain.getBlock(chain.getHashAtHeight(h)!)!;
      const tx = block.txs.find((t) => t.kind === TxKind.Finality);
      if (!tx) continue;
      const cert = decodeFinalityTx(tx);
      const height = cert.source.epoch / 2;
      assert.ok(height > certified && height < h, `block ${h} certifies ${height}, after ${certified}`);
      assert.ok(chain.getHashAtHeight(height)!.equals(cert.source.hash), "a main-chain block");
      // Each certificate is of its branch's era, and makes final at most the next era's anchor.
      assert.equal(cert.era, eraOfFinalHeight(certified), `block ${h}'s certificate`);
      certified = finalHeightOf(cert);
      carriers++;
    }
    assert.ok(carriers >= 5, `only ${carriers} blocks carry a certificate`);
    assert.equal(chain.tip.certified ?? 0, certified);
    assert.ok(chain.finality.finalizedHeight >= certified);
    // Stopped, its store replays from genesis: every certificate is checked again.
    await late.stop();
    const r = await verifyChain(dataDirPaths(late.dir).chain, net!.genesis);
    assert.equal(r.ok, true, r.problem);
    assert.equal(r.finalized, certified);
  });

  it("four stopped: 2 active are fewer than min_masternodes (3), so production stops too", async () => {
    for (const i of [2, 3, 4, 5]) await nodes[i]!.stop();
    const n0 = nodes[0]!.n;
    await waitFor("the producers see only 2 active", () => n0.liveness.activeCount() < 3, {
      timeoutMs: 30_000,
      detail: describeAll,
    });
    const h = n0.chain.height;
    await sleep(5 * BLOCK_S * 1000);
    assert.ok(n0.chain.height <= h + 1, `production went on with 2 active: ${h} -> ${n0.chain.height}`);
    assert.equal(nodes[1]!.n.chain.height, n0.chain.height);
    // The doctor names the cause on a masternode left running.
    const d = await nodes[0]!.rpc.call<{
      verdicts: Array<{ check: string; status: string; verdict: string }>;
    }>("doctor");
    const producing = d.verdicts.find((x) => x.check === "producing")!;
    assert.equal(producing.status, "fail", JSON.stringify(d.verdicts));
    assert.match(producing.verdict, /only 2 masternodes are active, fewer than min_masternodes \(3\)/);
  });
});
