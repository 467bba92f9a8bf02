/**
 * An in-process TCP proxy (node:net) for the end-to-end tests: it listens on a loopback address
 * and forwards every connection to a target node, and it can **stall** the connections that come
 * from a given source IP.
 *
 * While a connection is stalled the proxy keeps reading from both of its sockets, so neither side
 * sees any TCP backpressure, but holds the bytes in memory instead of forwarding them (at most
 * `maxHeldBytes` per direction; past that it stops reading that socket, which is what a real
 * stalled link does once its buffers are full). On release it writes everything it held in one
 * write per direction: the burst a resumed TCP link delivers. A FIN that arrives while stalled is
 * held too, and delivered after the held bytes.
 *
 * By default the proxy is transparent for the source IP: its upstream socket binds to the
 * client's own IP (any 127.x address can be bound on Linux loopback), so the target sees the
 * connection coming from the real peer's IP, and bans and scores land on that IP. The target
 * may be set after the proxy is listening (`target = "host:port"`), so a proxy address can be put
 * in a genesis before the node behind it has a port.
 *
 * Every proxy is tracked: `closeAllStallProxies()` (call it from `after`) closes the listeners
 * and destroys every socket, even after a failure.
 */
import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";

export interface StallProxyOptions {
  /** Loopback IP to listen on, e.g. "127.0.61.1". */
  host: string;
  /** Port to listen on; 0 (default) picks a free one. */
  port?: number;
  /** "host:port" to forward to; may be set later through `target`. */
  target?: string;
  /** Bind the upstream socket to the client's IP, so the target sees the real source (default true). */
  transparent?: boolean;
  /** Bytes held per direction of one stalled connection before the proxy stops reading it (default 8 MiB). */
  maxHeldBytes?: number;
  /**
   * Source IPs the proxy serves; a connection from any other IP is closed at once (a dial that
   * fails). Default: every IP.
   */
  onlyFrom?: string[];
}

/** One direction of a proxied connection. */
interface Pipe {
  from: Socket;
  to: Socket;
  held: Buffer[];
  heldBytes: number;
  /** `from` ended while stalled: end `to` after the held bytes go out. */
  endHeld: boolean;
  /** Reading `from` is paused because the held bytes reached the bound. */
  pausedForBound: boolean;
  forwarded: number;
}

/** What the proxy knows of one connection, for assertions and failure messages. */
export interface ProxiedConnection {
  /** The client's IP and port as the proxy saw them. */
  clientIp: string;
  clientPort: number;
  /** The upstream socket's local address ("ip:port"): the remote address the target sees. */
  upstreamLocal: string;
  stalled: boolean;
  /** Bytes held right now, client → target and target → client. */
  heldUp: number;
  heldDown: number;
  /** Bytes forwarded so far (held bytes count once released). */
  forwardedUp: number;
  forwardedDown: number;
  open: boolean;
}

interface Conn {
  client: Socket;
  upstream: Socket;
  up: Pipe;
  down: Pipe;
  stalled: boolean;
  open: boolean;
}

const live = new Set<StallProxy>();

/** Closes every proxy still open (for `after` hooks). */
export async function closeAllStallProxies(): Promise<void> {
  await Promise.allSettled([...live].map((p) => p.close()));
  live.clear();
}

function splitHostPort(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(":");
  return { host: addr.slice(0, i), port: Number(addr.slice(i + 1)) };
}

const DEFAULT_MAX_HELD = 8 * 1024 * 1024;

export class StallProxy {
  /** "host:port" to forward new connections to; connections arriving while it is null are dropped. */
  target: string | null;
  private readonly server: Server;
  private readonly conns = new Set<Conn>();
  private readonly stalledIps = new Set<string>();
  private readonly transparent: boolean;
  private readonly maxHeld: number;
  private readonly onlyFrom: Set<string> | null;
  private closed = false;
  /** Connections closed at once (no target yet, or a source IP not served). */
  refused = 0;
  /** Bytes written by the last release, per direction: what the burst carried. */
  lastBurst = { up: 0, down: 0 };

  private constructor(
    readonly host: string,
    opts: StallProxyOptions,
  ) {
    this.target = opts.target ?? null;
    this.transparent = opts.transparent ?? true;
    this.maxHeld = opts.maxHeldBytes ?? DEFAULT_MAX_HELD;
    this.onlyFrom = opts.onlyFrom ? new Set(opts.onlyFrom) : null;
    this.server = createServer((client) => this.onClient(client));
    live.add(this);
  }

