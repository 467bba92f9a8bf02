/**
 * The deterministic network simulator (docs/SIMULATION.md). N real TimeNodes run in one process
 * on one MemoryNetwork, one virtual clock and seeded randomness. The simulator adds only the
 * network (MemoryNetwork and its link model), the clock (NodeClock views of one ManualClock),
 * the fault injector (partitions, crashes, churn, skew, Byzantine behaviour) and the observers
 * (invariants.ts, the report). Everything else is the production code.
 *
 * Determinism: every random draw comes from a SeededRandom derived from the seed; time moves
 * only when the event loop fires the next timer; between two instants the loop lets every
 * microtask run (one setImmediate), so callbacks run in an order fixed by the seed. The event
 * trace (every write on the network and every tip change) is hashed; one seed, one hash.
 */
import { createHash, type Hash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MemoryKv, MemoryKvData } from "../../src/chain/memoryKv.js";
import { openLmdbKv, type KvOpener } from "../../src/chain/kv.js";
import { loadConfig, type ConfigOverrides } from "../../src/config/index.js";
import { makeGenesisSpec, type GenesisSpec } from "../../src/consensus/genesis.js";
import type { TierName } from "../../src/consensus/tier.js";
import { KeyPair, VerifyCache, installVerifyCache } from "../../src/crypto/ed25519.js";
import { sha256 } from "../../src/crypto/hash.js";
import type { LogLevel } from "../../src/logging/index.js";
import { dataDirPaths } from "../../src/node/dataDir.js";
import { initDataDir } from "../../src/node/init.js";
import { TimeNode } from "../../src/node/node.js";
import { MemoryNetwork, type LinkModel } from "../../src/p2p/memoryTransport.js";
import type { Transport } from "../../src/p2p/transport.js";
import { FRAME_HEADER_SIZE } from "../../src/p2p/constants.js";
import { decodeMessage, GoodbyeReason, MsgType } from "../../src/p2p/messages.js";
import type { BlockIndex } from "../../src/chain/storeLayout.js";
import { ManualClock } from "../../src/util/clock.js";
import { SeededRandom } from "../../src/util/random.js";
import { Invariants, type InvariantOptions } from "./invariants.js";
import { NodeClock } from "./nodeClock.js";
import { SimLog } from "./simLogger.js";

export const P2P_PORT = 24_200;
/** Virtual start time: a fixed instant, so genesis and every timestamp repeat with the seed. */
export const SIM_EPOCH_MS = 1_800_000_000_000;

export interface SimOptions {
  seed: number;
  /** Nodes at the start, masternodes included. */
  nodes: number;
  /** The first `masternodes` nodes are masternodes, all in the genesis. */
  masternodes: number;
  blockTimeMs: number;
  /** "memory" (MemoryKv, the default) or "lmdb" (a real environment per node in a temp folder). */
  store: "memory" | "lmdb";
  /** The link model between any two hosts (scenarios may change links while running). */
  link: LinkModel;
  /** Each node's clock is off by a uniform amount in [-maxSkewMs, maxSkewMs]. */
  maxSkewMs: number;
  /** Share signature verification results across nodes (the report says so). */
  sharedVerifyCache: boolean;
  /** Bootstrap peers each non-first node is given (seeded picks among earlier nodes). */
  bootstrapPeers: number;
  minMasternodes: number;
  /** [network] max_outbound for every node; undefined: the config default. */
  maxOutbound?: number;
  logLevel: LogLevel;
  invariants: Partial<InvariantOptions>;
  /** Extra config for node `i` (merged over the simulator's own), e.g. smaller inbound limits. */
  configFor?: (i: number, masternode: boolean) => ConfigOverrides;
  /** Virtual ms between two nodes' starts: nodes boot one after another, not all at once. */
  startSpacingMs: number;
  /** Called every `progressEveryMs` of virtual time (the CLI prints a line to stderr). */
  onProgress?: (sim: Simulator) => void;
  progressEveryMs: number;
  /**
   * Tier of every genesis masternode; unset: the genesis default (Free). A scenario that needs
   * heavier honest masternodes (an attacker's registrations kept under a third of the weight)
   * sets it; every other genesis stays byte for byte as it was.
   */
  genesisTier?: TierName;
  /** Coins in the genesis (none when unset), e.g. for an attacker that must pay collateral. */
  allocations?: ReadonlyArray<{ address: string; amount: bigint }>;
  /**
   * "plaintext" (the default: `plaintext_transport`, as a devnet may run) or "encrypted" (every
   * session sealed, as mainnet runs). Plaintext is the default because a lying peer rewrites its
   * frames on the wire (adversary.ts), which a sealed session would refuse, and because sealing
   * costs CPU that the scale runs spend better on more nodes; the handshake and its signatures
   * over the transcript run either way.
   */
  transport: "plaintext" | "encrypted";
}

