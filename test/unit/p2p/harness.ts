// Shared helpers for the P2P tests: PeerManagers on their own loopback IPs with fake chain tips.
import { createServer, type AddressInfo } from "node:net";
import { KeyPair } from "../../../src/crypto/ed25519.js";
import { sha256 } from "../../../src/crypto/hash.js";
import { createMemoryLogger, type MemoryLogger } from "../../../src/logging/index.js";
import { SERVICE_BLOCKS, SERVICE_MASTERNODE } from "../../../src/p2p/constants.js";
import type { PeerManagerOptions } from "../../../src/p2p/options.js";
import type { Message } from "../../../src/p2p/messages.js";
import type { LocalInfo, Peer } from "../../../src/p2p/peer.js";
import { PeerManager } from "../../../src/p2p/peerManager.js";
import { TcpTransport, type Transport } from "../../../src/p2p/transport.js";
import { CryptoRandom, type Random } from "../../../src/util/random.js";
import { SystemClock, type Clock } from "../../../src/util/clock.js";

export const MAGIC = Buffer.from("TTST", "ascii");
export const GENESIS = sha256(Buffer.from("p2p test genesis"));

/** Short intervals so tests run in milliseconds, not minutes. */
export const FAST: Partial<PeerManagerOptions> = {
  pingIntervalMs: 100,
  dialIntervalMs: 100,
  dialTimeoutMs: 1_000,
  // Under CPU contention Node can accept a connection a second or more after the dialler
  // connected, so the handshake gets real slack even here.
  handshakeTimeoutMs: 5_000,
  discoveryIntervalMs: 1_000,
  saveIntervalMs: 200,
  stableConnectionMs: 1_000,
  masternodeBackoff: { baseMs: 50, maxMs: 400, maxAttempts: 50 },
  ordinaryBackoff: { baseMs: 50, maxMs: 400, maxAttempts: 10 },
};

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
  transport?: Transport;
  clock?: Clock;
  random?: Random;
  port?: number;
  height?: number;
}

/** A started PeerManager listening on `host` (port 0 unless given), with its own key. */
export async function startNode(
  host: string,
  opts: Partial<PeerManagerOptions> = {},
  extras: NodeExtras = {},
): Promise<TestNode> {
  const key = extras.key ?? KeyPair.generate();
  const operatorKey = extras.operatorKey ?? null;
  const tip: FakeTip = { height: extras.height ?? 0, hash: GENESIS };
  const logger = createMemoryLogger({ level: "info" });
  const handlers: Array<(peer: Peer, msg: Message) => void> = [];
  const pm = new PeerManager(
    { ...FAST, listen: { host, port: extras.port ?? 0 }, ...opts },
    {
      clock: extras.clock ?? new SystemClock(),
      random: extras.random ?? new CryptoRandom(),
      logger,
      transport: extras.transport ?? new TcpTransport(),
      local: makeLocal(key, operatorKey, tip),
      route: (peer, msg) => {
        for (const h of handlers) h(peer, msg);
      },
      ...(extras.isRegisteredMasternode ? { isRegisteredMasternode: extras.isRegisteredMasternode } : {}),
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

export async function stopAll(nodes: Array<TestNode | undefined>): Promise<void> {
  await Promise.all(nodes.map((n) => (n ? n.pm.stop() : Promise.resolve())));
}

/**
 * Polls `cond` every `stepMs` until it holds; throws naming `what` after `timeoutMs`.
 * Returns how long it took.
 */
export async function waitFor(
  cond: () => boolean,
  what: string,
  timeoutMs = 5_000,
  stepMs = 10,
): Promise<number> {
  const start = performance.now();
  const maxSteps = Math.ceil(timeoutMs / stepMs) + 1;
  for (let i = 0; i < maxSteps; i++) {
    if (cond()) return performance.now() - start;
    if (performance.now() - start > timeoutMs) break;
    await sleep(stepMs);
  }
  if (cond()) return performance.now() - start;
  throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A port nothing listens on (bound, then released). */
export async function deadPort(host: string): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, host, () => r()));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** Wraps a transport and counts dials per "host:port". */
export class CountingTransport implements Transport {
  readonly dials = new Map<string, number>();
  constructor(private readonly inner: Transport = new TcpTransport()) {}
  listen(...args: Parameters<Transport["listen"]>): ReturnType<Transport["listen"]> {
    return this.inner.listen(...args);
  }
  dial(
    host: string,
    port: number,
    opts: { timeoutMs: number; localHost?: string },
  ): ReturnType<Transport["dial"]> {
    const key = `${host}:${port}`;
    this.dials.set(key, (this.dials.get(key) ?? 0) + 1);
    return this.inner.dial(host, port, opts);
  }
  count(key: string): number {
    return this.dials.get(key) ?? 0;
  }
}
