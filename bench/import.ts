/**
 * import_blocks_per_s: full validation and LMDB commit of a prebuilt chain of 1,000 blocks of 50
 * transfers each (1 input -> 2 outputs, keys spread over 500 owners), by a fresh Chain, with the
 * signature pool a node uses (defaultSigPoolThreads workers checking the next batch while one is
 * imported, as the sync does); import_blocks_per_s_one_thread: the same without the pool.
 * import_vs_sig_bound: the pooled rate over the rate one core's signature verification alone
 * allows for the same blocks (verifications per second / signatures per block), so above 1 means
 * more than one core is at work. Sig rate, pooled import and one-thread import are measured in the
 * same window, three times, alternately: the figure is the median of the three per-round ratios,
 * with their spread in the note, and each import rate the median of its three. (Timed at different
 * moments, the ratio moved between 0.54 and 0.80 from run to run.)
 */
import { blockHash, decodeBlock, encodeBlock, type Block } from "../src/primitives/block.js";
import { defaultSigPoolThreads, SignaturePool } from "../src/crypto/sigPool.js";
import { blockSignatureItems } from "../src/chain/blockSignatures.js";
import { buildBlock } from "../src/consensus/blockBuilder.js";
import { signVote } from "../src/consensus/finality.js";
import { finalityTx } from "../src/consensus/finalityTx.js";
import { Chain } from "../src/chain/chain.js";
import {
  buildGenesisBlock,
  genesisRegistry,
  makeGenesisSpec,
  type GenesisSpec,
} from "../src/consensus/genesis.js";
import { chainParams } from "../src/primitives/params.js";
import { txid, type OutPoint, type Tx } from "../src/primitives/tx.js";
import { addressFromPubkey, pubkeyHash } from "../src/crypto/address.js";
import type { KeyPair } from "../src/crypto/ed25519.js";
import {
  epochOf,
  genesisSchedule,
  nextSchedule,
  scheduledProducer,
  slotStart,
} from "../src/consensus/schedule.js";
import { ManualClock } from "../src/util/clock.js";
import { COIN, GENESIS_TIME, makeTransfer, testKeys } from "../test/helpers/chainFixture.js";
import { median, round, type BenchContext, type BenchGroup, type Figure } from "./lib.js";
import { measureSigRate } from "./sigVerify.js";
import { anchorInput, eraOfFinalHeight, isEraAnchor, registryVoters } from "../src/consensus/committee.js";

export const IMPORT_RATE = "import_blocks_per_s";
export const IMPORT_RATE_ONE_THREAD = "import_blocks_per_s_one_thread";
export const IMPORT_VS_SIG = "import_vs_sig_bound";
export const IMPORT_SIG_FLOOR = 1.2;
export const COMMIT_DURABLE = "commit_durable_ms";
export const COMMIT_ASYNC = "commit_async_ms";
/** Alternating rounds of sig bound and import for import_vs_sig_bound. */
const IMPORT_ROUNDS = 3;
/** Seconds of signature verification per round. */
const SIG_ROUND_SECONDS = 1.5;
/** Blocks committed one per write transaction for the commit-cost rows. */
const COMMIT_BLOCKS = 200;

const BLOCKS = 1_000;
const TXS_PER_BLOCK = 50;
const OWNERS = 500;
const COINS_PER_OWNER = 10;
const MASTERNODES = 5;
const FEE = 1_000n;

interface Coin {
  outpoint: OutPoint;
  amount: bigint;
  owner: number;
}

export interface PrebuiltChain {
  spec: GenesisSpec;
  /** Operator keys of the genesis masternodes (they sign every block). */
  masternodes: KeyPair[];
  /** Encoded blocks 1..BLOCKS, in order. */
  blocks: Buffer[];
  lastTimestamp: number;
  /** Signatures the chain has to verify per block: one per distinct (key, signature) input, plus the header. */
  sigsPerBlock: number;
  /** Mean payload bytes of the certificate a block carries (0 without certificates). */
  certificateBytesPerBlock: number;
}

