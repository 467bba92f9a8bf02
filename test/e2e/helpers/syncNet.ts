/**
 * Real TimeNodes for the sync end-to-end tests, with two things test/e2e/helpers/nodes.ts does not
 * give: a genesis an hour in the past (so a chain of thousands of blocks can be pre-built with
 * ChainHarness and imported, instead of waiting for production), whose masternode keys and a
 * funded key the test holds; and the sync wiring (SyncCoordinator, PeerStateView, Metrics,
 * getsyncstatus) attached to each node exactly as src/node/node.ts is to wire it — until node.ts
 * does, after which `attachSync` returns the node's own coordinator.
 *
 * Every node gets its own loopback IP for P2P and RPC on 127.0.0.1:0. `cleanup()` stops all.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Block } from "../../../src/primitives/block.js";
import { makeGenesisSpec, type GenesisSpec } from "../../../src/consensus/genesis.js";
import type { NetworkSection, SyncSection } from "../../../src/config/index.js";
import { addressFromPubkey } from "../../../src/crypto/address.js";
import { KeyPair } from "../../../src/crypto/ed25519.js";
import type { Logger } from "../../../src/logging/index.js";
import { Metrics } from "../../../src/metrics/metrics.js";
import type { TimeNode } from "../../../src/node/node.js";
import { registerSyncMethods } from "../../../src/rpc/syncMethods.js";
import { syncOptionsFromConfig } from "../../../src/sync/options.js";
import { PeerStateView } from "../../../src/sync/peerStateView.js";
import { SyncCoordinator } from "../../../src/sync/syncCoordinator.js";
import { SystemClock } from "../../../src/util/clock.js";
import { COIN, ChainHarness } from "../../helpers/chainFixture.js";
import { freePort, initTestNode, NodeHandle } from "./nodes.js";

export interface SyncAttachment {
  coordinator: SyncCoordinator;
  view: PeerStateView;
  metrics: Metrics;
  detach(): void;
}

/**
 * The sync wiring of one node, as node.ts is to do it: a PeerStateView following the
 * PeerManager, a SyncCoordinator from [sync], the relay's triggers, and getsyncstatus.
 */
export function attachSync(
  node: TimeNode,
  logger: Logger,
  extra: Parameters<typeof syncOptionsFromConfig>[1] = {},
): SyncAttachment {
  const own = (node as unknown as { sync?: unknown; syncView?: unknown; metrics?: unknown }).sync;
  if (own instanceof SyncCoordinator) {
    const n = node as unknown as { syncView: PeerStateView; metrics: Metrics };
    return { coordinator: own, view: n.syncView, metrics: n.metrics, detach: () => undefined };
  }
  const clock = new SystemClock();
  const metrics = new Metrics();
  const view = new PeerStateView({}, { clock });
  view.observe(node.peers);
  const coordinator = new SyncCoordinator(syncOptionsFromConfig(node.config.sync, extra), {
    chain: node.chain,
    peers: node.peers,
    view,
    clock,
    logger: logger.child({ module: "sync" }),
    metrics,
  });
  node.relay.attachSync(coordinator);
  if (node.rpc) registerSyncMethods(node.rpc, { coordinator });
  coordinator.start();
  // Peers that became ready before the coordinator existed.
  for (const p of node.peers.peers()) node.relay.onPeerReady(p);
  return {
    coordinator,
    view,
    metrics,
    detach: () => {
      coordinator.stop();
      view.stop();
      node.relay.attachSync(null);
    },
  };
}

export interface SyncNodeSpec {
  host: string;
  /** Runs an operator key listed in the genesis (proves it to peers). */
  masternode?: boolean;
  /** A masternode that produces (min_masternodes = 1). */
  produce?: boolean;
  /** Indices of bootstrap peers. */
  bootstrap?: number[];
  network?: Partial<NetworkSection>;
  sync?: Partial<SyncSection>;
}

export interface SyncNetOptions {
  name: string;
  nodes: SyncNodeSpec[];
  /** Block time in seconds (default 0.5). */
  blockTime?: number;
  /** Ping interval in seconds (default 0.2). */
  pingInterval?: number;
  /** How long ago the genesis was made (default 2 h): bounds how many blocks can be pre-built. */
  genesisAgeSeconds?: number;
  /** Genesis masternodes no node runs, with keys the test holds (a raw peer may prove one). Default 0. */
  extraMasternodes?: number;
  /** SyncCoordinator request timeout in tests (default 5 s). */
  requestTimeoutMs?: number;
}

