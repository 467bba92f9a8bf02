/**
 * mempool_accept_tx_per_s: Mempool.accept (default options) against a real Chain (LMDB in a temp
 * dir), filling an empty mempool to its count cap of 50,000 with independent one-input,
 * one-output transfers (177 bytes; keys spread over 1,000 owners, every fee rate distinct). Each
 * accept decodes nothing but checks everything: sanity, the UTXO lookup, the fee, the signature.
 *
 * block_template_ms: what the block producer does with that full mempool: selectForBlock for the
 * room a 1 MB block leaves, then buildBlock (coinbase, merkle root, registry root, signature).
 * Median of several runs.
 */
import { encodeBlock } from "../src/primitives/block.js";
import { buildBlock } from "../src/consensus/blockBuilder.js";
import { MAX_BLOCK_SIZE } from "../src/primitives/constants.js";
import { txSize, txid, type OutPoint, type Tx } from "../src/primitives/tx.js";
import { pubkeyHash } from "../src/crypto/address.js";
import type { KeyPair } from "../src/crypto/ed25519.js";
import { scheduledProducer, slotStart } from "../src/consensus/schedule.js";
import { nullLogger } from "../src/logging/index.js";
import { Mempool } from "../src/mempool/mempool.js";
import { defaultMempoolOptions } from "../src/mempool/options.js";
import {
  ChainHarness,
  COIN,
  makeTransfer,
  testGenesis,
  testKey,
  testKeys,
} from "../test/helpers/chainFixture.js";
import { median, round, type BenchContext, type BenchGroup, type Figure } from "./lib.js";

export const MEMPOOL_ACCEPT = "mempool_accept_tx_per_s";
export const BLOCK_TEMPLATE = "block_template_ms";

/** The default count cap: a full mempool of small transfers. */
const TXS = defaultMempoolOptions.maxCount;
const OWNERS = 1_000;
/** Outputs per funding transaction; two funding blocks of 25,000 outputs (~700 KB each). */
const FAN_OUT = 25_000;
const MASTERNODES = 3;
const TEMPLATE_RUNS = 9;
const TEMPLATE_WARMUP = 2;

interface Funded {
  outpoint: OutPoint;
  amount: bigint;
  owner: number;
}

/** A chain whose UTXO set holds TXS coins of 1 TIME spread over OWNERS keys (not timed). */
function fundedChain(ctx: BenchContext): {
  h: ChainHarness;
  coins: Funded[];
  owners: KeyPair[];
  mns: KeyPair[];
} {
  const mns = testKeys("bench-mempool-mn", MASTERNODES);
  const owners = testKeys("bench-mempool-owner", OWNERS);
  const funder = testKey("bench-mempool-funder", 0);
  const blocks = Math.ceil(TXS / FAN_OUT);
  const spec = testGenesis({
    masternodes: mns,
    funded: [{ key: funder, amount: BigInt(FAN_OUT) * COIN, count: blocks }],
  });
  const h = new ChainHarness(spec, mns, ctx.tempDir("timebench-mempool-"));
  const coins: Funded[] = [];
  for (const [b, coin] of h.genesisCoins(funder).entries()) {
    const owner = (i: number): number => (b * FAN_OUT + i) % OWNERS;
    const fund = makeTransfer(
      funder,
      [coin.outpoint],
      Array.from({ length: FAN_OUT }, (_, i) => ({
        to: pubkeyHash(owners[owner(i)]!.publicKey),
        amount: COIN,
      })),
    );
    h.mine({ txs: [fund], fees: 0n });
    const id = txid(fund);
    for (let i = 0; i < FAN_OUT && coins.length < TXS; i++)
      coins.push({ outpoint: { txid: id, index: i }, amount: COIN, owner: owner(i) });
    ctx.log(`mempool: funding block ${b + 1}/${blocks} connected`);
  }
  return { h, coins, owners, mns };
}

