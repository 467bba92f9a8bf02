/**
 * ChainStore: the node's LMDB database. One environment, one key space, one-byte prefixes.
 *
 * Key layout (all integers big-endian in keys so ranges sort by number):
 *   V                      -> u32 schema version (SCHEMA_VERSION)
 *   N                      -> network name (utf8, u32 length) ‖ genesis hash (32)
 *   T                      -> tip hash (32)
 *   S                      -> UTXO stats: count u64 ‖ total u64 ‖ multiset hash (32)
 *   b ‖ hash               -> block (canonical encoding)
 *   i ‖ hash               -> block index entry (see writeIndex in storeLayout.ts)
 *   h ‖ u32be height       -> hash of the main-chain block at that height
 *   u ‖ txid ‖ u32be index -> unspent output (UtxoEntry encoding)
 *   d ‖ hash               -> undo data of a connected block: its txids and the outputs it spent
 *   g ‖ mnRoot             -> masternode registry snapshot with that root (content-addressed).
 *                             Written for every stored block whose registry is new: when a block
 *                             is connected, and when a side block is stored, so the mnRoot of
 *                             every stored block resolves. Deleted only with the last stored
 *                             block that names it (see c): a pruned side block's, never a
 *                             main-chain block's.
 *   R                      -> root of the registry at the tip
 *   x ‖ txid               -> main-chain block hash (32) ‖ u32le position of the tx in it
 *   c ‖ mnRoot             -> u32le: how many stored blocks name that registry root; the
 *                             snapshot `g ‖ mnRoot` is deleted with the last of them
 *   p ‖ producer ‖ u32be height ‖ u32be round
 *                          -> hash of the stored block that producer signed for that slot (the
 *                             first one; a second is equivocation evidence)
 *   s ‖ hash               -> u32le height: the stored block is on a side branch (not main)
 *   q ‖ anchor hash        -> the producer schedule of the epoch after that anchor block
 *   E ‖ operator key       -> equivocation evidence against that producer (encoded evidence ‖
 *                             u64le epoch ms when first seen)
 *   z ‖ operator key       -> u32le height of the main-chain block whose evidence slashed it
 *   F                      -> the last final checkpoint and the certificate that finalised it
 *                             (src/chain/chainFinality.ts encodes it)
 *   L                      -> this node's finality vote lock: u32le maxSource ‖ u32le maxTarget
 *   m ‖ hash               -> (empty) the operator marked this block invalid (invalidateblock);
 *                             its stored descendants are marked too
 *   (s's value gains a fifth byte, 1, when the side block was once on the main chain)
 *
 * Every state change (connect, disconnect, reorg) runs inside one LMDB write transaction opened by
 * `atomically`, so a crash leaves either the old or the new state, never a mixture. Commits are
 * durable: `atomically` returns only once the transaction is on disk (overlappingSync is off), so
 * a block is never announced, relayed or built on before a power loss would keep it.
 */
import { openLmdbKv, type KvOpener, type KvStore } from "./kv.js";
import { Reader, Writer } from "../codec/index.js";
import { decodeRegistry, encodeRegistry, registryRoot, type Registry } from "../consensus/registry.js";
import { slashedBy } from "../consensus/evidence.js";
import {
  HEADER_SIZE,
  decodeBlock,
  decodeHeader,
  encodeBlock,
  type Block,
  type BlockHeader,
} from "../primitives/block.js";
import { ROUND_WEIGHT_BASE } from "../primitives/constants.js";
import type { NetworkName } from "../primitives/params.js";
import type { OutPoint } from "../primitives/tx.js";
import { decodeUtxoEntry, type UtxoEntry, type UtxoView } from "../primitives/utxo.js";
import type { BlockChanges, SpentOutput } from "../consensus/validation.js";
import {
  K_FINAL,
  K_NETWORK,
  K_REGROOT,
  K_VOTELOCK,
  K_TIP,
  K_VERSION,
  P_BLOCK,
  P_EVIDENCE,
  P_INDEX,
  P_REGISTRY,
  P_REGREFS,
  P_SCHEDULE,
  P_SIDE,
  P_SLASHED,
  P_MANUAL_INVALID,
  P_TXINDEX,
  P_UNDO,
  heightKey,
  key,
  readIndex,
  readUndo,
  slotKey,
  utxoKey,
  writeIndex,
  writeUndo,
  type BlockIndex,
} from "./storeLayout.js";
import {
  computeUtxoStats,
  connectUtxos,
  disconnectUtxos,
  iterateUtxoSet,
  readUtxoStats,
  writeUtxoStats,
  type UtxoStats,
} from "./utxoSet.js";

