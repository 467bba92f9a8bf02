/**
 * Real TimeNodes in the test process, for the P2P end-to-end tests: each node has its own data
 * directory (real LMDB) under one temp dir, its own loopback IP for P2P (real TCP), and JSON-RPC
 * on 127.0.0.1:0 with the cookie. The devnet's genesis is made here, listing the masternodes
 * whose operator keys the test generates.
 *
 * Nodes are built the way `timed` builds them: initDataDir, then loadConfig on the written
 * config.toml, then TimeNode.open(...).start(). `Devnet.cleanup()` (call it from `after`) stops
 * every node and removes the directory, even after a failure.
 *
 * Genesis masternodes are dialled by every node forever (they are permanent targets). A test
 * that must control who connects to whom lists only a "phantom" masternode: an operator key no
 * node runs, at an address where nothing listens.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  genesisHash,
  genesisToJson,
  makeGenesisSpec,
  type GenesisSpec,
} from "../../../src/consensus/genesis.js";
import { NETWORKS } from "../../../src/primitives/params.js";
import { loadConfig, type ConfigOverrides, type NetworkSection } from "../../../src/config/index.js";
import { KeyPair } from "../../../src/crypto/ed25519.js";
import { createMemoryLogger, type MemoryLogger } from "../../../src/logging/index.js";
import { dataDirPaths } from "../../../src/node/dataDir.js";
import { initDataDir } from "../../../src/node/init.js";
import { TimeNode } from "../../../src/node/node.js";
import type { PeerInfo } from "../../../src/p2p/peerManager.js";
import { RpcClient } from "../../../src/rpc/client.js";
import { readCookieFile } from "../../../src/rpc/cookie.js";
import { SystemClock } from "../../../src/util/clock.js";
import { CryptoRandom } from "../../../src/util/random.js";
import { sleep, waitFor } from "./wait.js";

export { sleep, waitFor };

/** The devnet network constants every test node runs with. */
export const DEVNET = NETWORKS.devnet;

/** min_masternodes for a masternode that must never produce (liveness gossip does not exist yet, so each sees 1). */
const NEVER_PRODUCE = 1_000;

export interface NodeSpec {
  /** Loopback IP this node listens and dials from, e.g. "127.0.5.1". */
  host: string;
  /** Holds an operator key listed in the genesis. */
  masternode?: boolean;
  /** A masternode that produces blocks (min_masternodes = 1); default false (it never produces). */
  produce?: boolean;
  /** The address the genesis lists for this masternode; default its own P2P address. */
  registeredAddress?: string;
  /** Indices (into the devnet's nodes) of bootstrap peers. */
  bootstrap?: number[];
  /** Other [network] settings (limits, ping interval, …). */
  network?: Partial<NetworkSection>;
  /** [consensus].min_masternodes for a producing masternode (default 1). */
  minMasternodes?: number;
  /** Not started with the devnet; the test starts it later (a node that joins late). */
  deferStart?: boolean;
  /** This node's wall clock runs this many ms ahead (negative: behind) of the others'. */
  clockSkewMs?: number;
}

/** The system clock shifted by a fixed amount: a node whose clock is wrong. */
class SkewedClock extends SystemClock {
  constructor(private readonly skewMs: number) {
    super();
  }
  override now(): number {
    return super.now() + this.skewMs;
  }
}

export interface DevnetOptions {
  /** Temp-dir prefix. */
  name: string;
  nodes: NodeSpec[];
  /** Block time in seconds (default 0.5). */
  blockTime?: number;
  /** [network].ping_interval in seconds (default 0.2). */
  pingInterval?: number;
  /**
   * Genesis masternodes that no node runs, each at `phantomAddress`. Default: 1 when no node is
   * a masternode (a genesis needs at least one), else 0.
   */
  phantomMasternodes?: number;
  /** Where phantom masternodes are "registered": nothing may listen there. Default: first node's IP, port 1. */
  phantomAddress?: string;
  /** More genesis masternodes, with keys the test holds (a raw test peer can prove one). */
  extraMasternodes?: Array<{ key: KeyPair; address: string }>;
  /** A genesis to use instead of making one (another devnet's, say); then no node may be a masternode. */
  genesis?: GenesisSpec;
  /** Start the nodes at once (default true); all nodes start concurrently. */
  start?: boolean;
}

/** A free TCP port on `host` (bound, then released). */
export async function freePort(host: string): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once("error", reject);
    srv.listen(0, host, () => resolve());
  });
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** One node of a test devnet. */
export class NodeHandle {
  node: TimeNode | null = null;
  /** Wall-clock skew of this node (NodeSpec.clockSkewMs). */
  clockSkewMs = 0;
  /** The node's log, kept in memory (nothing reaches stdout); DEBUG_P2P=1 records debug lines too. */
  readonly logger: MemoryLogger = createMemoryLogger({ level: process.env.DEBUG_P2P ? "debug" : "info" });
  private client: RpcClient | null = null;

