/**
 * Sync and fork resolution, with real TimeNodes in this process (own data directory, LMDB and
 * loopback IP each; TCP P2P, encrypted sessions unless said otherwise; RPC off), on one prebuilt
 * chain of 5,100 blocks of 20 transfers (bench/import.ts's builder; its genesis lists masternodes
 * at a dead address, so nobody dials anything but the bootstrap peers). When only
 * sync_encrypted_vs_plaintext is selected, the chain is just the 2,000 blocks it uses.
 *
 * import (same run, same blocks): the first 5,000 blocks imported into a fresh Chain with
 * processBlocks, IMPORT_BATCH per commit, timed; the first import's chain becomes peer 1's, and
 * copies of it peers 2 and 3's (not timed).
 *
 * sync_blocks_per_s: a fresh node, bootstrapped to the three peers, syncs those 5,000 blocks:
 * from its start() until its tip is the peers' tip (a "tip" event listener takes the time).
 * Three rounds, each an import into a fresh directory and then a fresh node's sync, alternating
 * (the issue's rule for ratios: both halves in the same window); the figure is the median sync
 * rate, and the last round's node is X, which the figures below go on with.
 * sync_vs_import: the median sync rate over the median import rate. The floor is 0.9 (issue 16).
 * All four nodes share this process (and so one event loop): the syncing node's validation and
 * the peers' serving compete for it.
 * Sync commits max_sync_batch_size (500) blocks per transaction, the import 100.
 *
 * catchup_100_ms: X leaves the network (setNetworkActive(false)), the peers get blocks
 * 5,001..5,100 (imported, as if produced), X rejoins (setNetworkActive(true)): from the rejoin
 * until X's tip is the peers' tip. The floor is 1 s (issue 16).
 *
 * reorg_1000_ms: a fourth node B holds a heavier branch (1,001 empty blocks on block 4,100 of the
 * same chain; its data directory is prepared before it starts). The three peers stop (they would
 * otherwise learn B's branch from B as well and reorg in this same process); then B dials X, which
 * is on block 5,100 of branch A: from B's handshake with X until X's chain has connected B's tip
 * (common ancestor, header validation, download, and the atomic 1,000-block reorg). The floor
 * is 1.5 s (issue 16). reorg_1000_settled_ms: the same, until X's mempool has taken back the
 * 20,000 disconnected transfers (its "reconciled" event; it brings them back a slice per turn of
 * the event loop, after the switch).
 *
 * sync_encrypted_vs_plaintext: the same kind of sync, with its own nodes (started after the figures
 * above are done and their nodes stopped) on the first 2,000 blocks of the same prebuilt chain:
 * three serving nodes per transport mode hold those blocks (imported before they start, not
 * timed); four fresh nodes, one after the other, each on a new data directory, sync them from
 * the three of their own mode: plaintext, encrypted, plaintext, encrypted (every node of a
 * plaintext run has [network].plaintext_transport = true; the encrypted runs are the production
 * setting). Each run is timed from start() until the tip; the figure is the median encrypted
 * rate over the median plaintext rate. The figures above all run encrypted, as production does.
 *
 * ancestor_roundtrips_{10,100,1000,10000}: findCommonAncestor against a peer that answers through
 * the real BlockServer from a real Chain of 10,050 empty blocks (test/unit/sync/helpers.ts's
 * FakePeer), our main chain forking from it at height 10,000 and `depth` blocks tall; the figure
 * is the number of requests (each one round trip). It must grow logarithmically.
 */
import { cpSync, rmSync } from "node:fs";
import { join } from "node:path";
import { blockHash, decodeBlock, type Block } from "../src/primitives/block.js";
import { buildBlock } from "../src/consensus/blockBuilder.js";
import { Chain } from "../src/chain/chain.js";
import { buildGenesisBlock, genesisRegistry, type GenesisSpec } from "../src/consensus/genesis.js";
import { chainParams } from "../src/primitives/params.js";
import { loadConfig, type ConfigOverrides } from "../src/config/index.js";
import { sha256 } from "../src/crypto/hash.js";
import {
  epochOf,
  nextSchedule,
  scheduledProducer,
  scheduleOfFixedRegistry,
  slotStart,
} from "../src/consensus/schedule.js";
import { createMemoryLogger, type MemoryLogger } from "../src/logging/index.js";
import { dataDirPaths } from "../src/node/dataDir.js";
import { initDataDir } from "../src/node/init.js";
import { TimeNode } from "../src/node/node.js";
import { findCommonAncestor, type LocalChainView } from "../src/sync/ancestor.js";
import { ManualClock, SystemClock } from "../src/util/clock.js";
import { CryptoRandom } from "../src/util/random.js";
import { freePort } from "../test/e2e/helpers/nodes.js";
import { extend } from "../test/helpers/chainBuild.js";
import { ChainHarness, testGenesis, testKeys } from "../test/helpers/chainFixture.js";
import { FakePeer, later } from "../test/unit/sync/helpers.js";
import { buildTransferChain, IMPORT_BATCH, importChain, type PrebuiltChain } from "./import.js";
import { anchorInput } from "../src/consensus/committee.js";
import { defaultSigPoolThreads, SignaturePool } from "../src/crypto/sigPool.js";
import { median, round, type BenchContext, type BenchGroup, type Figure } from "./lib.js";