/** What buildTransferChain builds: a genesis with funded owners, then blocks of transfers. */
export interface TransferChainOptions {
  /** Prefix of progress lines. */
  label: string;
  blocks: number;
  txsPerBlock: number;
  /**
   * Where the genesis lists masternode `i` (default 127.0.1.{i+1}:24200, as testGenesis). Nodes
   * dial genesis masternodes forever, so a benchmark running real nodes names a dead address.
   */
  masternodeAddress?: (i: number) => string;
  /**
   * Each block from height 2 on carries the finality certificate of its parent, signed by every
   * genesis masternode and trimmed as a producer trims it (what production chains carry).
   */
  certificates?: boolean;
}

/** The 1,000 x 50 chain import_blocks_per_s imports. */
export function buildImportChain(ctx: BenchContext): PrebuiltChain {
  return buildTransferChain(ctx, { label: "import", blocks: BLOCKS, txsPerBlock: TXS_PER_BLOCK });
}

/**
 * Builds the chain in memory without validating it (the timed import does that): genesis coins
 * are queued round-robin over owners, each transfer spends the oldest queued coin and queues its
 * two outputs, so once the genesis coins are used up blocks spend outputs of earlier blocks.
 */
export function buildTransferChain(ctx: BenchContext, opts: TransferChainOptions): PrebuiltChain {
  const { label, blocks: count, txsPerBlock } = opts;
  ctx.log(`${label}: building ${count} blocks x ${txsPerBlock} transfers (not timed)`);
  const mns = testKeys("bench-import-mn", MASTERNODES);
  const owners = testKeys("bench-import-owner", OWNERS);
  const mnAddress = opts.masternodeAddress ?? ((i: number) => `127.0.1.${i + 1}:24200`);
  const spec = makeGenesisSpec({
    network: "devnet",
    timestamp: GENESIS_TIME,
    blockTimeMs: 1000,
    masternodes: mns.map((k, i) => ({ operatorPubkey: k.publicKey, address: mnAddress(i) })),
    allocations: owners.flatMap((k) =>
      Array.from({ length: COINS_PER_OWNER }, () => ({
        address: addressFromPubkey(k.publicKey, "devnet"),
        amount: 1_000n * COIN,
      })),
    ),
  });
  const params = chainParams(spec.network, spec.blockTimeMs);
  const registry = genesisRegistry(spec);
  const genesis = buildGenesisBlock(spec);
  const gTxid = txid(genesis.txs[0]!);
  const ownerOf = new Map(owners.map((k, i) => [pubkeyHash(k.publicKey).toString("hex"), i]));
  const producerOf = new Map<string, KeyPair>(mns.map((k) => [k.publicKey.toString("hex"), k]));

  const genesisCoins: Coin[] = genesis.txs[0]!.outputs.map((o, index) => ({
    outpoint: { txid: gTxid, index },
    amount: o.amount,
    owner: ownerOf.get(o.address.toString("hex"))!,
  }));
  // Allocations come grouped by owner; interleave them so one block spends many keys.
  const queue: Coin[] = [];
  for (let round = 0; round < COINS_PER_OWNER; round++) {
    for (let o = 0; o < OWNERS; o++) queue.push(genesisCoins[o * COINS_PER_OWNER + round]!);
  }
  let head = 0;

  const blocks: Buffer[] = [];
  let parentHash = blockHash(genesis.header);
  let sched = genesisSchedule(registry);
  let parentTs = genesis.header.timestamp;
  let nTx = 0;
  const gHash = blockHash(genesis.header);
  /** The era anchors built so far (each proves its era's seed from the one before). */
  const anchors = new Map<number, Block>();
  let certBytes = 0;
  for (let height = 1; height <= count; height++) {
    const txs: Tx[] = [];
    if (opts.certificates && height >= 2) {
      const source = { epoch: 2 * (height - 1), hash: parentHash };
      const target = { epoch: source.epoch + 1, hash: parentHash };
      // Each block carries its parent's certificate, so the parent's branch is certified to
      // height - 2, and that sets the certificate's era (rule C7).
      const era = eraOfFinalHeight(height - 2);
      const votes = mns.map((k) => signVote(k, gHash, source, target, era));
      const tx = finalityTx({ era, source, target, votes }, registryVoters(registry))!;
      certBytes += tx.payload.length;
      txs.push(tx);
    }
    for (let t = 0; t < txsPerBlock; t++) {
      const coin = queue[head++]!;
      const to = (coin.owner * 7 + nTx++) % OWNERS;
      const half = (coin.amount - FEE) / 2n;
      const tx = makeTransfer(
        owners[coin.owner]!,
        [coin.outpoint],
        [
          { to: pubkeyHash(owners[to]!.publicKey), amount: half },
          { to: pubkeyHash(owners[coin.owner]!.publicKey), amount: coin.amount - FEE - half },
        ],
      );
      const id = txid(tx);
      queue.push({ outpoint: { txid: id, index: 0 }, amount: half, owner: to });
      queue.push({ outpoint: { txid: id, index: 1 }, amount: coin.amount - FEE - half, owner: coin.owner });
      txs.push(tx);
    }
    if (sched.epoch !== epochOf(height)) sched = nextSchedule(sched, registry);
    const producer = scheduledProducer(sched, height, 0, registry)!;
    const timestamp = slotStart(params, parentTs, 0);
    const block = buildBlock({
      parentHash,
      parentHeight: height - 1,
      registry,
      producer: producerOf.get(producer.operatorPubkey.toString("hex"))!,
      round: 0,
      timestamp,
      txs,
      fees: FEE * BigInt(txsPerBlock),
      eraProofInput: anchorInput(gHash, height, (h) => anchors.get(h)),
    });
    if (isEraAnchor(height)) anchors.set(height, block);
    blocks.push(encodeBlock(block));
    parentHash = blockHash(block.header);
    parentTs = timestamp;
    if (height % Math.max(250, Math.ceil(count / 4)) === 0) ctx.log(`${label}: built ${height}/${count}`);
  }
  // Each transfer has one input, so one signature; plus the producer's header signature (and the
  // certificate's votes, when blocks carry one).
  const certSigs = opts.certificates ? Math.floor((2 * MASTERNODES) / 3) + 1 : 0;
  return {
    spec,
    masternodes: mns,
    blocks,
    lastTimestamp: parentTs,
    sigsPerBlock: txsPerBlock + 1 + certSigs,
    certificateBytesPerBlock: count > 1 ? certBytes / (count - 1) : 0,
  };
}

