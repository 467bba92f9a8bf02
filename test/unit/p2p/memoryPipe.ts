// An in-memory byte pipe for P2P unit tests: two Connection ends on any addresses, delivering in
// order and never re-entrantly (in a later microtask, as a socket would), which a test can stall.
import type { Connection } from "../../../src/p2p/transport.js";

/** One end of an in-memory byte pipe. While the pipe is stalled, bytes are held, then delivered at once. */
export class PipeEnd implements Connection {
  readonly remotePort = 1;
  readonly localPort = 2;
  other!: PipeEnd;
  private dataFns: Array<(b: Buffer) => void> = [];
  private closeFns: Array<() => void> = [];
  private held: Buffer[] = [];
  closed = false;
  stalled = false;
  constructor(
    readonly localHost: string,
    readonly remoteHost: string,
  ) {}
  get pendingBytes(): number {
    return 0;
  }
  write(data: Buffer): boolean {
    if (this.closed || this.ending) return false;
    if (this.stalled) this.held.push(Buffer.from(data));
    else this.other.deliver(Buffer.from(data));
    return true;
  }
  release(): void {
    this.stalled = false;
    const burst = Buffer.concat(this.held);
    this.held = [];
    if (burst.length > 0) this.other.deliver(burst);
  }
  /** Bytes are handed to the reader in a later microtask, in order, never re-entrantly. */
  private queue: Buffer[] = [];
  deliver(b: Buffer): void {
    if (this.closed) return;
    this.queue.push(b);
    if (this.queue.length === 1) queueMicrotask(() => this.drain());
  }
  private drain(): void {
    while (this.queue.length > 0 && this.dataFns.length > 0 && !this.closed) {
      const b = this.queue.shift()!;
      for (const fn of this.dataFns) fn(b);
    }
  }
  onData(fn: (b: Buffer) => void): void {
    this.dataFns.push(fn);
    queueMicrotask(() => this.drain());
  }
  onDrain(): void {}
  onClose(fn: () => void): void {
    this.closeFns.push(fn);
  }
  pause(): void {}
  resume(): void {}
  /** Flushes what is queued (the other end reads it), then closes. */
  end(): void {
    if (this.closed || this.ending) return;
    this.ending = true;
    // Behind the deliveries already queued: microtasks run in order.
    queueMicrotask(() => queueMicrotask(() => this.destroy()));
  }
  private ending = false;
  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    // As with a socket, "close" is reported later, not from inside end() or destroy().
    queueMicrotask(() => {
      for (const fn of this.closeFns) fn();
    });
    this.other.destroy();
  }
}

export function pipe(aHost = "127.0.9.1", bHost = "127.0.9.2"): [PipeEnd, PipeEnd] {
  const a = new PipeEnd(aHost, bHost);
  const b = new PipeEnd(bHost, aHost);
  a.other = b;
  b.other = a;
  return [a, b];
}
