/**
 * An in-memory Transport with the contract of TCP (src/p2p/transport.ts), for simulations and
 * tests: every node of a MemoryNetwork listens and dials by "host:port" as over loopback, bytes
 * arrive in order and never re-entrantly, and every delay goes through the injected Clock, so a
 * ManualClock drives the whole network and nothing waits on the wall clock.
 *
 * It can do what a real network does to a node: hold a link's bytes while it is down (a
 * partition or a pulled cable, as TCP keeps retransmitting) and deliver them in one burst when
 * it comes back; refuse a dial to a port nobody listens on; let a dial across a dead link time
 * out. Memory is bounded: each direction of a connection holds at most `maxBufferedBytes` not yet
 * read, and a connection that goes past it is destroyed, where a socket would have stopped its
 * writer.
 */
import type { Clock, TimerHandle } from "../util/clock.js";
import type { Random } from "../util/random.js";
import type { Connection, Listener, Transport } from "./transport.js";

export interface MemoryNetworkOptions {
  /** Bytes in flight one way above which write() returns false (then onDrain). Default 1 MiB. */
  highWaterBytes: number;
  /** Bytes in flight one way past which the connection is destroyed. Default 16 MiB. */
  maxBufferedBytes: number;
  /** One-way delay of every write, through the clock. 0 (default): the next microtask. */
  latencyMs: number;
  /**
   * The model of the link from one host to another, when it is more than `latencyMs`: read at
   * every write, so a simulation can change it while running. Undefined: `latencyMs` alone.
   */
  link?: (from: string, to: string) => LinkModel | undefined;
  /** Draws jitter and loss; required with `link` (seeded, so a run repeats). */
  random?: Random;
  /** Sees every write (the simulator hashes them into its event trace). Must not keep `chunk`. */
  onWrite?: (from: string, to: string, chunk: Buffer) => void;
}

/**
 * One direction of a link between two hosts, as TCP sees it. Bytes on one connection still arrive
 * in order (loss delays everything behind it); connections on one link share its bandwidth;
 * different connections may overtake each other.
 */
export interface LinkModel {
  /** One-way propagation delay. */
  latencyMs: number;
  /** A uniform extra delay in [0, jitterMs) per write. */
  jitterMs: number;
  /** Chance that a write's segment is lost and resent after a retransmission timeout. */
  loss: number;
  /** Bytes per second; 0 or Infinity: unlimited. */
  bandwidthBytesPerS: number;
}

/** TCP's minimum retransmission timeout (RFC 6298 allows 1 s; Linux uses 200 ms). */
const MIN_RTO_MS = 200;
/** A segment is resent at most this many times before the model gives up on being realistic. */
const MAX_RETRANSMITS = 6;

export const defaultMemoryNetworkOptions: MemoryNetworkOptions = {
  highWaterBytes: 1024 * 1024,
  maxBufferedBytes: 16 * 1024 * 1024,
  latencyMs: 0,
};

/** Ephemeral ports for dialling ends, and ports for listen(host, 0). */
const FIRST_PORT = 40_000;
const LAST_PORT = 65_535;
/** A connection that ends but cannot flush (a dead link) is destroyed after this long. */
const END_TIMEOUT_MS = 2_000;
/** A network holds at most this many open connections (a bound, like a host's file descriptors). */
export const MAX_MEMORY_CONNECTIONS = 100_000;

const linkKey = (a: string, b: string): string => (a < b ? `${a}|${b}` : `${b}|${a}`);

/** A shared in-memory "switch": create one per simulation, and one transport per node. */
export class MemoryNetwork {
  readonly opts: MemoryNetworkOptions;
  private readonly listeners = new Map<string, (c: Connection) => void>();
  private readonly downLinks = new Set<string>();
  private readonly open = new Set<MemoryConnection>();
  /** When each directed link's bandwidth is next free (only with a link model). */
  private readonly busyUntil = new Map<string, number>();
  private nextPort = FIRST_PORT;
  /** Bytes and writes carried, for the simulator's report. */
  readonly stats = { writes: 0, bytes: 0 };