// The key encodings are in storeLayout.ts, the UTXO set and its stats in utxoSet.ts.
export type { BlockIndex } from "./storeLayout.js";
export type { UtxoStats } from "./utxoSet.js";

/** 2: slot index, side set, registry refcounts, schedules, evidence and slashed keys. */
/** 3: finality eras (the vote lock and the final record carry eras; era anchors carry VRF proofs). */
export const SCHEMA_VERSION = 3;

export class StoreError extends Error {}

export function blockWork(round: number): bigint {
  // At least 1, so every block adds work and a longer chain of very late rounds still counts.
  const w = ROUND_WEIGHT_BASE / BigInt(round + 1);
  return w > 0n ? w : 1n;
}

export class ChainStore implements UtxoView {
  private readonly db: KvStore;
  private registryCache: { root: Buffer; reg: Registry } | null = null;

  private constructor(db: KvStore) {
    this.db = db;
  }

  /**
   * Opens (or creates) the store in `dir`. A store made for another network or another genesis
   * refuses to open with one clear line.
   */
  static open(
    dir: string,
    network: NetworkName,
    genesisHash: Buffer,
    opts: { durable?: boolean; openKv?: KvOpener } = {},
  ): ChainStore {
    const db = (opts.openKv ?? openLmdbKv)(dir, { durable: opts.durable !== false });
    const store = new ChainStore(db);
    try {
      store.checkIdentity(network, genesisHash);
    } catch (e) {
      db.close().catch(() => undefined);
      throw e;
    }
    return store;
  }

  private checkIdentity(network: NetworkName, genesisHash: Buffer): void {
    const v = this.db.get(K_VERSION);
    const n = this.db.get(K_NETWORK);
    if (v === undefined && n === undefined) return; // fresh store; init() writes identity
    if (!v || v.readUInt32LE(0) !== SCHEMA_VERSION) {
      throw new StoreError(
        `chain database schema version ${v ? v.readUInt32LE(0) : "missing"} is not ${SCHEMA_VERSION}`,
      );
    }
    if (!n) throw new StoreError("chain database has no network record");
    const r = new Reader(n);
    const storedNet = r.string(16);
    const storedGenesis = r.fixed(32);
    if (storedNet !== network) {
      throw new StoreError(`data directory belongs to ${storedNet}, not ${network}`);
    }
    if (!storedGenesis.equals(genesisHash)) {
      throw new StoreError(
        `data directory was created for genesis ${storedGenesis.toString("hex")}, not ${genesisHash.toString("hex")}`,
      );
    }
  }

  get isEmpty(): boolean {
    return this.db.get(K_TIP) === undefined;
  }

  /** Writes the identity records and connects the genesis block. */
  initGenesis(
    network: NetworkName,
    genesis: Block,
    genesisHash: Buffer,
    registry: Registry,
    changes: BlockChanges,
  ): void {
    this.atomically(() => {
      const ver = Buffer.alloc(4);
      ver.writeUInt32LE(SCHEMA_VERSION);
      this.db.putSync(K_VERSION, ver);
      this.db.putSync(K_NETWORK, new Writer(64).string(network, 16).fixed(genesisHash, 32).toBuffer());
      writeUtxoStats(this.db, { count: 0, total: 0n, hash: Buffer.alloc(32) });
      this.putRegistrySnapshot(registry);
      this.db.putSync(K_REGROOT, registryRoot(registry));
      const encoded = encodeBlock(genesis);
      const entry: BlockIndex = {
        hash: genesisHash,
        height: 0,
        prevHash: genesis.header.prevHash,
        timestamp: genesis.header.timestamp,
        round: 0,
        producer: genesis.header.producer,
        mnRoot: genesis.header.mnRoot,
        work: 0n,
        size: encoded.length,
        txCount: genesis.txs.length,
      };
      this.putBlock(entry, encoded);
      this.applyConnect(
        entry,
        changes,
        changes.created.length > 0 ? [changes.created[0]!.outpoint.txid] : [],
      );
    });
  }