export const defaultSimOptions: SimOptions = {
  seed: 1,
  nodes: 20,
  masternodes: 8,
  blockTimeMs: 10_000,
  store: "memory",
  // A continent: 20–80 ms one way, 0.1 % loss, 100 Mbit/s.
  link: { latencyMs: 20, jitterMs: 60, loss: 0.001, bandwidthBytesPerS: 12_500_000 },
  maxSkewMs: 500,
  sharedVerifyCache: true,
  bootstrapPeers: 3,
  minMasternodes: 3,
  logLevel: "warn",
  invariants: {},
  progressEveryMs: 60_000,
  startSpacingMs: 10,
  transport: "plaintext",
};

/** Liveness and sync intervals for a block time, scaled as the devnet scales its own (2 s blocks). */
export function scaledIntervals(blockTimeMs: number): ConfigOverrides {
  const b = blockTimeMs / 1000;
  return {
    network: { ping_interval: b },
    masternode: { heartbeat_interval: b / 2, announce_interval: Math.max(30, 15 * b) },
    sync: { coordinator_interval: 2.5 * b },
  };
}

/** The framesByType key of every write in an encrypted run (its type is inside the record). */
export const SEALED = -2;

/** Host of node `i`: its own /16 (10.a.b.1), so no two nodes share a netgroup. */
export function hostOf(i: number): string {
  const n = i + 1;
  return `10.${(n >> 8) & 255}.${n & 255}.1`;
}

export class SimNode {
  node: TimeNode | null = null;
  clock: NodeClock | null = null;
  private kv: MemoryKv | null = null;
  readonly kvData = new MemoryKvData();
  /** False for nodes a scenario made Byzantine or lying: invariants do not speak for them. */
  honest = true;
  /** Virtual time this node last (re)started: a node that just joined is still catching up. */
  startedAt = 0;
  /** Whether it left for good (churn) rather than crashed. */
  left = false;
  /** Wraps its transport from the next start on (a lying peer's, adversary.ts). */
  wrapTransport: ((t: Transport) => Transport) | null = null;
  readonly log: SimLog;

  constructor(
    readonly sim: Simulator,
    readonly index: number,
    readonly name: string,
    readonly host: string,
    readonly dir: string,
    readonly nodeId: string,
    readonly masternode: boolean,
    readonly operatorKey: KeyPair | null,
    readonly skewMs: number,
  ) {
    this.log = new SimLog(() => sim.clock.now(), sim.opts.logLevel);
  }

  get n(): TimeNode {
    if (!this.node) throw new Error(`${this.name} is not running`);
    return this.node;
  }

  get running(): boolean {
    return this.node !== null;
  }

  get tip(): BlockIndex {
    return this.n.chain.tip;
  }

  async start(): Promise<void> {
    if (this.node) return;
    const config = loadConfig({ file: dataDirPaths(this.dir).config, dataDir: this.dir });
    const clock = new NodeClock(this.sim.clock, this.skewMs);
    let openKv: KvOpener;
    if (this.sim.opts.store === "memory") {
      const kv = new MemoryKv(this.kvData);
      this.kv = kv;
      openKv = () => kv;
    } else {
      openKv = openLmdbKv;
    }
    const node = TimeNode.open(
      { config, genesis: this.sim.genesis },
      {
        clock,
        random: new SeededRandom(this.sim.random.int(2 ** 31)),
        logger: this.log.logger({ node: this.name }),
        transport: this.wrapTransport
          ? this.wrapTransport(this.sim.net.transport(this.host))
          : this.sim.net.transport(this.host),
        openKv,
        // Worker threads answer in real time, not on the virtual clock: off, for determinism.
        sigPoolThreads: 0,
      },
    );
    this.clock = clock;
    this.node = node;
    this.startedAt = this.sim.clock.now();
    this.sim.observe(this);
    await node.start();
  }

