// Shared helpers for the P2P tests: PeerManagers on a virtual network (src/p2p/memoryTransport.ts)
// driven by one ManualClock, with seeded keys and randomness. A test moves virtual time with
// `advance` or `until`; it never sleeps, and nothing it does waits on the wall clock.
import { KeyPair } from "../../../src/crypto/ed25519.js";
import { sha256 } from "../../../src/crypto/hash.js";
import { createMemoryLogger, type MemoryLogger } from "../../../src/logging/index.js";
import { SERVICE_BLOCKS, SERVICE_MASTERNODE } from "../../../src/p2p/constants.js";
import { MemoryNetwork, type MemoryNetworkOptions } from "../../../src/p2p/memoryTransport.js";
import type { PeerManagerOptions } from "../../../src/p2p/options.js";
import type { Message } from "../../../src/p2p/messages.js";
import type { LocalInfo, Peer } from "../../../src/p2p/peer.js";
import { PeerManager } from "../../../src/p2p/peerManager.js";
import type { Connection, Transport } from "../../../src/p2p/transport.js";
import { ManualClock, type Clock } from "../../../src/util/clock.js";
import { SeededRandom } from "../../../src/util/random.js";

export const MAGIC = Buffer.from("TTST", "ascii");
export const GENESIS = sha256(Buffer.from("p2p test genesis"));

/** Every node listens on this port of its own 10.x.y.z address. */
export const PORT = 24200;

/** Short intervals, so a test covers many of them in little virtual time. */
export const FAST = {
  pingIntervalMs: 100,
  dialIntervalMs: 100,
  dialTimeoutMs: 1_000,
  handshakeTimeoutMs: 5_000,
  discoveryIntervalMs: 1_000,
  saveIntervalMs: 200,
  stableConnectionMs: 1_000,
  masternodeBackoff: { baseMs: 50, maxMs: 400, maxAttempts: 50 },
  ordinaryBackoff: { baseMs: 50, maxMs: 400, maxAttempts: 10 },
} satisfies Partial<PeerManagerOptions>;

/**
 * The longest redial delay under FAST: the backoff's 400 ms maximum stretched by the default
 * ±20% jitter. A "nothing was redialled" check waits at least 10 of these.
 */
export const FAST_MAX_REDIAL_MS = FAST.ordinaryBackoff.maxMs * 1.2;

/** Virtual time moves in steps of this many ms unless a test says otherwise. */
export const STEP_MS = 10;

/** A deterministic key for `tag` (the same tag gives the same key in every run). */
export function testKey(tag: string): KeyPair {
  return KeyPair.fromSeed(sha256(Buffer.from(`p2p-test-key/${tag}`)));
}

export interface FakeTip {
  height: number;
  hash: Buffer;
}

export function makeLocal(
  nodeKey: KeyPair,
  operatorKey: KeyPair | null = null,
  tip: FakeTip = { height: 0, hash: GENESIS },
): LocalInfo {
  return {
    network: "devnet",
    magic: MAGIC,
    genesisHash: GENESIS,
    nodeKey,
    operatorKey,
    listenAddr: () => "",
    services: () => SERVICE_BLOCKS | (operatorKey ? SERVICE_MASTERNODE : 0),
    tip: () => tip,
  };
}

export interface TestNode {
  pm: PeerManager;
  key: KeyPair;
  operatorKey: KeyPair | null;
  logger: MemoryLogger;
  tip: FakeTip;
  host: string;
  /** "host:port" it listens on. */
  addr: string;
  id: string;
  /** Adds a handler for the messages PeerManager routes (everything but GetPeers and Peers). */
  onMessage(fn: (peer: Peer, msg: Message) => void): void;
}

export interface NodeExtras {
  key?: KeyPair;
  operatorKey?: KeyPair | null;
  isRegisteredMasternode?: (pk: Buffer) => boolean;
  registeredMasternodeCount?: () => number;
  /** Wraps the node's transport on the virtual network (a counting or multi-homed one, say). */
  transport?: (inner: Transport) => Transport;
  port?: number;
  height?: number;
}

/**
 * One virtual network for one test: a MemoryNetwork on one ManualClock, nodes on their own
 * 10.x.y.z addresses at PORT, each with a seeded Random and (unless given) a key derived from
 * the seed and its host, so a run repeats exactly.
 */
export class VirtualNet {
  readonly clock = new ManualClock();
  readonly net: MemoryNetwork;
  private randoms = 0;

  constructor(
    readonly seed: number,
    opts: Partial<MemoryNetworkOptions> = {},
  ) {
    this.net = new MemoryNetwork(this.clock, opts);
  }

