import { Reader, Writer, decodeExact } from "../codec/index.js";
import { ADDRESS_HASH_LEN } from "../crypto/address.js";
import type { OutPoint } from "./tx.js";

/** An unspent output as the UTXO set stores it. */
export interface UtxoEntry {
  amount: bigint;
  address: Buffer;
  /** Height of the block that created it. */
  height: number;
  coinbase: boolean;
}

export const UTXO_ENTRY_SIZE = 8 + ADDRESS_HASH_LEN + 4 + 1;

export function writeUtxoEntry(w: Writer, e: UtxoEntry): void {
  w.u64(e.amount).fixed(e.address, ADDRESS_HASH_LEN).u32(e.height).bool(e.coinbase);
}

export function readUtxoEntry(r: Reader): UtxoEntry {
  return { amount: r.u64(), address: r.fixed(ADDRESS_HASH_LEN), height: r.u32(), coinbase: r.bool() };
}

export function encodeUtxoEntry(e: UtxoEntry): Buffer {
  const w = new Writer(UTXO_ENTRY_SIZE);
  writeUtxoEntry(w, e);
  return w.toBuffer();
}

export function decodeUtxoEntry(buf: Uint8Array): UtxoEntry {
  return decodeExact(buf, readUtxoEntry);
}

/** Key of an outpoint in the store and in the UTXO hash: txid ‖ u32be(index). */
export function outpointBytes(o: OutPoint): Buffer {
  const b = Buffer.allocUnsafe(36);
  o.txid.copy(b, 0);
  b.writeUInt32BE(o.index, 32);
  return b;
}

/** Read access to the UTXO set as validation sees it. */
export interface UtxoView {
  getUtxo(o: OutPoint): UtxoEntry | undefined;
  /** Whether evidence on the main chain slashed this operator key (chain state, like the UTXO set). */
  isSlashed?(operator: Uint8Array): boolean;
}
