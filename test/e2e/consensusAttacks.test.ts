/**
 * Attacks on the consensus rules that cross the network, against real nodes (TimeNode in this
 * process, real LMDB, real TCP on their own loopback IPs; 1 s blocks). Four genesis masternodes;
 * nodes 0 to 2 run honestly and produce (min_masternodes 3). Node 3 never starts: the test holds
 * its operator key and plays the attacker, from raw peers that complete a handshake and serve the
 * blocks it forges (BlockServingPeer).
 *
 * - A Free registration sent over RPC is refused with its rule (MN_FREE_TIER).
 * - A flood of heavy junk side blocks, each validly signed by the attacker's key at a round the
 *   schedule gives it, on old parents: not one byte is stored, and the flooder is not blamed.
 * - A private branch by the one key, built in private as fast as the clock allows, grinding every
 *   timestamp it may choose to keep round 0 for itself, then released at once: the honest nodes
 *   keep their chain. (Its heights are above the flood's: one key signing two blocks for one
 *   height and round, on any parents, is equivocation, which the last test is about.)
 * - Two blocks signed by the key for one (height, round): detected, the evidence gossiped and
 *   mined, the offender out of the registry on every node; listevidence, the evidence_total metric
 *   and the log show it.
 *
 * The tests run in this order on one devnet. This file uses 127.0.120.0/24.
 */
import { anchorInput } from "../../src/consensus/committee.js";
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { blockHash, encodeBlock, type Block } from "../../src/primitives/block.js";
import { buildBlock } from "../../src/consensus/blockBuilder.js";
import { COIN } from "../../src/primitives/constants.js";
import { encodeTx, type Tx } from "../../src/primitives/tx.js";
import { findByOperator } from "../../src/consensus/registry.js";
import { makeRegisterTx } from "../../src/consensus/registryTx.js";
import { slotStart } from "../../src/consensus/schedule.js";
import { Tier } from "../../src/consensus/tier.js";
import { pubkeyHash } from "../../src/crypto/address.js";
import { KeyPair } from "../../src/crypto/ed25519.js";
import { sha256 } from "../../src/crypto/hash.js";
import { RpcCallError } from "../../src/rpc/client.js";
import { makeTransfer } from "../helpers/chainFixture.js";
import { BranchSchedule } from "./helpers/attacker.js";
import { BlockServingPeer, MnDevnet, sleep, waitFor } from "./helpers/masternodes.js";
import { trapEscapes, type NodeHandle } from "./helpers/nodes.js";
import { ChainRecorder } from "./helpers/splitNet.js";

const hex = (b: Buffer): string => b.toString("hex");

/** Sums the stored bytes of these blocks on a node (0 for each it does not hold). */
function storedBytes(h: NodeHandle, hashes: readonly Buffer[]): number {
  let n = 0;
  for (const x of hashes) n += h.n.chain.storage.getBlockBytes(x)?.length ?? 0;
  return n;
}

async function metricValue(h: NodeHandle, name: string, labels: Record<string, string>): Promise<number> {
  const m = h.n.metrics.registry.getSingleMetric(name);
  const values = (await m?.get())?.values ?? [];
  const v = values.find((x) => Object.entries(labels).every(([k, want]) => x.labels[k] === want));
  return v?.value ?? 0;
}

