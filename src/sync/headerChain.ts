import { blockHash, type BlockHeader } from "../primitives/block.js";
import { blockWork } from "../chain/chainStore.js";
import { BlockError } from "../primitives/errors.js";
import type { ChainParams } from "../primitives/params.js";
import { checkHeaderContext, TIME_RULE_SCORE, type CheckedBlock } from "../consensus/validation.js";
import type { Registry } from "../consensus/registry.js";
import { EPOCH_BLOCKS, nextSchedule, slotStart, type EpochSchedule } from "../consensus/schedule.js";

/** The block a run of headers builds on. */
export interface HeaderParent {
  hash: Buffer;
  height: number;
  timestamp: number;
  mnRoot: Buffer;
  /** Cumulative chain work up to and including this block. */
  work: bigint;
  /**
   * The producer schedule of the epoch its children belong to, when known (a stored block: from
   * the chain; a validated header: carried along). Null when an earlier header of the branch
   * changed the registry at an anchor we cannot read yet.
   */
  schedule: EpochSchedule | null;
}

export interface ValidatedHeader {
  header: BlockHeader;
  hash: Buffer;
  /** Cumulative work of the branch up to this header (fork choice compares it). */
  work: bigint;
  /** The schedule of the epoch of the next height, when known (see HeaderParent.schedule). */
  childSchedule: EpochSchedule | null;
}

export interface HeaderCheckContext {
  params: ChainParams;
  /** The registry snapshot with this root, if the node has it (content-addressed in the store). */
  registryByRoot(root: Buffer): Registry | undefined;
}

/** The schedule for the children of a block at `height` with `mnRoot`, given the schedule of its own epoch. */
function scheduleAfter(
  height: number,
  mnRoot: Buffer,
  own: EpochSchedule | null,
  ctx: HeaderCheckContext,
): EpochSchedule | null {
  if (height === 0 || height % EPOCH_BLOCKS !== 0) return own;
  // An anchor: the next epoch's schedule follows from this one and the registry after it.
  const reg = own ? ctx.registryByRoot(mnRoot) : undefined;
  return own && reg ? nextSchedule(own, reg) : null;
}

/**
 * Validates a run of headers before any body is downloaded: each links to the one before (prev
 * hash, height + 1), its timestamp is after its parent's and inside its round's slot, and —
 * whenever the registry after its parent is known (the parent's mnRoot names a snapshot we hold,
 * which is always the case while no registration changes it) — the producer is the scheduled one
 * for (height, round) and its signature verifies (checkHeaderContext). The future-timestamp rule
 * is left to block processing (`now` is far in the future here): a header is not wrong for being
 * early, and the caller stops the window at the first header ahead of the clock.
 *
 * Returns the valid prefix with its cumulative work, and the error of the first invalid header.
 */
export function validateHeaders(
  headers: readonly BlockHeader[],
  parent: HeaderParent,
  ctx: HeaderCheckContext,
  knownHashes?: readonly Buffer[],
): { valid: ValidatedHeader[]; error: BlockError | null } {
  const valid: ValidatedHeader[] = [];
  let prev = parent;
  let cachedRoot: Buffer | null = null;
  let cachedRegistry: Registry | undefined;
  let schedule = parent.schedule;
  for (let i = 0; i < headers.length; i++) {
    const header = headers[i]!;
    const hash = knownHashes?.[i] ?? blockHash(header);
    try {
      if (!cachedRoot || !cachedRoot.equals(prev.mnRoot)) {
        cachedRoot = prev.mnRoot;
        cachedRegistry = ctx.registryByRoot(prev.mnRoot);
      }
      if (cachedRegistry && schedule) {
        const checked: CheckedBlock = { block: { header, txs: [] }, hash, txids: [], size: 0 };
        checkHeaderContext(checked, {
          params: ctx.params,
          parentHash: prev.hash,
          parentHeight: prev.height,
          parentTimestamp: prev.timestamp,
          registry: cachedRegistry,
          schedule,
          now: Number.MAX_SAFE_INTEGER,
        });
      } else {
        checkLinkAndTime(header, prev, ctx.params);
      }
    } catch (e) {
      if (e instanceof BlockError) return { valid, error: e };
      throw e;
    }
    const work = prev.work + blockWork(header.round);
    schedule = scheduleAfter(header.height, header.mnRoot, schedule, ctx);
    valid.push({ header, hash, work, childSchedule: schedule });
    prev = {
      hash,
      height: header.height,
      timestamp: header.timestamp,
      mnRoot: header.mnRoot,
      work,
      schedule,
    };
  }
  return { valid, error: null };
}

/** The header rules that need no registry (the rest wait for the block body). */
function checkLinkAndTime(h: BlockHeader, parent: HeaderParent, params: ChainParams): void {
  if (!h.prevHash.equals(parent.hash))
    throw new BlockError("BAD_PREV_HASH", "previous hash does not match the parent");
  if (h.height !== parent.height + 1) {
    throw new BlockError("BAD_HEIGHT", `height ${h.height} is not parent height ${parent.height} + 1`);
  }
  if (h.timestamp <= parent.timestamp) {
    throw new BlockError(
      "TIME_NOT_AFTER_PARENT",
      `timestamp ${h.timestamp} is not after the parent's`,
      TIME_RULE_SCORE,
    );
  }
  if (h.timestamp < slotStart(params, parent.timestamp, h.round)) {
    throw new BlockError(
      "TIME_BEFORE_SLOT",
      `timestamp ${h.timestamp} is before the slot of round ${h.round}`,
      TIME_RULE_SCORE,
    );
  }
  if (h.timestamp >= slotStart(params, parent.timestamp, h.round + 1)) {
    throw new BlockError(
      "TIME_AFTER_SLOT",
      `timestamp ${h.timestamp} is after the slot of round ${h.round}`,
      TIME_RULE_SCORE,
    );
  }
}
