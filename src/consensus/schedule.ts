import { Reader, Writer, decodeExact } from "../codec/index.js";
import { PUBKEY_LEN } from "../crypto/ed25519.js";
import type { ChainParams } from "../primitives/params.js";
import { MAX_REGISTRY_SIZE, findByOperator, type MasternodeEntry, type Registry } from "./registry.js";
import { TIER_WEIGHT } from "./tier.js";

/**
 * The producer schedule (docs/CONSENSUS.md, "Producer schedule"): smooth weighted round-robin
 * (Tendermint's proposer priority) over epochs of EPOCH_BLOCKS heights.
 *
 * - Epoch e covers heights e·E + 1 … (e + 1)·E. Its members are the registry after its anchor,
 *   the block at height e·E (the genesis for epoch 0), each with its consensus weight (the tier
 *   weight) and a priority carried over from the epoch before.
 * - Each height of the epoch, in order: every member's priority grows by its weight; the member
 *   with the highest priority (ties: the smaller operator key) is the round-0 producer, and its
 *   priority drops by the total weight W.
 * - Nothing a producer puts in a block enters this: not its hash, timestamp or transactions. Only
 *   the registry at each anchor does, and a registration made mid-epoch waits for the next one.
 * - Over any window of L heights in which the members are unchanged, a member of weight w holds
 *   round 0 within 3 of L·w/W times (its priority stays in (−W, 2W), and each selection costs W).
 *
 * Rounds r ≥ 1 (a silent producer's fallbacks) walk every member once: the round-0 producer, then
 * the rest by their priority at that height, highest first. Members no longer registered after
 * the parent (deregistered, collateral spent, or slashed for equivocation) are skipped at once.
 */

/** Heights per schedule epoch: membership changes reach the schedule at most this often. */
export const EPOCH_BLOCKS = 32;

/**
 * A newcomer starts at −(W + W/8), Tendermint's choice: behind every member already there, so a
 * registration never buys an immediate slot.
 */
const NEWCOMER_PENALTY_NUM = 9n;
const NEWCOMER_PENALTY_DEN = 8n;
/** Priorities are rescaled when their spread exceeds this many times W (after newcomers join). */
const MAX_PRIORITY_SPREAD = 4;

export interface ScheduleMember {
  operatorPubkey: Buffer;
  weight: number;
  /** Priority at the start of the epoch. */
  priority: number;
}

export interface EpochSchedule {
  epoch: number;
  /** Sorted by operator key. */
  members: readonly ScheduleMember[];
  totalWeight: number;
  /** Member index of the round-0 producer of each height of the epoch, in order. */
  sequence: Uint32Array;
}

/** The epoch that contains `height` (≥ 1). */
export function epochOf(height: number): number {
  return Math.floor((height - 1) / EPOCH_BLOCKS);
}

/** Height of the block after which epoch `epoch`'s schedule is fixed (its anchor). */
export function anchorHeightOf(epoch: number): number {
  return epoch * EPOCH_BLOCKS;
}

export function consensusWeight(e: MasternodeEntry): number {
  return Number(TIER_WEIGHT[e.tier]);
}

/** Runs EPOCH_BLOCKS steps of the round-robin from `priorities` (mutated) and returns the sequence. */
function runEpoch(weights: readonly number[], priorities: number[], total: number): Uint32Array {
  const seq = new Uint32Array(EPOCH_BLOCKS);
  const n = weights.length;
  for (let step = 0; step < EPOCH_BLOCKS; step++) {
    let best = 0;
    for (let i = 0; i < n; i++) {
      priorities[i]! += weights[i]!;
      if (priorities[i]! > priorities[best]!) best = i;
    }
    priorities[best]! -= total;
    seq[step] = best;
  }
  return seq;
}

function build(
  epoch: number,
  entries: Array<{ key: Buffer; weight: number; priority: number }>,
): EpochSchedule {
  const weights = entries.map((e) => e.weight);
  const total = weights.reduce((a, b) => a + b, 0);
  const start = entries.map((e) => e.priority);
  const sequence = runEpoch(weights, start.slice(), total);
  return {
    epoch,
    members: entries.map((e) => ({ operatorPubkey: e.key, weight: e.weight, priority: e.priority })),
    totalWeight: total,
    sequence,
  };
}

/** Epoch 0: the genesis registry, every priority 0. */
export function genesisSchedule(registry: Registry): EpochSchedule {
  return build(
    0,
    registry.map((e) => ({ key: e.operatorPubkey, weight: consensusWeight(e), priority: 0 })),
  );
}

/** Each member's priority after the whole epoch has run. */
export function endPriorities(s: EpochSchedule): number[] {
  const p = s.members.map((m) => m.priority + EPOCH_BLOCKS * m.weight);
  for (const i of s.sequence) p[i]! -= s.totalWeight;
  return p;
}

/**
 * The schedule of epoch `prev.epoch + 1`, from the previous one and the registry after its anchor.
 * Members that stay keep their priority; newcomers start at −(W + W/8); then priorities are
 * centred on 0 and, if their spread exceeds 4W, scaled down.
 */