  /** Runs `fn` in one write transaction; if it throws, nothing it wrote is kept. */
  atomically<T>(fn: () => T): T {
    // Durable: returns once the commit is on disk. Called inside another atomically() it runs as
    // a child transaction, so a batch of blocks shares one commit and each still rolls back alone.
    return this.db.transactionSync(fn);
  }

  /** Resolves when every commit so far is on disk; called at shutdown. */
  async flushed(): Promise<void> {
    await this.db.flushed;
  }

  // ---- reads ----

  getTipHash(): Buffer {
    const t = this.db.get(K_TIP);
    if (!t) throw new StoreError("chain database has no tip");
    return Buffer.from(t);
  }

  getIndex(hash: Uint8Array): BlockIndex | undefined {
    const v = this.db.get(key(P_INDEX, hash));
    return v ? readIndex(Buffer.from(hash), v) : undefined;
  }

  hasBlock(hash: Uint8Array): boolean {
    return this.db.get(key(P_INDEX, hash)) !== undefined;
  }

  getBlockBytes(hash: Uint8Array): Buffer | undefined {
    const v = this.db.get(key(P_BLOCK, hash));
    return v ? Buffer.from(v) : undefined;
  }

  getBlock(hash: Uint8Array): Block | undefined {
    const v = this.db.get(key(P_BLOCK, hash));
    return v ? decodeBlock(v) : undefined;
  }

  /** A stored block's header alone: the first HEADER_SIZE bytes of its encoding, not the body. */
  getHeader(hash: Uint8Array): BlockHeader | undefined {
    const v = this.db.get(key(P_BLOCK, hash));
    return v ? decodeHeader(Buffer.from(v).subarray(0, HEADER_SIZE)) : undefined;
  }

  getHashAtHeight(height: number): Buffer | undefined {
    if (!Number.isInteger(height) || height < 0 || height > 0xffffffff) return undefined;
    const v = this.db.get(heightKey(height));
    return v ? Buffer.from(v) : undefined;
  }

  getUtxo(o: OutPoint): UtxoEntry | undefined {
    const v = this.db.get(utxoKey(o));
    return v ? decodeUtxoEntry(v) : undefined;
  }

  getStats(): UtxoStats {
    return readUtxoStats(this.db);
  }

  getRegistryRoot(): Buffer {
    const v = this.db.get(K_REGROOT);
    if (!v) throw new StoreError("chain database has no registry root");
    return Buffer.from(v);
  }

  /** The registry snapshot with this root, if it was ever the registry after a stored block. */
  getRegistryByRoot(root: Uint8Array): Registry | undefined {
    // Asked for several times per liveness message and vote: a 32-byte compare, not a hex string.
    if (this.registryCache?.root.equals(root)) return this.registryCache.reg;
    const v = this.db.get(key(P_REGISTRY, root));
    if (!v) return undefined;
    const reg = decodeRegistry(v);
    this.registryCache = { root: Buffer.from(root), reg };
    return reg;
  }

  getRegistry(): Registry {
    const reg = this.getRegistryByRoot(this.getRegistryRoot());
    if (!reg) throw new StoreError("registry snapshot for the tip is missing");
    return reg;
  }

  /** Iterates the whole UTXO set (used by verify and gettxoutsetinfo). */
  *iterateUtxos(): Generator<{ outpoint: OutPoint; entry: UtxoEntry; key: Buffer; value: Buffer }> {
    yield* iterateUtxoSet(this.db);
  }

  /** Where a main-chain transaction is: its block and position. */
  getTxLocation(txid: Uint8Array): { blockHash: Buffer; index: number } | undefined {
    const v = this.db.get(key(P_TXINDEX, txid));
    if (!v) return undefined;
    return { blockHash: Buffer.from(v.subarray(0, 32)), index: v.readUInt32LE(32) };
  }