  /** A transport for a node at `host`. */
  transport(host: string): Transport {
    return this.net.transport(host);
  }

  /** A fresh seeded Random (each call a different stream, the same in every run). */
  random(): SeededRandom {
    return new SeededRandom(this.seed * 1_000 + this.randoms++);
  }

  /** The key a node at `host` gets unless told otherwise. */
  keyFor(host: string): KeyPair {
    return testKey(`${this.seed}/${host}`);
  }

  /** A started PeerManager listening on `host`:PORT (or the port given). */
  async startNode(
    host: string,
    opts: Partial<PeerManagerOptions> = {},
    extras: NodeExtras = {},
  ): Promise<TestNode> {
    const key = extras.key ?? this.keyFor(host);
    const operatorKey = extras.operatorKey ?? null;
    const tip: FakeTip = { height: extras.height ?? 0, hash: GENESIS };
    const logger = createMemoryLogger({ level: "info" });
    const handlers: Array<(peer: Peer, msg: Message) => void> = [];
    const inner = this.net.transport(host);
    const pm = new PeerManager(
      { ...FAST, listen: { host, port: extras.port ?? PORT }, ...opts },
      {
        clock: this.clock,
        random: this.random(),
        logger,
        transport: extras.transport ? extras.transport(inner) : inner,
        local: makeLocal(key, operatorKey, tip),
        route: (peer, msg) => {
          for (const h of handlers) h(peer, msg);
        },
        ...(extras.isRegisteredMasternode ? { isRegisteredMasternode: extras.isRegisteredMasternode } : {}),
        ...(extras.registeredMasternodeCount
          ? { registeredMasternodeCount: extras.registeredMasternodeCount }
          : {}),
      },
    );
    await pm.start();
    return {
      pm,
      key,
      operatorKey,
      logger,
      tip,
      host,
      addr: pm.localAddress ?? "",
      id: key.publicKey.toString("hex"),
      onMessage: (fn) => void handlers.push(fn),
    };
  }

  /** A raw connection from `fromHost` to "host:port" (refused or timed out as TCP would be). */
  dial(fromHost: string, addr: string, timeoutMs = 1_000): Promise<Connection> {
    const i = addr.lastIndexOf(":");
    return this.net
      .transport(fromHost)
      .dial(addr.slice(0, i), Number(addr.slice(i + 1)), { timeoutMs, localHost: fromHost });
  }

  /** Lets every pending callback run: the network's deliveries and anything they set off. */
  async settle(): Promise<void> {
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
  }

  /** Moves virtual time forward by `ms`, in steps of `stepMs`, letting the nodes react after each. */
  async advance(ms: number, stepMs = STEP_MS): Promise<void> {
    await this.settle();
    for (let t = 0; t < ms; t += stepMs) {
      this.clock.advance(Math.min(stepMs, ms - t));
      await this.settle();
    }
  }

  /**
   * Advances in steps of `stepMs` until `cond` holds; returns the virtual time that took (0 when
   * it held at once). Throws naming `what` when it still fails after `maxVirtualMs`.
   */
  async until(cond: () => boolean, what: string, maxVirtualMs = 5_000, stepMs = STEP_MS): Promise<number> {
    await this.settle();
    for (let t = 0; ; t += stepMs) {
      if (cond()) return t;
      if (t >= maxVirtualMs) break;
      this.clock.advance(stepMs);
      await this.settle();
    }
    throw new Error(`not within ${maxVirtualMs} ms of virtual time: ${what}`);
  }
}

export async function stopAll(nodes: Array<TestNode | undefined>): Promise<void> {
  await Promise.all(nodes.map((n) => (n ? n.pm.stop() : Promise.resolve())));
}

/** Wraps a transport and records every dial's "host:port" with the clock's time. */
export class CountingTransport implements Transport {
  readonly log: Array<{ key: string; at: number }> = [];
  constructor(
    private readonly inner: Transport,
    private readonly clock: Clock,
  ) {}
  listen(...args: Parameters<Transport["listen"]>): ReturnType<Transport["listen"]> {
    return this.inner.listen(...args);
  }
  dial(
    host: string,
    port: number,
    opts: { timeoutMs: number; localHost?: string },
  ): ReturnType<Transport["dial"]> {
    this.log.push({ key: `${host}:${port}`, at: this.clock.now() });
    return this.inner.dial(host, port, opts);
  }
  count(key: string): number {
    return this.times(key).length;
  }
  /** The clock's times of the dials to `key`. */
  times(key: string): number[] {
    return this.log.filter((d) => d.key === key).map((d) => d.at);
  }
  /** Every dial's "host:port", in order. */
  dialled(): string[] {
    return this.log.map((d) => d.key);
  }
}
