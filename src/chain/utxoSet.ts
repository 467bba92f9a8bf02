/**
 * ChainStore's UTXO set (u) and its running stats (S): connecting and disconnecting a block's
 * outputs, and the order-independent multiset hash that verify and gettxoutsetinfo compare. The
 * functions write through the store's database and are called inside its write transactions.
 */
import type { RootDatabase } from "lmdb";
import { Writer, decodeExact } from "../codec/index.js";
import { sha256 } from "../crypto/hash.js";
import type { Block } from "../primitives/block.js";
import type { OutPoint } from "../primitives/tx.js";
import { decodeUtxoEntry, encodeUtxoEntry, outpointBytes, type UtxoEntry } from "../primitives/utxo.js";
import type { BlockChanges, SpentOutput } from "../consensus/validation.js";
import { K_STATS, P_UTXO, key } from "./storeLayout.js";

const MOD256 = 1n << 256n;

export interface UtxoStats {
  count: number;
  total: bigint;
  /** Order-independent hash of the set: Σ SHA-256(outpoint ‖ entry) mod 2^256. */
  hash: Buffer;
}

type Db = RootDatabase<Buffer, Buffer>;

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

/** Connecting a block: spends and creates its outputs and updates the stats. */
export function connectUtxos(db: Db, changes: BlockChanges): void {
  const stats = readUtxoStats(db);
  let hash = BigInt("0x" + stats.hash.toString("hex"));
  let count = stats.count;
  let total = stats.total;
  for (const s of changes.spent) {
    const k = outpointBytes(s.outpoint);
    const v = encodeUtxoEntry(s.entry);
    db.removeSync(key(P_UTXO, k));
    hash = (hash - utxoDigest(k, v) + MOD256) % MOD256;
    count--;
    total -= s.entry.amount;
  }
  for (const c of changes.created) {
    const k = outpointBytes(c.outpoint);
    const v = encodeUtxoEntry(c.entry);
    db.putSync(key(P_UTXO, k), v);
    hash = (hash + utxoDigest(k, v)) % MOD256;
    count++;
    total += c.entry.amount;
  }
  writeUtxoStats(db, { count, total, hash: Buffer.from(hash.toString(16).padStart(64, "0"), "hex") });
}

/**
 * Disconnecting a block: removes the outputs it created, restores the ones it spent (from its
 * undo data) and updates the stats.
 */
export function disconnectUtxos(db: Db, block: Block, undo: { txids: Buffer[]; spent: SpentOutput[] }): void {
  const stats = readUtxoStats(db);
  let hash = BigInt("0x" + stats.hash.toString("hex"));
  let count = stats.count;
  let total = stats.total;
  block.txs.forEach((tx, i) => {
    const id = undo.txids[i]!;
    tx.outputs.forEach((_o, index) => {
      const k = outpointBytes({ txid: id, index });
      const dbk = key(P_UTXO, k);
      const v = db.get(dbk);
      // An output created and spent inside the same block was never in the set.
      if (v === undefined) return;
      db.removeSync(dbk);
      hash = (hash - utxoDigest(k, Buffer.from(v)) + MOD256) % MOD256;
      count--;
      total -= decodeUtxoEntry(v).amount;
    });
  });
  for (const s of undo.spent) {
    const k = outpointBytes(s.outpoint);
    const v = encodeUtxoEntry(s.entry);
    db.putSync(key(P_UTXO, k), v);
    hash = (hash + utxoDigest(k, v)) % MOD256;
    count++;
    total += s.entry.amount;
  }
  writeUtxoStats(db, { count, total, hash: Buffer.from(hash.toString(16).padStart(64, "0"), "hex") });
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
