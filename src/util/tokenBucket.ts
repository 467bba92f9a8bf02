/** A token bucket: `rate` tokens per second, holding at most `burst`. Time comes from the caller. */
export class TokenBucket {
  private tokens: number;
  private last: number;
  constructor(
    private readonly rate: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.last = now;
  }

  private refill(now: number): void {
    const elapsed = Math.max(0, now - this.last) / 1000;
    this.last = now;
    this.tokens = Math.min(this.burst, this.tokens + elapsed * this.rate);
  }

  /** Takes `n` tokens if there are that many; otherwise takes none. */
  take(now: number, n = 1): boolean {
    this.refill(now);
    if (this.tokens < n) return false;
    this.tokens -= n;
    return true;
  }

  /** Takes up to `n` whole tokens; returns how many it got. */
  takeUpTo(now: number, n: number): number {
    this.refill(now);
    const got = Math.min(n, Math.floor(this.tokens));
    this.tokens -= got;
    return got;
  }
}
