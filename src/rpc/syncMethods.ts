import type { SyncStatus } from "../sync/syncCoordinator.js";
import type { RpcServer } from "./server.js";

export interface SyncMethodDeps {
  /** The SyncCoordinator (anything with its status()). */
  coordinator: { status(): SyncStatus };
}

/** What `getsyncstatus` returns (INTERFACE.md: at least syncing, height, consensusheight, behind, peers, blockspersecond). */
export interface GetSyncStatusResult {
  syncing: boolean;
  height: number;
  /** Median height of masternode peers (whitelisted first); null without peers. */
  consensusheight: number | null;
  /** "whitelisted-masternodes", "masternodes" or "peers": which group the median came from. */
  consensussource: string | null;
  behind: number;
  peers: number;
  blockspersecond: number;
  /** Idle, Checking or Syncing. */
  state: string;
  /** Height the running sync is heading for; null when not syncing. */
  target: number | null;
  /** Address of the peer whose branch is being followed. */
  lead: string | null;
  enabled: boolean;
  peerheightstddev: number;
  /** Set when the peers we can reach disagree on genesis: the node refuses to sync. */
  genesisdisagreement: { refused: number; agreeing: number } | null;
  /** More than 100 blocks above the consensus height at the last check. */
  possiblefork: boolean;
  lasterror: { code: string; message: string; time: number } | null;
  lastsync: {
    from: number;
    to: number;
    blocks: number;
    seconds: number;
    ok: boolean;
    reason: string;
    lead: string | null;
  } | null;
}

export function syncStatusToJson(s: SyncStatus): GetSyncStatusResult {
  return {
    syncing: s.syncing,
    height: s.height,
    consensusheight: s.consensusHeight,
    consensussource: s.consensusSource,
    behind: s.behind,
    peers: s.peers,
    blockspersecond: s.blocksPerSecond,
    state: s.state,
    target: s.target,
    lead: s.lead,
    enabled: s.enabled,
    peerheightstddev: s.peerHeightStddev,
    genesisdisagreement: s.genesisDisagreement,
    possiblefork: s.possibleFork,
    lasterror: s.lastError
      ? { code: s.lastError.code, message: s.lastError.message, time: Math.floor(s.lastError.at / 1000) }
      : null,
    lastsync: s.lastSync,
  };
}

/** The sync methods (INTERFACE.md, "Sync"). */
export function registerSyncMethods(rpc: RpcServer, deps: SyncMethodDeps): void {
  rpc.register("getsyncstatus", {
    description:
      "Returns the sync coordinator's view: our height, the masternode consensus height (median of masternode peers, whitelisted first), how far behind we are, and the running sync if any.",
    params: [],
    result:
      "{syncing, height, consensusheight, behind, peers, blockspersecond, state, target, lead, genesisdisagreement, lasterror, ...}",
    examples: ["time-cli getsyncstatus"],
    handler: () => syncStatusToJson(deps.coordinator.status()),
  });
}
