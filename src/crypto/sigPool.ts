/**
 * Signature checks on every core (docs/ARCHITECTURE.md, "Signature pool"). Block import runs on
 * the main thread, in order, in one write transaction per batch; before a batch is imported, its
 * signatures (input signatures, the producer's, a certificate's votes) go to a pool of worker
 * threads. Each good one is recorded by its exact bytes (ed25519.ts, notePreverified), and the
 * import's own verifySignature takes it from there instead of checking it again. A bad or
 * unanswered one is simply not recorded: the import checks it itself and refuses the block as
 * before, so the pool can change how fast a block is judged, never how.
 *
 * Bounded: `threads` workers, started on the first call of at least MIN_ITEMS_PER_CALL signatures
 * and stopped by close(); at most MAX_ITEMS_PER_CALL signatures per call (the rest are left to the
 * import); every job has a timeout, after which its workers are replaced and its signatures are
 * left to the import.
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { notePreverified, PUBKEY_LEN, SIGNATURE_LEN } from "./ed25519.js";

export interface SigItem {
  pubkey: Uint8Array;
  message: Uint8Array;
  signature: Uint8Array;
}

export interface SigPoolOptions {
  /** Worker threads (at least 1). */
  threads: number;
  /** A job not answered within this is abandoned (its signatures are checked by the import). */
  jobTimeoutMs?: number;
}

export const MAX_ITEMS_PER_CALL = 200_000;
/**
 * Fewer signatures than this are left to the import: handing them over costs about what checking
 * them does, and a node that only ever sees small batches (one following the tip) never starts
 * its workers.
 */
export const MIN_ITEMS_PER_CALL = 256;

/** A node's pool size unless told otherwise: every core, at most 4. */
export function defaultSigPoolThreads(): number {
  return Math.min(4, availableParallelism());
}
/** Messages longer than this are not sent to a worker (none of the node's signed messages is). */
const MAX_MESSAGE = 0xffff;
const DEFAULT_JOB_TIMEOUT_MS = 30_000;

