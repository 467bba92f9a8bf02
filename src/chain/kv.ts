/**
 * The key-value store under ChainStore: the small, synchronous part of LMDB's API that the chain
 * uses. LMDB (openLmdbKv) backs every real node; MemoryKv (memoryKv.ts) backs the simulator, where
 * a thousand nodes share one process. Both give the same guarantees: a write outside a
 * transaction, and a transaction once it returns, are committed (durable); a transaction whose
 * function throws leaves nothing behind; a transaction opened inside another is a child that
 * rolls back alone.
 */
import { mkdirSync } from "node:fs";
import { open } from "lmdb";

export interface KvRange {
  /** Inclusive. */
  start: Buffer;
  /** Exclusive. */
  end: Buffer;
}

export interface KvStore {
  get(key: Buffer): Buffer | undefined;
  putSync(key: Buffer, value: Buffer): void;
  /** Whether there was an entry to remove. */
  removeSync(key: Buffer): boolean;
  /** Entries with start <= key < end, in byte order of the keys. */
  getRange(range: KvRange): Iterable<{ key: Buffer; value: Buffer }>;
  getKeys(range: KvRange): Iterable<Buffer>;
  /** Runs `fn` in one write transaction; if it throws, nothing it wrote is kept. */
  transactionSync<T>(fn: () => T): T;
  /** Resolves once every commit so far is on disk. */
  readonly flushed: PromiseLike<unknown>;
  close(): Promise<void>;
}

/** Opens (or creates) the LMDB environment in `dir`. */
export function openLmdbKv(dir: string, opts: { durable: boolean }): KvStore {
  mkdirSync(dir, { recursive: true });
  return open<Buffer, Buffer>({
    path: dir,
    keyEncoding: "binary",
    encoding: "binary",
    // Room for a long chain; LMDB only maps address space, it does not allocate it.
    mapSize: 64 * 1024 ** 3,
    // Durable commits: lmdb's default on Linux (overlappingSync) returns from a commit before
    // its fsync, so a power loss could drop a block the node had already announced or signed.
    // (`durable: false` restores that default, for the benchmark that measures the cost.)
    overlappingSync: !opts.durable,
  }) as unknown as KvStore;
}

/** How a chain opens its store in a directory; the default is LMDB. */
export type KvOpener = (dir: string, opts: { durable: boolean }) => KvStore;