  constructor(
    readonly index: number,
    readonly name: string,
    readonly host: string,
    readonly port: number,
    readonly dir: string,
    readonly nodeId: string,
    readonly operatorKey: KeyPair | null,
    private readonly genesis: GenesisSpec,
  ) {}

  /** "host:port" it listens on for peers. */
  get p2p(): string {
    return `${this.host}:${this.port}`;
  }

  get running(): boolean {
    return this.node !== null;
  }

  /** The running TimeNode (throws if stopped). */
  get n(): TimeNode {
    if (!this.node) throw new Error(`${this.name} is not running`);
    return this.node;
  }

  /** JSON-RPC client for the running node (cookie auth). */
  get rpc(): RpcClient {
    if (!this.client) throw new Error(`${this.name} is not running`);
    return this.client;
  }

  /** Opens the data directory and starts the node, as `timed start` does. */
  async start(): Promise<void> {
    if (this.node) return;
    const config = loadConfig({ file: dataDirPaths(this.dir).config, dataDir: this.dir });
    const node = TimeNode.open(
      { config, genesis: this.genesis },
      {
        clock: this.clockSkewMs === 0 ? new SystemClock() : new SkewedClock(this.clockSkewMs),
        random: new CryptoRandom(),
        logger: this.logger.child({ node: this.name }),
      },
    );
    try {
      await node.start();
    } catch (e) {
      await node.stop().catch(() => undefined);
      throw e;
    }
    this.node = node;
    const url = node.rpcUrl;
    const creds = readCookieFile(dataDirPaths(this.dir).cookie);
    if (!url || !creds) throw new Error(`${this.name}: RPC did not come up`);
    this.client = new RpcClient({ url, user: creds.user, password: creds.password, timeoutMs: 10_000 });
  }

  async stop(): Promise<void> {
    const node = this.node;
    this.node = null;
    this.client = null;
    if (node) await node.stop();
  }

  // --- RPC shorthands ------------------------------------------------------------------

  peerInfo(): Promise<PeerInfo[]> {
    return this.rpc.call<PeerInfo[]>("getpeerinfo");
  }

  connectionCount(): Promise<number> {
    return this.rpc.call<number>("getconnectioncount");
  }

  /** In-process: the ready peers' node ids. */
  peerIds(): string[] {
    return this.n.peers.peers().map((p) => p.nodeIdHex);
  }

  /** In-process: the PeerManager's closed-connection counter for a reason name ("wrong_genesis", …). */
  disconnects(reason: string): number {
    return this.n.peers.disconnects.get(reason) ?? 0;
  }

  /** A one-line summary for failure messages. */
  describe(): string {
    if (!this.node) return `${this.name}: stopped`;
    const pm = this.node.peers;
    const c = pm.connectionCounts();
    return `${this.name} h=${this.node.chain.height} peers=${c.total} (in ${c.inbound}, out ${c.outbound}) handshaking=${pm.handshakingCount} dialing=${pm.dialingCount} disconnects=${JSON.stringify(Object.fromEntries(pm.disconnects))}`;
  }

  /** The last `n` log lines, for debugging a failure. */
  recentLogs(n = 30): string {
    return this.logger.records
      .slice(-n)
      .map((r) => `${r.level} ${r.msg} ${JSON.stringify(r.ctx)}`)
      .join("\n");
  }
}

/**
 * Initialises node `index` of a test devnet under `root` (listening on host:port, RPC on a free
 * loopback port, JSON logs) and returns its handle, not started. `set` adds the caller's settings.
 */
export function initTestNode(o: {
  root: string;
  index: number;
  host: string;
  port: number;
  genesis: GenesisSpec;
  operatorKey: KeyPair | null;
  set: ConfigOverrides;
}): NodeHandle {
  const name = `node-${o.index}`;
  const r = initDataDir({
    dir: join(o.root, name),
    network: "devnet",
    masternode: o.operatorKey !== null,
    genesis: o.genesis,
    ...(o.operatorKey ? { operatorKey: o.operatorKey } : {}),
    now: Date.now(),
    set: {
      ...o.set,
      node: { name },
      network: { listen_address: `${o.host}:${o.port}`, ...o.set.network },
      rpc: { listen_address: "127.0.0.1:0" },
      logging: { level: "info", format: "json" },
    },
  });
  return new NodeHandle(o.index, name, o.host, o.port, r.dir, r.nodeId, o.operatorKey, o.genesis);
}

