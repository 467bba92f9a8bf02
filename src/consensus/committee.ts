/**
 * Finality eras and their voter sets (docs/CONSENSUS.md, "Eras and the voter set"). Pure
 * functions: no chain state, no clock.
 *
 * The final chain is cut into eras of ERA_BLOCKS heights. Era e opens when the block at height
 * e * ERA_BLOCKS (its **anchor**) is final, and its voter set is drawn from the registry after
 * that anchor: every entry at its tier weight while the registry has at most COMMITTEE_SEATS
 * entries, otherwise a committee of COMMITTEE_SEATS seats sampled by weight, with replacement,
 * from the era's seed: the VRF output of the anchor's producer over the previous era's seed,
 * which the anchor's coinbase proves (eraSeedOf). Anchors are final, so every node and every branch that
 * counts era e's votes uses one voter set; that is what the safety argument needs. Era e's votes
 * make final at most the block at height (e + 1) * ERA_BLOCKS, the next era's anchor: what lies
 * above it is the next era's to finalise.
 */
import { Writer } from "../codec/index.js";
import { sha256 } from "../crypto/hash.js";
import { vrfProofOutput, VRF_PROOF_LEN } from "../crypto/vrf.js";
import { blockHash, type Block } from "../primitives/block.js";
import type { Registry } from "./registry.js";
import { TIER_WEIGHT } from "./tier.js";

/** Heights per era: the registry that votes changes at most this often. */
export const ERA_BLOCKS = 32;
/**
 * Seats in a sampled committee, and the largest registry that votes whole. With an attacker
 * holding a quarter of the weight, the chance that a draw gives it more than a third of the seats
 * is 7.1e-25 (committeeFailure below); see CONSENSUS.md for what grinding the seed changes.
 */
export const COMMITTEE_SEATS = 3_000;

const SEAT_DOMAIN = Buffer.from("TIME/committee/v1", "utf8");
const ERA_SEED_DOMAIN = Buffer.from("TIME/era-seed/v1", "utf8");

/**
 * Whether a block at `height` is an era's anchor (above the genesis): its coinbase then carries
 * its producer's VRF proof, whose output is the era's seed.
 */
export function isEraAnchor(height: number): boolean {
  return height > 0 && height % ERA_BLOCKS === 0;
}

/**
 * What era `era`'s anchor producer proves its VRF over: the domain, the genesis hash, the era,
 * and the seed of the era before. Each seed is a VRF output over the one before, so no producer
 * can pick a seed: the block it makes can only carry its key's one output for this input.
 */
export function eraSeedInput(genesisHash: Buffer, era: number, previousSeed: Buffer): Buffer {
  const w = new Writer(ERA_SEED_DOMAIN.length + 68);
  w.fixed(ERA_SEED_DOMAIN, ERA_SEED_DOMAIN.length).fixed(genesisHash, 32).u32(era).fixed(previousSeed, 32);
  return w.toBuffer();
}

/** The 4-byte height, then (at an era anchor) the 80-byte VRF proof: an anchor's coinbase payload. */
export const ANCHOR_PAYLOAD_LEN = 4 + VRF_PROOF_LEN;

/** The VRF proof an era anchor's coinbase payload carries (after its height). */
export function anchorProof(coinbasePayload: Buffer): Buffer {
  return coinbasePayload.subarray(4, ANCHOR_PAYLOAD_LEN);
}

/**
 * What the producer of the block at `height` proves its VRF over, when that block is an era's
 * anchor (else undefined): eraSeedInput with the previous anchor's seed, that anchor found by
 * `blockAt` on the block's branch (the genesis's seed is its hash). For builders of chains
 * outside a Chain (benches, tests, attack scenarios).
 */
export function anchorInput(
  genesisHash: Buffer,
  height: number,
  blockAt: (height: number) => Block | undefined,
): Buffer | undefined {
  if (!isEraAnchor(height)) return undefined;
  const era = height / ERA_BLOCKS;
  const previous = (era - 1) * ERA_BLOCKS;
  const b = previous === 0 ? undefined : blockAt(previous);
  const seed =
    previous === 0
      ? genesisHash
      : b && eraSeedOf({ hash: blockHash(b.header), height: previous, coinbasePayload: b.txs[0]!.payload });
  if (!seed) throw new Error(`no era anchor at height ${previous} to take the seed from`);
  return eraSeedInput(genesisHash, era, seed);
}

/**
 * The seed of the era an anchor opens, from the proof its coinbase carries (already verified
 * with the block): the first 32 bytes of the VRF output. The genesis (era 0) has no proof: its
 * seed is its hash.
 */
export function eraSeedOf(anchor: { hash: Buffer; height: number; coinbasePayload: Buffer }): Buffer | null {
  if (anchor.height === 0) return anchor.hash;
  const out = vrfProofOutput(anchorProof(anchor.coinbasePayload));
  return out && Buffer.from(out.subarray(0, 32));
}

/** The era in force while the last final block is at `finalHeight`. */
export function eraOfFinalHeight(finalHeight: number, eraBlocks = ERA_BLOCKS): number {
  return Math.floor(finalHeight / eraBlocks);
}

/** The height of era `era`'s anchor (the genesis for era 0). */
export function eraAnchorHeight(era: number, eraBlocks = ERA_BLOCKS): number {
  return era * eraBlocks;
}