export const mempoolBench: BenchGroup = {
  name: "mempool",
  figures: [MEMPOOL_ACCEPT, BLOCK_TEMPLATE],
  async run(ctx) {
    const { h, coins, owners, mns } = fundedChain(ctx);
    try {
      ctx.log(`mempool: signing ${TXS} transfers (not timed)`);
      // Fees are a permutation of 1,000..50,999 units (7,919 is coprime to 50,000): every fee rate
      // differs and arrival order is not fee order.
      const txs: Tx[] = coins.map((c, i) => {
        const fee = 1_000n + BigInt((i * 7_919) % TXS);
        const to = pubkeyHash(owners[(c.owner + 1) % OWNERS]!.publicKey);
        return makeTransfer(owners[c.owner]!, [c.outpoint], [{ to, amount: c.amount - fee }]);
      });
      const mp = new Mempool({}, { chain: h.chain, clock: h.clock, logger: nullLogger });

      ctx.log(`${MEMPOOL_ACCEPT}: accepting ${TXS} transfers into an empty mempool (timed)`);
      const t0 = performance.now();
      for (const tx of txs) mp.accept(tx);
      const seconds = (performance.now() - t0) / 1000;
      if (mp.size !== TXS) throw new Error(`mempool holds ${mp.size}, expected ${TXS}`);
      const figures: Figure[] = [
        {
          name: MEMPOOL_ACCEPT,
          value: Math.round(TXS / seconds),
          unit: "tx/s",
          note: `empty -> full (count cap ${TXS}, ${round(mp.bytes / 1e6, 2)} MB), 1-in 1-out, ${OWNERS} keys, LMDB UTXO reads`,
        },
      ];
      if (!ctx.wants(BLOCK_TEMPLATE)) return figures;

      ctx.log(`${BLOCK_TEMPLATE}: ${TEMPLATE_RUNS} block templates from the full mempool`);
      const tip = h.chain.tip;
      const registry = h.chain.getRegistry();
      const producerEntry = scheduledProducer(h.chain.scheduleForChild(tip), tip.height + 1, 0, registry)!;
      const producer = mns.find((k) => k.publicKey.equals(producerEntry.operatorPubkey))!;
      // The room BlockProducer leaves for the header and a coinbase paying every masternode.
      const room = MAX_BLOCK_SIZE - 1_024 - 28 * registry.length;
      const timestamp = slotStart(h.chain.params, tip.timestamp, 0);
      const selectMs: number[] = [];
      const totalMs: number[] = [];
      let last = { txs: 0, bytes: 0 };
      for (let r = 0; r < TEMPLATE_WARMUP + TEMPLATE_RUNS; r++) {
        const a = performance.now();
        const picked = mp.selectForBlock(room);
        const b = performance.now();
        const block = buildBlock({
          parentHash: tip.hash,
          parentHeight: tip.height,
          registry,
          producer,
          round: 0,
          timestamp,
          txs: picked.txs,
          fees: picked.fees,
        });
        const c = performance.now();
        if (r < TEMPLATE_WARMUP) continue;
        selectMs.push(b - a);
        totalMs.push(c - a);
        last = { txs: picked.txs.length, bytes: encodeBlock(block).length };
      }
      if (last.bytes > MAX_BLOCK_SIZE || last.bytes < MAX_BLOCK_SIZE - 2_048)
        throw new Error(`template is ${last.bytes} bytes, not a full block`);
      const picked = mp.selectForBlock(room).txs;
      if (picked.reduce((s, t) => s + txSize(t), 0) > room) throw new Error("template over its room");
      figures.push({
        name: BLOCK_TEMPLATE,
        value: round(median(totalMs), 1),
        unit: "ms",
        note: `median of ${TEMPLATE_RUNS}: selectForBlock ${round(median(selectMs), 1)} ms + buildBlock; ${last.txs} txs, ${last.bytes} B from ${TXS} pooled`,
      });
      return figures;
    } finally {
      await h.close();
    }
  },
};
