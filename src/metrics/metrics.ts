import { Counter, Gauge, Histogram, Registry } from "prom-client";

/**
 * Every Prometheus metric the node exports, on one prom-client Registry (INTERFACE.md, "Metrics").
 *
 * One field per metric, named after it in camelCase, each with the exact exported name and a help
 * text. Modules take `metrics: Metrics | null` and call `this.metrics?.field.inc()`, so tests need
 * no registry. To add a metric: add a field here, create it in the constructor with
 * `registers: [this.registry]`, and document it. `GET /metrics` serves `metrics()`.
 *
 * The first nine names are fixed by the seeds and INTERFACE.md; renaming one takes an issue.
 */
export class Metrics {
  readonly registry: Registry;

  // --- sync coordinator (seed 001, "Monitoring") ------------------------------------------

  /** sync_coordinator_checks_total: coordinator runs (periodic ticks and event-driven checks). */
  readonly syncCoordinatorChecksTotal: Counter;
  /** sync_coordinator_syncs_initiated_total: checks that started a sync. */
  readonly syncCoordinatorSyncsInitiatedTotal: Counter;
  /** sync_coordinator_height_diff: consensus height minus our height at the last check (negative when ahead). */
  readonly syncCoordinatorHeightDiff: Gauge;
  /** masternode_sync_duration_seconds: how long each sync ran, from start to end (success or not). */
  readonly masternodeSyncDurationSeconds: Histogram;
  /** masternode_sync_blocks_received_total: blocks the sync received from masternode peers. */
  readonly masternodeSyncBlocksReceivedTotal: Counter;
  /** masternode_sync_failures_total: syncs that ended without reaching their target, by reason. */
  readonly masternodeSyncFailuresTotal: Counter<"reason">;
  /** peer_height_variance: standard deviation of the heights our peers report. */
  readonly peerHeightVariance: Gauge;
  /** masternode_consensus_height: the sync target (median height of masternode peers, whitelisted first). */
  readonly masternodeConsensusHeight: Gauge;
  /** local_height_behind_consensus: how many blocks we are behind the consensus height (0 when not behind). */
  readonly localHeightBehindConsensus: Gauge;

  // --- reorgs and sync safety -----------------------------------------------------------------

  /** reorgs_total: switches of the main chain to another branch. */
  readonly reorgsTotal: Counter;
  /** reorg_depth: blocks disconnected per reorg. */
  readonly reorgDepth: Histogram;
  /** sync_possible_fork_total: checks that found us more than 100 blocks above the consensus height. */
  readonly syncPossibleForkTotal: Counter;

  // --- sync detail -------------------------------------------------------------------------

  /** sync_blocks_received_total: blocks received by the sync from any peer. */
  readonly syncBlocksReceivedTotal: Counter;
  /** sync_batch_retries_total: block batches re-requested from another peer, by cause. */
  readonly syncBatchRetriesTotal: Counter<"cause">;
  /** sync_peer_penalties_total: penalties the sync gave peers, by error code. */
  readonly syncPeerPenaltiesTotal: Counter<"code">;
  /** sync_deferred_total: far-ahead peers not synced from because too few peers agree with them. */
  readonly syncDeferredTotal: Counter;
  /** sync_ancestor_roundtrips: round trips each common-ancestor search took. */
  readonly syncAncestorRoundtrips: Histogram;

  constructor(registry: Registry = new Registry()) {
    this.registry = registry;
    const registers = [registry];
    this.syncCoordinatorChecksTotal = new Counter({
      name: "sync_coordinator_checks_total",
      help: "Sync coordinator checks (periodic and event-driven)",
      registers,
    });
    this.syncCoordinatorSyncsInitiatedTotal = new Counter({
      name: "sync_coordinator_syncs_initiated_total",
      help: "Syncs the coordinator started",
      registers,
    });
    this.syncCoordinatorHeightDiff = new Gauge({
      name: "sync_coordinator_height_diff",
      help: "Consensus height minus local height at the last check",
      registers,
    });
    this.masternodeSyncDurationSeconds = new Histogram({
      name: "masternode_sync_duration_seconds",
      help: "Duration of each sync in seconds",
      buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600],
      registers,
    });
    this.masternodeSyncBlocksReceivedTotal = new Counter({
      name: "masternode_sync_blocks_received_total",
      help: "Blocks received by the sync from masternode peers",
      registers,
    });
    this.masternodeSyncFailuresTotal = new Counter({
      name: "masternode_sync_failures_total",
      help: "Syncs that ended without reaching their target",
      labelNames: ["reason"],
      registers,
    });
    this.peerHeightVariance = new Gauge({
      name: "peer_height_variance",
      help: "Standard deviation of the heights peers report",
      registers,
    });
    this.masternodeConsensusHeight = new Gauge({
      name: "masternode_consensus_height",
      help: "Median height of masternode peers (whitelisted first): the sync target",
      registers,
    });
    this.localHeightBehindConsensus = new Gauge({
      name: "local_height_behind_consensus",
      help: "Blocks the local chain is behind the consensus height",
      registers,
    });
    this.reorgsTotal = new Counter({
      name: "reorgs_total",
      help: "Main-chain reorganisations",
      registers,
    });
    this.reorgDepth = new Histogram({
      name: "reorg_depth",
      help: "Blocks disconnected per reorganisation",
      buckets: [1, 2, 5, 10, 50, 100, 500, 1000, 2000, 10000],
      registers,
    });
    this.syncPossibleForkTotal = new Counter({
      name: "sync_possible_fork_total",
      help: "Checks that found the local chain more than 100 blocks above consensus",
      registers,
    });
    this.syncBlocksReceivedTotal = new Counter({
      name: "sync_blocks_received_total",
      help: "Blocks received by the sync from any peer",
      registers,
    });
    this.syncBatchRetriesTotal = new Counter({
      name: "sync_batch_retries_total",
      help: "Block batches re-requested from another peer",
      labelNames: ["cause"],
      registers,
    });
    this.syncPeerPenaltiesTotal = new Counter({
      name: "sync_peer_penalties_total",
      help: "Penalties given to peers by the sync, by error code",
      labelNames: ["code"],
      registers,
    });
    this.syncDeferredTotal = new Counter({
      name: "sync_deferred_total",
      help: "Far-ahead peers not synced from because too few peers agree with their height",
      registers,
    });
    this.syncAncestorRoundtrips = new Histogram({
      name: "sync_ancestor_roundtrips",
      help: "Round trips per common-ancestor search",
      buckets: [1, 2, 3, 4, 6, 8, 12],
      registers,
    });
  }

  /** The Prometheus text exposition of every metric. */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