/**
 * Blocks per write transaction during import. (Sync commits each downloaded batch, up to
 * max_sync_batch_size = 500 blocks, in one transaction.)
 */
export const IMPORT_BATCH = 100;
/** Batches whose signatures the pool checks while one is imported. */
const CHECK_AHEAD = 2;

/**
 * Decodes and processes blocks into a fresh Chain (in `opts.dir`, default a new temp directory),
 * IMPORT_BATCH per write transaction, and closes it. Returns the wall time and the process CPU
 * time (all threads), both in seconds: the gap is mostly waiting for the LMDB commits to reach
 * the disk. `opts.count` imports only the first blocks.
 */
export async function importChain(
  ctx: BenchContext,
  chain: PrebuiltChain,
  opts: { dir?: string; count?: number; label?: string; pool?: SignaturePool } = {},
): Promise<{ seconds: number; cpuSeconds: number }> {
  const dir = opts.dir ?? ctx.tempDir("timebench-import-");
  const blocks = chain.blocks.slice(0, opts.count ?? chain.blocks.length);
  const clock = new ManualClock(chain.lastTimestamp + 1);
  const target = Chain.open(dir, chain.spec, { clock });
  try {
    ctx.log(`${opts.label ?? "import"}: importing ${blocks.length} blocks into a fresh chain (timed)`);
    const cpu0 = process.cpuUsage();
    const start = performance.now();
    // Blocks are committed IMPORT_BATCH at a time (one fsync per batch), as sync does. With a
    // pool, the next batch's signatures are checked on the workers while this one imports, as
    // the sync does with downloaded batches.
    const batchAt = (i: number) =>
      blocks.slice(i, i + IMPORT_BATCH).map((buf) => ({ block: decodeBlock(buf), raw: buf }));
    const gHash = target.genesisHash;
    const ahead = (items: Array<{ block: Block }>): Promise<number> =>
      opts.pool
        ? opts.pool.verifyAll(
            blockSignatureItems(
              items.map((x) => x.block),
              gHash,
            ),
          )
        : Promise.resolve(0);
    // Up to CHECK_AHEAD batches are being checked while one imports (the sync has several
    // batches downloaded and checking at once), so the workers never wait for the import.
    const queue: Array<{ items: Array<{ block: Block; raw: Buffer }>; check: Promise<number> }> = [];
    let nextStart = 0;
    const topUp = (): void => {
      while (queue.length <= CHECK_AHEAD && nextStart < blocks.length) {
        const items = batchAt(nextStart);
        nextStart += IMPORT_BATCH;
        queue.push({ items, check: ahead(items) });
      }
    };
    topUp();
    while (queue.length > 0) {
      const { items, check } = queue.shift()!;
      await check;
      topUp();
      const r = target.processBlocks(items);
      if (r.error !== undefined) throw r.error instanceof Error ? r.error : new Error("block import failed");
      for (const x of r.results)
        if (x.status !== "connected") throw new Error(`block import returned ${x.status}`);
    }
    const seconds = (performance.now() - start) / 1000;
    const cpu = process.cpuUsage(cpu0);
    if (target.height !== blocks.length) throw new Error(`imported to height ${target.height}`);
    return { seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
  } finally {
    await target.close();
  }
}

/**
 * Commits the first COMMIT_BLOCKS blocks one per write transaction (as relay and production do)
 * into a fresh chain, durable or not; returns the median milliseconds per block.
 */
async function singleBlockCommits(
  ctx: BenchContext,
  chain: PrebuiltChain,
  durable: boolean,
): Promise<number> {
  const dir = ctx.tempDir("timebench-commit-");
  const target = Chain.open(
    dir,
    chain.spec,
    { clock: new ManualClock(chain.lastTimestamp + 1) },
    { durable },
  );
  try {
    const times: number[] = [];
    for (const buf of chain.blocks.slice(0, COMMIT_BLOCKS)) {
      const block = decodeBlock(buf);
      const start = performance.now();
      const r = target.processBlock(block, buf);
      times.push(performance.now() - start);
      if (r.status !== "connected") throw new Error(`commit bench: block returned ${r.status}`);
    }
    times.sort((a, b) => a - b);
    return times[Math.floor(times.length / 2)]!;
  } finally {
    await target.close();
  }
}

export const importBench: BenchGroup = {
  name: "import",
  figures: [IMPORT_RATE, IMPORT_RATE_ONE_THREAD, IMPORT_VS_SIG, COMMIT_DURABLE, COMMIT_ASYNC],
  async run(ctx) {
    const chain = buildImportChain(ctx);
    const commitFigures: Figure[] = [];
    if (ctx.wants(COMMIT_DURABLE) || ctx.wants(COMMIT_ASYNC)) {
      ctx.log(`commit: ${COMMIT_BLOCKS} blocks one per transaction, durable then async (timed)`);
      // Interleaved twice so both see the same machine state; the better median of each is kept.
      const durable: number[] = [];
      const async: number[] = [];
      for (let i = 0; i < 2; i++) {
        durable.push(await singleBlockCommits(ctx, chain, true));
        async.push(await singleBlockCommits(ctx, chain, false));
      }
      const d = Math.min(...durable);
      const a = Math.min(...async);
      commitFigures.push(
        {
          name: COMMIT_DURABLE,
          value: round(d, 2),
          unit: "ms/block",
          note: `median, ${TXS_PER_BLOCK} transfers a block, one fsync each (what a node runs); ${round(d / a, 2)}x the async commit`,
        },
        {
          name: COMMIT_ASYNC,
          value: round(a, 2),
          unit: "ms/block",
          note: "same, lmdb overlappingSync (returns before the fsync): for comparison only",
        },
      );
    }
    const rounds = ctx.wants(IMPORT_VS_SIG) ? IMPORT_ROUNDS : 1;
    const oneThread = ctx.wants(IMPORT_RATE_ONE_THREAD);
    const imports: Array<{ rate: number; cpuMsPerBlock: number; seconds: number }> = [];
    const singles: Array<{ rate: number; cpuMsPerBlock: number; seconds: number }> = [];
    const ratios: number[] = [];
    const bounds: number[] = [];
    const threads = defaultSigPoolThreads();
    const timed = async (label: string, pool?: SignaturePool) => {
      const { seconds, cpuSeconds } = await importChain(ctx, chain, { label, pool });
      return { rate: chain.blocks.length / seconds, cpuMsPerBlock: (cpuSeconds * 1000) / BLOCKS, seconds };
    };
    for (let i = 0; i < rounds; i++) {
      // The sig bound right before each import, so both see the same machine.
      const bound = rounds > 1 ? measureSigRate(SIG_ROUND_SECONDS).rate / chain.sigsPerBlock : 0;
      const pool = new SignaturePool({ threads });
      const pooled = await timed(`import ${i + 1}/${rounds} (pool of ${threads})`, pool).finally(() =>
        pool.close(),
      );
      imports.push(pooled);
      if (oneThread) singles.push(await timed(`import ${i + 1}/${rounds} (one thread)`));
      if (rounds > 1) {
        bounds.push(bound);
        ratios.push(pooled.rate / bound);
      }
    }
    const middle = <T extends { rate: number }>(xs: T[]): T =>
      [...xs].sort((a, b) => a.rate - b.rate)[Math.floor(xs.length / 2)]!;
    const mid = middle(imports);
    const figures: Figure[] = [
      {
        name: IMPORT_RATE,
        value: round(mid.rate, 1),
        unit: "blocks/s",
        note: `${BLOCKS} blocks x ${TXS_PER_BLOCK} transfers in ${round(mid.seconds, 2)} s wall, CPU (all threads) ${round(mid.cpuMsPerBlock, 1)} ms/block, signature pool of ${threads}${rounds > 1 ? ` (median of ${rounds})` : ""}`,
      },
    ];
    if (oneThread) {
      const one = middle(singles);
      figures.push({
        name: IMPORT_RATE_ONE_THREAD,
        value: round(one.rate, 1),
        unit: "blocks/s",
        note: `the same on the main thread alone, CPU ${round(one.cpuMsPerBlock, 1)} ms/block; the pool is ${round(mid.rate / one.rate, 2)}x`,
      });
    }
    figures.push(...commitFigures);
    if (!ctx.wants(IMPORT_VS_SIG)) return figures;
    const ratio = median(ratios);
    figures.push({
      name: IMPORT_VS_SIG,
      value: round(ratio, 3),
      unit: "ratio",
      note: `floor ≥ ${IMPORT_SIG_FLOOR}${ratio < IMPORT_SIG_FLOOR ? " BELOW FLOOR" : ""}; median of ${rounds} alternating rounds (spread ${round(Math.min(...ratios), 3)}–${round(Math.max(...ratios), 3)}); sig bound median ${round(median(bounds), 1)} blocks/s (${chain.sigsPerBlock} sigs/block)`,
    });
    return figures;
  },
};