// The worker: a loop over packed items (u16 message length ‖ key 32 ‖ signature 64 ‖ message),
// answering one byte per item (1 good, 0 not). CommonJS, evaluated from this string, so that it
// runs the same from the TypeScript sources and from the build.
const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const { createPublicKey, verify } = require("node:crypto");
const SPKI = Buffer.from("302a300506032b6570032100", "hex");
const keys = new Map();
parentPort.on("message", ({ id, buf, count }) => {
  const b = Buffer.from(buf);
  const out = new Uint8Array(count);
  let off = 0;
  for (let i = 0; i < count; i++) {
    const len = b.readUInt16LE(off);
    const pk = b.subarray(off + 2, off + 34);
    const sig = b.subarray(off + 34, off + 98);
    const msg = b.subarray(off + 98, off + 98 + len);
    off += 98 + len;
    try {
      const id = pk.toString("latin1");
      let ko = keys.get(id);
      if (!ko) {
        if (keys.size >= 16384) keys.clear();
        try {
          ko = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: pk.toString("base64url") }, format: "jwk" });
        } catch {
          ko = createPublicKey({ key: Buffer.concat([SPKI, pk]), format: "der", type: "spki" });
        }
        keys.set(id, ko);
      }
      out[i] = verify(null, msg, ko, sig) ? 1 : 0;
    } catch {
      out[i] = 0;
    }
  }
  parentPort.postMessage({ id, out }, [out.buffer]);
});
`;

interface Job {
  resolve: (out: Uint8Array | null) => void;
  timer: NodeJS.Timeout;
}

export class SignaturePool {
  private workers: Worker[] = [];
  private readonly jobs = new Map<number, Job>();
  private nextJob = 1;
  private closed = false;
  /** Signatures checked by the workers, and how many of them were good. */
  checked = 0;
  good = 0;

  constructor(private readonly opts: SigPoolOptions) {
    if (!Number.isInteger(opts.threads) || opts.threads < 1)
      throw new Error(`a signature pool needs at least one thread, not ${opts.threads}`);
  }

  get threads(): number {
    return this.opts.threads;
  }

  /**
   * Checks `items` on the workers and records the good ones (notePreverified). Resolves when
   * every worker answered or timed out; never rejects. Returns how many were good.
   */
  async verifyAll(items: readonly SigItem[]): Promise<number> {
    if (this.closed || items.length < MIN_ITEMS_PER_CALL) return 0;
    const usable = items
      .slice(0, MAX_ITEMS_PER_CALL)
      .filter(
        (x) =>
          x.pubkey.length === PUBKEY_LEN &&
          x.signature.length === SIGNATURE_LEN &&
          x.message.length <= MAX_MESSAGE,
      );
    this.start();
    const n = this.workers.length;
    const per = Math.ceil(usable.length / n);
    const parts: Array<Promise<number>> = [];
    for (let w = 0; w < n && w * per < usable.length; w++)
      parts.push(this.run(w, usable.slice(w * per, (w + 1) * per)));
    let good = 0;
    for (const g of await Promise.all(parts)) good += g;
    return good;
  }

  /** Stops the workers; later calls check nothing. Jobs in flight resolve with nothing recorded. */
  async close(): Promise<void> {
    this.closed = true;
    for (const [id, job] of this.jobs) {
      clearTimeout(job.timer);
      job.resolve(null);
      this.jobs.delete(id);
    }
    const ws = this.workers.splice(0);
    await Promise.all(ws.map((w) => w.terminate()));
  }

  private start(): void {
    while (this.workers.length < this.opts.threads) this.workers.push(this.spawn());
  }

  private spawn(): Worker {
    const w = new Worker(WORKER_SOURCE, { eval: true });
    w.unref();
    w.on("message", (m: { id: number; out: Uint8Array }) => {
      const job = this.jobs.get(m.id);
      if (!job) return;
      clearTimeout(job.timer);
      this.jobs.delete(m.id);
      this.refWhileBusy();
      job.resolve(m.out);
    });
    // A worker that fails is replaced on the next call; its jobs time out (or end at close).
    w.on("error", () => this.drop(w));
    w.on("exit", () => this.drop(w));
    return w;
  }

  /**
   * Idle workers never keep the process alive; busy ones do, so a process whose only pending
   * work is a check (timed verify awaiting a batch) does not exit under it.
   */
  private refWhileBusy(): void {
    for (const w of this.workers) {
      if (this.jobs.size > 0) w.ref();
      else w.unref();
    }
  }

  private drop(w: Worker): void {
    const i = this.workers.indexOf(w);
    if (i >= 0) this.workers.splice(i, 1);
  }

  private async run(workerIndex: number, items: readonly SigItem[]): Promise<number> {
    let size = 0;
    for (const x of items) size += 98 + x.message.length;
    const buf = Buffer.alloc(size);
    let off = 0;
    for (const x of items) {
      buf.writeUInt16LE(x.message.length, off);
      buf.set(x.pubkey, off + 2);
      buf.set(x.signature, off + 34);
      buf.set(x.message, off + 98);
      off += 98 + x.message.length;
    }
    const worker = this.workers[workerIndex];
    if (!worker) return 0;
    const id = this.nextJob++;
    const out = await new Promise<Uint8Array | null>((resolve) => {
      const timer = setTimeout(() => {
        this.jobs.delete(id);
        this.refWhileBusy();
        // A worker that does not answer is stuck or overloaded: replace it.
        this.drop(worker);
        void worker.terminate();
        resolve(null);
      }, this.opts.jobTimeoutMs ?? DEFAULT_JOB_TIMEOUT_MS);
      timer.unref();
      this.jobs.set(id, { resolve, timer });
      this.refWhileBusy();
      worker.postMessage({ id, buf: buf.buffer, count: items.length }, [buf.buffer]);
    });
    if (!out || this.closed) return 0;
    let good = 0;
    for (let i = 0; i < items.length; i++) {
      if (out[i] !== 1) continue;
      const x = items[i]!;
      notePreverified(x.pubkey, x.message, x.signature);
      good++;
    }
    this.checked += items.length;
    this.good += good;
    return good;
  }
}