  constructor(
    readonly clock: Clock,
    opts: Partial<MemoryNetworkOptions> = {},
  ) {
    this.opts = { ...defaultMemoryNetworkOptions, ...opts };
  }

  /** A Transport for a node whose address is `host` (it dials from there unless told otherwise). */
  transport(host: string): Transport {
    return {
      listen: (h, port, onConnection) => this.listen(h, port, onConnection),
      dial: (h, port, opts) => this.dial(opts.localHost ?? host, h, port, opts.timeoutMs),
    };
  }

  /**
   * The delay of `bytes` written now from `from` to `to` on a connection whose previous write
   * arrives at `after` (virtual ms): never earlier than that, as TCP keeps a stream in order.
   */
  deliveryTime(from: string, to: string, bytes: number, after: number): number {
    const now = this.clock.now();
    const model = this.opts.link?.(from, to);
    if (!model) return Math.max(after, now + this.opts.latencyMs);
    const rnd = this.opts.random;
    if (!rnd) throw new Error("MemoryNetwork: a link model needs a seeded random");
    let sendAt = now;
    if (model.bandwidthBytesPerS > 0 && Number.isFinite(model.bandwidthBytesPerS)) {
      const dir = `${from}>${to}`;
      sendAt = Math.max(now, this.busyUntil.get(dir) ?? 0);
      const done = sendAt + (bytes * 1000) / model.bandwidthBytesPerS;
      if (done > now) this.busyUntil.set(dir, done);
      else this.busyUntil.delete(dir);
      sendAt = done;
    }
    let at = sendAt + model.latencyMs + (model.jitterMs > 0 ? rnd.float() * model.jitterMs : 0);
    const rto = Math.max(MIN_RTO_MS, 2 * model.latencyMs);
    for (let i = 0, backoff = rto; i < MAX_RETRANSMITS && model.loss > 0 && rnd.float() < model.loss; i++) {
      at += backoff;
      backoff *= 2;
    }
    return Math.max(after, Math.ceil(at));
  }

  /** A host's process died: its listeners go and every connection it had is reset. */
  dropHost(host: string): void {
    for (const k of [...this.listeners.keys()]) if (k.startsWith(`${host}:`)) this.listeners.delete(k);
    for (const c of [...this.open])
      if (c.localHost === host) c.destroy(new Error("connection reset by peer"));
  }

  /** Connections open now. */
  get connectionCount(): number {
    return this.open.size;
  }

  /** Takes the link between two hosts down (bytes are held, new dials time out) or back up. */
  setLinkDown(a: string, b: string, down: boolean): void {
    const k = linkKey(a, b);
    if (down) {
      this.downLinks.add(k);
      return;
    }
    if (!this.downLinks.delete(k)) return;
    for (const c of this.open) if (linkKey(c.localHost, c.remoteHost) === k) c.linkUp();
  }

  /** Splits the hosts into groups that cannot reach each other (links inside a group stay up). */
  partition(groups: ReadonlyArray<readonly string[]>): void {
    for (let i = 0; i < groups.length; i++)
      for (let j = i + 1; j < groups.length; j++)
        for (const a of groups[i]!) for (const b of groups[j]!) this.setLinkDown(a, b, true);
  }

  /** Brings every link back up; held bytes are delivered at once. */
  heal(): void {
    for (const k of [...this.downLinks]) {
      const [a, b] = k.split("|") as [string, string];
      this.setLinkDown(a, b, false);
    }
  }

  isLinkDown(a: string, b: string): boolean {
    return a !== b && this.downLinks.has(linkKey(a, b));
  }

