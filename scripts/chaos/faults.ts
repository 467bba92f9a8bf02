/**
 * Choosing faults (from the seeded RNG only, so a seed replays the same schedule) and applying
 * the network ones on the switch. kill -9 and the restart are done by the controller, which
 * owns the processes.
 */
import { setPortBridge, setPortUp, type Topology } from "./netns.js";
import type { ChaosOptions } from "./options.js";
import type { Rng } from "./rng.js";

export type Fault =
  | { kind: "partition"; short: boolean; seconds: number; sides: number[][] }
  | { kind: "isolate"; short: boolean; seconds: number; node: number }
  | { kind: "kill"; short: false; seconds: number; node: number };

/** Short faults last at least this: shorter is below the ping interval and shows nothing. */
const SHORT_MIN_S = 1;

const tenths = (s: number): number => Math.round(s * 10) / 10;

/** A random k-way split of nodes 1..n, every side non-empty, sides sorted. */
function randomSides(rng: Rng, n: number, k: number): number[][] {
  const order = rng.shuffle(Array.from({ length: n }, (_, i) => i + 1));
  const sides: number[][] = Array.from({ length: k }, () => []);
  order.forEach((node, pos) => sides[pos < k ? pos : rng.int(0, k - 1)]!.push(node));
  for (const s of sides) s.sort((a, b) => a - b);
  return sides.sort((a, b) => a[0]! - b[0]!);
}

export function chooseFault(rng: Rng, o: ChaosOptions): Fault {
  const short = rng.next() < o.shortShare;
  const kind = short
    ? rng.pick(["partition", "isolate"] as const)
    : rng.pick(["partition", "isolate", "kill"] as const);
  const seconds = tenths(short ? rng.uniform(SHORT_MIN_S, o.shortMax) : rng.uniform(o.minFault, o.maxFault));
  switch (kind) {
    case "partition": {
      const k = o.nodes >= 3 ? rng.pick([2, 3]) : 2;
      return { kind, short, seconds, sides: randomSides(rng, o.nodes, k) };
    }
    case "isolate":
      return { kind, short, seconds, node: rng.int(1, o.nodes) };
    case "kill":
      return { kind, short: false, seconds, node: rng.int(1, o.nodes) };
  }
}

export function describeFault(f: Fault): string {
  const what =
    f.kind === "partition"
      ? `partition ${f.sides.length}-way ${f.sides.map((s) => `{${s.join(",")}}`).join(" | ")}`
      : f.kind === "isolate"
        ? `isolate node-${f.node}`
        : `kill -9 node-${f.node}, restart at heal`;
  return `${what} for ${f.seconds.toFixed(1)} s${f.short ? " (short)" : ""}`;
}

/** Applies a partition or an isolation on the switch. */
export function applyNetworkFault(t: Topology, f: Fault): void {
  if (f.kind === "partition") {
    // Side j goes onto bridge br<j+1>; br0 is left empty until the heal.
    f.sides.forEach((side, j) => side.forEach((node) => setPortBridge(t, node, j + 1)));
  } else if (f.kind === "isolate") {
    setPortUp(t, f.node, false);
  }
}

/** Every switch port back on br0 with its link up: the normal network. */
export function healNetwork(t: Topology): void {
  for (let i = 1; i <= t.nodes; i++) {
    setPortBridge(t, i, 0);
    setPortUp(t, i, true);
  }
}