  getUndo(hash: Uint8Array): { txids: Buffer[]; spent: SpentOutput[] } | undefined {
    const v = this.db.get(key(P_UNDO, hash));
    if (!v) return undefined;
    return readUndo(v);
  }

  /** The stored block `producer` signed for (height, round), if any. */
  getSlot(producer: Uint8Array, height: number, round: number): Buffer | undefined {
    const v = this.db.get(slotKey(producer, height, round));
    return v ? Buffer.from(v) : undefined;
  }

  /** Whether a stored block is on a side branch (stored, not on the main chain). */
  isSide(hash: Uint8Array): boolean {
    return this.db.get(key(P_SIDE, hash)) !== undefined;
  }

  /**
   * Every stored side block's hash and height (bounded by the side-storage rules), and whether it
   * was once on the main chain (fully validated).
   */
  *iterateSide(): Generator<{ hash: Buffer; height: number; connected: boolean }> {
    for (const { key: k, value } of this.db.getRange({
      start: Buffer.from([P_SIDE]),
      end: Buffer.from([P_SIDE + 1]),
    })) {
      const v = Buffer.from(value);
      yield {
        hash: Buffer.from(Buffer.from(k).subarray(1)),
        height: v.readUInt32LE(0),
        connected: v[4] === 1,
      };
    }
  }

  /** Blocks the operator marked invalid (invalidateblock), with their descendants. */
  *iterateManualInvalid(): Generator<Buffer> {
    for (const { key: k } of this.db.getRange({
      start: Buffer.from([P_MANUAL_INVALID]),
      end: Buffer.from([P_MANUAL_INVALID + 1]),
    })) {
      yield Buffer.from(Buffer.from(k).subarray(1));
    }
  }

  /** Whether the operator marked this block invalid (invalidateblock). */
  isManualInvalid(hash: Uint8Array): boolean {
    return this.db.get(key(P_MANUAL_INVALID, hash)) !== undefined;
  }

  /** Marks (true) or clears (false) a block as invalid by the operator's decision. */
  setManualInvalid(hash: Uint8Array, invalid: boolean): void {
    const k = key(P_MANUAL_INVALID, hash);
    if (invalid) this.db.putSync(k, Buffer.alloc(0));
    else this.db.removeSync(k);
  }

  getSchedule(anchor: Uint8Array): Buffer | undefined {
    const v = this.db.get(key(P_SCHEDULE, anchor));
    return v ? Buffer.from(v) : undefined;
  }

  /** Evidence held against an operator key: its encoding and when it was first seen. */
  getEvidence(operator: Uint8Array): { bytes: Buffer; seenAt: number } | undefined {
    const v = this.db.get(key(P_EVIDENCE, operator));
    if (!v) return undefined;
    const b = Buffer.from(v);
    return { bytes: b.subarray(0, b.length - 8), seenAt: Number(b.readBigUInt64LE(b.length - 8)) };
  }

  *iterateEvidence(): Generator<{ operator: Buffer; bytes: Buffer; seenAt: number }> {
    for (const { key: k, value } of this.db.getRange({
      start: Buffer.from([P_EVIDENCE]),
      end: Buffer.from([P_EVIDENCE + 1]),
    })) {
      const b = Buffer.from(value);
      yield {
        operator: Buffer.from(Buffer.from(k).subarray(1)),
        bytes: b.subarray(0, b.length - 8),
        seenAt: Number(b.readBigUInt64LE(b.length - 8)),
      };
    }
  }

  get evidenceCount(): number {
    let n = 0;
    for (const _ of this.db.getKeys({ start: Buffer.from([P_EVIDENCE]), end: Buffer.from([P_EVIDENCE + 1]) }))
      n++;
    return n;
  }

  /** The height of the main-chain block whose evidence slashed `operator`, or undefined. */
  slashedAt(operator: Uint8Array): number | undefined {
    const v = this.db.get(key(P_SLASHED, operator));
    return v ? Buffer.from(v).readUInt32LE(0) : undefined;
  }

