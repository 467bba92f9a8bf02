import { COIN, MAX_MONEY } from "./constants.js";

/**
 * Amounts are exact: "1.5" TIME is 150,000,000 units, never a float. Accepts a decimal string
 * (or a JS number written with at most 8 decimals, converted through its shortest string form).
 */
export function parseAmount(v: string | number): bigint {
  const s = typeof v === "number" ? numberToPlainString(v) : v.trim();
  const m = /^(\d+)(?:\.(\d*))?$/.exec(s);
  if (!m) throw new Error(`invalid amount "${String(v)}": expected a non-negative decimal like 12.5`);
  const whole = m[1]!;
  const frac = m[2] ?? "";
  if (frac.length > 8) throw new Error(`invalid amount "${String(v)}": more than 8 decimal places`);
  const units = BigInt(whole) * COIN + BigInt((frac + "00000000").slice(0, 8));
  if (units > MAX_MONEY) throw new Error(`invalid amount "${String(v)}": above the maximum supply`);
  return units;
}

function numberToPlainString(n: number): string {
  if (!Number.isFinite(n) || n < 0) throw new Error(`invalid amount ${n}: expected a non-negative number`);
  const s = String(n);
  if (!/e/i.test(s)) return s;
  // Exponent form: only tiny or huge values; render exactly via toFixed when it is exact.
  const fixed = n.toFixed(8);
  if (Number(fixed) !== n) throw new Error(`invalid amount ${n}: more than 8 decimal places`);
  return fixed;
}

/** Formats units as a TIME decimal string with exactly 8 decimals, e.g. "1.50000000". */
export function formatAmount(units: bigint): string {
  const neg = units < 0n;
  const a = neg ? -units : units;
  const whole = a / COIN;
  const frac = (a % COIN).toString().padStart(8, "0");
  return `${neg ? "-" : ""}${whole}.${frac}`;
}
