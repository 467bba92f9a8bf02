/**
 * What must hold at every step of a simulation, whatever the faults (docs/SIMULATION.md):
 *
 * - chain-valid: every block an honest node puts on its main chain passes the stateless rules
 *   again here (hash, signature, merkle root, size), links to its parent and is one higher;
 * - converged: after a heal, all running honest nodes are on one tip within the stated bound;
 * - no-honest-ban: no honest node holds a ban on an honest node (by address or node id);
 * - bounded-memory: per node, pending timers, peers and mempool stay under their caps, and the
 *   process heap per running node stays under a budget;
 * - final-agreement: no two honest nodes ever hold different final blocks at one height, and a
 *   node's final block only moves forward along its own chain (docs/CONSENSUS.md, "Safety").
 *
 * A violation throws InvariantViolation, which names the seed, the virtual time and the command
 * that repeats the run.
 */
import { checkBlockSanity } from "../../src/consensus/validation.js";
import { verifySignature } from "../../src/crypto/ed25519.js";
import type { BlockIndex } from "../../src/chain/storeLayout.js";
import { blockHash, blockSigMessage } from "../../src/primitives/block.js";
import type { SimNode, Simulator } from "./simulator.js";

export interface InvariantOptions {
  /** Virtual ms between sweeps (tip spread, bans, memory, convergence deadlines). */
  checkEveryMs: number;
  /** Pending timers one node may hold (a leak shows here first). */
  maxTimersPerNode: number;
  /** Process heap per running node, bytes, on top of a fixed base. */
  maxHeapPerNodeBytes: number;
  /** A node younger than this is still catching up: left out of the tip spread. */
  syncGraceMs: number;
}

export const defaultInvariantOptions: InvariantOptions = {
  checkEveryMs: 1_000,
  maxTimersPerNode: 20_000,
  maxHeapPerNodeBytes: 16 * 1024 * 1024,
  syncGraceMs: 120_000,
};

/**
 * Heap the simulator may use beyond the nodes' budget, over what the process held when the
 * simulation began (code, caches, garbage not yet collected: a test process runs several).
 */
const HEAP_BASE_BYTES = 256 * 1024 * 1024;

export type InvariantName =
  "chain-valid" | "converged" | "no-honest-ban" | "bounded-memory" | "final-agreement";

export class InvariantViolation extends Error {
  constructor(
    readonly invariant: InvariantName,
    readonly detail: string,
    readonly virtualMs: number,
    readonly reproduce: string,
  ) {
    super(
      `invariant ${invariant} violated at virtual time ${(virtualMs / 1000).toFixed(3)} s: ${detail}\nreproduce: ${reproduce}`,
    );
    this.name = "InvariantViolation";
  }
}

export class Invariants {
  readonly opts: InvariantOptions;
  /** How many times each invariant was checked. */
  readonly checks: Record<InvariantName, number> = {
    "chain-valid": 0,
    converged: 0,
    "no-honest-ban": 0,
    "bounded-memory": 0,
    "final-agreement": 0,
  };
  /** The final block at each height, as the first honest node to finalise it saw it. */
  private readonly finalAt = new Map<number, string>();
  /** Blocks made final, by virtual ms after their height was first reached (finality lag). */
  readonly finalityLags: number[] = [];
  private readonly firstAt = new Map<number, number>();
  /** Tip spread (highest minus lowest honest height), one sample per sweep. */
  readonly spreads: number[] = [];
  /** Depth of every reorg an honest node made. */
  readonly reorgDepths: number[] = [];
  /** Virtual ms from each heal to one honest tip. */
  readonly healTimes: number[] = [];
  /** The command that repeats this run, printed with a violation. */
  reproduce = "";
  peakHeapBytes = 0;
  private nextAt: number;
  private readonly heapAtStart = process.memoryUsage().heapUsed;
  private convergence: { since: number; deadline: number; kind: "heal" | "final" } | null = null;

