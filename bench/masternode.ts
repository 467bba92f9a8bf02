/**
 * schedule_eval_per_s: scheduledProducer(registry, prevHash, height, round) calls per second on
 * one core, over a 1,000-masternode registry (a genesis registry), with a different parent hash,
 * height and round each call.
 *
 * mn_list_converge_ms: six real TimeNodes in this process (own data directory, LMDB, loopback IP
 * and TCP P2P each; RPC off), every one a genesis masternode, heartbeating every 0.5 s and not
 * producing. The genesis lists each node's address, so they dial each other as masternodes; there
 * are no bootstrap peers. Time from calling start() on all six together until every node's
 * liveness view counts all six active; median of three runs, each on a fresh devnet.
 */
import { join } from "node:path";
import { genesisRegistry, makeGenesisSpec, type GenesisSpec } from "../src/chain/genesis.js";
import { loadConfig } from "../src/config/index.js";
import { KeyPair } from "../src/crypto/ed25519.js";
import { sha256 } from "../src/crypto/hash.js";
import { scheduledProducer } from "../src/consensus/schedule.js";
import { createMemoryLogger, type MemoryLogger } from "../src/logging/index.js";
import { dataDirPaths } from "../src/node/dataDir.js";
import { initDataDir } from "../src/node/init.js";
import { TimeNode } from "../src/node/node.js";
import { SystemClock } from "../src/util/clock.js";
import { CryptoRandom } from "../src/util/random.js";
import { freePort } from "../test/e2e/helpers/nodes.js";
import { testKeys } from "../test/helpers/chainFixture.js";
import { median, round, type BenchContext, type BenchGroup, type Figure } from "./lib.js";

export const SCHEDULE_EVAL = "schedule_eval_per_s";
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

function scheduleEval(ctx: BenchContext): Figure {
  const clock = new SystemClock();
  const spec = makeGenesisSpec({
    network: "devnet",
    timestamp: clock.now(),
    blockTimeMs: 2_000,
    masternodes: testKeys("bench-schedule-mn", REGISTRY_SIZE).map((k, i) => ({
      operatorPubkey: k.publicKey,
      address: `10.1.${i >> 8}.${(i & 255) + 1}:24200`,
    })),
  });
  const registry = genesisRegistry(spec);
  if (registry.length !== REGISTRY_SIZE) throw new Error(`registry has ${registry.length} entries`);
  const hashes = Array.from({ length: 1_024 }, (_, i) => sha256(Buffer.from(`bench/schedule/${i}`)));
  ctx.log(`${SCHEDULE_EVAL}: ${REGISTRY_SIZE} masternodes, ~${SCHEDULE_SECONDS} s`);
  let sink = 0;
  const batch = (base: number): void => {
    for (let j = 0; j < SCHEDULE_BATCH; j++) {
      const i = base + j;
      sink += scheduledProducer(registry, hashes[i & 1023]!, 1 + i, i & 3)!.operatorPubkey[0]!;
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
  return {
    name: SCHEDULE_EVAL,
    value: Math.round(calls / seconds),
    unit: "eval/s",
    note: `${REGISTRY_SIZE}-entry registry, SHA-256 seed + index; ${calls} calls in ${round(seconds, 2)} s`,
  };
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
  figures: [SCHEDULE_EVAL, MN_CONVERGE],
  async run(ctx) {
    const figures: Figure[] = [];
    if (ctx.wants(SCHEDULE_EVAL)) figures.push(scheduleEval(ctx));
    if (ctx.wants(MN_CONVERGE)) figures.push(await mnConverge(ctx));
    return figures;
  },
};
