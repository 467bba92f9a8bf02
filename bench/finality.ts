/**
 * Finality (docs/CONSENSUS.md, "Finality").
 *
 * finality_lag_ms (p50) and finality_lag_p99_ms: six real TimeNodes in this process (own data
 * directory, LMDB, loopback IP 127.79.0.x and TCP P2P each), every one an equal-weight genesis
 * masternode producing 1 s blocks and voting. After 3 warm-up blocks, for 20 blocks, on every
 * node: the time from the block's `tip` event to the first `finalized` event at or above its
 * height. Percentiles over all (node, block) samples.
 *
 * vote_verify_per_block_ms (6 masternodes), _100, _1000: the 2 × N votes one block gets from an N-masternode
 * registry (N on the first link J -> (B, 2h), N on the second (B, 2h) -> (B, 2h + 1)), counted by
 * FinalityTracker.addVote on a fresh tracker over a two-block fake FinalityView, as a node counts
 * them (shape checks, one Ed25519 verification, tally). Median of 3 runs after one warm-up, one core.
 *
 * certificate_bytes (6 masternodes), _100, _1000: writeCertificate's size for ⌊2N/3⌋ + 1 votes (the smallest
 * supermajority of equal weights); certificate_verify_ms_1000: certificateError on that
 * certificate at N = 1,000, median of 3.
 *
 * vote_verify_per_block_ms_20000, certificate_bytes_20000, certificate_verify_ms_20000: the same at
 * the registry's cap of 20,000 equal-weight masternodes, where era 0's voters are a committee of
 * 3,000 seats drawn at the genesis (committee.ts). Only committee members vote (a masternode
 * outside the committee signs nothing), so one block gets 2 × (its seat holders) votes; the
 * certificate is what finalityTx carries (the heaviest votes that pass 2/3 of the seats), and
 * its check is certificateError against the committee.
 *
 * import_certificates_vs_plain: what carrying certificates costs block import. Two prebuilt
 * chains of 500 blocks of 50 transfers with the same genesis (5 masternodes): one where each
 * block from height 2 carries its parent's certificate (4 of 5 votes, as a producer trims it),
 * one without. Each is imported into a fresh Chain (bench/import.ts's importChain, 100 blocks a
 * commit) three times, alternately; the figure is the median rate with certificates over the
 * median rate without, with the spread in the note. Sync validates a block exactly as import does
 * (sync_vs_import), so the same ratio applies to sync_blocks_per_s.
 */
import { Writer } from "../src/codec/index.js";
import {
  certificateError,
  firstEpoch,
  genesisCheckpoint,
  signVote,
  writeCertificate,
  type Certificate,
  type Checkpoint,
  type FinalityVote,
} from "../src/consensus/finality.js";
import type { Registry } from "../src/consensus/registry.js";
import { registryOfKeys } from "../test/helpers/chainFixture.js";
import { FinalityTracker, type FinalityView } from "../src/chain/finalityTracker.js";
import { KeyPair } from "../src/crypto/ed25519.js";
import { sha256 } from "../src/crypto/hash.js";
import { cleanupAll, Devnet, type NodeHandle } from "../test/e2e/helpers/nodes.js";
import { median, percentile, round, type BenchContext, type BenchGroup, type Figure } from "./lib.js";
import { buildTransferChain, importChain } from "./import.js";
import { COMMITTEE_SEATS, eraVoters, registryVoters } from "../src/consensus/committee.js";
import { decodeFinalityTx, finalityTx } from "../src/consensus/finalityTx.js";

export const FINALITY_LAG = "finality_lag_ms";
export const FINALITY_LAG_P99 = "finality_lag_p99_ms";
const SIZES = [6, 100, 1_000] as const;
/** INTERFACE.md's names at the devnet's size (6); a suffix gives the registry size otherwise. */
const sized = (base: string, n: number): string => (n === 6 ? base : `${base}_${n}`);
const voteVerifyName = (n: number): string => sized("vote_verify_per_block_ms", n);
const certBytesName = (n: number): string => sized("certificate_bytes", n);
export const CERT_VERIFY_1000 = "certificate_verify_ms_1000";
export const IMPORT_CERTS = "import_certificates_vs_plain";
/** The registry's cap, where an era's voters are a sampled committee (committee.ts). */
const CAP = 20_000;
export const VOTE_VERIFY_CAP = `vote_verify_per_block_ms_${CAP}`;
export const CERT_BYTES_CAP = `certificate_bytes_${CAP}`;
export const CERT_VERIFY_CAP = `certificate_verify_ms_${CAP}`;
const IMPORT_CERT_BLOCKS = 500;

