/**
 * The dashboard's providers over a node's parts (chain, peers, liveness, producer, mempool),
 * typed structurally so the dashboard never imports TimeNode. The composition root calls
 * `dashboardDepsFor(this, …)`; `dashboardFor(node, …)` is the one entry point for code that
 * holds a running node (`timed start`, `timed devnet`, the browser test): it returns the node's
 * own dashboard once node.ts mounts one, and mounts one on the node's RPC server until then.
 */
import type { BlockProducer } from "../masternode/producer.js";
import type { ChainReader } from "../chain/chainReader.js";
import type { MasternodeLiveness } from "../masternode/liveness.js";
import type { PeerManager } from "../p2p/peerManager.js";
import type { RpcAuth, RpcServer } from "../rpc/server.js";
import type { Clock } from "../util/clock.js";
import type { Random } from "../util/random.js";
import { basicAuthChecker } from "./basicAuth.js";
import { mountDashboard, type Dashboard, type DashboardLogger } from "./dashboard.js";
import type { BlockView, DashboardDeps, DevnetNodeView, SyncStatusView } from "./interface.js";

/** What the dashboard reads of the chain's finality (Chain.finality). */
export interface DashboardFinality {
  readonly finalizedHeight: number;
  readonly finalized: { readonly hash: Buffer };
}

export interface DashboardNodeParts {
  readonly chain: Pick<ChainReader, "tip" | "params" | "getHashAtHeight" | "getIndex" | "getRegistry"> & {
    readonly finality?: DashboardFinality;
  };
  readonly peers: Pick<PeerManager, "peerInfo" | "connectionCounts">;
  readonly liveness: Pick<MasternodeLiveness, "list" | "activeCount">;
  readonly producer: Pick<BlockProducer, "status"> | null;
  readonly mempool?: { readonly size: number } | null;
  /** The peers' median clock offset (p2p/clockOffset.ts), when the node keeps one. */
  readonly clockWatch?: { offsetMs(): number | null };
  readonly nodeKey: { readonly publicKey: Buffer };
  readonly config: {
    node: { name?: string | undefined; data_dir: string };
    consensus: { min_masternodes: number };
    rpc: { user?: string | undefined; password?: string | undefined };
  };
}

export interface DashboardExtras {
  uptimeSeconds?: () => number;
  syncStatus?: () => SyncStatusView;
  devnetNodes?: () => DevnetNodeView[];
  events?: DashboardDeps["events"];
  doctor?: DashboardDeps["doctor"];
}

/** The dashboard's providers for a node. */
export function dashboardDepsFor(node: DashboardNodeParts, extras: DashboardExtras = {}): DashboardDeps {
  const { chain } = node;
  const network = chain.params.network;
  return {
    status: () => {
      const tip = chain.tip;
      const producer = node.producer?.status;
      return {
        network,
        nodeId: node.nodeKey.publicKey.toString("hex"),
        name: node.config.node.name ?? null,
        height: tip.height,
        tip: tip.hash.toString("hex"),
        tipTime: tip.timestamp,
        finalHeight: chain.finality?.finalizedHeight ?? null,
        finalHash: chain.finality?.finalized.hash.toString("hex") ?? null,
        producer: producer ? { state: producer.state, reason: producer.reason } : null,
        activeMasternodes: node.liveness.activeCount(),
        registeredMasternodes: chain.getRegistry().length,
        minMasternodes: node.config.consensus.min_masternodes,
        mempoolSize: node.mempool?.size ?? null,
        uptimeSeconds: extras.uptimeSeconds ? Math.floor(extras.uptimeSeconds()) : null,
        clockOffsetSeconds: ((o) => (o === null || o === undefined ? null : Number((o / 1000).toFixed(3))))(
          node.clockWatch?.offsetMs(),
        ),
      };
    },
    peers: () => node.peers.peerInfo(),
    masternodes: () => node.liveness.list(network),
    recentBlocks: (n) => recentBlocks(chain, n),
    ...(extras.syncStatus ? { syncStatus: extras.syncStatus } : {}),
    ...(extras.devnetNodes ? { devnetNodes: extras.devnetNodes } : {}),
    ...(extras.events ? { events: extras.events } : {}),
    ...(extras.doctor ? { doctor: extras.doctor } : {}),
  };
}

/** The last `n` main-chain blocks, newest first, from the block index (no block bodies read). */
export function recentBlocks(
  chain: Pick<ChainReader, "tip" | "getHashAtHeight" | "getIndex">,
  n: number,
): BlockView[] {
  const out: BlockView[] = [];
  for (let h = chain.tip.height; h >= 0 && out.length < n; h--) {
    const hash = chain.getHashAtHeight(h);
    const entry = hash ? chain.getIndex(hash) : undefined;
    if (!entry) break;
    out.push({
      height: entry.height,
      hash: entry.hash.toString("hex"),
      producer: entry.height === 0 ? null : entry.producer.toString("hex"),
      txCount: entry.txCount,
      time: entry.timestamp,
    });
  }
  return out;
}

/** One node of a devnet, for node-1's side-by-side view. */
export function devnetNodeView(name: string, node: DashboardNodeParts): DevnetNodeView {
  return {
    name,
    height: node.chain.tip.height,
    tip: node.chain.tip.hash.toString("hex"),
    peers: node.peers.connectionCounts().total,
    activeMasternodes: node.liveness.activeCount(),
  };
}

/** A running node as the CLI and tests hold it: its parts, its RPC server, and (once wired) its dashboard. */
export interface DashboardHost extends DashboardNodeParts {
  readonly rpc: RpcServer | null;
  /** The credentials the node's RPC server checks; the data endpoint checks the same. */
  readonly rpcAuth: RpcAuth;
  readonly dashboard?: Dashboard | null;
}

/**
 * The node's dashboard: its own when node.ts mounts one, else one mounted here on its RPC server
 * and started (the caller stops it before stopping the node). Null when RPC is disabled.
 */
export function dashboardFor(
  node: DashboardHost,
  modules: { clock: Clock; random: Random; logger?: DashboardLogger | null },
): Dashboard | null {
  if (node.dashboard) return node.dashboard;
  if (!node.rpc) return null;
  const dashboard = mountDashboard(node.rpc, dashboardDepsFor(node), {
    clock: modules.clock,
    random: modules.random,
    logger: modules.logger ?? null,
    checkBasicAuth: basicAuthChecker(node.rpcAuth),
  });
  dashboard.start();
  return dashboard;
}
