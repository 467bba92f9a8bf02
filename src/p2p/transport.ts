import { connect, createServer, type Server, type Socket } from "node:net";
import { SystemClock, type Clock } from "../util/clock.js";

/**
 * A byte-stream connection. The TCP implementation wraps a socket; MemoryTransport
 * (memoryTransport.ts) provides an in-memory one. Peer code sees only this interface.
 */
export interface Connection {
  readonly remoteHost: string;
  readonly remotePort: number;
  readonly localHost: string;
  readonly localPort: number;
  /** Queues bytes; returns false when the OS buffer is full (wait for onDrain). */
  write(data: Buffer): boolean;
  onData(fn: (chunk: Buffer) => void): void;
  onDrain(fn: () => void): void;
  /** Called once when the connection ends for any reason. */
  onClose(fn: (err?: Error) => void): void;
  pause(): void;
  resume(): void;
  /** Flushes what is queued, then closes. */
  end(): void;
  /** Closes immediately. */
  destroy(): void;
  /** Bytes accepted by write() but not yet handed to the OS. */
  readonly pendingBytes: number;
}

export interface Listener {
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

export interface Transport {
  listen(host: string, port: number, onConnection: (c: Connection) => void): Promise<Listener>;
  /** Dials with a timeout; `localHost` binds the source address (each devnet node has its own IP). */
  dial(host: string, port: number, opts: { timeoutMs: number; localHost?: string }): Promise<Connection>;
}

class TcpConnection implements Connection {
  readonly remoteHost: string;
  readonly remotePort: number;
  readonly localHost: string;
  readonly localPort: number;
  private closed = false;
  private closeFns: Array<(err?: Error) => void> = [];
  private lastError: Error | undefined;

  constructor(
    private readonly socket: Socket,
    private readonly clock: Clock,
  ) {
    this.remoteHost = normaliseHost(socket.remoteAddress ?? "");
    this.remotePort = socket.remotePort ?? 0;
    this.localHost = normaliseHost(socket.localAddress ?? "");
    this.localPort = socket.localPort ?? 0;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    socket.on("error", (e) => (this.lastError = e));
    socket.on("close", () => {
      if (this.closed) return;
      this.closed = true;
      for (const fn of this.closeFns) fn(this.lastError);
      this.closeFns = [];
    });
  }
  get pendingBytes(): number {
    return this.socket.writableLength;
  }
  write(data: Buffer): boolean {
    if (this.closed || this.socket.destroyed) return false;
    return this.socket.write(data);
  }
  onData(fn: (chunk: Buffer) => void): void {
    this.socket.on("data", fn);
  }
  onDrain(fn: () => void): void {
    this.socket.on("drain", fn);
  }
  onClose(fn: (err?: Error) => void): void {
    if (this.closed) fn(this.lastError);
    else this.closeFns.push(fn);
  }
  pause(): void {
    this.socket.pause();
  }
  resume(): void {
    this.socket.resume();
  }
  end(): void {
    // Keep reading (and discarding) so the remote's close is seen even if nobody reads any more.
    this.socket.removeAllListeners("data");
    this.socket.on("data", () => undefined);
    this.socket.resume();
    this.socket.end();
    // A peer that never reads must not hold the socket open forever.
    this.clock.setTimeout(() => this.socket.destroy(), 2_000);
  }
  destroy(): void {
    this.socket.destroy();
  }
}

/** "::ffff:127.0.0.1" → "127.0.0.1", so one IPv4 host is one key. */
export function normaliseHost(h: string): string {
  return h.startsWith("::ffff:") && h.includes(".") ? h.slice(7) : h;
}

/** TCP. Its timers (the dial timeout, the forced close after end) go through `clock`. */
export class TcpTransport implements Transport {
  constructor(private readonly clock: Clock = new SystemClock()) {}

  listen(host: string, port: number, onConnection: (c: Connection) => void): Promise<Listener> {
    return new Promise((resolve, reject) => {
      const server: Server = createServer({ noDelay: true }, (socket) =>
        onConnection(new TcpConnection(socket, this.clock)),
      );
      server.maxConnections = 10_000;
      server.once("error", reject);
      server.listen({ host, port }, () => {
        server.off("error", reject);
        server.on("error", () => undefined);
        const addr = server.address();
        const bound = typeof addr === "object" && addr ? addr : { address: host, port };
        resolve({
          host: normaliseHost(bound.address),
          port: bound.port,
          close: () => new Promise<void>((res) => server.close(() => res())),
        });
      });
    });
  }

  dial(host: string, port: number, opts: { timeoutMs: number; localHost?: string }): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port, ...(opts.localHost ? { localAddress: opts.localHost } : {}) });
      const timer = this.clock.setTimeout(() => {
        socket.destroy();
        reject(new Error(`connect to ${host}:${port} timed out after ${opts.timeoutMs} ms`));
      }, opts.timeoutMs);
      socket.once("connect", () => {
        timer.cancel();
        socket.removeAllListeners("error");
        resolve(new TcpConnection(socket, this.clock));
      });
      socket.once("error", (e) => {
        timer.cancel();
        socket.destroy();
        reject(e);
      });
    });
  }
}
