/**
 * schedule_eval_per_s (and _20000): scheduledProducer(schedule, height, round, registry) calls per
 * second on one core over a 1,000-entry (20,000-entry) registry of mixed tiers; schedule_epoch_ms
 * (and _20000): the cost of fixing one epoch's schedule (nextSchedule).
 *
 * mn_list_converge_ms: six real TimeNodes in this process (own data directory, LMDB, loopback IP
 * and TCP P2P each; RPC off), every one a genesis masternode, heartbeating every 0.5 s and not
 * producing. The genesis lists each node's address, so they dial each other as masternodes; there
 * are no bootstrap peers. Time from calling start() on all six together until every node's
 * liveness view counts all six active; median of three runs, each on a fresh devnet.
 */
import { join } from "node:path";
import { makeGenesisSpec, type GenesisSpec } from "../src/consensus/genesis.js";
import { loadConfig } from "../src/config/index.js";
import { KeyPair } from "../src/crypto/ed25519.js";
import { sha256 } from "../src/crypto/hash.js";
import {
  anchorHeightOf,
  EPOCH_BLOCKS,
  genesisSchedule,
  nextSchedule,
  scheduledProducer,
} from "../src/consensus/schedule.js";
import { sortRegistry, type MasternodeEntry } from "../src/consensus/registry.js";
import { Tier } from "../src/consensus/tier.js";
import { createMemoryLogger, type MemoryLogger } from "../src/logging/index.js";
import { dataDirPaths } from "../src/node/dataDir.js";
import { initDataDir } from "../src/node/init.js";
import { TimeNode } from "../src/node/node.js";
import { SystemClock } from "../src/util/clock.js";
import { CryptoRandom } from "../src/util/random.js";
import { freePort } from "../test/e2e/helpers/nodes.js";
import { median, round, type BenchContext, type BenchGroup, type Figure } from "./lib.js";

export const SCHEDULE_EVAL = "schedule_eval_per_s";
export const SCHEDULE_EVAL_20K = "schedule_eval_per_s_20000";
export const SCHEDULE_EPOCH = "schedule_epoch_ms";
export const SCHEDULE_EPOCH_20K = "schedule_epoch_ms_20000";
export const MN_CONVERGE = "mn_list_converge_ms";

const REGISTRY_SIZE = 1_000;
const SCHEDULE_SECONDS = 1.5;
/** Calls per clock read: one call is about a microsecond. */
const SCHEDULE_BATCH = 1_000;

const MN_NODES = 6;
/** One /24 per run (fresh genesis, data directories and ports each time). */
const MN_NETS = ["127.77.3", "127.77.6", "127.77.7"];
const HEARTBEAT_S = 0.5;
const CONVERGE_TIMEOUT_MS = 30_000;
/** min_masternodes no devnet here reaches: the nodes never produce. */
const NEVER_PRODUCE = 1_000;

/** A registry of `n` masternodes with mixed tiers (a Gold, Silvers, Bronzes and genesis Frees), sorted. */
function benchRegistry(n: number): MasternodeEntry[] {
  const entries: MasternodeEntry[] = [];
  for (let i = 0; i < n; i++) {
    const tier =
      i % 97 === 0 ? Tier.Gold : i % 13 === 0 ? Tier.Silver : i % 3 === 0 ? Tier.Bronze : Tier.Free;
    entries.push({
      operatorPubkey: sha256(Buffer.from(`bench/schedule/op/${i}`)),
      address: `10.1.${i >> 8}.${(i & 255) + 1}:24200`,
      tier,
      rewardAddress: Buffer.alloc(20, i & 255),
      collateral: null,
      ownerPubkey: null,
      registeredHeight: 0,
    });
  }
  return sortRegistry(entries);
}

/**
 * Producer lookups per second on the schedule of one epoch: heights across the epoch, rounds 0
 * to 3 (round 0 is a table lookup; a fallback round sorts the members by priority once per
 * height and is cached), and the cost of fixing the next epoch's schedule.
 */
function scheduleEval(ctx: BenchContext, size: number, name: string, epochName: string): Figure[] {
  const registry = benchRegistry(size);
  ctx.log(`${name}: ${size} masternodes, ~${SCHEDULE_SECONDS} s`);
  let sched = genesisSchedule(registry);
  const epochMs: number[] = [];
  for (let e = 0; e < 5; e++) {
    const t0 = performance.now();
    sched = nextSchedule(sched, registry);
    epochMs.push(performance.now() - t0);
  }
  let sink = 0;
  const first = anchorHeightOf(sched.epoch) + 1;
  const batch = (base: number): void => {
    for (let j = 0; j < SCHEDULE_BATCH; j++) {
      const i = base + j;
      sink += scheduledProducer(sched, first + (i % EPOCH_BLOCKS), i & 3, registry)!.operatorPubkey[0]!;
    }
  };
  for (let w = 0; w < 20; w++) batch(w * SCHEDULE_BATCH);
  const start = performance.now();
  let now = start;
  let calls = 0;
  while (now - start < SCHEDULE_SECONDS * 1000) {
    batch(calls);
    calls += SCHEDULE_BATCH;
    now = performance.now();
  }
  const seconds = (now - start) / 1000;
  if (sink === 0) throw new Error("schedule evaluation was optimised away");
  return [
    {
      name,
      value: Math.round(calls / seconds),
      unit: "eval/s",
      note: `weighted round-robin, ${size}-entry registry of mixed tiers, rounds 0-3 over one epoch; ${calls} calls in ${round(seconds, 2)} s`,
    },
    {
      name: epochName,
      value: round(median(epochMs), 2),
      unit: "ms",
      note: `fixing one epoch's schedule (${EPOCH_BLOCKS} heights) over ${size} entries, median of 5`,
    },
  ];
}