/** The highest height era `era`'s votes can make final: the next era's anchor. */
export function eraEndHeight(era: number, eraBlocks = ERA_BLOCKS): number {
  return (era + 1) * eraBlocks;
}

/**
 * How a node cuts eras and draws their voter sets: the consensus rules, or (in tests of the
 * safety argument) shorter eras and voter sets of the test's choosing.
 */
export interface EraRules {
  eraBlocks: number;
  voters(registryAfterAnchor: Registry, seed: Buffer): VoterSet;
}

/** Who may vote on a link, and with what weight. */
export interface VoterSet {
  /** 0 for a key that may not vote. */
  weightOf(voter: Buffer): bigint;
  /** The weight a supermajority is measured against. */
  readonly total: bigint;
  /** Keys with a weight above 0 in the era's set. */
  readonly size: number;
  /** Whether this set is a sampled committee (weights are seats) or the whole registry. */
  readonly sampled: boolean;
}

function fromWeights(w: Map<string, bigint>, sampled: boolean): VoterSet {
  let total = 0n;
  for (const x of w.values()) total += x;
  return { total, size: w.size, sampled, weightOf: (voter) => w.get(voter.toString("hex")) ?? 0n };
}

/** The whole registry as a voter set, with its tier weights. */
export function registryVoters(registry: Registry): VoterSet {
  const w = new Map<string, bigint>();
  for (const e of registry) w.set(e.operatorPubkey.toString("hex"), TIER_WEIGHT[e.tier]);
  return fromWeights(w, false);
}

/** The number a seat draws: the first 8 bytes, big-endian, of SHA-256(domain ‖ seed ‖ u32 seat). */
export function seatDraw(seed: Buffer, seat: number): bigint {
  const w = new Writer(SEAT_DOMAIN.length + 36);
  w.fixed(SEAT_DOMAIN, SEAT_DOMAIN.length).fixed(seed, 32).u32(seat);
  return sha256(w.toBuffer()).readBigUInt64BE(0);
}

/**
 * COMMITTEE_SEATS seats drawn by weight, with replacement: seat j goes to the entry whose range
 * of cumulative weight (registry order, which is ascending operator key) holds
 * seatDraw(seed, j) mod W. An entry's weight in the committee is its number of seats.
 */
export function sampleCommittee(registry: Registry, seed: Buffer, seats = COMMITTEE_SEATS): VoterSet {
  const ends: bigint[] = [];
  let total = 0n;
  for (const e of registry) {
    total += TIER_WEIGHT[e.tier];
    ends.push(total);
  }
  const w = new Map<string, bigint>();
  if (total === 0n) return fromWeights(w, true);
  for (let j = 0; j < seats; j++) {
    const pos = seatDraw(seed, j) % total;
    // The first entry whose cumulative end is above pos.
    let lo = 0;
    let hi = ends.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (ends[mid]! > pos) hi = mid;
      else lo = mid + 1;
    }
    const id = registry[lo]!.operatorPubkey.toString("hex");
    w.set(id, (w.get(id) ?? 0n) + 1n);
  }
  return fromWeights(w, true);
}

/**
 * An era's voter set: the registry after its anchor, whole while it has at most
 * COMMITTEE_SEATS entries, else a committee sampled with the era's seed (eraSeedOf).
 */
export function eraVoters(registryAfterAnchor: Registry, seed: Buffer): VoterSet {
  return registryAfterAnchor.length <= COMMITTEE_SEATS
    ? registryVoters(registryAfterAnchor)
    : sampleCommittee(registryAfterAnchor, seed);
}

export const ERA_RULES: EraRules = { eraBlocks: ERA_BLOCKS, voters: (r, a) => eraVoters(r, a) };

/**
 * The voters of one link: its era's voter set, less the entries that are not in the registry
 * after the link's source block (removed by evidence, or deregistered, on that branch). Leaving
 * voters out only makes a supermajority harder: the total stays the era's.
 */
export function linkVoters(era: VoterSet, registryAfterSource: Registry): VoterSet {
  const registered = new Set(registryAfterSource.map((e) => e.operatorPubkey.toString("hex")));
  return {
    total: era.total,
    sampled: era.sampled,
    size: era.size,
    weightOf: (voter) => (registered.has(voter.toString("hex")) ? era.weightOf(voter) : 0n),
  };
}

/**
 * The chance that a committee of `seats` seats, drawn by weight, gives an attacker holding the
 * fraction `w` of the weight more than a third of the seats (the binomial tail
 * P[X >= floor(seats / 3) + 1], X ~ Binomial(seats, w)). Computed in log space.
 */
export function committeeFailure(seats: number, w: number): number {
  const lnFact = (n: number): number => {
    let s = 0;
    for (let i = 2; i <= n; i++) s += Math.log(i);
    return s;
  };
  const lnN = lnFact(seats);
  let lnK = lnFact(Math.floor(seats / 3));
  let lnNK = lnFact(seats - Math.floor(seats / 3));
  let sum = 0;
  for (let x = Math.floor(seats / 3) + 1; x <= seats; x++) {
    lnK += Math.log(x);
    lnNK -= Math.log(seats - x + 1);
    sum += Math.exp(lnN - lnK - lnNK + x * Math.log(w) + (seats - x) * Math.log(1 - w));
  }
  return sum;
}
