/**
 * The key space of ChainStore's LMDB database: the one-byte prefixes, the key builders, and the
 * encodings of the block index entry (i) and the undo data (d). What each prefix holds is the
 * key layout at the top of chainStore.ts; keep the two in step.
 */
import { Reader, Writer, decodeExact } from "../codec/index.js";
import { decodeUtxoEntry, encodeUtxoEntry } from "../primitives/utxo.js";
import type { SpentOutput } from "../consensus/validation.js";
import type { OutPoint } from "../primitives/tx.js";

export const K_VERSION = Buffer.from("V");
export const K_NETWORK = Buffer.from("N");
export const K_TIP = Buffer.from("T");
export const K_STATS = Buffer.from("S");
export const K_REGROOT = Buffer.from("R");
export const K_FINAL = Buffer.from("F");
export const K_VOTELOCK = Buffer.from("L");
export const P_BLOCK = 0x62; // b
export const P_INDEX = 0x69; // i
export const P_HEIGHT = 0x68; // h
export const P_UTXO = 0x75; // u
export const P_UNDO = 0x64; // d
export const P_REGISTRY = 0x67; // g
export const P_TXINDEX = 0x78; // x
export const P_REGREFS = 0x63; // c
export const P_SLOT = 0x70; // p
export const P_SIDE = 0x73; // s
export const P_SCHEDULE = 0x71; // q
export const P_EVIDENCE = 0x45; // E
export const P_SLASHED = 0x7a; // z
export const P_MANUAL_INVALID = 0x6d; // m

/** What the node knows about a block without reading its body. */
export interface BlockIndex {
  hash: Buffer;
  height: number;
  prevHash: Buffer;
  timestamp: number;
  round: number;
  producer: Buffer;
  mnRoot: Buffer;
  /** Cumulative fork-choice weight up to and including this block. */
  work: bigint;
  size: number;
  txCount: number;
  /**
   * The highest block height certified by a Finality transaction on this block's branch, up to
   * and including this block (0: none). Absent in entries written before certificates existed.
   */
  certified?: number;
}

export function key(prefix: number, body: Uint8Array): Buffer {
  const k = Buffer.allocUnsafe(1 + body.length);
  k[0] = prefix;
  k.set(body, 1);
  return k;
}

/** The store key of an outpoint's entry, P_UTXO ‖ txid ‖ u32be(index), in one allocation. */
export function utxoKey(o: OutPoint): Buffer {
  const k = Buffer.allocUnsafe(37);
  k[0] = P_UTXO;
  o.txid.copy(k, 1, 0, 32);
  k.writeUInt32BE(o.index, 33);
  return k;
}

export function slotKey(producer: Uint8Array, height: number, round: number): Buffer {
  const k = Buffer.allocUnsafe(1 + 32 + 8);
  k[0] = P_SLOT;
  k.set(producer.subarray(0, 32), 1);
  k.writeUInt32BE(height, 33);
  k.writeUInt32BE(round, 37);
  return k;
}

export function heightKey(height: number): Buffer {
  const k = Buffer.allocUnsafe(5);
  k[0] = P_HEIGHT;
  k.writeUInt32BE(height, 1);
  return k;
}

export function writeIndex(e: BlockIndex): Buffer {
  const w = new Writer(200);
  w.u32(e.height)
    .fixed(e.prevHash, 32)
    .u64n(e.timestamp)
    .u32(e.round)
    .fixed(e.producer, 32)
    .fixed(e.mnRoot, 32);
  w.u64(e.work).u32(e.size).u32(e.txCount);
  if (e.certified) w.u32(e.certified);
  return w.toBuffer();
}

export function readIndex(hash: Buffer, buf: Buffer): BlockIndex {
  return decodeExact(buf, (r: Reader) => ({
    hash,
    height: r.u32(),
    prevHash: r.fixed(32),
    timestamp: r.u64n(),
    round: r.u32(),
    producer: r.fixed(32),
    mnRoot: r.fixed(32),
    work: r.u64(),
    size: r.u32(),
    txCount: r.u32(),
    // A trailing u32 only when the branch has a certificate (older entries end here).
    ...(r.remaining >= 4 ? { certified: r.u32() } : {}),
  }));
}

/** Undo data of a connected block (d): its txids and the outputs it spent. */
export function writeUndo(txids: Buffer[], spent: SpentOutput[]): Buffer {
  const undo = new Writer(64 + spent.length * 80 + txids.length * 32);
  undo.array(txids, 1_000_000, (w, id) => w.fixed(id, 32));
  undo.array(spent, 1_000_000, (w, s) => {
    w.fixed(s.outpoint.txid, 32).u32(s.outpoint.index).varBytes(encodeUtxoEntry(s.entry), 64);
  });
  return undo.toBuffer();
}

export function readUndo(v: Buffer): { txids: Buffer[]; spent: SpentOutput[] } {
  return decodeExact(v, (r) => ({
    txids: r.array(1_000_000, (r) => r.fixed(32)),
    spent: r.array(1_000_000, (r) => ({
      outpoint: { txid: r.fixed(32), index: r.u32() },
      entry: decodeUtxoEntry(r.varBytes(64)),
    })),
  }));
}
