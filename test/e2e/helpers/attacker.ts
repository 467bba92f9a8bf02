/**
 * What an attacker holding one registered operator key needs to forge blocks against a running
 * devnet: who the schedule names for a (height, round) on a branch it builds itself, and blocks
 * signed with its key. The tests that use it (consensusAttacks.test.ts) perform the attacks from
 * outside the nodes, over TCP, through BlockServingPeer.
 *
 * BranchSchedule.producer takes the parent's hash although today's schedule reads no block
 * content: an attacker that grinds passes the hashes it can choose, and a schedule that read them
 * (as the parent-hash schedule before epochs did) would let it steer who comes next.
 */
import type { Chain } from "../../../src/chain/chain.js";
import type { BlockIndex } from "../../../src/chain/chainStore.js";
import type { Registry } from "../../../src/consensus/registry.js";
import {
  epochOf,
  nextSchedule,
  scheduledProducer,
  type EpochSchedule,
} from "../../../src/consensus/schedule.js";

/** The schedule of a branch built on `fork` whose blocks change no registry entry. */
export class BranchSchedule {
  readonly registry: Registry;
  private readonly epochs = new Map<number, EpochSchedule>();
  private last: EpochSchedule;

  constructor(chain: Chain, fork: BlockIndex) {
    const registry = chain.registryAfter(fork);
    if (!registry) throw new Error("BranchSchedule: the fork point's registry is unknown");
    this.registry = registry;
    this.last = chain.scheduleForChild(fork);
    this.epochs.set(this.last.epoch, this.last);
  }

  /** The operator key that may sign the block at (height, round) whose parent is `_parentHash`. */
  producer(_parentHash: Buffer, height: number, round: number): Buffer {
    const want = epochOf(height);
    while (this.last.epoch < want) {
      this.last = nextSchedule(this.last, this.registry);
      this.epochs.set(this.last.epoch, this.last);
    }
    const s = this.epochs.get(want);
    if (!s) throw new Error(`BranchSchedule: epoch ${want} is before the fork`);
    const e = scheduledProducer(s, height, round, this.registry);
    if (!e) throw new Error("BranchSchedule: an empty registry");
    return e.operatorPubkey;
  }

  /** The lowest round (below `max`) at which `key` may sign the block at `height`, or -1. */
  firstRoundOf(key: Buffer, parentHash: Buffer, height: number, max = 64): number {
    for (let r = 0; r < max; r++) if (this.producer(parentHash, height, r).equals(key)) return r;
    return -1;
  }
}