const LAG_NODES = 6;
/** This group's /24: no other bench or test uses 127.79. */
const LAG_NET = "127.79.0";
const LAG_BLOCK_S = 1;
const LAG_WARMUP_BLOCKS = 3;
const LAG_BLOCKS = 20;
const RUNS = 3;

const GENESIS = sha256(Buffer.from("bench/finality/genesis"));
const BLOCK = sha256(Buffer.from("bench/finality/block-1"));

async function until(
  what: string,
  cond: () => boolean,
  timeoutMs: number,
  detail: () => string,
): Promise<void> {
  const t0 = performance.now();
  while (!cond()) {
    if (performance.now() - t0 > timeoutMs)
      throw new Error(`${what}: not within ${timeoutMs} ms\n${detail()}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function finalityLag(ctx: BenchContext): Promise<Figure[]> {
  ctx.log(
    `${FINALITY_LAG}: ${LAG_NODES} masternodes, ${LAG_BLOCK_S} s blocks, ${LAG_WARMUP_BLOCKS} warm-up + ${LAG_BLOCKS} blocks`,
  );
  let net: Devnet | undefined;
  const offs: Array<() => void> = [];
  try {
    net = await Devnet.create({
      name: "bench-finality",
      nodes: Array.from({ length: LAG_NODES }, (_, i) => ({
        host: `${LAG_NET}.${i + 1}`,
        masternode: true,
        produce: true,
        bootstrap: i === 0 ? [] : [0],
      })),
      blockTime: LAG_BLOCK_S,
    });
    const nodes: NodeHandle[] = net.nodes;
    const describe = (): string =>
      nodes
        .map((n) => `${n.name} h=${n.n.chain.height} final=${n.n.chain.finality.finalizedHeight}`)
        .join("\n");
    await until(
      `height ${LAG_WARMUP_BLOCKS} everywhere`,
      () => nodes.every((n) => n.n.chain.height >= LAG_WARMUP_BLOCKS),
      30_000,
      describe,
    );
    const start = Math.max(...nodes.map((n) => n.n.chain.height));
    const last = start + LAG_BLOCKS;
    const samples: number[] = [];
    for (const h of nodes) {
      const chain = h.n.chain;
      /** Tip time of each measured height not yet final at this node. */
      const waiting = new Map<number, number>();
      const seen = new Set<number>();
      offs.push(
        chain.events.on("tip", (tip) => {
          const height = tip.height;
          if (height <= start || height > last || seen.has(height)) return;
          seen.add(height);
          // Final already (its votes arrived before the block): no lag.
          if (chain.finality.finalizedHeight >= height) samples.push(0);
          else waiting.set(height, performance.now());
        }),
        chain.events.on("finalized", (e) => {
          const now = performance.now();
          const f = Math.floor(e.checkpoint.epoch / 2);
          for (const [height, at] of waiting) {
            if (height > f) continue;
            samples.push(now - at);
            waiting.delete(height);
          }
        }),
      );
    }
    const t0 = performance.now();
    await until(
      `height ${last} final everywhere`,
      () => nodes.every((n) => n.n.chain.finality.finalizedHeight >= last),
      (LAG_BLOCKS * LAG_BLOCK_S + 30) * 1000,
      describe,
    );
    const seconds = (performance.now() - t0) / 1000;
    const expected = LAG_NODES * LAG_BLOCKS;
    if (samples.length < expected)
      ctx.log(
        `${FINALITY_LAG}: ${samples.length} samples of ${expected} (some tips were skipped by a reorg)`,
      );
    const sorted = [...samples].sort((a, b) => a - b);
    const p50 = percentile(sorted, 0.5);
    const p99 = percentile(sorted, 0.99);
    const zeros = samples.filter((x) => x === 0).length;
    const what = `${LAG_NODES} masternodes of equal weight in one process, ${LAG_BLOCK_S} s blocks, heights ${start + 1}-${last} (${round(seconds, 1)} s) after ${LAG_WARMUP_BLOCKS} warm-up`;
    return [
      {
        name: FINALITY_LAG,
        value: Math.round(p50),
        unit: "ms",
        note: `p50 of ${samples.length} (node, block) samples, tip event to the finalized event covering it; ${what}; max ${Math.round(sorted[sorted.length - 1]!)} ms${zeros > 0 ? `; ${zeros} final before their tip event` : ""}`,
      },
      {
        name: FINALITY_LAG_P99,
        value: Math.round(p99),
        unit: "ms",
        note: `p99 of the same ${samples.length} samples; ${LAG_BLOCK_S} s blocks`,
      },
    ];
  } finally {
    for (const off of offs) off();
    await cleanupAll(net);
  }
}

/** N equal-weight (Free tier) masternodes with deterministic keys, sorted as a registry is. */
function registryOf(n: number): { keys: KeyPair[]; registry: Registry } {
  const keys = Array.from({ length: n }, (_, i) =>
    KeyPair.fromSeed(sha256(Buffer.from(`bench/finality/${i}`))),
  );
  const registry = registryOfKeys(keys);
  return { keys, registry };
}

/** The genesis (height 0) and one block on it (height 1), both with `registry` after them. */
function twoBlockView(registry: Registry): FinalityView {
  const heights = new Map([
    [GENESIS.toString("hex"), 0],
    [BLOCK.toString("hex"), 1],
  ]);
  return {
    heightOf: (hash) => heights.get(hash.toString("hex")),
    isAncestor: (a, d) => a.equals(d) || (a.equals(GENESIS) && d.equals(BLOCK)),
    registryAfter: (hash) => (heights.has(hash.toString("hex")) ? registry : undefined),
    eraSeedAt: (anchor) => anchor,
    ancestorAt: (hash, height) =>
      height === 0 ? GENESIS : height === 1 && hash.equals(BLOCK) ? BLOCK : undefined,
  };
}

const FIRST: Checkpoint = { epoch: firstEpoch(1), hash: BLOCK };
const SECOND: Checkpoint = { epoch: firstEpoch(1) + 1, hash: BLOCK };

/**
 * One block's votes from `voters` (both links) through FinalityTracker.addVote on a fresh
 * tracker: one warm-up (it also fills the public-key cache, as a running node's is), then RUNS
 * timed runs. Each link's votes after its target is justified are stale and not checked.
 */
function timeBlockVotes(
  name: string,
  registry: Registry,
  voters: KeyPair[],
): { runs: number[]; votes: number; counted: number; cert: Certificate | null } {
  const votes: FinalityVote[] = [
    ...voters.map((k) => signVote(k, GENESIS, genesisCheckpoint(GENESIS), FIRST)),
    ...voters.map((k) => signVote(k, GENESIS, FIRST, SECOND)),
  ];
  const last = { counted: 0, cert: null as Certificate | null };
  const once = (): number => {
    const tracker = new FinalityTracker(GENESIS, twoBlockView(registry));
    let counted = 0;
    const t0 = performance.now();
    for (const v of votes) {
      const out = tracker.addVote(v);
      if (out.status === "counted") counted++;
      else if (out.status !== "stale") throw new Error(`${name}: a vote was ${out.status}: ${out.reason}`);
    }
    const ms = performance.now() - t0;
    if (tracker.finalizedHeight !== 1) throw new Error(`${name}: the block did not become final`);
    last.counted = counted;
    last.cert = tracker.finalCertificate;
    return ms;
  };
  once();
  const runs = Array.from({ length: RUNS }, once);
  return { runs, votes: votes.length, counted: last.counted, cert: last.cert };
}

function voteVerify(ctx: BenchContext, n: number, keys: KeyPair[], registry: Registry): Figure {
  const name = voteVerifyName(n);
  ctx.log(`${name}: signing ${2 * n} votes`);
  const { runs, counted } = timeBlockVotes(name, registry, keys);
  const ms = median(runs);
  return {
    name,
    value: round(ms, 2),
    unit: "ms",
    note: `${2 * n} votes (${n} per link, both links of one block) through FinalityTracker.addVote on a fresh tracker, ${n.toLocaleString("en-US")}-masternode equal-weight registry: ${counted} counted (each one signature check, ${round((ms * 1000) / counted, 1)} µs), the rest stale once their target was justified; median of ${RUNS} (${runs.map((x) => round(x, 1)).join(", ")} ms), one core`,
  };
}

function certificateOf(keys: KeyPair[], registry: Registry, count: number): Certificate {
  // Registry order, so the voters are whichever `count` come first.
  const byKey = new Map(keys.map((k) => [k.publicKey.toString("hex"), k]));
  const votes = registry.slice(0, count).map((e) => {
    const v = signVote(byKey.get(e.operatorPubkey.toString("hex"))!, GENESIS, FIRST, SECOND);
    return { voter: v.voter, signature: v.signature };
  });
  return { era: 0, source: FIRST, target: SECOND, votes };
}

function encodedSize(c: Certificate): number {
  const w = new Writer();
  writeCertificate(w, c);
  return w.length;
}

const supermajority = (n: number): number => Math.floor((2 * n) / 3) + 1;

function certificateFigures(ctx: BenchContext, n: number, keys: KeyPair[], registry: Registry): Figure[] {
  const k = supermajority(n);
  const cert = certificateOf(keys, registry, k);
  const bad = certificateError(GENESIS, cert, registryVoters(registry));
  if (bad) throw new Error(`certificate of ${k}/${n} votes is invalid: ${bad}`);
  const bytes = encodedSize(cert);
  const full = encodedSize(certificateOf(keys, registry, n));
  const figures: Figure[] = [];
  if (ctx.wants(certBytesName(n)))
    figures.push({
      name: certBytesName(n),
      value: bytes,
      unit: "bytes",
      note: `writeCertificate of ${k} votes (⌊2N/3⌋+1 of ${n.toLocaleString("en-US")} equal-weight masternodes); all ${n.toLocaleString("en-US")} votes: ${full.toLocaleString("en-US")} bytes`,
    });
  if (n === 1_000 && ctx.wants(CERT_VERIFY_1000)) {
    const once = (): number => {
      const t0 = performance.now();
      const err = certificateError(GENESIS, cert, registryVoters(registry));
      const ms = performance.now() - t0;
      if (err) throw new Error(`${CERT_VERIFY_1000}: ${err}`);
      return ms;
    };
    once(); // warm-up
    const runs = Array.from({ length: RUNS }, once);
    const ms = median(runs);
    figures.push({
      name: CERT_VERIFY_1000,
      value: round(ms, 2),
      unit: "ms",
      note: `certificateError on the ${k}-vote certificate against a 1,000-masternode registry (${k} Ed25519 verifications); median of ${RUNS} (${runs.map((x) => round(x, 1)).join(", ")} ms), one core`,
    });
  }
  return figures;
}

/** The registry at its cap: votes, the carried certificate and its check, with a committee. */
function committeeFigures(ctx: BenchContext): Figure[] {
  ctx.log(`committee: ${CAP.toLocaleString("en-US")} keys`);
  const { keys, registry } = registryOf(CAP);
  const committee = eraVoters(registry, GENESIS);
  if (!committee.sampled) throw new Error("the registry at its cap must vote by committee");
  const members = keys.filter((k) => committee.weightOf(k.publicKey) > 0n);
  const figures: Figure[] = [];
  const { runs, votes, counted, cert } = timeBlockVotes(VOTE_VERIFY_CAP, registry, members);
  if (ctx.wants(VOTE_VERIFY_CAP))
    figures.push({
      name: VOTE_VERIFY_CAP,
      value: round(median(runs), 2),
      unit: "ms",
      note: `${votes} votes (the ${members.length} seat holders of a ${COMMITTEE_SEATS.toLocaleString("en-US")}-seat committee of ${CAP.toLocaleString("en-US")} equal-weight masternodes, on both links of one block) through FinalityTracker.addVote: ${counted} counted, the rest stale; median of ${RUNS} (${runs.map((x) => round(x, 1)).join(", ")} ms), one core`,
    });
  const tx = cert && finalityTx(cert, committee);
  if (!tx) throw new Error(`${CERT_BYTES_CAP}: no certificate to carry`);
  const carried = decodeFinalityTx(tx);
  if (ctx.wants(CERT_BYTES_CAP))
    figures.push({
      name: CERT_BYTES_CAP,
      value: tx.payload.length,
      unit: "bytes",
      note: `the Finality transaction's payload at ${CAP.toLocaleString("en-US")} masternodes: ${carried.votes.length} votes carrying more than 2/3 of ${COMMITTEE_SEATS.toLocaleString("en-US")} seats (the bound is 2,001 votes, 192,176 bytes)`,
    });
  if (ctx.wants(CERT_VERIFY_CAP)) {
    const check = (): number => {
      const t0 = performance.now();
      const err = certificateError(GENESIS, carried, committee);
      const ms = performance.now() - t0;
      if (err) throw new Error(`${CERT_VERIFY_CAP}: ${err}`);
      return ms;
    };
    check();
    const checks = Array.from({ length: RUNS }, check);
    figures.push({
      name: CERT_VERIFY_CAP,
      value: round(median(checks), 2),
      unit: "ms",
      note: `certificateError on that ${carried.votes.length}-vote certificate against the committee (${carried.votes.length} Ed25519 verifications); median of ${RUNS} (${checks.map((x) => round(x, 1)).join(", ")} ms), one core`,
    });
  }
  return figures;
}