interface MnNode {
  name: string;
  node: TimeNode;
  logger: MemoryLogger;
}

/** One run on a fresh devnet: ms from start() until every node sees all six active. */
async function mnConvergeOnce(ctx: BenchContext, net: string): Promise<{ ms: number; startedMs: number }> {
  const root = ctx.tempDir("timebench-mn-");
  const clock = new SystemClock();
  const hosts = Array.from({ length: MN_NODES }, (_, i) => `${net}.${i + 1}`);
  const ports = await Promise.all(hosts.map((h) => freePort(h)));
  const operators = hosts.map(() => KeyPair.generate());
  const genesis: GenesisSpec = makeGenesisSpec({
    network: "devnet",
    timestamp: clock.now(),
    blockTimeMs: 2_000,
    masternodes: operators.map((k, i) => ({
      operatorPubkey: k.publicKey,
      address: `${hosts[i]}:${ports[i]}`,
    })),
  });
  const nodes: MnNode[] = [];
  try {
    for (let i = 0; i < MN_NODES; i++) {
      const name = `mn-${i + 1}`;
      const r = initDataDir({
        dir: join(root, name),
        network: "devnet",
        masternode: true,
        genesis,
        operatorKey: operators[i]!,
        now: clock.now(),
        set: {
          node: { name },
          network: { listen_address: `${hosts[i]}:${ports[i]}` },
          rpc: { enabled: false },
          masternode: { heartbeat_interval: HEARTBEAT_S },
          consensus: { min_masternodes: NEVER_PRODUCE },
          logging: { level: "warn", format: "json" },
        },
      });
      const config = loadConfig({ file: dataDirPaths(r.dir).config, dataDir: r.dir });
      const logger = createMemoryLogger({ level: "warn" });
      const node = TimeNode.open(
        { config, genesis },
        { clock: new SystemClock(), random: new CryptoRandom(), logger: logger.child({ node: name }) },
      );
      nodes.push({ name, node, logger });
    }
    const t0 = performance.now();
    await Promise.all(nodes.map((n) => n.node.start()));
    const startedMs = performance.now() - t0;
    const converged = (): boolean => nodes.every((n) => n.node.liveness.activeCount() === MN_NODES);
    for (;;) {
      if (converged()) break;
      if (performance.now() - t0 > CONVERGE_TIMEOUT_MS) {
        const view = nodes.map(
          (n) => `${n.name}: ${n.node.liveness.activeCount()} active, ${n.node.peers.peers().length} peers`,
        );
        throw new Error(
          `masternode lists did not converge in ${CONVERGE_TIMEOUT_MS} ms (${view.join("; ")})`,
        );
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    return { ms: performance.now() - t0, startedMs };
  } finally {
    const results = await Promise.allSettled(nodes.map((n) => n.node.stop()));
    const failed = results.filter((r) => r.status === "rejected").length;
    if (failed > 0) ctx.log(`${MN_CONVERGE}: ${failed} node(s) failed to stop`);
  }
}

async function mnConverge(ctx: BenchContext): Promise<Figure> {
  const runs: Array<{ ms: number; startedMs: number }> = [];
  for (const net of MN_NETS) {
    ctx.log(
      `${MN_CONVERGE}: run ${runs.length + 1}/${MN_NETS.length}, starting ${MN_NODES} masternodes (heartbeat ${HEARTBEAT_S} s)`,
    );
    runs.push(await mnConvergeOnce(ctx, net));
  }
  const ms = runs.map((r) => r.ms);
  return {
    name: MN_CONVERGE,
    value: Math.round(median(ms)),
    unit: "ms",
    note: `median of ${runs.length} (${ms.map((x) => Math.round(x)).join(", ")} ms); ${MN_NODES} TimeNodes, heartbeat ${HEARTBEAT_S} s; start() took ${Math.round(median(runs.map((r) => r.startedMs)))} ms`,
  };
}

export const masternodeBench: BenchGroup = {
  name: "masternode",
  figures: [SCHEDULE_EVAL, SCHEDULE_EPOCH, SCHEDULE_EVAL_20K, SCHEDULE_EPOCH_20K, MN_CONVERGE],
  async run(ctx) {
    const figures: Figure[] = [];
    if (ctx.wants(SCHEDULE_EVAL) || ctx.wants(SCHEDULE_EPOCH))
      figures.push(...scheduleEval(ctx, REGISTRY_SIZE, SCHEDULE_EVAL, SCHEDULE_EPOCH));
    if (ctx.wants(SCHEDULE_EVAL_20K) || ctx.wants(SCHEDULE_EPOCH_20K))
      figures.push(...scheduleEval(ctx, 20_000, SCHEDULE_EVAL_20K, SCHEDULE_EPOCH_20K));
    if (ctx.wants(MN_CONVERGE)) figures.push(await mnConverge(ctx));
    return figures;
  },
};