export const SYNC_RATE = "sync_blocks_per_s";
export const SYNC_VS_IMPORT = "sync_vs_import";
export const CATCHUP_100 = "catchup_100_ms";
export const REORG_1000 = "reorg_1000_ms";
/** The same reorg until the node's mempool has brought back the disconnected transactions. */
export const REORG_SETTLED = "reorg_1000_settled_ms";
/** Sync rate with encrypted sessions over the rate with plaintext ones (devnet's option). */
export const SYNC_TRANSPORT = "sync_encrypted_vs_plaintext";
export const ANCESTOR_DEPTHS = [10, 100, 1_000, 10_000] as const;
export const ancestorFigure = (depth: number): string => `ancestor_roundtrips_${depth}`;

export const SYNC_VS_IMPORT_FLOOR = 0.9;
export const CATCHUP_FLOOR_MS = 1_000;
export const REORG_FLOOR_MS = 1_500;

const SYNC_BLOCKS = 5_000;
const CATCHUP_BLOCKS = 100;
const TXS_PER_BLOCK = 20;
const PEERS = 3;
const REORG_DEPTH = 1_000;
/** Branch B forks here: X's tip after the catch-up is REORG_DEPTH blocks above it. */
const FORK_HEIGHT = SYNC_BLOCKS + CATCHUP_BLOCKS - REORG_DEPTH;
/** One block more than A above the fork (all round 0): B has more work. */
const BRANCH_BLOCKS = REORG_DEPTH + 1;
/** sync_encrypted_vs_plaintext: blocks synced per run, serving nodes per mode, runs (alternating). */
const TRANSPORT_BLOCKS = 2_000;
const TRANSPORT_SERVERS = 3;
const TRANSPORT_RUNS = 4;

/** Loopback addresses of this group (other benches use 127.77.x.y, the tests 127.0.x.y). */
const NET = "127.78.0";
const PEER_HOST = (i: number): string => `${NET}.${i + 1}`;
const X_HOST = `${NET}.10`;
/** The syncing nodes of the rounds before the last (which is x). */
const SYNC_X_HOST = (round: number): string => `${NET}.${10 + round}`;
/** Alternating import-then-sync rounds behind sync_blocks_per_s and sync_vs_import. */
const SYNC_ROUNDS = 3;
const B_HOST = `${NET}.20`;
/** Where the genesis lists its masternodes: nothing listens there. */
const DEAD_MASTERNODE = `${NET}.99:1`;
/** sync_encrypted_vs_plaintext: serving nodes (plaintext .31.., encrypted .41..) and the syncing nodes. */
const TRANSPORT_SERVER_HOST = (plaintext: boolean, i: number): string =>
  `${NET}.${plaintext ? 31 + i : 41 + i}`;
const TRANSPORT_X_HOST = (run: number): string => `${NET}.${51 + run}`;
/** min_masternodes no node here reaches: nobody produces. */
export const NEVER_PRODUCE = 1_000;

const SYNC_TIMEOUT_MS = 300_000;
const STEP_TIMEOUT_MS = 60_000;

