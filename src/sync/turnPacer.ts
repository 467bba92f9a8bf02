/**
 * How a range download (rangeDownload.ts) shares the event loop with RPC, pings and block relay
 * (docs/ARCHITECTURE.md, "The event loop is served between batches" and "A waiting RPC caller
 * cuts batches into parts"):
 *
 * - a processing turn takes ready batches for at most PROCESS_SLICE_MS (at least one batch),
 *   then yields with a zero-delay timer, and a turn that would start right after a long one
 *   yields first;
 * - while a caller waits (callerWaiting), a batch is cut where the turn's slice runs out;
 * - with a caller to look out for, processing starts only from a setImmediate callback, after
 *   the I/O phase that accepts new connections.
 *
 * Only real time counts: under a virtual clock no time passes while a batch is processed, so
 * nothing yields, and a node without RPC (the simulator) never defers or cuts.
 */
import type { Clock, TimerHandle } from "../util/clock.js";

/** Longest a processing turn runs before it yields to the event loop. */
export const PROCESS_SLICE_MS = 50;

/** One processing turn, from TurnPacer.begin() to end(). */
export interface Turn {
  /** The turn's slice is spent: yield before the next batch. */
  overSlice(): boolean;
  /**
   * What to pass Chain.processBlocks as `stopAfter`: ends the batch when the slice is spent, if
   * a caller waits now (asked once a batch: a caller only reaches this thread between turns).
   */
  cut(): (() => boolean) | undefined;
  end(): void;
}

export class TurnPacer {
  /** A pump deferred to a later turn of the event loop (yieldTurn). */
  private deferred: TimerHandle | null = null;
  /** A pump is queued for after this phase of the event loop (deferToAfterIo). */
  private queued = false;
  private stopped = false;
  /** clock.monotonic() at the start and end of the last processing turn. */
  private last = { start: 0, end: 0 };

  /** `pump(afterIo)` runs the download's pump; afterIo: called from the setImmediate callback. */
  constructor(
    private readonly clock: Clock,
    private readonly pump: (afterIo: boolean) => void,
    private readonly callerWaiting?: () => boolean,
  ) {}

  /** A later turn is already scheduled: the pump has nothing to do now. */
  get deferredPending(): boolean {
    return this.deferred !== null;
  }

  /**
   * Just out of a long turn (several checks can finish at once, and their callbacks run back to
   * back): schedules a later turn and returns true, so RPC and peers are served first.
   */
  yieldIfJustBusy(): boolean {
    const now = this.clock.monotonic();
    if (this.last.end - this.last.start < PROCESS_SLICE_MS || now - this.last.end >= PROCESS_SLICE_MS)
      return false;
    this.yieldTurn();
    return true;
  }

  /**
   * With a caller to look out for, queues pump(true) for after this I/O phase and returns true
   * (process nothing now): a check's answer or a download comes in the same phase as new RPC
   * connections, and processing straight from it would run before the loop had accepted them,
   * so callerWaiting could not see them and the caller would wait for whole batches.
   */
  deferToAfterIo(afterIo: boolean): boolean {
    if (!this.callerWaiting || afterIo) return false;
    if (!this.queued) {
      this.queued = true;
      setImmediate(() => {
        this.queued = false;
        if (!this.stopped) this.pump(true);
      });
    }
    return true;
  }

  begin(): Turn {
    const start = this.clock.monotonic();
    const over = (): boolean => this.clock.monotonic() - start >= PROCESS_SLICE_MS;
    return {
      overSlice: over,
      cut: () => (this.callerWaiting?.() === true ? over : undefined),
      end: () => {
        this.last = { start, end: this.clock.monotonic() };
      },
    };
  }

  /** Pumps again on a later turn of the event loop, after pending I/O. */
  yieldTurn(): void {
    if (this.stopped) return;
    this.deferred ??= this.clock.setTimeout(() => {
      this.deferred = null;
      this.last = { start: 0, end: 0 };
      this.pump(false);
    }, 0);
  }

  /** No more turns (the download finished). */
  stop(): void {
    this.stopped = true;
    this.deferred?.cancel();
    this.deferred = null;
  }
}
