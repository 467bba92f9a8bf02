/**
 * One simulated node's view of the shared virtual clock: its own wall-clock skew, and the timers
 * it set, so a crash can take them all away at once (a killed process's timers die with it).
 */
import type { Clock, ManualClock, TimerHandle } from "../../src/util/clock.js";

export class NodeClock implements Clock {
  private readonly handles = new Set<TimerHandle>();
  private dead = false;

  constructor(
    private readonly base: ManualClock,
    /** Added to the shared wall clock: this node's clock is this many ms ahead (or behind). */
    public skewMs: number,
  ) {}

  now(): number {
    return this.base.now() + this.skewMs;
  }

  monotonic(): number {
    return this.base.monotonic();
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    if (this.dead) return { cancel: () => undefined };
    const h = this.base.setTimeout(() => {
      this.handles.delete(h);
      fn();
    }, ms);
    this.handles.add(h);
    return this.own(h);
  }

  setInterval(fn: () => void, ms: number): TimerHandle {
    if (this.dead) return { cancel: () => undefined };
    const h = this.base.setInterval(fn, ms);
    this.handles.add(h);
    return this.own(h);
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const reason = (): Error => (signal?.reason instanceof Error ? signal.reason : new Error("aborted"));
      if (signal?.aborted) {
        reject(reason());
        return;
      }
      const onAbort = (): void => {
        h.cancel();
        reject(reason());
      };
      const h = this.setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Timers this node has pending. */
  get timerCount(): number {
    return this.handles.size;
  }

  /** The process died: every timer it set is cancelled, and new ones are never set. */
  kill(): void {
    this.dead = true;
    for (const h of this.handles) h.cancel();
    this.handles.clear();
  }

  private own(h: TimerHandle): TimerHandle {
    return {
      cancel: () => {
        h.cancel();
        this.handles.delete(h);
      },
    };
  }
}