const ANCESTOR_FORK = 10_000;
const ANCESTOR_CHAIN = ANCESTOR_FORK + 50;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function waitFor(cond: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const start = performance.now();
  while (!cond()) {
    if (performance.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await sleep(10);
  }
}

/** One TimeNode of the bench network: its data directory, address and in-memory log. */
export class BenchNode {
  node: TimeNode | null = null;
  readonly logger: MemoryLogger = createMemoryLogger({ level: "info" });

  constructor(
    readonly name: string,
    readonly dir: string,
    readonly host: string,
    readonly port: number,
    readonly nodeId: string,
    private readonly genesis: GenesisSpec,
  ) {}

  static create(
    root: string,
    name: string,
    host: string,
    port: number,
    genesis: GenesisSpec,
    bootstrap: string[],
    /** More [network] settings, e.g. { plaintext_transport: true }. */
    network: ConfigOverrides["network"] = {},
  ): BenchNode {
    const r = initDataDir({
      dir: join(root, name),
      network: "devnet",
      masternode: false,
      genesis,
      now: Date.now(),
      set: {
        node: { name },
        network: { ...network, listen_address: `${host}:${port}`, bootstrap_peers: bootstrap },
        rpc: { enabled: false },
        consensus: { min_masternodes: NEVER_PRODUCE },
        logging: { level: "info", format: "json" },
      },
    });
    return new BenchNode(name, r.dir, host, port, r.nodeId, genesis);
  }

  get p2p(): string {
    return `${this.host}:${this.port}`;
  }

  get chainDir(): string {
    return dataDirPaths(this.dir).chain;
  }

  get n(): TimeNode {
    if (!this.node) throw new Error(`${this.name} is not running`);
    return this.node;
  }

  /** Opens the data directory (TimeNode.open), as `timed start` does; start() is separate. */
  open(): TimeNode {
    const config = loadConfig({ file: dataDirPaths(this.dir).config, dataDir: this.dir });
    this.node = TimeNode.open(
      { config, genesis: this.genesis },
      {
        clock: new SystemClock(),
        random: new CryptoRandom(),
        logger: this.logger.child({ node: this.name }),
      },
    );
    return this.node;
  }

  async start(): Promise<void> {
    await (this.node ?? this.open()).start();
  }

  async stop(): Promise<void> {
    const n = this.node;
    this.node = null;
    if (n) await n.stop();
  }

  describe(): string {
    if (!this.node) return `${this.name}: stopped`;
    const st = this.node.sync.status();
    return `${this.name} h=${this.node.chain.height} peers=${this.node.peers.peers().length} sync=${st.state}${st.lastError ? ` lastError=${st.lastError.code}: ${st.lastError.message}` : ""}`;
  }

  recentLogs(n = 12): string {
    return this.logger.records
      .slice(-n)
      .map((r) => `  ${r.level} ${r.msg} ${JSON.stringify(r.ctx)}`)
      .join("\n");
  }
}

/** Resolves with performance.now() when `node`'s tip is `hash` (at once if it already is). */
function whenTip(node: TimeNode, hash: Buffer, what: string, timeoutMs: number, detail: () => string) {
  return new Promise<number>((resolve, reject) => {
    if (node.chain.tip.hash.equals(hash)) {
      resolve(performance.now());
      return;
    }
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${detail()}`));
    }, timeoutMs);
    const off = node.chain.events.on("tip", (e) => {
      if (!e.hash.equals(hash)) return;
      off();
      clearTimeout(timer);
      resolve(performance.now());
    });
  });
}

/** Processes blocks into a chain in batches (not timed); every block must connect or reorg. */
function feed(chain: Chain, blocks: readonly Block[], batch = 500): void {
  for (let i = 0; i < blocks.length; i += batch) {
    const r = chain.processBlocks(blocks.slice(i, i + batch).map((block) => ({ block })));
    if (r.error !== undefined) throw r.error instanceof Error ? r.error : new Error("block import failed");
  }
}

/** Branch B: `count` empty round-0 blocks on block `forkHeight` of the prebuilt chain. */
function buildBranch(pre: PrebuiltChain, forkHeight: number, count: number): Block[] {
  const registry = genesisRegistry(pre.spec);
  const params = chainParams(pre.spec.network, pre.spec.blockTimeMs);
  const keys = new Map(pre.masternodes.map((k) => [k.publicKey.toString("hex"), k]));
  const forkHeader = decodeBlock(pre.blocks[forkHeight - 1]!).header;
  let parentHash = blockHash(forkHeader);
  let sched = scheduleOfFixedRegistry(registry, epochOf(forkHeight + 1));
  let parentTs = forkHeader.timestamp;
  const out: Block[] = [];
  const genesisHash = blockHash(buildGenesisBlock(pre.spec).header);
  const blockAt = (h: number): Block | undefined =>
    h <= forkHeight ? decodeBlock(pre.blocks[h - 1]!) : out[h - forkHeight - 1];
  for (let height = forkHeight + 1; height <= forkHeight + count; height++) {
    if (sched.epoch !== epochOf(height)) sched = nextSchedule(sched, registry);
    const producer = scheduledProducer(sched, height, 0, registry)!;
    const timestamp = slotStart(params, parentTs, 0);
    const b = buildBlock({
      parentHash,
      parentHeight: height - 1,
      registry,
      producer: keys.get(producer.operatorPubkey.toString("hex"))!,
      round: 0,
      timestamp,
      txs: [],
      fees: 0n,
      eraProofInput: anchorInput(genesisHash, height, blockAt),
    });
    out.push(b);
    parentHash = blockHash(b.header);
    parentTs = timestamp;
  }
  return out;
}

/** Starts `n` (fresh, bootstrapped to the peers) and times it until its tip is `tip`. */
async function timeSync(
  n: TimeNode,
  tip: Buffer,
  describe: () => string,
): Promise<{ seconds: number; cpuMs: number; fromSync: number | null }> {
  let firstSync: number | null = null;
  const watch = setInterval(() => {
    if (firstSync === null && n.sync.isSyncing) firstSync = performance.now();
  }, 2);
  try {
    const done = whenTip(n, tip, `at height ${SYNC_BLOCKS}`, SYNC_TIMEOUT_MS, describe);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await n.start();
    const t1 = await done;
    const cpu = process.cpuUsage(cpu0);
    return {
      seconds: (t1 - t0) / 1000,
      cpuMs: (cpu.user + cpu.system) / 1000,
      fromSync: firstSync === null ? null : (t1 - (firstSync as number)) / 1000,
    };
  } finally {
    clearInterval(watch);
  }
}

async function networkFigures(ctx: BenchContext, pre: PrebuiltChain): Promise<Figure[]> {
  const wantSync = ctx.wants(SYNC_RATE) || ctx.wants(SYNC_VS_IMPORT);
  const wantReorg = ctx.wants(REORG_1000) || ctx.wants(REORG_SETTLED);
  const wantCatchup = ctx.wants(CATCHUP_100) || wantReorg;
  const figures: Figure[] = [];
  const add = (f: Figure): void => {
    ctx.log(`${f.name}: ${f.value} ${f.unit}`);
    figures.push(f);
  };

  const tipAt = (height: number): Buffer => blockHash(decodeBlock(pre.blocks[height - 1]!).header);
  const syncTip = tipAt(SYNC_BLOCKS);
  const catchupTip = tipAt(SYNC_BLOCKS + CATCHUP_BLOCKS);

  const root = ctx.tempDir("timebench-sync-");
  const nodes: BenchNode[] = [];
  try {
    const hosts = [...Array.from({ length: PEERS }, (_, i) => PEER_HOST(i)), X_HOST, B_HOST];
    const ports = await Promise.all(hosts.map((h) => freePort(h)));
    const peers = Array.from({ length: PEERS }, (_, i) =>
      BenchNode.create(root, `peer-${i + 1}`, PEER_HOST(i), ports[i]!, pre.spec, []),
    );
    const x = BenchNode.create(
      root,
      "x",
      X_HOST,
      ports[PEERS]!,
      pre.spec,
      peers.map((p) => p.p2p),
    );
    const b = BenchNode.create(root, "b", B_HOST, ports[PEERS + 1]!, pre.spec, [x.p2p]);
    nodes.push(...peers, x, b);
    const describe = (): string =>
      nodes.map((n) => n.describe()).join("\n") + `\nx's log:\n${x.recentLogs()}`;

    // The import: timed, into peer 1's chain directory; the others get copies (not timed). With
    // a signature pool as large as a node's, since the syncing node checks batches with one too.
    const pool = new SignaturePool({ threads: defaultSigPoolThreads() });
    const importOnce = (dir: string, label: string) =>
      importChain(ctx, pre, { dir, count: SYNC_BLOCKS, label, pool });
    let imp: { seconds: number; cpuSeconds: number };
    try {
      imp = await importOnce(peers[0]!.chainDir, "sync: import 1");
    } catch (e) {
      await pool.close();
      throw e;
    }
    const importRates = [SYNC_BLOCKS / imp.seconds];
    ctx.log(`sync: import ${round(importRates[0]!, 1)} blocks/s; copying the chain to the other nodes`);
    const copies = [...peers.slice(1), ...(wantSync ? [] : [x]), ...(wantReorg ? [b] : [])];
    for (const n of copies) cpSync(peers[0]!.chainDir, n.chainDir, { recursive: true });
    let branchTip: Buffer | null = null;
    if (wantReorg) {
      ctx.log(
        `sync: node B gets branch B (${BRANCH_BLOCKS} empty blocks on block ${FORK_HEIGHT}; not timed)`,
      );
      const branch = buildBranch(pre, FORK_HEIGHT, BRANCH_BLOCKS);
      branchTip = blockHash(branch[branch.length - 1]!.header);
      const chain = Chain.open(b.chainDir, pre.spec, {
        clock: new ManualClock(branch[branch.length - 1]!.header.timestamp + 1),
      });
      try {
        // The branch is lighter than B's copied chain until its end: store it as the sync would
        // once it has validated the branch's headers.
        chain.expect(
          branch.map((x) => blockHash(x.header)),
          3_600_000,
        );
        feed(chain, branch);
        if (!chain.tip.hash.equals(branchTip)) throw new Error("node B did not switch to branch B");
      } finally {
        await chain.close();
      }
    }

    await Promise.all(peers.map((p) => p.start()));

    // --- sync_blocks_per_s ------------------------------------------------------------------
    const xn = x.open();
    // Registered before start(), so before the mempool's listeners: the moment the chain has
    // connected a block, before the node's reaction to it (mempool reconciliation) runs.
    const connectedAt = new Map<string, number>();
    xn.chain.events.on("blockConnected", ({ entry }) => {
      if (branchTip?.equals(entry.hash)) connectedAt.set(entry.hash.toString("hex"), performance.now());
    });
    if (wantSync) {
      // SYNC_ROUNDS rounds, each an import and then a sync of the same blocks, alternating, so
      // both halves of the ratio see the machine in the same state; the figures are medians.
      // The last round's syncing node is x, which the figures below go on with.
      const syncRates: number[] = [];
      let cpuMs = 0;
      let fromSync: number | null = null;
      try {
        for (let round_ = 1; round_ <= SYNC_ROUNDS; round_++) {
          if (round_ > 1) {
            const dir = ctx.tempDir("timebench-sync-import-");
            const again = await importOnce(dir, `sync: import ${round_}`);
            importRates.push(SYNC_BLOCKS / again.seconds);
            rmSync(dir, { recursive: true, force: true });
          }
          const last = round_ === SYNC_ROUNDS;
          let node: BenchNode = x;
          if (!last) {
            const host = SYNC_X_HOST(round_);
            node = BenchNode.create(
              root,
              `x-${round_}`,
              host,
              await freePort(host),
              pre.spec,
              peers.map((p) => p.p2p),
            );
            nodes.push(node);
          }
          const n = last ? xn : node.open();
          ctx.log(
            `${SYNC_RATE}: round ${round_}, fresh node ${node.name} syncing ${SYNC_BLOCKS} blocks from ${PEERS} peers (timed)`,
          );
          const r = await timeSync(n, syncTip, describe);
          syncRates.push(SYNC_BLOCKS / r.seconds);
          if (last) {
            cpuMs = r.cpuMs;
            fromSync = r.fromSync;
          } else await node.stop();
        }
      } finally {
        await pool.close();
      }
      const rate = median(syncRates);
      const importRate = median(importRates);
      add({
        name: SYNC_RATE,
        value: round(rate, 1),
        unit: "blocks/s",
        note: `median of ${SYNC_ROUNDS} fresh nodes (${syncRates.map((v) => round(v, 1)).join(", ")}), each syncing ${SYNC_BLOCKS} blocks x ${TXS_PER_BLOCK} transfers from ${PEERS} peers, timed from start()${fromSync === null ? "" : ` (the last: ${round(fromSync, 2)} s from its first sync)`}; CPU ${round(cpuMs / SYNC_BLOCKS, 1)} ms/block (all 4 nodes, the last round)`,
      });
      const ratio = rate / importRate;
      const perRound = syncRates.map((v, i) => round(v / importRates[i]!, 3));
      add({
        name: SYNC_VS_IMPORT,
        value: round(ratio, 3),
        unit: "ratio",
        note: `floor ≥ ${SYNC_VS_IMPORT_FLOOR}${ratio < SYNC_VS_IMPORT_FLOOR ? " BELOW FLOOR" : ""}; median sync / median import of the same blocks (${round(importRate, 1)} blocks/s: ${importRates.map((v) => round(v, 1)).join(", ")}; ${IMPORT_BATCH}/commit, CPU ${round((imp.cpuSeconds * 1000) / SYNC_BLOCKS, 1)} ms/block in round 1); ${SYNC_ROUNDS} alternating rounds, per round ${perRound.join(", ")}`,
      });
    } else {
      await pool.close();
      await xn.start();
      await waitFor(() => xn.peers.peers().length >= PEERS, "x connected to the peers", STEP_TIMEOUT_MS);
    }

    // --- catchup_100_ms ---------------------------------------------------------------------
    if (wantCatchup) {
      ctx.log(`${CATCHUP_100}: x leaves; the peers move on ${CATCHUP_BLOCKS} blocks; x rejoins (timed)`);
      xn.peers.setNetworkActive(false);
      await waitFor(
        () =>
          xn.peers.peers().length === 0 &&
          peers.every((p) => !p.n.peers.peers().some((q) => q.nodeIdHex === x.nodeId)),
        "x disconnected from every peer",
        STEP_TIMEOUT_MS,
      );
      const more = pre.blocks.slice(SYNC_BLOCKS, SYNC_BLOCKS + CATCHUP_BLOCKS).map((raw) => decodeBlock(raw));
      for (const p of peers) feed(p.n.chain, more);
      const done = whenTip(xn, catchupTip, `x back on the tip`, STEP_TIMEOUT_MS, describe);
      const t0 = performance.now();
      xn.peers.setNetworkActive(true);
      const ms = (await done) - t0;
      if (ctx.wants(CATCHUP_100)) {
        add({
          name: CATCHUP_100,
          value: Math.round(ms),
          unit: "ms",
          note: `floor < ${CATCHUP_FLOOR_MS} ms${ms >= CATCHUP_FLOOR_MS ? " ABOVE FLOOR" : ""}; setNetworkActive(true) to ${CATCHUP_BLOCKS} blocks x ${TXS_PER_BLOCK} transfers applied (redial, handshake, sync)`,
        });
      }
    }

    // --- reorg_1000_ms ----------------------------------------------------------------------
    if (wantReorg && branchTip) {
      ctx.log(
        `${REORG_1000}: the peers leave; node B offers a branch forking ${REORG_DEPTH} blocks back (timed)`,
      );
      // The peers on A go first: they would otherwise learn B's branch from B too and reorg
      // alongside x, in this same process.
      await Promise.all(peers.map((p) => p.stop()));
      await waitFor(() => xn.peers.peers().length === 0, "x has no peers", STEP_TIMEOUT_MS);
      const trips0 = await histogramSum(xn, "sync_ancestor_roundtrips");
      const mempool0 = xn.mempool.size;
      let offered: number | null = null;
      let reconciled: number | null = null;
      const offReconciled = xn.mempool.events.on("reconciled", () => (reconciled = performance.now()));
      const offReady = xn.peers.events.on("peerReady", (p) => {
        if (p.nodeIdHex === b.nodeId && offered === null) offered = performance.now();
      });
      try {
        const done = whenTip(xn, branchTip, "x on branch B", STEP_TIMEOUT_MS, describe);
        const tStart = performance.now();
        await b.start();
        await done;
        await waitFor(() => reconciled !== null, "x's mempool reconciled", STEP_TIMEOUT_MS);
        const t1 = reconciled! as number;
        if (offered === null) throw new Error("x switched branches before B's handshake");
        const switched = connectedAt.get(branchTip.toString("hex"));
        if (switched === undefined) throw new Error("x's chain never connected B's tip");
        const ms = switched - offered;
        const settled = t1 - offered;
        const trips = (await histogramSum(xn, "sync_ancestor_roundtrips")) - trips0;
        add({
          name: REORG_1000,
          value: Math.round(ms),
          unit: "ms",
          note: `floor < ${REORG_FLOOR_MS} ms${ms >= REORG_FLOOR_MS ? " ABOVE FLOOR" : ""}; B's handshake to x's chain tip on B (${BRANCH_BLOCKS} empty blocks replace ${REORG_DEPTH} of ${TXS_PER_BLOCK} transfers); ancestor in ${trips} round trip(s) over TCP; ${Math.round(t1 - tStart)} ms from B's start() to settled`,
        });
        add({
          name: REORG_SETTLED,
          value: Math.round(settled),
          unit: "ms",
          note: `to x's mempool "reconciled" event: after the switch, the mempool took back ${xn.mempool.size - mempool0} disconnected txs, a slice per turn, for ${Math.round(t1 - switched)} ms more`,
        });
      } finally {
        offReady();
        offReconciled();
      }
    }
    return figures;
  } finally {
    const results = await Promise.allSettled(nodes.map((n) => n.stop()));
    const failed = results.filter((r) => r.status === "rejected").length;
    if (failed > 0) ctx.log(`sync: ${failed} node(s) failed to stop`);
    rmSync(root, { recursive: true, force: true });
  }
}

// --- sync_encrypted_vs_plaintext ----------------------------------------------------------

interface TransportRun {
  plaintext: boolean;
  rate: number;
  seconds: number;
  peers: number;
}

async function transportFigure(ctx: BenchContext, pre: PrebuiltChain): Promise<Figure> {
  if (pre.blocks.length < TRANSPORT_BLOCKS)
    throw new Error(`the prebuilt chain is shorter than ${TRANSPORT_BLOCKS}`);
  const tip = blockHash(decodeBlock(pre.blocks[TRANSPORT_BLOCKS - 1]!).header);
  const root = ctx.tempDir("timebench-transport-");
  const nodes: BenchNode[] = [];
  const describe = (): string =>
    nodes.map((n) => n.describe()).join("\n") +
    `\nlast node's log:\n${nodes[nodes.length - 1]?.recentLogs() ?? ""}`;
  const modeSet = (plaintext: boolean): ConfigOverrides["network"] =>
    plaintext ? { plaintext_transport: true } : {};
  try {
    const serverHosts = [true, false].flatMap((plaintext) =>
      Array.from({ length: TRANSPORT_SERVERS }, (_, i) => ({
        plaintext,
        i,
        host: TRANSPORT_SERVER_HOST(plaintext, i),
      })),
    );
    const xHosts = Array.from({ length: TRANSPORT_RUNS }, (_, r) => TRANSPORT_X_HOST(r));
    const ports = await Promise.all([...serverHosts.map((s) => s.host), ...xHosts].map((h) => freePort(h)));
    const servers = serverHosts.map((s, k) =>
      BenchNode.create(
        root,
        `${s.plaintext ? "plain" : "enc"}-server-${s.i + 1}`,
        s.host,
        ports[k]!,
        pre.spec,
        [],
        modeSet(s.plaintext),
      ),
    );
    nodes.push(...servers);
    const serversOf = (plaintext: boolean): BenchNode[] =>
      servers.filter((_, k) => serverHosts[k]!.plaintext === plaintext);

    ctx.log(
      `${SYNC_TRANSPORT}: the ${servers.length} serving nodes get the first ${TRANSPORT_BLOCKS} blocks (not timed)`,
    );
    const chain = Chain.open(servers[0]!.chainDir, pre.spec, {
      clock: new ManualClock(pre.lastTimestamp + 1),
    });
    try {
      feed(
        chain,
        pre.blocks.slice(0, TRANSPORT_BLOCKS).map((raw) => decodeBlock(raw)),
        IMPORT_BATCH,
      );
      if (!chain.tip.hash.equals(tip)) throw new Error("the serving chain did not reach its tip");
    } finally {
      await chain.close();
    }
    for (const s of servers.slice(1)) cpSync(servers[0]!.chainDir, s.chainDir, { recursive: true });
    await Promise.all(servers.map((s) => s.start()));

    const runs: TransportRun[] = [];
    for (let r = 0; r < TRANSPORT_RUNS; r++) {
      const plaintext = r % 2 === 0;
      const mode = plaintext ? "plaintext" : "encrypted";
      const from = serversOf(plaintext);
      const x = BenchNode.create(
        root,
        `x-${mode}-${r + 1}`,
        xHosts[r]!,
        ports[serverHosts.length + r]!,
        pre.spec,
        from.map((s) => s.p2p),
        modeSet(plaintext),
      );
      nodes.push(x);
      const xn = x.open();
      const done = whenTip(xn, tip, `${x.name} at height ${TRANSPORT_BLOCKS}`, SYNC_TIMEOUT_MS, describe);
      const t0 = performance.now();
      await xn.start();
      const t1 = await done;
      const peers = xn.peers.peers();
      await x.stop();
      if (peers.length === 0) throw new Error(`${x.name} synced with no peer`);
      const wrong = peers.filter((p) => p.encrypted === plaintext).length;
      if (wrong > 0) throw new Error(`${x.name}: ${wrong} session(s) not ${mode}`);
      const seconds = (t1 - t0) / 1000;
      runs.push({ plaintext, rate: TRANSPORT_BLOCKS / seconds, seconds, peers: peers.length });
      ctx.log(
        `${SYNC_TRANSPORT}: run ${r + 1}/${TRANSPORT_RUNS} ${mode}: ${round(TRANSPORT_BLOCKS / seconds, 1)} blocks/s (${round(seconds, 2)} s, ${peers.length} peers)`,
      );
    }
    const rates = (plaintext: boolean): number[] =>
      runs.filter((x) => x.plaintext === plaintext).map((x) => x.rate);
    const plain = rates(true);
    const enc = rates(false);
    const show = (xs: number[]): string =>
      `${round(median(xs), 1)} blocks/s (spread ${round(Math.min(...xs), 1)}–${round(Math.max(...xs), 1)})`;
    return {
      name: SYNC_TRANSPORT,
      value: round(median(enc) / median(plain), 3),
      unit: "ratio",
      note: `median encrypted / median plaintext sync rate, ${TRANSPORT_BLOCKS} blocks x ${TXS_PER_BLOCK} transfers from ${TRANSPORT_SERVERS} peers, fresh node per run, runs alternating plaintext, encrypted; encrypted ${show(enc)}, plaintext ${show(plain)}`,
    };
  } finally {
    const results = await Promise.allSettled(nodes.map((n) => n.stop()));
    const failed = results.filter((r) => r.status === "rejected").length;
    if (failed > 0) ctx.log(`${SYNC_TRANSPORT}: ${failed} node(s) failed to stop`);
    rmSync(root, { recursive: true, force: true });
  }
}

/** The sum of a histogram's observations in a node's metrics. */
async function histogramSum(node: TimeNode, name: string): Promise<number> {
  const m = await node.metrics.registry.getSingleMetric(name)?.get();
  return m?.values.find((v) => (v as { metricName?: string }).metricName === `${name}_sum`)?.value ?? 0;
}

// --- ancestor_roundtrips -------------------------------------------------------------------

async function ancestorFigures(ctx: BenchContext): Promise<Figure[]> {
  ctx.log(`ancestor_roundtrips: building a real chain of ${ANCESTOR_CHAIN} empty blocks (not timed)`);
  const keys = testKeys("bench-ancestor", 1);
  const dir = ctx.tempDir("timebench-ancestor-");
  const h = new ChainHarness(testGenesis({ masternodes: keys }), keys, dir);
  try {
    extend(h, ANCESTOR_CHAIN);
    const peer = new FakePeer("peer", h.chain);
    const asPeer = {
      getHeaders: (loc: Buffer[], max: number) => later(() => peer.getHeaders(loc, max)),
      getHashes: (hs: number[]) => later(() => peer.getHashes(hs)),
    };
    const figures: Figure[] = [];
    for (const depth of ANCESTOR_DEPTHS) {
      // Our main chain: the peer's blocks up to the fork, then `depth` blocks of our own.
      const height = ANCESTOR_FORK + depth;
      const local: LocalChainView = {
        height,
        hashAt: (x) => {
          if (x > height) return undefined;
          if (x <= ANCESTOR_FORK) return h.chain.getHashAtHeight(x);
          return sha256(Buffer.from(`bench/ours/${depth}/${x}`));
        },
      };
      peer.calls.length = 0;
      const r = await findCommonAncestor(local, asPeer, { maxDepth: 10_000 });
      if (r.fork?.height !== ANCESTOR_FORK || !r.fork.hash.equals(h.chain.getHashAtHeight(ANCESTOR_FORK)!))
        throw new Error(`depth ${depth}: found the fork at ${r.fork?.height ?? "none"}`);
      if (r.roundTrips !== peer.calls.length) throw new Error("round trips were not all counted");
      const bound = 2 + Math.ceil(Math.log(depth) / Math.log(65));
      const kinds = peer.calls.map((c) => c.kind).join(", ");
      figures.push({
        name: ancestorFigure(depth),
        value: r.roundTrips,
        unit: "round trips",
        note: `fork ${depth} deep: ${kinds}; log bound 2 + ceil(log65 depth) = ${bound}${r.roundTrips > bound ? " ABOVE BOUND" : ""}`,
      });
    }
    return figures;
  } finally {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export const syncBench: BenchGroup = {
  name: "sync",
  figures: [
    SYNC_RATE,
    SYNC_VS_IMPORT,
    CATCHUP_100,
    REORG_1000,
    REORG_SETTLED,
    SYNC_TRANSPORT,
    ...ANCESTOR_DEPTHS.map(ancestorFigure),
  ],
  async run(ctx) {
    const figures: Figure[] = [];
    const wantNetwork = [SYNC_RATE, SYNC_VS_IMPORT, CATCHUP_100, REORG_1000, REORG_SETTLED].some((f) =>
      ctx.wants(f),
    );
    const wantTransport = ctx.wants(SYNC_TRANSPORT);
    if (wantNetwork || wantTransport) {
      // One chain for both: sync_encrypted_vs_plaintext uses its first TRANSPORT_BLOCKS blocks.
      const pre = buildTransferChain(ctx, {
        label: "sync",
        blocks: wantNetwork ? SYNC_BLOCKS + CATCHUP_BLOCKS : TRANSPORT_BLOCKS,
        txsPerBlock: TXS_PER_BLOCK,
        masternodeAddress: () => DEAD_MASTERNODE,
      });
      if (wantNetwork) figures.push(...(await networkFigures(ctx, pre)));
      if (wantTransport) figures.push(await transportFigure(ctx, pre));
    }
    if (ANCESTOR_DEPTHS.some((d) => ctx.wants(ancestorFigure(d))))
      figures.push(...(await ancestorFigures(ctx)));
    return figures;
  },
};