export function nextSchedule(prev: EpochSchedule, registry: Registry): EpochSchedule {
  const carried = new Map<string, number>();
  const end = endPriorities(prev);
  prev.members.forEach((m, i) => carried.set(m.operatorPubkey.toString("hex"), end[i]!));
  const weights = registry.map((e) => consensusWeight(e));
  const total = weights.reduce((a, b) => a + b, 0);
  const penalty = -Number((BigInt(total) * NEWCOMER_PENALTY_NUM) / NEWCOMER_PENALTY_DEN);
  const p = registry.map((e) => carried.get(e.operatorPubkey.toString("hex")) ?? penalty);
  if (p.length > 0) {
    const avg = Math.floor(p.reduce((a, b) => a + b, 0) / p.length);
    for (let i = 0; i < p.length; i++) p[i]! -= avg;
    const spread = Math.max(...p) - Math.min(...p);
    const limit = MAX_PRIORITY_SPREAD * total;
    if (spread > limit) {
      const ratio = Math.ceil(spread / limit);
      for (let i = 0; i < p.length; i++) p[i] = Math.trunc(p[i]! / ratio);
    }
  }
  return build(
    prev.epoch + 1,
    registry.map((e, i) => ({ key: e.operatorPubkey, weight: weights[i]!, priority: p[i]! })),
  );
}

/** Round-list cache: (schedule, step) → member indices in round order. Bounded per schedule. */
const orderCache = new WeakMap<EpochSchedule, Map<number, number[]>>();

/** Member indices in round order at step `k` of the epoch: the round-0 producer, then by priority. */
function roundOrder(s: EpochSchedule, k: number): number[] {
  let perStep = orderCache.get(s);
  if (!perStep) {
    perStep = new Map();
    orderCache.set(s, perStep);
  }
  const hit = perStep.get(k);
  if (hit) return hit;
  const n = s.members.length;
  // Priorities at step k, after the increment and before the winner pays W.
  const p = s.members.map((m) => m.priority + (k + 1) * m.weight);
  for (let j = 0; j < k; j++) p[s.sequence[j]!]! -= s.totalWeight;
  const first = s.sequence[k]!;
  const rest: number[] = [];
  for (let i = 0; i < n; i++) if (i !== first) rest.push(i);
  rest.sort((a, b) => p[b]! - p[a]! || a - b);
  const order = [first, ...rest];
  if (perStep.size >= EPOCH_BLOCKS) perStep.clear();
  perStep.set(k, order);
  return order;
}

/**
 * The masternode entitled to produce at (height, round), given the schedule of the height's
 * epoch and `live`, the registry after the block's parent: the round-th member in round order
 * among those still in `live` (wrapping around). When no member is live any more, the live
 * registry itself rotates (see below). Undefined only when `live` is empty.
 */
export function scheduledProducer(
  s: EpochSchedule,
  height: number,
  round: number,
  live: Registry,
): MasternodeEntry | undefined {
  const k = height - 1 - anchorHeightOf(s.epoch);
  if (k < 0 || k >= EPOCH_BLOCKS) throw new RangeError(`height ${height} is not in epoch ${s.epoch}`);
  const order = roundOrder(s, k);
  const alive: MasternodeEntry[] = [];
  for (const i of order) {
    const e = findByOperator(live, s.members[i]!.operatorPubkey);
    if (e) {
      alive.push(e);
      if (alive.length > round) return e;
    }
  }
  if (alive.length > 0) return alive[round % alive.length];
  // Every member of this epoch's schedule has left the registry. Rather than
  // halting the chain until the next anchor (which could then never come),
  // fall back to the live registry in its canonical order (sorted by operator
  // key), rotating by position in the epoch. Reaching this needs every
  // scheduled member to deregister, i.e. all of the epoch's weight.
  if (live.length === 0) return undefined;
  return live[(k + round) % live.length];
}

/** Earliest timestamp a block of `round` may carry, given its parent's timestamp. */
export function slotStart(params: ChainParams, parentTimestamp: number, round: number): number {
  return parentTimestamp + params.blockTimeMs + round * params.roundTimeoutMs;
}

/** The round whose slot is open at `now` (the latest round whose slot has started), or -1 if none. */
export function currentRound(params: ChainParams, parentTimestamp: number, now: number): number {
  const first = parentTimestamp + params.blockTimeMs;
  if (now < first) return -1;
  return Math.floor((now - first) / params.roundTimeoutMs);
}

// ---- storage encoding (local to a node; not part of any hash) ----

const I64_BIAS = 1n << 63n;

export function encodeSchedule(s: EpochSchedule): Buffer {
  const w = new Writer(16 + s.members.length * 48 + EPOCH_BLOCKS * 4);
  w.u32(s.epoch);
  w.array(s.members, MAX_REGISTRY_SIZE, (w, m) => {
    w.fixed(m.operatorPubkey, PUBKEY_LEN)
      .u32(m.weight)
      .u64(BigInt(m.priority) + I64_BIAS);
  });
  for (const i of s.sequence) w.u32(i);
  return w.toBuffer();
}

export function decodeSchedule(buf: Uint8Array): EpochSchedule {
  return decodeExact(buf, (r: Reader) => {
    const epoch = r.u32();
    const members = r.array(MAX_REGISTRY_SIZE, (r) => ({
      operatorPubkey: r.fixed(PUBKEY_LEN),
      weight: r.u32(),
      priority: Number(r.u64() - I64_BIAS),
    }));
    const sequence = new Uint32Array(EPOCH_BLOCKS);
    for (let i = 0; i < EPOCH_BLOCKS; i++) sequence[i] = r.u32();
    return { epoch, members, totalWeight: members.reduce((a, m) => a + m.weight, 0), sequence };
  });
}

/**
 * The schedule of `epoch` on a chain whose registry never changed from `registry` (tools, tests
 * and benchmarks that build chains offline). Cost: O(epoch × |registry|) once per call; walk it
 * forward with nextSchedule when building many blocks.
 */
export function scheduleOfFixedRegistry(registry: Registry, epoch: number): EpochSchedule {
  let s = genesisSchedule(registry);
  while (s.epoch < epoch) s = nextSchedule(s, registry);
  return s;
}
