/**
 * ChainStore's UTXO set (u) and its running stats (S): connecting and disconnecting a block's
 * outputs, and the order-independent multiset hash that verify and gettxoutsetinfo compare. The
 * functions write through the store's database and are called inside its write transactions.
 */
import { Writer, decodeExact } from "../codec/index.js";
import { sha256Latin1 } from "../crypto/hash.js";
import type { Block } from "../primitives/block.js";
import type { OutPoint } from "../primitives/tx.js";
import { decodeUtxoEntry, encodeUtxoEntry, type UtxoEntry } from "../primitives/utxo.js";
import type { BlockChanges, SpentOutput } from "../consensus/validation.js";
import type { KvStore } from "./kv.js";
import { K_STATS, P_UTXO, utxoKey } from "./storeLayout.js";

/**
 * A number mod 2^256 as eight big-endian 32-bit words: the running multiset hash. Adding or
 * taking away one SHA-256 digest is a word loop, with no BigInt or hex string on the way.
 */
export class Sum256 {
  private readonly w = new Uint32Array(8);

  /** From 32 big-endian bytes (zero without). */
  constructor(bytes?: Uint8Array) {
    if (!bytes) return;
    if (bytes.length !== 32) throw new RangeError(`a 256-bit sum takes 32 bytes, not ${bytes.length}`);
    const b = Buffer.from(bytes.buffer, bytes.byteOffset, 32);
    for (let i = 0; i < 8; i++) this.w[i] = b.readUInt32BE(4 * i);
  }

  /** this += d (32 big-endian bytes), mod 2^256. */
  add(d: Buffer): void {
    this.addLatin1(digestChars(d));
  }

  /** this -= d (32 big-endian bytes), mod 2^256. */
  sub(d: Buffer): void {
    this.subLatin1(digestChars(d));
  }

  /** this += d, d given as 32 latin1 characters (one per byte, as sha256Latin1 returns). */
  addLatin1(d: string): void {
    let carry = 0;
    for (let i = 7; i >= 0; i--) {
      const s = this.w[i]! + latin1Word(d, i) + carry;
      this.w[i] = s >>> 0;
      carry = s > 0xffffffff ? 1 : 0;
    }
  }

  /** this -= d, d given as 32 latin1 characters. */
  subLatin1(d: string): void {
    let borrow = 0;
    for (let i = 7; i >= 0; i--) {
      const s = this.w[i]! - latin1Word(d, i) - borrow;
      this.w[i] = s >>> 0;
      borrow = s < 0 ? 1 : 0;
    }
  }

  toBuffer(): Buffer {
    const b = Buffer.alloc(32);
    for (let i = 0; i < 8; i++) b.writeUInt32BE(this.w[i]!, 4 * i);
    return b;
  }
}

function digestChars(d: Buffer): string {
  if (d.length !== 32) throw new RangeError(`a 256-bit sum takes 32 bytes, not ${d.length}`);
  return d.toString("latin1");
}

/** Big-endian 32-bit word `i` of 32 bytes held as latin1 characters. */
function latin1Word(d: string, i: number): number {
  const j = 4 * i;
  return (
    ((d.charCodeAt(j) << 24) |
      (d.charCodeAt(j + 1) << 16) |
      (d.charCodeAt(j + 2) << 8) |
      d.charCodeAt(j + 3)) >>>
    0
  );
}

export interface UtxoStats {
  count: number;
  total: bigint;
  /** Order-independent hash of the set: Σ SHA-256(outpoint ‖ entry) mod 2^256. */
  hash: Buffer;
}

type Db = KvStore;

/** Outpoint and entry bytes are copied here to be hashed together (no Buffer per digest). */
const digestScratch = Buffer.allocUnsafe(128);

/** SHA-256(outpoint ‖ entry), as latin1 characters: one item of the set's sum. */
function utxoDigest(k: Uint8Array, v: Uint8Array): string {
  const n = k.length + v.length;
  if (n > digestScratch.length) return sha256Latin1(Buffer.concat([k, v]));
  digestScratch.set(k, 0);
  digestScratch.set(v, k.length);
  return sha256Latin1(digestScratch.subarray(0, n));
}

export function readUtxoStats(db: Db): UtxoStats {
  const v = db.get(K_STATS);
  if (!v) return { count: 0, total: 0n, hash: Buffer.alloc(32) };
  return decodeExact(v, (r) => ({ count: r.u64n(), total: r.u64(), hash: r.fixed(32) }));
}

