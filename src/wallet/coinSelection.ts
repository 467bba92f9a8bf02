/**
 * Coin selection for the wallet: deterministic, so the same coins and request always give the
 * same transaction (and tests can state exactly what is spent).
 *
 * 1. Largest coins first until the amount plus the fee for that many inputs is covered. Few inputs
 *    keep the transaction, and so the fee, small.
 * 2. Trim: the last coin taken is swapped for the smallest remaining coin that still covers what
 *    is left, so a big coin is not broken when a smaller one does the job.
 * 3. Change is added only when it is at least the dust threshold; a smaller remainder goes to the
 *    fee rather than creating an output worth less than the fee to spend it.
 */

export interface SelectableCoin {
  /** A unique, stable key (the outpoint), used to break ties between equal amounts. */
  key: string;
  amount: bigint;
}

export interface SelectionRequest {
  /** What the payment outputs add up to. */
  target: bigint;
  /** The fee for a transaction with `inputs` inputs, with or without a change output. */
  feeFor: (inputs: number, withChange: boolean) => bigint;
  /** Smallest change output worth creating. */
  dust: bigint;
}

export type SelectionResult<C extends SelectableCoin> =
  | { ok: true; coins: C[]; fee: bigint; change: bigint }
  /** `available` is every candidate coin's total; `needed` the target plus the fee to spend them all. */
  | { ok: false; available: bigint; needed: bigint };

/** Largest first; equal amounts by key, so the order is total. */
export function sortCoins<C extends SelectableCoin>(coins: readonly C[]): C[] {
  return [...coins].sort((a, b) =>
    a.amount !== b.amount ? (a.amount > b.amount ? -1 : 1) : a.key < b.key ? -1 : a.key > b.key ? 1 : 0,
  );
}

export function selectCoins<C extends SelectableCoin>(
  coins: readonly C[],
  req: SelectionRequest,
): SelectionResult<C> {
  const sorted = sortCoins(coins);
  const picked: C[] = [];
  let sum = 0n;
  let lastIndex = -1;
  for (let i = 0; i < sorted.length; i++) {
    const c = sorted[i]!;
    picked.push(c);
    sum += c.amount;
    lastIndex = i;
    if (sum >= req.target + req.feeFor(picked.length, false)) break;
  }
  const n = picked.length;
  if (n === 0 || sum < req.target + req.feeFor(n, false)) {
    let available = 0n;
    for (const c of sorted) available += c.amount;
    return { ok: false, available, needed: req.target + req.feeFor(Math.max(1, sorted.length), false) };
  }
  // Trim: the smallest coin at or after the last one taken that still covers the remainder.
  const last = picked[n - 1]!;
  const before = sum - last.amount;
  const remainder = req.target + req.feeFor(n, false) - before;
  for (let j = sorted.length - 1; j > lastIndex; j--) {
    const c = sorted[j]!;
    if (c.amount >= last.amount) break;
    if (c.amount >= remainder) {
      picked[n - 1] = c;
      sum = before + c.amount;
      break;
    }
  }
  const feeWithChange = req.feeFor(n, true);
  const change = sum - req.target - feeWithChange;
  if (change >= req.dust && change > 0n) return { ok: true, coins: picked, fee: feeWithChange, change };
  return { ok: true, coins: picked, fee: sum - req.target, change: 0n };
}