  /**
   * A graceful stop (SIGTERM): the node says goodbye and closes its store, while the network
   * runs on (a goodbye needs the clock to reach the other end).
   */
  async stop(): Promise<void> {
    const node = this.node;
    if (!node) return;
    this.node = null;
    let done = false;
    const stopping = node.stop().finally(() => (done = true));
    await this.sim.runUntil(`${this.name} stops`, () => done, 60_000);
    await stopping;
    this.clock?.kill();
    this.sim.net.dropHost(this.host);
  }

  /**
   * kill -9: no goodbye, no flush. The kernel resets the connections, the timers die with the
   * process, and the store keeps exactly what was committed (a MemoryKv handle is killed so the
   * dead node's leftover callbacks cannot write; LMDB is closed, as the kernel closes the files).
   */
  crash(): void {
    const node = this.node;
    if (!node) return;
    this.node = null;
    this.clock?.kill();
    this.sim.net.dropHost(this.host);
    this.kv?.kill(`${this.name} crashed`);
    if (this.sim.opts.store === "lmdb") void node.chain.close().catch(() => undefined);
  }

  describe(): string {
    if (!this.node) return `${this.name}: ${this.left ? "left" : "down"}`;
    const n = this.node;
    return `${this.name}${this.honest ? "" : " (byzantine)"} h=${n.chain.height} tip=${n.chain.tip.hash.toString("hex").slice(0, 12)} peers=${n.peers.peers().length} producer="${n.producer?.status.reason ?? "-"}"`;
  }
}

export class Simulator {
  readonly clock: ManualClock;
  readonly net: MemoryNetwork;
  readonly random: SeededRandom;
  readonly nodes: SimNode[] = [];
  readonly invariants: Invariants;
  readonly verifyCache: VerifyCache | null;
  /** What links are made of now; a scenario may replace it (a slow continent, a lossy link). */
  link: (from: string, to: string) => LinkModel | undefined;
  private readonly trace: Hash = createHash("sha256");
  private traceEvents = 0;
  /** Events the loop has run (instants with at least one timer). */
  steps = 0;
  /** Virtual time at the start. */
  readonly startMs = SIM_EPOCH_MS;
  private operators: KeyPair[] = [];
  private nextProgressAt = SIM_EPOCH_MS;
  private stopped = false;

  private constructor(
    readonly opts: SimOptions,
    readonly dir: string,
    readonly genesis: GenesisSpec,
  ) {
    this.clock = new ManualClock(SIM_EPOCH_MS);
    this.random = new SeededRandom(opts.seed);
    const linkRandom = new SeededRandom(opts.seed ^ 0x5eed);
    this.link = () => opts.link;
    this.net = new MemoryNetwork(this.clock, {
      link: (a, b) => this.link(a, b),
      random: linkRandom,
      // A frame is at most 32 MiB; a link holds a few of them before it counts as stuck.
      maxBufferedBytes: 64 * 1024 * 1024,
      onWrite: (from, to, chunk) => this.onWrite(from, to, chunk),
    });
    this.invariants = new Invariants(this, opts.invariants);
    this.verifyCache = opts.sharedVerifyCache ? new VerifyCache() : null;
  }

  static async create(partial: Partial<SimOptions>): Promise<Simulator> {
    const opts: SimOptions = { ...defaultSimOptions, ...partial };
    if (opts.masternodes < 1 || opts.masternodes > opts.nodes)
      throw new RangeError(`--masternodes must be 1..${opts.nodes}, got ${opts.masternodes}`);
    const operators = Array.from({ length: opts.masternodes }, (_, i) =>
      KeyPair.fromSeed(sha256(Buffer.from(`sim-${opts.seed}-operator-${i}`))),
    );
    const genesis = makeGenesisSpec({
      network: "devnet",
      timestamp: SIM_EPOCH_MS,
      blockTimeMs: opts.blockTimeMs,
      masternodes: operators.map((k, i) => ({
        operatorPubkey: k.publicKey,
        address: `${hostOf(i)}:${P2P_PORT}`,
        ...(opts.genesisTier !== undefined ? { tier: opts.genesisTier } : {}),
      })),
      ...(opts.allocations !== undefined ? { allocations: [...opts.allocations] } : {}),
    });
    const dir = mkdtempSync(join(tmpdir(), `timed-sim-${opts.seed}-`));
    const sim = new Simulator(opts, dir, genesis);
    sim.operators = operators;
    installVerifyCache(sim.verifyCache);
    try {
      for (let i = 0; i < opts.nodes; i++) sim.addNode(i < opts.masternodes);
      for (const n of sim.nodes) {
        await n.start();
        if (opts.startSpacingMs > 0) await sim.run(opts.startSpacingMs);
      }
    } catch (e) {
      await sim.stop();
      throw e;
    }
    return sim;
  }

