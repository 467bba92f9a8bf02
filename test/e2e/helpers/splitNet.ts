/**
 * Network partitions for the fork-resolution tests, done the way an operator would: each node
 * bans the other side's IPs over JSON-RPC (`setban`), and the split is healed with `clearbanned`
 * and `addnode`. Also: the chain events each node sees (reorgs, tips, mempool re-admissions),
 * recorded from before the split, so a test can show how every node reached the final tip.
 */
import type { BlockIndex } from "../../../src/chain/chainStore.js";
import type { NodeHandle } from "./nodes.js";
import { waitFor } from "./nodes.js";

const hex = (b: Buffer): string => b.toString("hex");

/** The nodes sorted by operator key: the registry's order, which the producer schedule walks. */
export function byOperatorKey(nodes: readonly NodeHandle[]): NodeHandle[] {
  return [...nodes].sort((a, b) => Buffer.compare(a.operatorKey!.publicKey, b.operatorKey!.publicKey));
}

/**
 * Two halves that alternate in registry order (0, 2, 4 | 1, 3, 5). The schedule gives height h's
 * rounds to consecutive registry entries, so each half misses at most one round before its own
 * turn: both halves produce at about the same rate.
 */
export function interleavedHalves(nodes: readonly NodeHandle[]): [NodeHandle[], NodeHandle[]] {
  const sorted = byOperatorKey(nodes);
  return [sorted.filter((_, i) => i % 2 === 0), sorted.filter((_, i) => i % 2 === 1)];
}

/** Whether `h` has a ready peer among `others`. */
function linkedTo(h: NodeHandle, others: readonly NodeHandle[]): boolean {
  const ids = new Set(h.peerIds());
  return others.some((o) => ids.has(o.nodeId));
}

/**
 * Splits the network: every node of `a` bans every IP of `b` and the other way round, through
 * RPC (banning also disconnects). Waits until no link crosses the split.
 */
export async function partition(
  a: readonly NodeHandle[],
  b: readonly NodeHandle[],
  seconds = 600,
): Promise<void> {
  const bans: Array<Promise<unknown>> = [];
  for (const x of a) for (const y of b) bans.push(x.rpc.call("setban", [y.host, "add", seconds]));
  for (const y of b) for (const x of a) bans.push(y.rpc.call("setban", [x.host, "add", seconds]));
  await Promise.all(bans);
  await waitFor(
    "no connection across the split",
    () => a.every((x) => !linkedTo(x, b)) && b.every((y) => !linkedTo(y, a)),
    { timeoutMs: 10_000, detail: () => [...a, ...b].map((h) => h.describe()).join("\n") },
  );
}

/** Heals the split: `clearbanned` everywhere, then `addnode onetry` to every other node. */
export async function heal(nodes: readonly NodeHandle[]): Promise<void> {
  const lifted = await Promise.all(nodes.map((h) => h.rpc.call<number>("clearbanned")));
  if (lifted.some((n) => n === 0)) throw new Error(`clearbanned lifted ${lifted.join(", ")} bans`);
  const adds: Array<Promise<unknown>> = [];
  for (const x of nodes) {
    for (const y of nodes) {
      // Already connected (a masternode redial got there first) is fine: onetry just dials once.
      if (x !== y && !x.peerIds().includes(y.nodeId)) adds.push(x.rpc.call("addnode", [y.p2p, "onetry"]));
    }
  }
  await Promise.all(adds);
}

export interface ReorgSeen {
  depth: number;
  forkHeight: number;
  forkHash: string;
  oldTip: string;
  newTip: string;
  oldHeight: number;
  newHeight: number;
  /**
   * Chain work of the old and the new tip (decimal): fork choice must have preferred the new one,
   * unless the old branch had lost the final block (finalHeight above forkHeight).
   */
  oldWork: string;
  newWork: string;
  /** The node's final height when it switched. */
  finalHeight: number;
}

/** What one node's chain and mempool did while recorded. */
export class ChainRecorder {
  readonly reorgs: ReorgSeen[] = [];
  /** Every tip the node had, in order: height and hash. */
  readonly tips: Array<{ height: number; hash: string }> = [];
  /** Txids added to the mempool, with the time (re-admissions after a reorg are among them). */
  readonly mempoolAdds: Array<{ txid: string; at: number }> = [];
  private readonly offs: Array<() => void>;

  constructor(readonly h: NodeHandle) {
    const n = h.n;
    this.offs = [
      n.chain.events.on("reorg", (r) =>
        this.reorgs.push({
          depth: r.depth,
          forkHeight: r.fork.height,
          forkHash: hex(r.fork.hash),
          oldTip: hex(r.oldTip.hash),
          newTip: hex(r.newTip.hash),
          oldHeight: r.oldTip.height,
          newHeight: r.newTip.height,
          oldWork: r.oldTip.work.toString(),
          newWork: r.newTip.work.toString(),
          finalHeight: n.chain.finality.finalizedHeight,
        }),
      ),
      n.chain.events.on("tip", (t: BlockIndex) => this.tips.push({ height: t.height, hash: hex(t.hash) })),
      n.mempool.events.on("txAdded", ({ txid }) =>
        this.mempoolAdds.push({ txid: hex(txid), at: Date.now() }),
      ),
    ];
  }

  stop(): void {
    for (const off of this.offs.splice(0)) off();
  }
}

/** Height spread (max − min) of the running nodes' tips, read in one synchronous pass. */
export function heightSpread(nodes: readonly NodeHandle[]): { spread: number; heights: number[] } {
  const heights = nodes.map((h) => h.n.chain.height);
  return { spread: Math.max(...heights) - Math.min(...heights), heights };
}
