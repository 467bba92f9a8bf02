import type { HeightSample } from "./interface.js";

/** A fixed-size ring of height samples: the chart's data. Pushing past capacity drops the oldest. */
export class HeightHistory {
  private readonly buf: HeightSample[] = [];
  private next = 0;

  constructor(readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity <= 0)
      throw new Error("history capacity must be a positive integer");
  }

  push(s: HeightSample): void {
    if (this.buf.length < this.capacity) {
      this.buf.push(s);
    } else {
      this.buf[this.next] = s;
    }
    this.next = (this.next + 1) % this.capacity;
  }

  get size(): number {
    return this.buf.length;
  }

  /** Oldest first. */
  toArray(): HeightSample[] {
    if (this.buf.length < this.capacity) return this.buf.slice();
    return [...this.buf.slice(this.next), ...this.buf.slice(0, this.next)];
  }
}

/** Median of the values (mean of the middle two, rounded down, for an even count); null if none. */
export function medianHeight(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const s = values.slice().sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : Math.floor((s[mid - 1]! + s[mid]!) / 2);
}