export class SyncNet {
  readonly attachments = new Map<NodeHandle, SyncAttachment>();
  /** Every genesis masternode's operator key, node masternodes first, then the extras. */
  readonly keys: KeyPair[];
  private constructor(
    readonly dir: string,
    readonly genesis: GenesisSpec,
    readonly nodes: NodeHandle[],
    keys: KeyPair[],
    /** A key with four genesis coins of 1,000 TIME. */
    readonly funder: KeyPair,
    private readonly requestTimeoutMs: number,
  ) {
    this.keys = keys;
  }

  static async create(opts: SyncNetOptions): Promise<SyncNet> {
    const dir = mkdtempSync(join(tmpdir(), `timed-sync-${opts.name}-`));
    try {
      const blockTime = opts.blockTime ?? 0.5;
      const ports = await Promise.all(opts.nodes.map((s) => freePort(s.host)));
      const addr = (i: number): string => `${opts.nodes[i]!.host}:${ports[i]!}`;
      const operators = opts.nodes.map((s) => (s.masternode || s.produce ? KeyPair.generate() : null));
      const extras = Array.from({ length: opts.extraMasternodes ?? 0 }, () => KeyPair.generate());
      const funder = KeyPair.generate();
      const genesis = makeGenesisSpec({
        network: "devnet",
        timestamp: Date.now() - (opts.genesisAgeSeconds ?? 7_200) * 1000,
        blockTimeMs: Math.round(blockTime * 1000),
        masternodes: [
          ...operators.flatMap((k, i) => (k ? [{ operatorPubkey: k.publicKey, address: addr(i) }] : [])),
          ...extras.map((k) => ({ operatorPubkey: k.publicKey, address: `${opts.nodes[0]!.host}:1` })),
        ],
        allocations: Array.from({ length: 4 }, () => ({
          address: addressFromPubkey(funder.publicKey, "devnet"),
          amount: 1_000n * COIN,
        })),
      });
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
              consensus: { min_masternodes: spec.produce ? 1 : 1_000 },
              sync: { coordinator_interval: 0.5, ...spec.sync },
            },
          }),
        );
      }
      const keys = [...operators.filter((k): k is KeyPair => k !== null), ...extras];
      return new SyncNet(dir, genesis, handles, keys, funder, opts.requestTimeoutMs ?? 5_000);
    } catch (e) {
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }

  node(i: number): NodeHandle {
    const n = this.nodes[i];
    if (!n) throw new Error(`no node ${i}`);
    return n;
  }

  /** Starts a node and attaches its sync. */
  async start(i: number): Promise<NodeHandle> {
    const h = this.node(i);
    await h.start();
    this.attachments.set(
      h,
      attachSync(h.n, h.logger.child({ node: h.name }), {
        requestTimeoutMs: this.requestTimeoutMs,
        notifierIntervalMs: 1_000,
      }),
    );
    return h;
  }

  async startAll(): Promise<void> {
    await Promise.all(this.nodes.map((_, i) => this.start(i)));
  }

  async stop(i: number): Promise<void> {
    const h = this.node(i);
    this.attachments.get(h)?.detach();
    this.attachments.delete(h);
    await h.stop();
  }

  sync(i: number): SyncAttachment {
    const a = this.attachments.get(this.node(i));
    if (!a) throw new Error(`node ${i} is not running`);
    return a;
  }

  /** A ChainHarness on this genesis that can produce for every masternode (its own temp dir). */
  harness(): ChainHarness {
    return new ChainHarness(this.genesis, this.keys);
  }

  /** Imports blocks into a running node, 500 per commit, as if it had received them. */
  importInto(i: number, blocks: readonly Block[]): void {
    const chain = this.node(i).n.chain;
    for (let k = 0; k < blocks.length; k += 500) {
      const r = chain.processBlocks(blocks.slice(k, k + 500).map((block) => ({ block })));
      if (r.error) throw r.error as Error;
    }
  }

  tipHex(i: number): string {
    return this.node(i).n.chain.tip.hash.toString("hex");
  }

  describe(): string {
    return this.nodes.map((n) => n.describe()).join("\n");
  }

  async cleanup(): Promise<void> {
    for (const a of this.attachments.values()) a.detach();
    this.attachments.clear();
    await Promise.allSettled(this.nodes.map((n) => n.stop()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