export function writeUtxoStats(db: Db, s: UtxoStats): void {
  db.putSync(K_STATS, new Writer(48).u64n(s.count).u64(s.total).fixed(s.hash, 32).toBuffer());
}

/** Iterates the whole UTXO set (used by verify and gettxoutsetinfo). */
export function* iterateUtxoSet(
  db: Db,
): Generator<{ outpoint: OutPoint; entry: UtxoEntry; key: Buffer; value: Buffer }> {
  const start = Buffer.from([P_UTXO]);
  const end = Buffer.from([P_UTXO + 1]);
  for (const { key: k, value } of db.getRange({ start, end })) {
    const kb = Buffer.from(k);
    yield {
      outpoint: { txid: kb.subarray(1, 33), index: kb.readUInt32BE(33) },
      entry: decodeUtxoEntry(value),
      key: kb.subarray(1),
      value: Buffer.from(value),
    };
  }
}

/** The UTXO stats kept up to date while one block's changes are written. */
class RunningStats {
  private readonly hash: Sum256;
  private count: number;
  private total: bigint;

  constructor(private readonly db: Db) {
    const stats = readUtxoStats(db);
    this.hash = new Sum256(stats.hash);
    this.count = stats.count;
    this.total = stats.total;
  }

  /** Adds an output to the set. */
  put(outpoint: OutPoint, entry: UtxoEntry): void {
    const sk = utxoKey(outpoint);
    const v = encodeUtxoEntry(entry);
    this.db.putSync(sk, v);
    this.hash.addLatin1(utxoDigest(sk.subarray(1), v));
    this.count++;
    this.total += entry.amount;
  }

  /** Removes the output under store key `sk` (utxoKey), whose stored bytes are `v`. */
  remove(sk: Buffer, v: Buffer, amount: bigint): void {
    this.db.removeSync(sk);
    this.take(sk, v, amount);
  }

  /** Removes the output under `sk` whose stored bytes, if it is there, are `v`; nothing if not. */
  removeIfPresent(sk: Buffer, v: Buffer, amount: bigint): void {
    if (this.db.removeSync(sk)) this.take(sk, v, amount);
  }

  private take(sk: Buffer, v: Buffer, amount: bigint): void {
    // The digest covers the outpoint's bytes, not the store's prefix.
    this.hash.subLatin1(utxoDigest(sk.subarray(1), v));
    this.count--;
    this.total -= amount;
  }

  write(): void {
    writeUtxoStats(this.db, { count: this.count, total: this.total, hash: this.hash.toBuffer() });
  }
}

/** Connecting a block: spends and creates its outputs and updates the stats. */
export function connectUtxos(db: Db, changes: BlockChanges): void {
  const stats = new RunningStats(db);
  for (const s of changes.spent) stats.remove(utxoKey(s.outpoint), encodeUtxoEntry(s.entry), s.entry.amount);
  for (const c of changes.created) stats.put(c.outpoint, c.entry);
  stats.write();
}

/**
 * Disconnecting a block: removes the outputs it created, restores the ones it spent (from its
 * undo data) and updates the stats.
 */
export function disconnectUtxos(db: Db, block: Block, undo: { txids: Buffer[]; spent: SpentOutput[] }): void {
  const stats = new RunningStats(db);
  const height = block.header.height;
  block.txs.forEach((tx, i) => {
    const id = undo.txids[i]!;
    tx.outputs.forEach((o, index) => {
      const k = utxoKey({ txid: id, index });
      // The stored entry is exactly what connecting this block wrote for the output (see
      // connectTransactions), so it need not be read back. An output created and spent inside the
      // same block was never in the set: removing it finds nothing, and the stats stay.
      const entry: UtxoEntry = { amount: o.amount, address: o.address, height, coinbase: i === 0 };
      stats.removeIfPresent(k, encodeUtxoEntry(entry), o.amount);
    });
  });
  for (const s of undo.spent) stats.put(s.outpoint, s.entry);
  stats.write();
}

/** Recomputes the UTXO stats from the set itself (for verify). */
export function computeUtxoStats(db: Db): UtxoStats {
  const hash = new Sum256();
  let count = 0;
  let total = 0n;
  for (const u of iterateUtxoSet(db)) {
    hash.addLatin1(utxoDigest(u.key, u.value));
    count++;
    total += u.entry.amount;
  }
  return { count, total, hash: hash.toBuffer() };
}