  constructor(
    private readonly sim: Simulator,
    opts: Partial<InvariantOptions>,
  ) {
    this.opts = { ...defaultInvariantOptions, ...opts };
    this.nextAt = sim.clock.now() + this.opts.checkEveryMs;
  }

  nextCheckAt(): number {
    return this.nextAt;
  }

  /**
   * All running honest nodes must share one tip within `boundMs`. A heal's time to one tip is
   * reported (healTimes); the final agreement a scenario asks for at its end is only checked.
   */
  expectConvergence(boundMs: number, kind: "heal" | "final" = "heal"): void {
    const now = this.sim.clock.now();
    this.convergence = { since: now, deadline: now + boundMs, kind };
    if (this.oneTip()) this.converged();
  }

  /** Whether a convergence is still awaited. */
  get converging(): boolean {
    return this.convergence !== null;
  }

  fail(invariant: InvariantName, detail: string): never {
    throw new InvariantViolation(invariant, detail, this.sim.clock.now() - this.simStart(), this.reproduce);
  }

  private simStart(): number {
    return this.sim.startMs;
  }

  /** A node's tip changed: check the new tip block again, from scratch. */
  onTip(n: SimNode, e: BlockIndex): void {
    if (!n.honest || !n.running) return;
    const chain = n.n.chain;
    // Events of a batch fire after its commit: a block a later one in the batch replaced is gone.
    if (!chain.isMain(e)) return;
    if (!this.firstAt.has(e.height)) {
      this.firstAt.set(e.height, this.sim.clock.now());
      for (const h of this.firstAt.keys()) if (h < e.height - 1_000) this.firstAt.delete(h);
    }
    this.checks["chain-valid"]++;
    const block = chain.getBlock(e.hash);
    const where = `${n.name} tip ${e.hash.toString("hex")} at height ${e.height}`;
    if (!block) this.fail("chain-valid", `${where}: the block is not stored`);
    if (e.height === 0) return;
    const h = block.header;
    if (!blockHash(h).equals(e.hash)) this.fail("chain-valid", `${where}: the header hashes elsewhere`);
    if (h.height !== e.height) this.fail("chain-valid", `${where}: the header says height ${h.height}`);
    const parent = chain.getIndex(h.prevHash);
    if (!parent || parent.height !== e.height - 1 || !chain.isMain(parent))
      this.fail("chain-valid", `${where}: its parent is not the main-chain block one below`);
    if (!verifySignature(h.producer, blockSigMessage(e.hash), h.signature))
      this.fail("chain-valid", `${where}: the producer's signature does not verify`);
    try {
      checkBlockSanity(block);
    } catch (err) {
      this.fail("chain-valid", `${where}: ${(err as Error).message}`);
    }
    if (this.convergence && this.oneTip()) this.converged();
  }

  /**
   * A node finalised a block: it must be the block every other honest node finalised at that
   * height, and on this node's chain above its previous final block (which Chain enforces).
   */
  onFinalized(n: SimNode, height: number, hash: Buffer): void {
    if (!n.honest) return;
    this.checks["final-agreement"]++;
    const hex = hash.toString("hex");
    const seen = this.finalAt.get(height);
    if (seen !== undefined && seen !== hex)
      this.fail(
        "final-agreement",
        `${n.name} finalised ${hex} at height ${height}; another honest node finalised ${seen}`,
      );
    if (seen === undefined) {
      this.finalAt.set(height, hex);
      const first = this.firstAt.get(height);
      if (first !== undefined) this.finalityLags.push(this.sim.clock.now() - first);
      // Keep the maps bounded: heights far below are settled.
      for (const h of this.finalAt.keys()) if (h < height - 1_000) this.finalAt.delete(h);
    }
    // Every ancestor this node holds at a height another node finalised must match too.
    for (const [h, other] of this.finalAt) {
      if (h >= height) continue;
      const mine = n.n.chain.getHashAtHeight(h)?.toString("hex");
      if (mine !== undefined && mine !== other)
        this.fail(
          "final-agreement",
          `${n.name} finalised height ${height}, whose chain has ${mine} at final height ${h}; another honest node finalised ${other}`,
        );
    }
  }

