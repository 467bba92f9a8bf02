/** Fee-rate formatting for messages and RPC answers. */
import { formatAmount } from "../primitives/amount.js";

/** "1.25 units/byte", rounded down to two decimals. */
export function formatFeeRate(fee: bigint, size: number): string {
  const hundredths = (fee * 100n) / BigInt(Math.max(1, size));
  return `${hundredths / 100n}.${(hundredths % 100n).toString().padStart(2, "0")} units/byte`;
}

/** A fee rate in units per byte as TIME per 1,000 bytes (bitcoind's unit), a decimal string. */
export function ratePerKb(unitsPerByte: bigint): string {
  return formatAmount(unitsPerByte * 1000n);
}
