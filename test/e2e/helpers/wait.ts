/**
 * The one wait helper of the end-to-end tests. Real nodes run on the wall clock, so a test polls
 * for the state it expects, always bounded in time.
 */

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export interface WaitOptions {
  /** Give up after this long (default 10 s). */
  timeoutMs?: number;
  /** Poll this often (default 20 ms). */
  stepMs?: number;
  /** Appended to the timeout error: the state of things, for the failure message. */
  detail?: () => string | Promise<string>;
}

/**
 * Polls `probe` until it returns something other than `undefined` or `false`, and returns that
 * (so a boolean condition returns `true`, a lookup returns what it found). Throws, naming `what`
 * and `detail()`, once `timeoutMs` has passed.
 */
export async function waitFor<T>(
  what: string,
  probe: () => T | Promise<T>,
  opts: WaitOptions = {},
): Promise<Exclude<T, undefined | false>> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const stepMs = opts.stepMs ?? 20;
  const start = performance.now();
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v as Exclude<T, undefined | false>;
    if (performance.now() - start > timeoutMs) {
      const more = opts.detail ? ` (${await opts.detail()})` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${more}`);
    }
    await sleep(stepMs);
  }
}