void describe("attacks on the consensus rules (real nodes)", () => {
  let net: MnDevnet;
  let honest: NodeHandle[];
  let attacker: KeyPair;
  const peers: BlockServingPeer[] = [];
  const escapes = trapEscapes();

  before(async () => {
    net = await MnDevnet.create({
      name: "attacks",
      nodes: [
        { host: "127.0.120.1" },
        { host: "127.0.120.2" },
        { host: "127.0.120.3" },
        { host: "127.0.120.4" },
      ],
      blockTime: 1,
      heartbeatInterval: 0.5,
      minMasternodes: 3,
      start: false,
    });
    honest = [net.node(0), net.node(1), net.node(2)];
    attacker = net.node(3).operatorKey!;
    for (const h of honest) await h.start();
    await net.waitMesh(20_000);
  });

  after(async () => {
    for (const p of peers) p.close();
    await net?.cleanup();
    escapes.release();
    assert.deepEqual(escapes.errors, [], "no error escaped a node");
  });

  /** A raw peer on its own loopback IP, connected to honest node i. */
  async function rawPeerTo(i: number, ipSuffix: number): Promise<BlockServingPeer> {
    const p = await BlockServingPeer.connect(net.node(i), `127.0.120.${ipSuffix}`, net.genesisHash);
    peers.push(p);
    return p;
  }

  it("a Free registration is refused over RPC, with its rule: Sybils are not free", async () => {
    const owner = KeyPair.generate();
    const tx = makeRegisterTx({
      ownerKey: owner,
      operatorKey: KeyPair.generate(),
      address: "127.0.120.77:24200",
      tier: Tier.Free,
      rewardAddress: pubkeyHash(owner.publicKey),
      collateral: null,
      inputs: [{ txid: sha256(Buffer.from("no such coin")), index: 0 }],
      outputs: [{ amount: COIN, address: pubkeyHash(owner.publicKey) }],
    });
    for (const h of honest) {
      const err = await h.rpc.call("sendrawtransaction", [encodeTx(tx).toString("hex")]).then(
        () => assert.fail("a Free registration was accepted"),
        (e: unknown) => e,
      );
      assert.ok(err instanceof RpcCallError, String(err));
      assert.equal(err.code, -26);
      assert.deepEqual(err.data, { code: "INVALID", rule: "MN_FREE_TIER" }, err.message);
      assert.equal(h.n.mempool.size, 0);
    }
  });

  it("a flood of heavy side blocks on old parents, each signed by a scheduled key, stores nothing", async (t) => {
    const target = net.node(0);
    const t0 = Date.now();
    // The slots used below (parents 1 to 20, rounds up to 8) are all in the past by then.
    await waitFor("30 blocks", () => target.n.chain.height >= 30, {
      timeoutMs: 90_000,
      detail: () => net.describe(),
    });
    const t1 = Date.now();
    const peer = await rawPeerTo(0, 9);
    const chain = target.n.chain;
    const offered: Buffer[] = [];
    let bytesOffered = 0;
    // 40 blocks of about 100 kB, two on each of the main-chain blocks 1 to 20: a valid header,
    // signed by the attacker at the first two rounds the schedule gives it there (their slots long
    // past, so the timestamps are valid; one block per slot, so no evidence against it),
    // transactions that decode and are signed but spend nothing real.
    // The same junk transactions in every block (signed once): the blocks still differ by header.
    const txs: Tx[] = Array.from({ length: 400 }, (_, j) =>
      makeTransfer(
        attacker,
        [{ txid: sha256(Buffer.from(`junk/${j}`)), index: 0 }],
        [1, 2, 3].map((k) => ({ to: sha256(Buffer.from(`to/${j}/${k}`)).subarray(0, 20), amount: COIN })),
      ),
    );
    for (let i = 0; i < 40; i++) {
      const parentHeight = 1 + (i >> 1);
      const parent = chain.getIndex(chain.getHashAtHeight(parentHeight)!)!;
      const sched = new BranchSchedule(chain, parent);
      const first = sched.firstRoundOf(attacker.publicKey, parent.hash, parentHeight + 1);
      let round = first;
      if (i & 1)
        do round++;
        while (!sched.producer(parent.hash, parentHeight + 1, round).equals(attacker.publicKey));
      assert.ok(first >= 0 && round < 8);
      const block = buildBlock({
        parentHash: parent.hash,
        parentHeight,
        registry: sched.registry,
        producer: attacker,
        round,
        timestamp: slotStart(chain.params, parent.timestamp, round),
        txs,
        fees: 0n,
        eraProofInput: chain.finality.eraProofInputForChild(parent),
      });
      bytesOffered += encodeBlock(block).length;
      offered.push(peer.offer(block));
      await sleep(120); // under the NewTip rate limit (10/s): every announcement is heard
    }
    t.diagnostic(`waited ${t1 - t0} ms for height 30; built and offered 40 blocks in ${Date.now() - t1} ms`);
    await sleep(1_000);
    assert.ok(bytesOffered > 3_000_000, `the flood offered ${bytesOffered} bytes`);
    assert.equal(storedBytes(target, offered), 0, "not one junk block stored");
    // Not blamed: an honest late block on an old parent looks the same.
    assert.ok(
      target.n.peers.peers().some((p) => p.addr.startsWith("127.0.120.9:")),
      "the flooder is still connected",
    );
    peer.close();
  });

  it("a private branch by one key of four, grinding every timestamp it chooses, does not replace the honest chain; against final blocks it is refused and logged", async (t) => {
    const recorders = honest.map((h) => new ChainRecorder(h));
    const servers = [await rawPeerTo(0, 10), await rawPeerTo(1, 11)];
    const chain = net.node(0).n.chain;
    const params = chain.params;
    const drift = 500; // maxFutureDrift of a 1 s chain
    const fork = chain.tip;
    const sched = new BranchSchedule(chain, fork);
    let parent = { hash: fork.hash, height: fork.height, timestamp: fork.timestamp };
    const branch: Block[] = [];
    const rounds: number[] = [];
    const start = Date.now();
    // 25 s of real time: the attacker builds, in private, each block as early as the clock rule lets it (its
    // timestamp at most `drift` ahead of the nodes' clocks), at the lowest round the schedule
    // gives its key. Of the timestamps its slot allows it tries up to 35 and keeps one after which
    // its key holds round 0 at the next height, if any does: the grind.
    while (Date.now() - start < 25_000) {
      const height = parent.height + 1;
      const round = sched.firstRoundOf(attacker.publicKey, parent.hash, height);
      assert.ok(round >= 0, "the key always has some round");
      const slot = slotStart(params, parent.timestamp, round);
      // Early enough to be ahead of the honest chain, late enough to have 35 timestamps to try.
      const wait = slot - drift + 100 + 35 - Date.now();
      if (wait > 0) await sleep(wait);
      const latest = Math.max(slot, Math.min(slot + params.roundTimeoutMs - 1, Date.now() + drift - 100));
      let chosen: Block | null = null;
      for (let ts = slot; ts <= latest && ts < slot + 35; ts++) {
        const b = buildBlock({
          parentHash: parent.hash,
          parentHeight: parent.height,
          registry: sched.registry,
          producer: attacker,
          round,
          timestamp: ts,
          txs: [],
          fees: 0n,
          eraProofInput: anchorInput(chain.genesisHash, height, (h) =>
            h <= fork.height ? chain.getBlock(chain.getHashAtHeight(h)!) : branch[h - fork.height - 1],
          ),
        });
        chosen ??= b;
        if (sched.producer(blockHash(b.header), height + 1, 0).equals(attacker.publicKey)) {
          chosen = b;
          break;
        }
      }
      const block = chosen!;
      branch.push(block);
      rounds.push(round);
      parent = { hash: blockHash(block.header), height, timestamp: block.header.timestamp };
    }
    // Release the whole branch at once, in order, paced under the NewTip rate limit (10/s) so
    // each block is fetched before the next is announced: the classic private-chain attack.
    for (const block of branch) {
      for (const s of servers) s.offer(block);
      await sleep(110);
    }
    await sleep(3_000);
    for (const r of recorders) r.stop();
    // With finality the honest chain is final above the fork long before the release: the branch
    // is refused outright, whatever its work, and the refusal is logged.
    const finalNow = Math.min(...honest.map((h) => h.n.chain.finality.finalizedHeight));
    assert.ok(
      finalNow > fork.height,
      `the honest chain is final at ${finalNow}, above the fork at ${fork.height}`,
    );
    const logged = honest.filter((h) =>
      h.logger.records.some((r) => /conflicts with the final block|below the final block/.test(r.msg)),
    );
    assert.ok(logged.length > 0, "an honest node logged refusing the branch against its final block");
    const honestGained = net.node(0).n.chain.height - fork.height;
    const roundZero = rounds.filter((r) => r === 0).length;
    t.diagnostic(
      `attacker: ${branch.length} blocks from height ${fork.height}, ${roundZero} at round 0, rounds ${rounds.join(",")}; honest chain +${honestGained}`,
    );
    assert.ok(branch.length >= 10, "the attacker built a real branch");

    const attackerHashes = new Set(branch.map((b) => hex(blockHash(b.header))));
    for (const [i, h] of honest.entries()) {
      const adopted = recorders[i]!.tips.filter((tip) => attackerHashes.has(tip.hash));
      assert.deepEqual(adopted, [], `${h.name} never had an attacker block as its tip`);
      // No main-chain block after the fork is the attacker's: its history stands.
      for (let y = fork.height + 1; y <= h.n.chain.height; y++) {
        const idx = h.n.chain.getIndex(h.n.chain.getHashAtHeight(y)!)!;
        assert.ok(!idx.producer.equals(attacker.publicKey), `${h.name} height ${y} is not the attacker's`);
      }
    }
    // One key cannot keep round 0 by grinding: it holds about its weight's share (1 in 4).
    assert.ok(roundZero <= Math.ceil(branch.length / 4) + 3, `round 0 at ${roundZero} of ${branch.length}`);
    await net.waitAgree(fork.height + 10, 20_000, "the honest nodes to agree after the attack");
    for (const s of servers) s.close();
  });

  it("two blocks signed by one key for one slot: evidence detected, gossiped, mined; the offender leaves the registry everywhere", async (t) => {
    const [toA, toB] = [await rawPeerTo(0, 12), await rawPeerTo(1, 13)];
    const n0 = net.node(0);
    // Wait for a tip whose child's round-0 slot belongs to the attacker, then sign two different
    // blocks for it (timestamps 1 ms apart) and give one to node 0, the other to node 1.
    let pair: [Block, Block] | null = null;
    const deadline = Date.now() + 30_000;
    while (!pair && Date.now() < deadline) {
      const tip = n0.n.chain.tip;
      const sched = new BranchSchedule(n0.n.chain, tip);
      if (sched.producer(tip.hash, tip.height + 1, 0).equals(attacker.publicKey)) {
        const slot = slotStart(n0.n.chain.params, tip.timestamp, 0);
        if (slot - Date.now() > 50) await sleep(slot - Date.now());
        if (!n0.n.chain.tip.hash.equals(tip.hash)) continue;
        const make = (ts: number): Block =>
          buildBlock({
            parentHash: tip.hash,
            parentHeight: tip.height,
            registry: sched.registry,
            producer: attacker,
            round: 0,
            timestamp: ts,
            txs: [],
            fees: 0n,
          });
        pair = [make(slot), make(slot + 1)];
      } else {
        await sleep(20);
      }
    }
    assert.ok(pair, "the attacker's key got a round-0 slot within 30 s");
    const height = pair[0].header.height;
    toA.offer(pair[0]);
    toB.offer(pair[1]);
    const opHex = hex(attacker.publicKey);

    interface EvidenceRow {
      producer: string;
      height: number;
      round: number;
      hashes: string[];
      state: string;
      minedheight: number | null;
    }
    for (const h of honest) {
      await waitFor(
        `${h.name} to hold the evidence, mined`,
        async () => {
          const rows = await h.rpc.call<EvidenceRow[]>("listevidence");
          return rows.some((r) => r.producer === opHex && r.state === "mined");
        },
        { timeoutMs: 30_000, detail: () => `${net.describe()}\n${h.recentLogs(15)}` },
      );
      const [row] = await h.rpc.call<EvidenceRow[]>("listevidence");
      assert.equal(row!.height, height);
      assert.equal(row!.round, 0);
      assert.deepEqual(new Set(row!.hashes), new Set(pair.map((b) => hex(blockHash(b.header)))));
      assert.ok(row!.minedheight! > height);
      assert.equal(
        findByOperator(h.n.chain.getRegistry(), attacker.publicKey),
        undefined,
        `${h.name}: offender out`,
      );
      // "mined" counts connected blocks that carry it: both sides of the split may have mined it,
      // so a node that switched sides counts it twice. "seen" counts it once per offender.
      assert.ok((await metricValue(h, "evidence_total", { state: "mined" })) >= 1);
      assert.equal(await metricValue(h, "evidence_total", { state: "seen" }), 1);
    }
    // Every node logged it when it first held the proof (found itself or received by gossip).
    for (const h of honest) {
      assert.ok(
        h.logger.records.some((r) => r.msg.startsWith("Equivocation")),
        `${h.name} logged the equivocation`,
      );
    }
    // From then on the key is out of the schedule: production goes on with the three others,
    // and no round names the key any more.
    const after = n0.n.chain.height;
    await net.waitAgree(after + 3, 20_000, "production to go on without the offender").catch((e: unknown) => {
      throw new Error(`${String(e)}\n${honest.map((h) => `--- ${h.name}\n${h.recentLogs(40)}`).join("\n")}`);
    });
    const tip = n0.n.chain.tip;
    const sched = new BranchSchedule(n0.n.chain, tip);
    for (let r = 0; r < 8; r++)
      assert.ok(!sched.producer(tip.hash, tip.height + 1, r).equals(attacker.publicKey));
    t.diagnostic(
      `evidence for height ${height} mined; registry now ${n0.n.chain.getRegistry().length} entries`,
    );
    toA.close();
    toB.close();
  });
});