  private allocatePort(host: string): number {
    for (let i = FIRST_PORT; i <= LAST_PORT; i++) {
      const port = this.nextPort;
      this.nextPort = this.nextPort >= LAST_PORT ? FIRST_PORT : this.nextPort + 1;
      if (!this.listeners.has(`${host}:${port}`)) return port;
    }
    throw new Error(`no free port on ${host}`);
  }

  private listen(host: string, port: number, onConnection: (c: Connection) => void): Promise<Listener> {
    const p = port === 0 ? this.allocatePort(host) : port;
    const key = `${host}:${p}`;
    if (this.listeners.has(key))
      return Promise.reject(new Error(`listen EADDRINUSE: address already in use ${key}`));
    this.listeners.set(key, onConnection);
    return Promise.resolve({
      host,
      port: p,
      close: () => {
        if (this.listeners.get(key) === onConnection) this.listeners.delete(key);
        return Promise.resolve();
      },
    });
  }

  private dial(from: string, host: string, port: number, timeoutMs: number): Promise<Connection> {
    return new Promise((resolve, reject) => {
      if (this.isLinkDown(from, host)) {
        // A black-holed link: the SYN never comes back.
        this.clock.setTimeout(
          () => reject(new Error(`connect to ${host}:${port} timed out after ${timeoutMs} ms`)),
          timeoutMs,
        );
        return;
      }
      queueMicrotask(() => {
        const accept = this.listeners.get(`${host}:${port}`);
        if (!accept) {
          reject(new Error(`connect ECONNREFUSED ${host}:${port}`));
          return;
        }
        if (this.open.size + 2 > MAX_MEMORY_CONNECTIONS) {
          reject(new Error(`connect to ${host}:${port}: too many open connections`));
          return;
        }
        const ephemeral = this.allocatePort(from);
        const local = new MemoryConnection(this, from, ephemeral, host, port);
        const remote = new MemoryConnection(this, host, port, from, ephemeral);
        local.peer = remote;
        remote.peer = local;
        this.open.add(local);
        this.open.add(remote);
        accept(remote);
        resolve(local);
      });
    });
  }

  /** @internal */
  closed(c: MemoryConnection): void {
    this.open.delete(c);
  }
}

/** One end of a connection. Bytes written here are read at `peer`. */
class MemoryConnection implements Connection {
  peer!: MemoryConnection;
  private dataFns: Array<(chunk: Buffer) => void> = [];
  private drainFns: Array<() => void> = [];
  private closeFns: Array<(err?: Error) => void> = [];
  /** Chunks written at `peer`, waiting to be read here (held while paused or the link is down). */
  private inbox: Buffer[] = [];
  private inboxBytes = 0;
  /** Chunks written here whose delay has not yet passed. */
  private inFlight = 0;
  /** When the last chunk written here arrives (virtual ms): later ones never overtake it. */
  private lastArrival = 0;
  private paused = false;
  private scheduled = false;
  private ending = false;
  private isClosed = false;
  private closeReported = false;
  private closeError: Error | undefined;
  private wantDrain = false;
  private timers = new Set<TimerHandle>();

  constructor(
    private readonly net: MemoryNetwork,
    readonly localHost: string,
    readonly localPort: number,
    readonly remoteHost: string,
    readonly remotePort: number,
  ) {}

  /** Bytes written here and not yet read by the other end. */
  get pendingBytes(): number {
    return this.inFlight + (this.peer?.inboxBytes ?? 0);
  }

