import type { SyncSection } from "../config/schema.js";
import { MAX_BLOCKS_PER_MESSAGE } from "../p2p/messages.js";
import { NOTIFIER_INTERVAL_MS, REQUEST_TIMEOUT_MS } from "./constants.js";

/** Plain-data options of the SyncCoordinator, from `[sync]` (INTERFACE.md). */
export interface SyncCoordinatorOptions {
  /** `enable_coordinator`: false turns off proactive sync; serving blocks (BlockServer) stays on. */
  enableCoordinator: boolean;
  /** `coordinator_interval`: the periodic check. */
  coordinatorIntervalMs: number;
  /** `max_sync_batch_size`: blocks per GetBlocks, at most 500 (the protocol cap). */
  maxSyncBatchSize: number;
  /** `sync_threshold`: sync when the consensus height is more than this many blocks above ours. */
  syncThreshold: number;
  /** `peer_sync_timeout`: a whole sync from ordinary peers stops after this long. */
  peerSyncTimeoutMs: number;
  /** `masternode_sync_timeout`: a whole sync led by a masternode stops after this long. */
  masternodeSyncTimeoutMs: number;
  /** Timeout of each single request. */
  requestTimeoutMs: number;
  /** How often the "Syncing — …" line is logged while syncing. */
  notifierIntervalMs: number;
}

// The seeds' values: 30 s checks, 500-block batches, threshold 5, 120 s / 300 s timeouts.
export const defaultSyncCoordinatorOptions: SyncCoordinatorOptions = {
  enableCoordinator: true,
  coordinatorIntervalMs: 30_000,
  maxSyncBatchSize: MAX_BLOCKS_PER_MESSAGE,
  syncThreshold: 5,
  peerSyncTimeoutMs: 120_000,
  masternodeSyncTimeoutMs: 300_000,
  requestTimeoutMs: REQUEST_TIMEOUT_MS,
  notifierIntervalMs: NOTIFIER_INTERVAL_MS,
};

/** The coordinator's options from a parsed `[sync]` section (seconds become milliseconds). */
export function syncOptionsFromConfig(
  sync: SyncSection,
  extra: Partial<Pick<SyncCoordinatorOptions, "requestTimeoutMs" | "notifierIntervalMs">> = {},
): SyncCoordinatorOptions {
  return {
    ...defaultSyncCoordinatorOptions,
    enableCoordinator: sync.enable_coordinator,
    coordinatorIntervalMs: Math.max(1, Math.round(sync.coordinator_interval * 1000)),
    maxSyncBatchSize: Math.max(1, Math.min(MAX_BLOCKS_PER_MESSAGE, sync.max_sync_batch_size)),
    syncThreshold: sync.sync_threshold,
    peerSyncTimeoutMs: Math.max(1, Math.round(sync.peer_sync_timeout * 1000)),
    masternodeSyncTimeoutMs: Math.max(1, Math.round(sync.masternode_sync_timeout * 1000)),
    ...extra,
  };
}
