/**
 * An in-memory KvStore (kv.ts) for the simulator. The data (MemoryKvData) outlives the handle
 * that writes it, as files outlive a process: a simulated crash kills the handle (every later
 * call on it throws, so a dead node's leftover callbacks cannot write) and a restart opens a new
 * handle on the same data. Every committed write survives and nothing else does, which is what a
 * crash does to LMDB with durable commits.
 */
import type { KvRange, KvStore } from "./kv.js";

const ABSENT = Symbol("absent");
type Prior = Buffer | typeof ABSENT;

/** The committed contents, by first key byte, then by key (latin1). */
export class MemoryKvData {
  readonly buckets = new Map<number, Map<string, Buffer>>();

  get bytes(): number {
    let n = 0;
    for (const b of this.buckets.values()) for (const [k, v] of b) n += k.length + v.length;
    return n;
  }
}

export class MemoryKv implements KvStore {
  /** Undo logs of the open transactions, innermost last. */
  private frames: Array<Map<string, Prior>> = [];
  private dead: string | null = null;
  readonly flushed: Promise<void> = Promise.resolve();

  constructor(readonly data: MemoryKvData = new MemoryKvData()) {}

  /** Every later call throws `why`: the process that held this handle is gone. */
  kill(why: string): void {
    this.dead = why;
  }

  get(key: Buffer): Buffer | undefined {
    this.alive();
    if (key.length === 0) return undefined;
    return this.data.buckets.get(key[0]!)?.get(key.toString("latin1"));
  }

  putSync(key: Buffer, value: Buffer): void {
    this.alive();
    if (key.length === 0) throw new Error("MemoryKv: empty key");
    const k = key.toString("latin1");
    let bucket = this.data.buckets.get(key[0]!);
    if (!bucket) this.data.buckets.set(key[0]!, (bucket = new Map<string, Buffer>()));
    this.remember(bucket, k);
    bucket.set(k, Buffer.from(value));
  }

  removeSync(key: Buffer): boolean {
    this.alive();
    const bucket = key.length > 0 ? this.data.buckets.get(key[0]!) : undefined;
    if (!bucket) return false;
    const k = key.toString("latin1");
    if (!bucket.has(k)) return false;
    this.remember(bucket, k);
    bucket.delete(k);
    return true;
  }

  *getRange(range: KvRange): Generator<{ key: Buffer; value: Buffer }> {
    for (const k of this.sortedKeys(range)) {
      const value = this.data.buckets.get(k[0]!)?.get(k.toString("latin1"));
      if (value !== undefined) yield { key: k, value };
    }
  }

  *getKeys(range: KvRange): Generator<Buffer> {
    yield* this.sortedKeys(range);
  }

  transactionSync<T>(fn: () => T): T {
    this.alive();
    const frame = new Map<string, Prior>();
    this.frames.push(frame);
    let result: T;
    try {
      result = fn();
    } catch (e) {
      this.frames.pop();
      this.rollback(frame);
      throw e;
    }
    this.frames.pop();
    const parent = this.frames.at(-1);
    if (parent) for (const [k, prior] of frame) if (!parent.has(k)) parent.set(k, prior);
    return result;
  }

  close(): Promise<void> {
    this.dead ??= "the store is closed";
    return Promise.resolve();
  }

  private alive(): void {
    if (this.dead !== null) throw new Error(`MemoryKv: ${this.dead}`);
  }

  private remember(bucket: Map<string, Buffer>, k: string): void {
    const frame = this.frames.at(-1);
    if (frame && !frame.has(k)) frame.set(k, bucket.get(k) ?? ABSENT);
  }

  private rollback(frame: Map<string, Prior>): void {
    for (const [k, prior] of frame) {
      const first = k.charCodeAt(0);
      let bucket = this.data.buckets.get(first);
      if (prior === ABSENT) {
        bucket?.delete(k);
      } else {
        if (!bucket) this.data.buckets.set(first, (bucket = new Map<string, Buffer>()));
        bucket.set(k, prior);
      }
    }
  }

  /** The keys in [start, end), sorted; a snapshot, so writes while iterating are safe. */
  private sortedKeys(range: KvRange): Buffer[] {
    this.alive();
    const out: Buffer[] = [];
    const lo = range.start.length > 0 ? range.start[0]! : 0;
    const hi = range.end.length > 0 ? range.end[0]! : 255;
    for (const [first, bucket] of this.data.buckets) {
      if (first < lo || first > hi) continue;
      for (const k of bucket.keys()) {
        const kb = Buffer.from(k, "latin1");
        if (Buffer.compare(kb, range.start) >= 0 && Buffer.compare(kb, range.end) < 0) out.push(kb);
      }
    }
    return out.sort((x, y) => Buffer.compare(x, y));
  }
}
