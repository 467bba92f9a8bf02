import type { IncomingMessage, ServerResponse } from "node:http";
/**
 * What the dashboard reads (DashboardDeps: plain provider functions, so it depends on no node
 * class and a test can hand it fakes) and what it serves (DashboardState, the JSON the page polls).
 */
import type { MasternodeRow } from "../masternode/liveness.js";
import type { PeerInfo } from "../p2p/peerManager.js";

/** The node's own state, read once per poll. */
export interface NodeStatusView {
  network: string;
  /** Hex node id. */
  nodeId: string;
  /** [node].name, when set. */
  name?: string | null;
  height: number;
  /** Hex tip hash. */
  tip: string;
  /** Tip timestamp, ms since the epoch. */
  tipTime: number;
  /** Height of the last final block; null (or absent) when the node does not report finality. */
  finalHeight?: number | null;
  /** Hex hash of the last final block. */
  finalHash?: string | null;
  /** The block producer's state; null on a node that is not a masternode. */
  producer: { state: string; reason: string } | null;
  activeMasternodes: number;
  registeredMasternodes: number;
  minMasternodes: number;
  mempoolSize?: number | null;
  uptimeSeconds?: number | null;
  /** The median of the peers' clocks minus ours, seconds; null with no peer or unknown. */
  clockOffsetSeconds?: number | null;
}

/** getpeerinfo's fields the dashboard shows. */
export type PeerView = Pick<
  PeerInfo,
  "nodeid" | "addr" | "inbound" | "masternode" | "height" | "pingtime" | "conntime"
>;

/** masternodelist's fields the dashboard shows. */
export type MasternodeView = Pick<MasternodeRow, "pubkey" | "address" | "tier" | "status" | "lastseen">;

export interface BlockView {
  height: number;
  /** Hex. */
  hash: string;
  /** Hex operator key of the producer; null for genesis. */
  producer: string | null;
  txCount: number;
  /** ms since the epoch. */
  time: number;
}

/**
 * getsyncstatus as the sync coordinator reports it. `target` is the sync target's height, given
 * either as a number or as the coordinator's {height, source, count}.
 */
export interface SyncStatusView {
  syncing: boolean;
  height: number;
  consensusheight: number | null;
  behind: number;
  blockspersecond: number;
  target?: number | { height: number; source?: string; count?: number } | null;
}

/** One node of a `timed devnet`, for the side-by-side view. */
export interface DevnetNodeView {
  name: string;
  height: number;
  /** Hex tip hash. */
  tip: string;
  peers: number;
  activeMasternodes: number;
}

export interface DashboardDeps {
  status: () => NodeStatusView;
  peers: () => PeerView[];
  masternodes: () => MasternodeView[];
  /** The last `n` main-chain blocks, newest first. */
  recentBlocks: (n: number) => BlockView[];
  /** Absent until a sync coordinator exists: the page then says "in sync". */
  syncStatus?: () => SyncStatusView;
  /** Only on `timed devnet` (node-1's dashboard): every node of the devnet. */
  devnetNodes?: () => DevnetNodeView[];
  /** The doctor's verdicts (src/node/doctor.ts), at most a few seconds old. */
  doctor?: () => DoctorVerdictView[];
  /** The node's event stream (GET /events), served at EVENTS_PATH to a signed-in page. */
  events?: (req: IncomingMessage, res: ServerResponse) => void;
}

export type BadgeKind = "syncing" | "in-sync" | "waiting";

export interface HeightSample {
  /** ms since the epoch. */
  t: number;
  height: number;
  /** Median height of the peers at that moment; null with no peers. */
  peerMedian: number | null;
}

/** GET /dashboard/api/state. */
export interface DashboardState {
  /** Server time, ms since the epoch: the page computes "ago" from it, not from its own clock. */
  now: number;
  node: NodeStatusView;
  badge: { kind: BadgeKind; text: string };
  sync: (SyncStatusView & { targetHeight: number | null; progress: number | null }) | null;
  peers: PeerView[];
  peerCount: number;
  masternodes: MasternodeView[];
  masternodeCount: number;
  blocks: BlockView[];
  history: HeightSample[];
  historyIntervalMs: number;
  devnet: DevnetNodeView[] | null;
  /** The doctor's verdicts; null when the node does not provide them. */
  doctor: DoctorVerdictView[] | null;
}

/** One doctor verdict, as the page shows it. */
export interface DoctorVerdictView {
  check: string;
  status: string;
  verdict: string;
  suggest: string | null;
}
