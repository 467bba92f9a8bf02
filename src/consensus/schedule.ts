import { sha256 } from "../crypto/hash.js";
import type { ChainParams } from "../chain/params.js";
import type { MasternodeEntry, Registry } from "./registry.js";

/**
 * The producer schedule (docs/CONSENSUS.md). For height h with parent hash P, and the registry R
 * as it stood after the parent (sorted by operator key, n = |R|):
 *   start = u64le(SHA-256(P ‖ u32le(h))[0..8]) mod n
 *   producer(h, round) = R[(start + round) mod n]
 * It reads chain state only, so every node computes the same producer. Rounds walk the registry
 * in order, so within n rounds every masternode gets a turn.
 */
export function scheduleStart(prevHash: Uint8Array, height: number, n: number): number {
  const msg = Buffer.allocUnsafe(36);
  msg.set(prevHash, 0);
  msg.writeUInt32LE(height, 32);
  const seed = sha256(msg).readBigUInt64LE(0);
  return Number(seed % BigInt(n));
}

export function scheduledProducer(
  registry: Registry,
  prevHash: Uint8Array,
  height: number,
  round: number,
): MasternodeEntry | undefined {
  const n = registry.length;
  if (n === 0) return undefined;
  const start = scheduleStart(prevHash, height, n);
  return registry[(start + (round % n)) % n];
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