async function importCertificates(ctx: BenchContext): Promise<Figure> {
  const opts = { blocks: IMPORT_CERT_BLOCKS, txsPerBlock: 50 };
  const plain = buildTransferChain(ctx, { ...opts, label: "import-plain" });
  const certified = buildTransferChain(ctx, { ...opts, label: "import-certified", certificates: true });
  const rates = { plain: [] as number[], certified: [] as number[] };
  for (let i = 0; i < RUNS; i++) {
    for (const [kind, chain] of [
      ["plain", plain],
      ["certified", certified],
    ] as const) {
      const { seconds } = await importChain(ctx, chain, { label: `import-${kind} ${i + 1}/${RUNS}` });
      rates[kind].push(chain.blocks.length / seconds);
    }
  }
  const p = median(rates.plain);
  const c = median(rates.certified);
  const spread = (xs: number[]): string => `${round(Math.min(...xs), 0)}–${round(Math.max(...xs), 0)}`;
  return {
    name: IMPORT_CERTS,
    value: round(c / p, 3),
    unit: "ratio",
    note: `median ${round(c, 1)} vs ${round(p, 1)} blocks/s (runs ${spread(rates.certified)} vs ${spread(rates.plain)}); +${round(certified.certificateBytesPerBlock, 0)} B and ${certified.sigsPerBlock - plain.sigsPerBlock} signatures a block`,
  };
}