  /** Every slashed operator key (hex) with the height of the block that slashed it. */
  slashedKeys(): Map<string, number> {
    const out = new Map<string, number>();
    for (const { key: k, value } of this.db.getRange({
      start: Buffer.from([P_SLASHED]),
      end: Buffer.from([P_SLASHED + 1]),
    })) {
      out.set(Buffer.from(k).subarray(1).toString("hex"), Buffer.from(value).readUInt32LE(0));
    }
    return out;
  }

  isSlashed(operator: Uint8Array): boolean {
    return this.slashedAt(operator) !== undefined;
  }

  // ---- writes (call inside atomically) ----

  /**
   * Stores a block body and its index entry without connecting it, and records its slot
   * (producer, height, round) unless another block holds it. The registry root it names gains a
   * reference. Pass `side` for a block that is not joining the main chain now.
   */
  putBlock(entry: BlockIndex, encoded: Buffer, side = false): void {
    this.db.putSync(key(P_BLOCK, entry.hash), encoded);
    this.db.putSync(key(P_INDEX, entry.hash), writeIndex(entry));
    if (entry.height > 0) {
      const sk = slotKey(entry.producer, entry.height, entry.round);
      if (this.db.get(sk) === undefined) this.db.putSync(sk, entry.hash);
    }
    const rk = key(P_REGREFS, entry.mnRoot);
    const refs = this.db.get(rk);
    const n = Buffer.alloc(4);
    n.writeUInt32LE((refs ? Buffer.from(refs).readUInt32LE(0) : 0) + 1);
    this.db.putSync(rk, n);
    if (side) this.markSide(entry, true);
  }

  /**
   * Marks a stored block as on a side branch (true) or on the main chain (false). `connected`: it
   * left the main chain, so it passed every rule once (a fully validated fork, for getchaintips).
   */
  markSide(entry: BlockIndex, side: boolean, connected = false): void {
    const k = key(P_SIDE, entry.hash);
    if (side) {
      const h = Buffer.alloc(connected ? 5 : 4);
      h.writeUInt32LE(entry.height);
      if (connected) h[4] = 1;
      this.db.putSync(k, h);
    } else {
      this.db.removeSync(k);
    }
  }

  /**
   * Deletes a side block for good: body, index entry, slot, schedule, side mark, and its registry
   * root's reference (the snapshot goes with the last reference). Main-chain blocks are never
   * deleted.
   */
  deleteSideBlock(entry: BlockIndex): void {
    if (!this.isSide(entry.hash))
      throw new StoreError(`block ${entry.hash.toString("hex")} is not a side block`);
    this.db.removeSync(key(P_BLOCK, entry.hash));
    this.db.removeSync(key(P_INDEX, entry.hash));
    this.db.removeSync(key(P_SIDE, entry.hash));
    this.db.removeSync(key(P_SCHEDULE, entry.hash));
    this.db.removeSync(key(P_MANUAL_INVALID, entry.hash));
    if (entry.height > 0) {
      const sk = slotKey(entry.producer, entry.height, entry.round);
      const held = this.db.get(sk);
      if (held && Buffer.from(held).equals(entry.hash)) this.db.removeSync(sk);
    }
    const rk = key(P_REGREFS, entry.mnRoot);
    const refs = this.db.get(rk);
    const n = refs ? Buffer.from(refs).readUInt32LE(0) : 0;
    if (n <= 1) {
      this.db.removeSync(rk);
      this.db.removeSync(key(P_REGISTRY, entry.mnRoot));
      if (this.registryCache?.root.equals(entry.mnRoot)) this.registryCache = null;
    } else {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(n - 1);
      this.db.putSync(rk, b);
    }
  }

  putSchedule(anchor: Uint8Array, encoded: Buffer): void {
    this.db.putSync(key(P_SCHEDULE, anchor), encoded);
  }

  /** Keeps evidence against `operator` (the first one seen; later ones are not needed). */
  putEvidence(operator: Uint8Array, bytes: Buffer, seenAt: number): boolean {
    const k = key(P_EVIDENCE, operator);
    if (this.db.get(k) !== undefined) return false;
    const t = Buffer.alloc(8);
    t.writeBigUInt64LE(BigInt(Math.max(0, Math.floor(seenAt))));
    this.db.putSync(k, Buffer.concat([bytes, t]));
    return true;
  }