/** Starts every node at once; if one fails, runs `cleanup` and rethrows. */
export async function startAllOrCleanup(handles: NodeHandle[], cleanup: () => Promise<void>): Promise<void> {
  try {
    await Promise.all(handles.map((h) => h.start()));
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/** Stops every running node and removes `dir`; then throws if any node failed to stop. */
export async function stopAllAndRemove(nodes: NodeHandle[], dir: string): Promise<void> {
  const results = await Promise.allSettled(nodes.map((n) => n.stop()));
  rmSync(dir, { recursive: true, force: true });
  const failed = results.flatMap((r) => (r.status === "rejected" ? [r.reason as unknown] : []));
  if (failed.length > 0) throw new AggregateError(failed, `${failed.length} node(s) failed to stop`);
}

export class Devnet {
  private constructor(
    readonly dir: string,
    readonly genesis: GenesisSpec,
    readonly nodes: NodeHandle[],
  ) {}

  /** The genesis hash every node of this devnet shares. */
  get genesisHash(): Buffer {
    return genesisHash(this.genesis);
  }

  node(i: number): NodeHandle {
    const n = this.nodes[i];
    if (!n) throw new Error(`no node ${i}`);
    return n;
  }

  /** Builds the data directories (and by default starts every node). Cleans up if that fails. */
  static async create(opts: DevnetOptions): Promise<Devnet> {
    const dir = mkdtempSync(join(tmpdir(), `timed-p2p-${opts.name}-`));
    try {
      const blockTime = opts.blockTime ?? 0.5;
      const ports = await Promise.all(opts.nodes.map((s) => freePort(s.host)));
      const addr = (i: number): string => `${opts.nodes[i]!.host}:${ports[i]!}`;
      const operators = opts.nodes.map((s) => (s.masternode ? KeyPair.generate() : null));
      let genesis = opts.genesis;
      if (genesis) {
        if (operators.some((k) => k !== null)) throw new Error("a given genesis cannot hold new masternodes");
      } else {
        const anyMasternode = operators.some((k) => k !== null) || (opts.extraMasternodes ?? []).length > 0;
        const phantoms = opts.phantomMasternodes ?? (anyMasternode ? 0 : 1);
        const phantomAddress = opts.phantomAddress ?? `${opts.nodes[0]!.host}:1`;
        const masternodes = [
          ...operators.flatMap((k, i) =>
            k ? [{ operatorPubkey: k.publicKey, address: opts.nodes[i]!.registeredAddress ?? addr(i) }] : [],
          ),
          ...(opts.extraMasternodes ?? []).map((m) => ({
            operatorPubkey: m.key.publicKey,
            address: m.address,
          })),
          ...Array.from({ length: phantoms }, () => ({
            operatorPubkey: KeyPair.generate().publicKey,
            address: phantomAddress,
          })),
        ];
        genesis = makeGenesisSpec({
          network: "devnet",
          timestamp: Date.now(),
          blockTimeMs: Math.round(blockTime * 1000),
          masternodes,
        });
      }
      writeFileSync(join(dir, "genesis.json"), genesisToJson(genesis));
      const handles: NodeHandle[] = [];
      for (let i = 0; i < opts.nodes.length; i++) {
        const spec = opts.nodes[i]!;
        handles.push(
          initTestNode({
            root: dir,
            index: i,
            host: spec.host,
            port: ports[i]!,
            genesis,
            operatorKey: operators[i] ?? null,
            set: {
              network: {
                bootstrap_peers: (spec.bootstrap ?? []).map(addr),
                ping_interval: opts.pingInterval ?? 0.2,
                ...spec.network,
              },
              consensus: { min_masternodes: spec.produce ? (spec.minMasternodes ?? 1) : NEVER_PRODUCE },
              sync: { coordinator_interval: 1 },
            },
          }),
        );
      }
      handles.forEach((h, i) => (h.clockSkewMs = opts.nodes[i]!.clockSkewMs ?? 0));
      const devnet = new Devnet(dir, genesis, handles);
      if (opts.start ?? true)
        await startAllOrCleanup(
          handles.filter((_h, i) => !opts.nodes[i]!.deferStart),
          () => devnet.cleanup(),
        );
      return devnet;
    } catch (e) {
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }

  /** Stops every running node and removes the directory; then throws if any node failed to stop. */
  cleanup(): Promise<void> {
    return stopAllAndRemove(this.nodes, this.dir);
  }

  /** One line per node, for failure messages. */
  describe(): string {
    return this.nodes.map((n) => n.describe()).join("\n");
  }
}

/** Stops and removes every devnet given (skips undefined); for `after` hooks. Throws if a node failed to stop. */
export async function cleanupAll(...devnets: Array<Devnet | undefined>): Promise<void> {
  const results = await Promise.allSettled(devnets.map((d) => (d ? d.cleanup() : Promise.resolve())));
  const failed = results.flatMap((r) => (r.status === "rejected" ? [r.reason as unknown] : []));
  if (failed.length > 0) throw new AggregateError(failed, "cleaning up the test devnets failed");
}

/**
 * Records anything that escapes to the process until `release()`: an uncaught exception or an
 * unhandled rejection anywhere in it (the nodes run in the test process). Assert `errors` is empty.
 */
export function trapEscapes(): { errors: unknown[]; release: () => void } {
  const errors: unknown[] = [];
  const onErr = (e: unknown): void => void errors.push(e);
  process.on("uncaughtException", onErr);
  process.on("unhandledRejection", onErr);
  return {
    errors,
    release: () => {
      process.off("uncaughtException", onErr);
      process.off("unhandledRejection", onErr);
    },
  };
}