export const finalityBench: BenchGroup = {
  name: "finality",
  figures: [
    FINALITY_LAG,
    FINALITY_LAG_P99,
    ...SIZES.map(voteVerifyName),
    ...SIZES.map(certBytesName),
    CERT_VERIFY_1000,
    VOTE_VERIFY_CAP,
    CERT_BYTES_CAP,
    CERT_VERIFY_CAP,
    IMPORT_CERTS,
  ],
  async run(ctx) {
    const figures: Figure[] = [];
    if (ctx.wants(FINALITY_LAG) || ctx.wants(FINALITY_LAG_P99)) figures.push(...(await finalityLag(ctx)));
    const verifies: Figure[] = [];
    const certs: Figure[] = [];
    for (const n of SIZES) {
      const wantCert = ctx.wants(certBytesName(n)) || (n === 1_000 && ctx.wants(CERT_VERIFY_1000));
      if (!ctx.wants(voteVerifyName(n)) && !wantCert) continue;
      const { keys, registry } = registryOf(n);
      if (ctx.wants(voteVerifyName(n))) verifies.push(voteVerify(ctx, n, keys, registry));
      if (wantCert) certs.push(...certificateFigures(ctx, n, keys, registry));
    }
    figures.push(...verifies, ...certs);
    if ([VOTE_VERIFY_CAP, CERT_BYTES_CAP, CERT_VERIFY_CAP].some((f) => ctx.wants(f)))
      figures.push(...committeeFigures(ctx));
    if (ctx.wants(IMPORT_CERTS)) figures.push(await importCertificates(ctx));
    return figures;
  },
};