  /** The encoded last final checkpoint and its certificate, if any block is final. */
  getFinality(): Buffer | undefined {
    return this.db.get(K_FINAL);
  }

  putFinality(encoded: Buffer): void {
    this.db.putSync(K_FINAL, encoded);
  }

  /**
   * This node's finality vote lock: the latest era it signed in, and its highest source and target
   * epochs signed in that era. (An 8-byte record, from before eras, is era 0.)
   */
  getVoteLock(): { era: number; maxSource: number; maxTarget: number } | undefined {
    const v = this.db.get(K_VOTELOCK);
    if (v?.length === 8) return { era: 0, maxSource: v.readUInt32LE(0), maxTarget: v.readUInt32LE(4) };
    if (v?.length !== 12) return undefined;
    return { era: v.readUInt32LE(8), maxSource: v.readUInt32LE(0), maxTarget: v.readUInt32LE(4) };
  }

  /** Durable before it returns: a vote may leave only once its lock is on disk. */
  putVoteLock(lock: { era: number; maxSource: number; maxTarget: number }): void {
    const b = Buffer.alloc(12);
    b.writeUInt32LE(lock.maxSource, 0);
    b.writeUInt32LE(lock.maxTarget, 4);
    b.writeUInt32LE(lock.era, 8);
    this.db.putSync(K_VOTELOCK, b);
  }

  /** Stores a registry snapshot under its root (idempotent); returns the root. */
  putRegistrySnapshot(reg: Registry): Buffer {
    const root = registryRoot(reg);
    const k = key(P_REGISTRY, root);
    if (this.db.get(k) === undefined) this.db.putSync(k, encodeRegistry(reg));
    return root;
  }

  /**
   * Makes a validated block the new tip: spends and creates outputs, writes undo data, the height
   * index, the registry and the tip. The block body and index entry must already be stored.
   */
  applyConnect(entry: BlockIndex, changes: BlockChanges, txids: Buffer[]): void {
    connectUtxos(this.db, changes);
    this.db.putSync(key(P_UNDO, entry.hash), writeUndo(txids, changes.spent));
    txids.forEach((id, i) => {
      const loc = Buffer.allocUnsafe(36);
      entry.hash.copy(loc, 0);
      loc.writeUInt32LE(i, 32);
      this.db.putSync(key(P_TXINDEX, id), loc);
    });
    if (changes.registry) this.putRegistrySnapshot(changes.registry);
    for (const op of changes.slashed) {
      const h = Buffer.alloc(4);
      h.writeUInt32LE(entry.height);
      this.db.putSync(key(P_SLASHED, op), h);
    }
    this.markSide(entry, false);
    this.db.putSync(K_REGROOT, entry.mnRoot);
    this.db.putSync(heightKey(entry.height), entry.hash);
    this.db.putSync(K_TIP, entry.hash);
  }

  /**
   * Undoes the tip block: removes the outputs it created, restores the ones it spent, and moves
   * the tip, the height index and the registry back to its parent. Returns the block.
   */
  applyDisconnect(entry: BlockIndex, parent: BlockIndex): Block {
    const block = this.getBlock(entry.hash);
    const undo = this.getUndo(entry.hash);
    if (!block || !undo)
      throw new StoreError(`cannot disconnect ${entry.hash.toString("hex")}: block or undo data missing`);
    disconnectUtxos(this.db, block, undo);
    this.db.removeSync(key(P_UNDO, entry.hash));
    for (const id of undo.txids) this.db.removeSync(key(P_TXINDEX, id));
    for (const op of slashedBy(block)) {
      const at = this.db.get(key(P_SLASHED, op));
      if (at && Buffer.from(at).readUInt32LE(0) === entry.height) this.db.removeSync(key(P_SLASHED, op));
    }
    this.markSide(entry, true, true);
    this.db.removeSync(heightKey(entry.height));
    this.db.putSync(K_REGROOT, parent.mnRoot);
    this.db.putSync(K_TIP, parent.hash);
    return block;
  }

  /** Recomputes the UTXO stats from the set itself (for verify). */
  computeStats(): UtxoStats {
    return computeUtxoStats(this.db);
  }

  async close(): Promise<void> {
    await this.db.flushed;
    await this.db.close();
  }
}