  onReorg(n: SimNode, depth: number): void {
    if (n.honest) this.reorgDepths.push(depth);
  }

  /** The periodic sweep. */
  check(): void {
    const now = this.sim.clock.now();
    this.nextAt = now + this.opts.checkEveryMs;
    const honest = this.sim.honestRunning();
    // Tip spread among nodes past their catch-up grace.
    let lo = Infinity;
    let hi = -Infinity;
    for (const n of honest) {
      if (now - n.startedAt < this.opts.syncGraceMs) continue;
      const h = n.n.chain.height;
      if (h < lo) lo = h;
      if (h > hi) hi = h;
    }
    if (hi >= lo) this.spreads.push(hi - lo);
    this.checkBans(honest);
    this.checkMemory(honest);
    if (this.convergence) {
      this.checks.converged++;
      if (this.oneTip()) this.converged();
      else if (now >= this.convergence.deadline) {
        const tips = new Map<string, string[]>();
        for (const n of honest) {
          const k = `${n.n.chain.height}:${n.n.chain.tip.hash.toString("hex").slice(0, 12)}`;
          tips.set(k, [...(tips.get(k) ?? []), n.name]);
        }
        const list = [...tips].map(([k, v]) => `${k} (${v.length}: ${v.slice(0, 5).join(", ")})`).join("; ");
        this.fail(
          "converged",
          `${tips.size} honest tips ${((now - this.convergence.since) / 1000).toFixed(1)} s after the heal: ${list}`,
        );
      }
    }
  }

  private oneTip(): boolean {
    let tip: Buffer | null = null;
    for (const n of this.sim.honestRunning()) {
      const t = n.n.chain.tip.hash;
      if (tip === null) tip = t;
      else if (!tip.equals(t)) return false;
    }
    return true;
  }

  private converged(): void {
    const c = this.convergence!;
    if (c.kind === "heal") this.healTimes.push(this.sim.clock.now() - c.since);
    this.convergence = null;
  }

  private checkBans(honest: readonly SimNode[]): void {
    this.checks["no-honest-ban"]++;
    const honestSubjects = new Map<string, string>();
    for (const n of this.sim.nodes) {
      if (!n.honest) continue;
      honestSubjects.set(n.host, n.name);
      honestSubjects.set(n.nodeId, n.name);
    }
    for (const n of honest) {
      for (const b of n.n.peers.listBanned()) {
        const victim = honestSubjects.get(b.subject);
        if (victim) this.fail("no-honest-ban", `${n.name} banned honest ${victim}: ${b.reason}`);
      }
    }
  }

  private checkMemory(honest: readonly SimNode[]): void {
    this.checks["bounded-memory"]++;
    for (const n of honest) {
      const timers = n.clock?.timerCount ?? 0;
      if (timers > this.opts.maxTimersPerNode)
        this.fail(
          "bounded-memory",
          `${n.name} holds ${timers} pending timers (cap ${this.opts.maxTimersPerNode})`,
        );
      const node = n.n;
      const peers = node.peers.connectionCounts().total;
      if (peers > node.config.network.max_peers)
        this.fail(
          "bounded-memory",
          `${n.name} has ${peers} peers (max_peers ${node.config.network.max_peers})`,
        );
    }
    if (this.checks["bounded-memory"] % 10 !== 0) return;
    const heap = process.memoryUsage().heapUsed;
    this.peakHeapBytes = Math.max(this.peakHeapBytes, heap);
    const budget =
      this.heapAtStart + HEAP_BASE_BYTES + this.sim.running().length * this.opts.maxHeapPerNodeBytes;
    if (heap > budget)
      this.fail(
        "bounded-memory",
        `heap ${(heap / 2 ** 20).toFixed(0)} MiB for ${this.sim.running().length} nodes is over ${(budget / 2 ** 20).toFixed(0)} MiB`,
      );
  }
}
