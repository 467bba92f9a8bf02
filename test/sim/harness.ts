/**
 * The simulation tier: N real TimeNodes in one process, on one MemoryNetwork (src/p2p/
 * memoryTransport.ts), one ManualClock and seeded keys and randomness. Every node runs the
 * production code with real LMDB in a temporary directory; only the network and time are
 * simulated. A test moves time with `advance` or `until`; it never sleeps.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/config/index.js";
import { makeGenesisSpec, type GenesisSpec } from "../../src/consensus/genesis.js";
import { createMemoryLogger, type MemoryLogger } from "../../src/logging/index.js";
import { dataDirPaths } from "../../src/node/dataDir.js";
import { initDataDir } from "../../src/node/init.js";
import { TimeNode } from "../../src/node/node.js";
import { MemoryNetwork, type MemoryNetworkOptions } from "../../src/p2p/memoryTransport.js";
import { ManualClock } from "../../src/util/clock.js";
import { SeededRandom } from "../../src/util/random.js";
import { testKey } from "../helpers/chainFixture.js";

export interface SimOptions {
  /** Seeds the keys and every node's randomness: the same seed gives the same run. */
  seed: number;
  /** Masternodes, all in the genesis. */
  masternodes: number;
  blockTimeMs?: number;
  /** [masternode] heartbeat_interval, seconds (default 1). */
  heartbeatIntervalS?: number;
  /** [network] ping_interval, seconds (default 1). */
  pingIntervalS?: number;
  minMasternodes?: number;
  network?: Partial<MemoryNetworkOptions>;
}

/** One node of a simulation. */
export class SimNode {
  node: TimeNode | null = null;
  readonly logger: MemoryLogger = createMemoryLogger({ level: "info" });

  constructor(
    readonly sim: Sim,
    readonly index: number,
    readonly name: string,
    readonly host: string,
    readonly dir: string,
    readonly nodeId: string,
  ) {}

  get n(): TimeNode {
    if (!this.node) throw new Error(`${this.name} is not running`);
    return this.node;
  }

  get running(): boolean {
    return this.node !== null;
  }

  async start(): Promise<void> {
    if (this.node) return;
    const config = loadConfig({ file: dataDirPaths(this.dir).config, dataDir: this.dir });
    const node = TimeNode.open(
      { config, genesis: this.sim.genesis },
      {
        clock: this.sim.clock,
        random: new SeededRandom(this.sim.seed * 1_000 + this.index),
        logger: this.logger.child({ node: this.name }),
        transport: this.sim.net.transport(this.host),
      },
    );
    await node.start();
    this.node = node;
  }

  async stop(): Promise<void> {
    const node = this.node;
    this.node = null;
    if (node) await node.stop();
  }

  /** The ready peers' node ids. */
  peerIds(): string[] {
    return this.n.peers.peers().map((p) => p.nodeIdHex);
  }

  describe(): string {
    if (!this.node) return `${this.name}: stopped`;
    const n = this.node;
    return `${this.name} h=${n.chain.height} tip=${n.chain.tip.hash.toString("hex").slice(0, 12)} peers=${n.peers.peers().length} producer="${n.producer?.status.reason ?? "-"}"`;
  }
}

export class Sim {
  readonly clock: ManualClock;
  readonly net: MemoryNetwork;
  readonly nodes: SimNode[] = [];

  private constructor(
    readonly seed: number,
    readonly dir: string,
    readonly genesis: GenesisSpec,
    clock: ManualClock,
    net: MemoryNetwork,
  ) {
    this.clock = clock;
    this.net = net;
  }

  /** Builds the data directories (node i on 10.70.0.i+1:24200, node 0 the bootstrap peer) and starts every node. */
  static async create(o: SimOptions): Promise<Sim> {
    const start = 1_800_000_000_000;
    const clock = new ManualClock(start);
    const net = new MemoryNetwork(clock, o.network ?? {});
    const dir = mkdtempSync(join(tmpdir(), `timed-sim-${o.seed}-`));
    const hostOf = (i: number): string => `10.70.0.${i + 1}`;
    const operators = Array.from({ length: o.masternodes }, (_, i) => testKey(`sim-${o.seed}-op`, i));
    const genesis = makeGenesisSpec({
      network: "devnet",
      timestamp: start,
      blockTimeMs: o.blockTimeMs ?? 2_000,
      masternodes: operators.map((k, i) => ({ operatorPubkey: k.publicKey, address: `${hostOf(i)}:24200` })),
    });
    const sim = new Sim(o.seed, dir, genesis, clock, net);
    try {
      for (let i = 0; i < o.masternodes; i++) {
        const name = `node-${i}`;
        const nodeKey = testKey(`sim-${o.seed}-node`, i);
        const r = initDataDir({
          dir: join(dir, name),
          network: "devnet",
          masternode: true,
          genesis,
          operatorKey: operators[i]!,
          nodeKey,
          now: start,
          set: {
            node: { name },
            network: {
              listen_address: `${hostOf(i)}:24200`,
              bootstrap_peers: i === 0 ? [] : [`${hostOf(0)}:24200`],
              ping_interval: o.pingIntervalS ?? 1,
            },
            masternode: { heartbeat_interval: o.heartbeatIntervalS ?? 1 },
            consensus: { min_masternodes: o.minMasternodes ?? Math.min(3, o.masternodes) },
            rpc: { enabled: false },
            logging: { level: "info", format: "json" },
          },
        });
        sim.nodes.push(new SimNode(sim, i, name, hostOf(i), r.dir, r.nodeId));
      }
      for (const n of sim.nodes) await n.start();
    } catch (e) {
      await sim.stop();
      throw e;
    }
    return sim;
  }

  /** Lets pending callbacks run: microtasks, and the event loop's I/O (file writes). */
  async settle(): Promise<void> {
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
  }

  /** Moves virtual time forward by `ms`, in steps of `stepMs`, letting the nodes react after each. */
  async advance(ms: number, stepMs = 50): Promise<void> {
    for (let t = 0; t < ms; t += stepMs) {
      this.clock.advance(Math.min(stepMs, ms - t));
      await this.settle();
    }
  }

  /**
   * Advances until `cond` holds, at most `maxMs` of virtual time; returns the virtual time it
   * took. Throws naming `what` and every node's state otherwise.
   */
  async until(what: string, cond: () => boolean, maxMs: number, stepMs = 50): Promise<number> {
    for (let t = 0; t <= maxMs; t += stepMs) {
      if (cond()) return t;
      this.clock.advance(stepMs);
      await this.settle();
    }
    throw new Error(`not within ${maxMs} ms of virtual time: ${what}\n${this.describe()}`);
  }

  running(): SimNode[] {
    return this.nodes.filter((n) => n.running);
  }

  /** Whether every running node has a ready peer for each other running node. */
  meshed(): boolean {
    const nodes = this.running();
    return nodes.every((h) => {
      const ids = new Set(h.peerIds());
      return nodes.every((o) => o === h || ids.has(o.nodeId));
    });
  }

  /** Whether every running node is on one tip at height >= minHeight. */
  agree(minHeight: number): boolean {
    const nodes = this.running();
    const tips = new Set(nodes.map((n) => n.n.chain.tip.hash.toString("hex")));
    return tips.size === 1 && nodes[0]!.n.chain.height >= minHeight;
  }

  describe(): string {
    return this.nodes.map((n) => n.describe()).join("\n");
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.nodes.map((n) => n.stop()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