  /** Builds the data directory of a new node (not started). Masternodes must be in the genesis. */
  addNode(masternode: boolean): SimNode {
    const i = this.nodes.length;
    if (masternode && i >= this.operators.length)
      throw new Error(`node ${i} cannot be a masternode: the genesis lists ${this.operators.length}`);
    const name = masternode ? `mn-${i}` : `fn-${i}`;
    const host = hostOf(i);
    const nodeKey = KeyPair.fromSeed(sha256(Buffer.from(`sim-${this.opts.seed}-node-${i}`)));
    const earlier = this.nodes.filter((n) => !n.left);
    const boot = new Set<string>();
    for (let k = 0; k < this.opts.bootstrapPeers * 4 && boot.size < this.opts.bootstrapPeers; k++) {
      if (earlier.length === 0) break;
      boot.add(`${earlier[this.random.int(earlier.length)]!.host}:${P2P_PORT}`);
    }
    const set: ConfigOverrides = scaledIntervals(this.opts.blockTimeMs);
    set.node = { name };
    set.network = {
      ...set.network,
      listen_address: `${host}:${P2P_PORT}`,
      bootstrap_peers: [...boot],
      ...(this.opts.maxOutbound !== undefined ? { max_outbound: this.opts.maxOutbound } : {}),
      plaintext_transport: this.opts.transport === "plaintext",
    };
    set.consensus = { min_masternodes: this.opts.minMasternodes };
    const extra = this.opts.configFor?.(i, masternode) ?? {};
    for (const [k, v] of Object.entries(extra) as Array<[keyof ConfigOverrides, object]>)
      (set as Record<string, object>)[k] = { ...((set as Record<string, object>)[k] ?? {}), ...v };
    set.rpc = { enabled: false };
    set.logging = { level: this.opts.logLevel, format: "json" };
    const r = initDataDir({
      dir: join(this.dir, name),
      network: "devnet",
      masternode,
      genesis: this.genesis,
      nodeKey,
      now: SIM_EPOCH_MS,
      set,
      ...(masternode ? { operatorKey: this.operators[i]! } : {}),
    });
    const skew =
      this.opts.maxSkewMs > 0 ? Math.round((this.random.float() * 2 - 1) * this.opts.maxSkewMs) : 0;
    const node = new SimNode(
      this,
      i,
      name,
      host,
      r.dir,
      r.nodeId,
      masternode,
      masternode ? this.operators[i]! : null,
      skew,
    );
    this.nodes.push(node);
    return node;
  }

  /** Wires the observers to a node that (re)starts. */
  observe(n: SimNode): void {
    const chain = n.n.chain;
    chain.events.on("tip", (e) => {
      this.record(`t ${n.index} ${e.height} ${e.hash.toString("hex")}`);
      this.invariants.onTip(n, e);
    });
    chain.events.on("reorg", (e) => this.invariants.onReorg(n, e.depth));
    chain.events.on("finalized", (e) => {
      this.record(`f ${n.index} ${e.checkpoint.epoch} ${e.checkpoint.hash.toString("hex")}`);
      this.invariants.onFinalized(n, Math.floor(e.checkpoint.epoch / 2), e.checkpoint.hash);
    });
    if (this.opts.transport === "encrypted") {
      // Sealed Goodbyes cannot be read on the wire: count the reasons the nodes close with.
      const count = (reason: number, byUs: boolean): void => {
        if (!byUs) return;
        const why = GoodbyeReason[reason] ?? String(reason);
        this.goodbyes.set(why, (this.goodbyes.get(why) ?? 0) + 1);
      };
      n.n.peers.events.on("peerClosed", (e) => count(e.reason, e.byUs));
      n.n.peers.events.on("handshakeFailed", (e) => count(e.reason, e.byUs));
    }
  }

  /** Frames written, by message type (a write is one frame unless a peer batches). */
  readonly framesByType = new Map<number, { frames: number; bytes: number }>();

