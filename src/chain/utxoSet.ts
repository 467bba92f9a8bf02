/**
 * ChainStore's UTXO set (u) and its running stats (S): connecting and disconnecting a block's
 * outputs, and the order-independent multiset hash that verify and gettxoutsetinfo compare. The
 * functions write through the store's database and are called inside its write transactions.
 */
import { Writer, decodeExact } from "../codec/index.js";
import { sha256 } from "../crypto/hash.js";
import type { Block } from "../primitives/block.js";
import type { OutPoint } from "../primitives/tx.js";
import { decodeUtxoEntry, encodeUtxoEntry, outpointBytes, type UtxoEntry } from "../primitives/utxo.js";
import type { BlockChanges, SpentOutput } from "../consensus/validation.js";
import type { KvStore } from "./kv.js";
import { K_STATS, P_UTXO, key } from "./storeLayout.js";

const MOD256 = 1n << 256n;

export interface UtxoStats {
  count: number;
  total: bigint;
  /** Order-independent hash of the set: Σ SHA-256(outpoint ‖ entry) mod 2^256. */
  hash: Buffer;
}

type Db = KvStore;

function utxoDigest(k: Buffer, v: Buffer): bigint {
  return BigInt("0x" + sha256(Buffer.concat([k, v])).toString("hex"));
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
  private hash: bigint;
  private count: number;
  private total: bigint;

  constructor(private readonly db: Db) {
    const stats = readUtxoStats(db);
    this.hash = BigInt("0x" + stats.hash.toString("hex"));
    this.count = stats.count;
    this.total = stats.total;
  }

  /** Adds an output to the set. */
  put(outpoint: OutPoint, entry: UtxoEntry): void {
    const k = outpointBytes(outpoint);
    const v = encodeUtxoEntry(entry);
    this.db.putSync(key(P_UTXO, k), v);
    this.hash = (this.hash + utxoDigest(k, v)) % MOD256;
    this.count++;
    this.total += entry.amount;
  }

  /** Removes an output whose stored bytes are `v`. */
  remove(k: Buffer, v: Buffer, amount: bigint): void {
    this.db.removeSync(key(P_UTXO, k));
    this.hash = (this.hash - utxoDigest(k, v) + MOD256) % MOD256;
    this.count--;
    this.total -= amount;
  }

  write(): void {
    const hash = Buffer.from(this.hash.toString(16).padStart(64, "0"), "hex");
    writeUtxoStats(this.db, { count: this.count, total: this.total, hash });
  }
}

/** Connecting a block: spends and creates its outputs and updates the stats. */
export function connectUtxos(db: Db, changes: BlockChanges): void {
  const stats = new RunningStats(db);
  for (const s of changes.spent)
    stats.remove(outpointBytes(s.outpoint), encodeUtxoEntry(s.entry), s.entry.amount);
  for (const c of changes.created) stats.put(c.outpoint, c.entry);
  stats.write();
}

/**
 * Disconnecting a block: removes the outputs it created, restores the ones it spent (from its
 * undo data) and updates the stats.
 */
export function disconnectUtxos(db: Db, block: Block, undo: { txids: Buffer[]; spent: SpentOutput[] }): void {
  const stats = new RunningStats(db);
  block.txs.forEach((tx, i) => {
    const id = undo.txids[i]!;
    tx.outputs.forEach((_o, index) => {
      const k = outpointBytes({ txid: id, index });
      const v = db.get(key(P_UTXO, k));
      // An output created and spent inside the same block was never in the set.
      if (v === undefined) return;
      stats.remove(k, Buffer.from(v), decodeUtxoEntry(v).amount);
    });
  });
  for (const s of undo.spent) stats.put(s.outpoint, s.entry);
  stats.write();
}

/** Recomputes the UTXO stats from the set itself (for verify). */
export function computeUtxoStats(db: Db): UtxoStats {
  let hash = 0n;
  let count = 0;
  let total = 0n;
  for (const u of iterateUtxoSet(db)) {
    hash = (hash + utxoDigest(u.key, u.value)) % MOD256;
    count++;
    total += u.entry.amount;
  }
  return { count, total, hash: Buffer.from(hash.toString(16).padStart(64, "0"), "hex") };
}