  /** Starts a proxy listening on `opts.host`. */
  static async start(opts: StallProxyOptions): Promise<StallProxy> {
    const p = new StallProxy(opts.host, opts);
    await new Promise<void>((resolve, reject) => {
      p.server.once("error", reject);
      p.server.listen(opts.port ?? 0, opts.host, () => {
        p.server.off("error", reject);
        resolve();
      });
    });
    return p;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** "host:port" the proxy listens on. */
  get address(): string {
    return `${this.host}:${this.port}`;
  }

  /** From now on, hold the traffic of every connection (present and future) from `ip`, both ways. */
  stall(ip: string): void {
    this.stalledIps.add(ip);
    for (const c of this.conns) if (c.client.remoteAddress === ip) c.stalled = true;
  }

  /**
   * Stops holding the traffic from `ip` (every IP when omitted) and writes everything held at
   * once. Returns the bytes released in each direction.
   */
  release(ip?: string): { up: number; down: number } {
    if (ip === undefined) this.stalledIps.clear();
    else this.stalledIps.delete(ip);
    const burst = { up: 0, down: 0 };
    for (const c of this.conns) {
      if (!c.stalled || (ip !== undefined && c.client.remoteAddress !== ip)) continue;
      c.stalled = false;
      burst.up += this.flush(c.up);
      burst.down += this.flush(c.down);
      // A side that went away while stalled: the other gets the held bytes, then its FIN (its
      // "close" then ends the connection).
      if (c.client.destroyed) c.upstream.end();
      if (c.upstream.destroyed) c.client.end();
    }
    this.lastBurst = burst;
    return burst;
  }

  /** Every connection the proxy has handled that is still open (or all, with `all`). */
  connections(all = false): ProxiedConnection[] {
    return [...this.conns]
      .filter((c) => all || c.open)
      .map((c) => ({
        clientIp: c.client.remoteAddress ?? "",
        clientPort: c.client.remotePort ?? 0,
        upstreamLocal: `${c.upstream.localAddress ?? ""}:${c.upstream.localPort ?? 0}`,
        stalled: c.stalled,
        heldUp: c.up.heldBytes,
        heldDown: c.down.heldBytes,
        forwardedUp: c.up.forwarded,
        forwardedDown: c.down.forwarded,
        open: c.open,
      }));
  }

  /** A one-line summary for failure messages. */
  describe(): string {
    const cs = this.connections(true).map(
      (c) =>
        `${c.clientIp}:${c.clientPort}→(${c.upstreamLocal})${c.open ? "" : " closed"}${c.stalled ? " stalled" : ""} up=${c.forwardedUp}+${c.heldUp} down=${c.forwardedDown}+${c.heldDown}`,
    );
    return `proxy ${this.address} → ${this.target ?? "(no target)"} (${this.refused} refused): ${cs.join("; ") || "no connections"}`;
  }

  /** Stops listening and destroys every connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    live.delete(this);
    for (const c of this.conns) {
      c.client.destroy();
      c.upstream.destroy();
    }
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private onClient(client: Socket): void {
    client.on("error", () => undefined);
    if (
      this.closed ||
      this.target === null ||
      (this.onlyFrom && !this.onlyFrom.has(client.remoteAddress ?? ""))
    ) {
      this.refused++;
      client.destroy();
      return;
    }
    const { host, port } = splitHostPort(this.target);
    const localAddress = this.transparent ? client.remoteAddress : undefined;
    const upstream = connect({ host, port, ...(localAddress ? { localAddress } : {}) });
    upstream.on("error", () => undefined);
    const pipe = (from: Socket, to: Socket): Pipe => ({
      from,
      to,
      held: [],
      heldBytes: 0,
      endHeld: false,
      pausedForBound: false,
      forwarded: 0,
    });
    const c: Conn = {
      client,
      upstream,
      up: pipe(client, upstream),
      down: pipe(upstream, client),
      stalled: this.stalledIps.has(client.remoteAddress ?? ""),
      open: true,
    };
    this.conns.add(c);
    for (const p of [c.up, c.down]) {
      p.from.on("data", (chunk: Buffer) => this.onData(c, p, chunk));
      p.from.on("end", () => {
        if (c.stalled) p.endHeld = true;
        else p.to.end();
      });
    }
    const closeBoth = (): void => {
      if (!c.open) return;
      c.open = false;
      // A stalled link that breaks loses what it held, as a real one would.
      client.destroy();
      upstream.destroy();
      this.conns.delete(c);
    };
    // A socket that closes with nothing held for its peer takes the other down with it; one
    // closed while stalled waits for the release (its FIN is held).
    client.on("close", () => {
      if (!c.stalled) closeBoth();
    });
    upstream.on("close", () => {
      if (!c.stalled) closeBoth();
    });
  }

  private onData(c: Conn, p: Pipe, chunk: Buffer): void {
    if (c.stalled) {
      p.held.push(chunk);
      p.heldBytes += chunk.length;
      if (p.heldBytes >= this.maxHeld && !p.pausedForBound) {
        p.pausedForBound = true;
        p.from.pause();
      }
      return;
    }
    this.forward(p, chunk);
  }

  private forward(p: Pipe, chunk: Buffer): void {
    if (p.to.destroyed) return;
    p.forwarded += chunk.length;
    if (!p.to.write(chunk)) {
      p.from.pause();
      p.to.once("drain", () => p.from.resume());
    }
  }

  /** Writes what a pipe held, in one write; returns its size. */
  private flush(p: Pipe): number {
    const n = p.heldBytes;
    if (n > 0) this.forward(p, Buffer.concat(p.held));
    p.held = [];
    p.heldBytes = 0;
    if (p.pausedForBound) {
      p.pausedForBound = false;
      p.from.resume();
    }
    if (p.endHeld) {
      p.endHeld = false;
      p.to.end();
    }
    return n;
  }
}