  /**
   * Hands `chunk` to the other end, uncopied, as a socket takes a buffer: the writer must not
   * change it afterwards, and nothing in the node does (a frame is built for the write, or shared
   * read-only by a broadcast). Copying every write was a fifth of the cost of serving blocks in a
   * 1,000-node simulation.
   */
  write(chunk: Buffer): boolean {
    if (this.isClosed || this.ending) return false;
    if (this.pendingBytes + chunk.length > this.net.opts.maxBufferedBytes) {
      this.destroy(new Error(`in-memory connection buffer over ${this.net.opts.maxBufferedBytes} bytes`));
      return false;
    }
    this.net.stats.writes++;
    this.net.stats.bytes += chunk.length;
    this.net.opts.onWrite?.(this.localHost, this.remoteHost, chunk);
    const { latencyMs, link } = this.net.opts;
    if (latencyMs > 0 || link) {
      const now = this.net.clock.now();
      const at = this.net.deliveryTime(this.localHost, this.remoteHost, chunk.length, this.lastArrival);
      this.lastArrival = at;
      this.inFlight += chunk.length;
      const t = this.net.clock.setTimeout(() => {
        this.timers.delete(t);
        this.inFlight -= chunk.length;
        this.peer.receive(chunk);
      }, at - now);
      this.timers.add(t);
    } else {
      this.peer.receive(chunk);
    }
    const below = this.pendingBytes < this.net.opts.highWaterBytes;
    if (!below) this.wantDrain = true;
    return below;
  }

  onData(fn: (chunk: Buffer) => void): void {
    this.dataFns.push(fn);
    this.schedule();
  }

  onDrain(fn: () => void): void {
    this.drainFns.push(fn);
  }

  onClose(fn: (err?: Error) => void): void {
    if (this.isClosed && this.closeReported) queueMicrotask(() => fn(this.closeError));
    else this.closeFns.push(fn);
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.schedule();
  }

  /** Lets what was written arrive, then closes both ends (or destroys them after 2 s, as TCP does). */
  end(): void {
    if (this.isClosed || this.ending) return;
    this.ending = true;
    const t = this.net.clock.setTimeout(() => this.destroy(), END_TIMEOUT_MS);
    this.timers.add(t);
    this.closeWhenFlushed();
  }

  destroy(err?: Error): void {
    if (this.isClosed) return;
    this.close(err);
    this.peer.close();
  }

  // ---- internals ----

  private receive(chunk: Buffer): void {
    if (this.isClosed) return;
    this.inbox.push(chunk);
    this.inboxBytes += chunk.length;
    this.schedule();
  }

  /** The link to the other end came back: deliver what was held. */
  linkUp(): void {
    this.schedule();
    this.peer.schedule();
  }

  private schedule(): void {
    if (this.scheduled || this.isClosed) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.deliver();
    });
  }

  private deliver(): void {
    if (this.isClosed || this.paused || this.dataFns.length === 0) return;
    if (this.net.isLinkDown(this.localHost, this.remoteHost)) return;
    while (this.inbox.length > 0 && !this.paused && !this.isClosed) {
      const chunk = this.inbox.shift()!;
      this.inboxBytes -= chunk.length;
      for (const fn of this.dataFns) fn(chunk);
    }
    this.peer.afterRead();
  }

  /** The other end read some of what we wrote: maybe drained, maybe done ending. */
  private afterRead(): void {
    if (this.wantDrain && this.pendingBytes < this.net.opts.highWaterBytes) {
      this.wantDrain = false;
      for (const fn of this.drainFns) fn();
    }
    if (this.ending) this.closeWhenFlushed();
  }

  private closeWhenFlushed(): void {
    if (this.pendingBytes === 0) {
      this.close();
      this.peer.close();
    }
  }

  /**
   * Closes at once (writes fail from now on), but reports the close later, in a microtask, as a
   * socket reports 'close' after end() or destroy() has returned: a caller that closes and then
   * records why (Peer sends a Goodbye, then finishes) must see its own reason win.
   */
  private close(err?: Error): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.closeError = err;
    for (const t of this.timers) t.cancel();
    this.timers.clear();
    this.inbox = [];
    this.inboxBytes = 0;
    this.net.closed(this);
    queueMicrotask(() => {
      this.closeReported = true;
      const fns = this.closeFns;
      this.closeFns = [];
      for (const fn of fns) fn(err);
    });
  }
}
