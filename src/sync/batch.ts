/**
 * A range download's batches (rangeDownload.ts): what one block to fetch is, the peers that may
 * serve them, and a batch's life as a state machine whose every transition names the state it
 * leaves.
 */
import type { Block, BlockHeader } from "../primitives/block.js";
import { SyncError } from "./errors.js";
import type { RankedPeer } from "./target.js";

/** One block to fetch: its validated header says what the body must be. */
export interface RangeItem {
  hash: Buffer;
  height: number;
  header: BlockHeader;
}

/** A peer that may serve batches, as the download sees it (re-read before each assignment). */
export interface DownloadPeer extends RankedPeer {
  addr: string;
}

/**
 * A batch's life (Lodestar's range-sync batch): a discriminated union, and every transition
 * states the status it leaves, so a transition from the wrong one throws WRONG_STATE.
 */
export type BatchState =
  | { status: "AwaitingDownload" }
  | { status: "Downloading"; peer: string }
  | {
      status: "AwaitingProcessing";
      peer: string;
      blocks: Array<{ block: Block; raw: Buffer }>;
      /** False until its signatures have been checked ahead (SyncFns.checkAhead). */
      checked: boolean;
      /** Its check is running (it starts once the batch is near the head: startChecks). */
      checking: boolean;
    }
  | { status: "Processing"; peer: string }
  | { status: "Done"; peer: string }
  | { status: "Failed"; error: SyncError };

export type BatchStatus = BatchState["status"];

export interface Batch {
  readonly id: number;
  /** Indexes into the items: [start, end). A partial answer shrinks `end` and adds a batch after. */
  readonly start: number;
  end: number;
  state: BatchState;
  /** Failed downloads so far (timeouts, closes, NotFound, bad data). */
  attempts: number;
  /** Peers that failed this range or must not get it again. */
  readonly tried: Set<string>;
}

/** A batch moves to `to` only from one of `from`; anything else is a bug (WRONG_STATE). */
export function transitionBatch(b: Batch, from: readonly BatchStatus[], to: BatchState): void {
  if (!from.includes(b.state.status)) {
    throw new SyncError("WRONG_STATE", `batch ${b.id}: ${b.state.status} -> ${to.status}`, {
      batch: b.id,
      from: b.state.status,
      to: to.status,
    });
  }
  b.state = to;
}