  private onWrite(from: string, to: string, chunk: Buffer): void {
    this.record(`w ${from} ${to} ${chunk.length}`);
    // A sealed record hides its type: encrypted runs count every write as one "sealed" type.
    if (this.opts.transport === "encrypted") {
      const s = this.framesByType.get(SEALED) ?? { frames: 0, bytes: 0 };
      s.frames++;
      s.bytes += chunk.length;
      this.framesByType.set(SEALED, s);
      return;
    }
    const type = chunk.length >= 14 ? chunk.readUInt16LE(4) : -1;
    const s = this.framesByType.get(type) ?? { frames: 0, bytes: 0 };
    s.frames++;
    s.bytes += chunk.length;
    this.framesByType.set(type, s);
    if (type === (MsgType.Goodbye as number)) {
      try {
        const m = decodeMessage(MsgType.Goodbye, chunk.subarray(FRAME_HEADER_SIZE));
        const why = m.type === MsgType.Goodbye ? (GoodbyeReason[m.reason] ?? String(m.reason)) : "?";
        this.goodbyes.set(why, (this.goodbyes.get(why) ?? 0) + 1);
      } catch {
        this.goodbyes.set("malformed", (this.goodbyes.get("malformed") ?? 0) + 1);
      }
    }
  }

  /** Goodbyes sent, by reason: connection churn shows here. */
  readonly goodbyes = new Map<string, number>();

  /** Adds one line to the event trace. */
  record(line: string): void {
    this.trace.update(`${this.clock.now()} ${line}\n`);
    this.traceEvents++;
  }

  /** The hash of the event trace so far (one seed, one hash). */
  traceHash(): string {
    return `${this.trace.copy().digest("hex").slice(0, 32)} (${this.traceEvents} events)`;
  }

  running(): SimNode[] {
    return this.nodes.filter((n) => n.running);
  }

  honestRunning(): SimNode[] {
    return this.nodes.filter((n) => n.running && n.honest);
  }

  masternodes(): SimNode[] {
    return this.nodes.filter((n) => n.masternode);
  }

  /** Lets every pending callback run: microtasks, then once around the event loop. */
  async settle(): Promise<void> {
    await new Promise((r) => setImmediate(r));
  }

  /**
   * Runs the network for `ms` of virtual time: fires timers in order, instant by instant, lets
   * the nodes react between instants, and checks the invariants as it goes. Throws
   * InvariantViolation at the first violation.
   */
  async run(ms: number): Promise<void> {
    const end = this.clock.now() + ms;
    for (;;) {
      if (this.stopped) throw new Error("the simulation has stopped");
      const due = this.clock.nextDue();
      const at = due === undefined || due > end ? end : due;
      const next = this.invariants.nextCheckAt();
      if (next <= at) {
        this.clock.fireUntil(next);
        if (this.clock.now() < next) this.clock.set(next);
        await this.settle();
        this.invariants.check();
        if (this.opts.onProgress && this.clock.now() >= this.nextProgressAt) {
          this.nextProgressAt = this.clock.now() + this.opts.progressEveryMs;
          this.opts.onProgress(this);
        }
        continue;
      }
      if (at >= end && (due === undefined || due > end)) {
        if (this.clock.now() < end) this.clock.set(end);
        await this.settle();
        return;
      }
      this.clock.fireUntil(at);
      this.steps++;
      await this.settle();
    }
  }

  /** Runs until `cond` holds (checked after every instant) or `maxMs` passes; returns the time it took. */
  async runUntil(what: string, cond: () => boolean, maxMs: number, pollMs = 100): Promise<number> {
    const start = this.clock.now();
    while (!cond()) {
      if (this.clock.now() - start >= maxMs)
        throw new Error(`not within ${maxMs} ms of virtual time: ${what}\n${this.describe()}`);
      await this.run(pollMs);
    }
    return this.clock.now() - start;
  }

  /** Splits the nodes into groups that cannot reach each other. */
  partition(groups: ReadonlyArray<readonly SimNode[]>): void {
    this.record(`partition ${groups.map((g) => g.map((n) => n.index).join(",")).join("|")}`);
    this.net.partition(groups.map((g) => g.map((n) => n.host)));
  }

  /** Ends every partition; honest tips must agree within `boundMs` (an invariant). */
  heal(boundMs: number): void {
    this.record("heal");
    this.net.heal();
    this.invariants.expectConvergence(boundMs);
  }

  describe(): string {
    return this.nodes.map((n) => n.describe()).join("\n");
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    // A crash, not a stop: nothing after the run should depend on the network running on.
    for (const n of this.nodes) n.crash();
    installVerifyCache(null);
    await this.settle();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
