/**
 * Time is injected (DESIGN.md): no module reads Date.now() or sets timers directly. Production
 * code gets a SystemClock; tests and the simulator get a ManualClock and move time themselves.
 */
import { Heap } from "./heap.js";

export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /** Monotonic milliseconds, for measuring durations (RTT, timeouts). */
  monotonic(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  setInterval(fn: () => void, ms: number): TimerHandle;
  /** Resolves after `ms`; rejects with the signal's reason if aborted first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export class SystemClock implements Clock {
  now(): number {
    // eslint-disable-next-line no-restricted-properties
    return Date.now();
  }
  monotonic(): number {
    return performance.now();
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return { cancel: () => clearTimeout(t) };
  }
  setInterval(fn: () => void, ms: number): TimerHandle {
    const t = setInterval(fn, ms);
    t.unref?.();
    return { cancel: () => clearInterval(t) };
  }
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepWith(this, ms, signal);
  }
}

function sleepWith(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason instanceof Error ? signal.reason : new Error("aborted"));
      return;
    }
    const onAbort = (): void => {
      handle.cancel();
      reject(signal?.reason instanceof Error ? signal.reason : new Error("aborted"));
    };
    const handle = clock.setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

interface ManualTimer {
  at: number;
  seq: number;
  fn: () => void;
  every: number | null;
  cancelled: boolean;
}

/**
 * A clock that only moves when a test or the simulator moves it. Timers fire in time order, ties
 * in the order they were set. Timers wait in a heap, so a simulation with hundreds of thousands
 * of pending timers costs O(log n) per timer; cancelled ones are dropped lazily.
 */
export class ManualClock implements Clock {
  private t: number;
  private seq = 0;
  private readonly timers = new Heap<ManualTimer>((a, b) => a.at < b.at || (a.at === b.at && a.seq < b.seq));
  private cancelled = 0;

  constructor(startMs = 1_700_000_000_000) {
    this.t = startMs;
  }
  now(): number {
    return this.t;
  }
  monotonic(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    return this.add(fn, ms, null);
  }
  setInterval(fn: () => void, ms: number): TimerHandle {
    return this.add(fn, ms, Math.max(1, ms));
  }
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepWith(this, ms, signal);
  }
  /** Moves time forward by `ms`, firing every timer that falls due, in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    this.fireUntil(end);
    this.t = end;
  }
  /** When the next live timer falls due, or undefined when none is set. */
  nextDue(): number | undefined {
    this.dropCancelledTop();
    return this.timers.peek()?.at;
  }
  /**
   * Fires, in order, every timer due at or before `end` (also ones those timers set), moving time
   * to each; time ends at the last one fired, or stays. Returns how many fired.
   */
  fireUntil(end: number): number {
    let n = 0;
    for (;;) {
      this.dropCancelledTop();
      const next = this.timers.peek();
      if (!next || next.at > end) break;
      this.timers.pop();
      this.t = Math.max(this.t, next.at);
      if (next.every !== null) {
        next.at += next.every;
        this.timers.push(next);
      } else {
        next.cancelled = true;
      }
      n++;
      next.fn();
    }
    return n;
  }
  set(ms: number): void {
    this.t = ms;
  }
  /** Timers set and not yet fired or cancelled (cancelled ones may still be counted until dropped). */
  get pendingTimers(): number {
    return this.timers.size - this.cancelled;
  }
  private dropCancelledTop(): void {
    for (let top = this.timers.peek(); top?.cancelled; top = this.timers.peek()) {
      this.timers.pop();
      if (this.cancelled > 0) this.cancelled--;
    }
  }
  private add(fn: () => void, ms: number, every: number | null): TimerHandle {
    const timer: ManualTimer = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, every, cancelled: false };
    this.timers.push(timer);
    return {
      cancel: () => {
        if (timer.cancelled) return;
        timer.cancelled = true;
        this.cancelled++;
        // Lazily dropped at the top; rebuilt when cancelled timers are most of the heap.
        if (this.cancelled > 1_024 && this.cancelled * 2 > this.timers.size) {
          this.timers.retain((x) => !x.cancelled);
          this.cancelled = 0;
        }
      },
    };
  }
}
