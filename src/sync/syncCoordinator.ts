import type { Chain } from "../chain/chain.js";
import type { Logger } from "../logging/index.js";
import type { Metrics } from "../metrics/metrics.js";
import type { Peer } from "../p2p/peer.js";
import { BoundedMap } from "../util/boundedMap.js";
import type { Clock, TimerHandle } from "../util/clock.js";
import type { ForkPoint } from "./ancestor.js";
import {
  AHEAD_WARNING_BLOCKS,
  LOG_REPEAT_MS,
  MAX_LEADS_PER_SYNC,
  MAX_PEER_STATES,
  MAX_REQUESTED_RANGES,
} from "./constants.js";
import { SyncError, toSyncError, type SyncErrorCode } from "./errors.js";
import type { SyncFns, SyncPeerSource, SyncTrigger } from "./interface.js";
import { LeadPicker } from "./leadPicker.js";
import { LeadSync } from "./leadSync.js";
import { defaultSyncCoordinatorOptions, type SyncCoordinatorOptions } from "./options.js";
import type { PeerState, PeerStateView } from "./peerStateView.js";
import { peerSyncFns } from "./peerSyncFns.js";
import type { SignaturePool } from "../crypto/sigPool.js";
import { SyncNotifier } from "./syncNotifier.js";
import { consensusTarget, stddev, type ConsensusTarget } from "./target.js";
import {
  nextSyncState,
  type PeerReport,
  type SyncReason,
  type SyncState,
  type SyncStateStatus,
  type SyncStatus,
} from "./types.js";

export type { SyncReason, SyncState, SyncStateStatus, SyncStatus } from "./types.js";

export interface SyncCoordinatorModules {
  chain: Chain;
  view: PeerStateView;
  clock: Clock;
  logger: Logger;
  metrics: Metrics | null;
  /** The peer layer (PeerManager) behind the default network seams; optional when `fns` gives them all. */
  peers?: SyncPeerSource;
  /** Seams for tests (Lodestar's SyncChainFns); each defaults to the real thing. */
  fns?: Partial<SyncFns>;
  /** Checks downloaded batches' signatures on other threads (none: all on the main thread). */
  sigPool?: SignaturePool | null;
  /**
   * True while a caller (an RPC client) waits for this thread: batches are then processed in
   * parts of one slice (turnPacer.ts), each its own commit, instead of whole.
   */
  callerWaiting?: () => boolean;
}

/**
 * Hints from events are looked at no more often than this (pings can come many times a second),
 * except a peer's first hint (a new connection reporting a better chain): new peers come only as
 * fast as connections are admitted, so that cannot turn into a busy loop.
 */
const MIN_CHECK_SPACING_MS = 200;

/**
 * Owns sync (DESIGN.md, "Sync constraints"). One state machine, single-flight, run by events
 * (a peer shows a height above ours, a block arrives whose parent is unknown) and by the periodic
 * tick. Each check:
 *
 * 1. takes the target: the median height of masternode peers, whitelisted ones first (seed 001);
 * 2. refuses to sync when the peers we can reach disagree on genesis (seed 002);
 * 3. behind by more than `sync_threshold`, or hinted by an event: syncs from the best peer that
 *    passes the consensus check (a non-whitelisted peer > 50 ahead needs half the peers within 10
 *    blocks of it; whitelisted masternodes skip it — "priority sync");
 * 4. ahead by more than 100: logs a possible fork or partition, counts it, and checks the peers'
 *    branches, adopting one only if it has more work.
 *
 * A sync from a lead peer: common ancestor with locators in O(log depth) round trips (2,000 deep,
 * 10,000 for whitelisted masternodes — "priority fork resolution"), then windows of headers that
 * are validated before any body is fetched (a branch forking below the final block is refused), and
 * the bodies in parallel batches (RangeDownload). The whole sync stops after peer_sync_timeout
 * (masternode_sync_timeout when the lead is a masternode).
 *
 * The coordinator keeps the state machine and the triggers; it hands the work to three modules
 * built at construction: LeadPicker (which peers may lead or serve, and what past leads did),
 * LeadSync (the sync from one lead, step by step) and SyncNotifier (blocks per second and the
 * periodic "Syncing — …" line).
 */
export class SyncCoordinator implements SyncTrigger {
  private readonly opts: SyncCoordinatorOptions;
  private readonly fns: SyncFns;
  private stateValue: SyncState = { status: "Idle" };
  private running: Promise<void> | null = null;
  private rerun = false;
  private rerunTimer: TimerHandle | null = null;
  /** Whether rerunTimer runs the check on the next turn (not after the spacing). */
  private rerunNow = false;
  private tickTimer: TimerHandle | null = null;
  private stopped = false;
  private started = false;
  private lastCheckEnd = Number.NEGATIVE_INFINITY;
  private unsubscribe: Array<() => void> = [];
  private readonly notifier: SyncNotifier;
  private readonly leads: LeadPicker;
  private readonly leadSync: LeadSync;

  /** Peers that showed a height above ours or sent an orphan since the last check. */
  private readonly hints = new BoundedMap<string, true>(MAX_PEER_STATES);
  /** Peers that have hinted before (see MIN_CHECK_SPACING_MS); one that reconnects waits as usual. */
  private readonly hintedOnce = new BoundedMap<string, true>(MAX_PEER_STATES);
  /** Last time a repeated log line was written, by key. */
  private readonly logged = new BoundedMap<string, number>(MAX_PEER_STATES);

  private lastTarget: ConsensusTarget | null = null;
  private lastStddev = 0;
  private lastPossibleFork = false;
  private wasInSync: boolean | null = null;
  private genesisDisagreement: { refused: number; agreeing: number } | null = null;
  private lastError: SyncStatus["lastError"] = null;
  private lastSync: SyncStatus["lastSync"] = null;

  constructor(
    opts: Partial<SyncCoordinatorOptions>,
    private readonly modules: SyncCoordinatorModules,
  ) {
    this.opts = { ...defaultSyncCoordinatorOptions, ...opts };
    const base: Partial<SyncFns> = modules.peers
      ? peerSyncFns(modules.peers, modules.chain, {
          requestTimeoutMs: this.opts.requestTimeoutMs,
          sigPool: modules.sigPool,
        })
      : { processChainSegment: (items, stopAfter) => modules.chain.processBlocks(items, stopAfter) };
    const fns = { ...base, ...modules.fns };
    const missing = (
      ["getHeaders", "getBlocks", "getHashes", "reportPeer", "processChainSegment"] as const
    ).filter((k) => fns[k] === undefined);
    if (missing.length > 0)
      throw new Error(`SyncCoordinator needs modules.peers or fns: ${missing.join(", ")}`);
    this.fns = fns as SyncFns;
    // Every reorg, whoever caused it (this coordinator, or the relay's single blocks), is counted.
    this.unsubscribe.push(
      modules.chain.events.on("reorg", (r) => {
        modules.metrics?.reorgsTotal.inc();
        modules.metrics?.reorgDepth.observe(r.depth);
      }),
    );
    const { chain, view, clock, logger, metrics } = modules;
    this.notifier = new SyncNotifier(this.opts.notifierIntervalMs, {
      chain,
      view,
      clock,
      logger,
      state: () => this.stateValue,
    });
    this.leads = new LeadPicker({
      chain,
      view,
      clock,
      logger,
      metrics,
      fns: this.fns,
      logRepeat: (key, level, msg, ctx) => this.logRepeat(key, level, msg, ctx),
    });
    this.leadSync = new LeadSync({
      chain,
      view,
      clock,
      logger,
      metrics,
      fns: this.fns,
      leads: this.leads,
      batchSize: this.opts.maxSyncBatchSize,
      stopped: () => this.stopped,
      onApplied: (count) => this.notifier.recordRate(count),
      callerWaiting: modules.callerWaiting,
    });
  }

  // --- lifecycle -------------------------------------------------------------------------

  /** Starts the periodic check. Idempotent. */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    const { clock } = this.modules;
    this.tickTimer = clock.setInterval(() => this.requestCheck("tick"), this.opts.coordinatorIntervalMs);
    this.requestCheck("start");
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.tickTimer?.cancel();
    this.rerunTimer?.cancel();
    this.notifier.stop();
    this.leadSync.abort("coordinator stopped");
    for (const u of this.unsubscribe.splice(0)) u();
  }

  get state(): SyncState {
    return this.stateValue;
  }

  get isSyncing(): boolean {
    return this.stateValue.status === "Syncing";
  }

  /** The better branch being fetched, if a producer should wait for it (LeadSync.productionHold). */
  productionHold(): { hash: Buffer; height: number } | null {
    return this.stopped ? null : this.leadSync.productionHold();
  }

  // --- triggers (SyncTrigger) ------------------------------------------------------------

  onPeerAhead(peer: Peer): void {
    if (peer.hello) this.hint(peer.nodeIdHex);
  }

  onOrphan(peer: Peer): void {
    if (peer.hello) this.hint(peer.nodeIdHex);
  }

  /** An event names a peer that may have blocks we lack; a check follows shortly. */
  hint(peerId: string): void {
    if (this.stopped) return;
    this.hints.set(peerId, true);
    const first = !this.hintedOnce.has(peerId);
    if (first) this.hintedOnce.set(peerId, true);
    this.requestCheck(first ? "new-peer" : "hint");
  }

  /**
   * A peer sent finality votes for a block we lack that more than 2/3 of the weight voted final:
   * look at its branch again (even if its tip was found no better by work), since fork choice
   * will follow that block.
   */
  hintFinal(peerId: string): void {
    this.leads.forgetChecked(peerId);
    this.hint(peerId);
  }

  /**
   * Runs a check now, or joins the one running (and asks for another after it). Resolves when
   * that run ends. For tests and the RPC; events and the tick use requestCheck.
   */
  check(reason = "manual"): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.running) {
      this.rerun = true;
      return this.running;
    }
    return this.runCheck(reason);
  }

  private requestCheck(reason: string): void {
    if (this.stopped) return;
    if (this.running) {
      this.rerun = true;
      return;
    }
    const now = reason === "tick" || reason === "start" || reason === "new-peer";
    if (this.rerunTimer) {
      if (!now || this.rerunNow) return;
      this.rerunTimer.cancel();
    }
    const wait = Math.max(0, this.lastCheckEnd + MIN_CHECK_SPACING_MS - this.modules.clock.monotonic());
    this.rerunNow = now;
    this.rerunTimer = this.modules.clock.setTimeout(
      () => {
        this.rerunTimer = null;
        if (!this.running && !this.stopped) void this.runCheck(reason);
      },
      now ? 0 : wait,
    );
  }

  private runCheck(reason: string): Promise<void> {
    const run = (async () => {
      try {
        this.transition(["Idle"], { status: "Checking", since: this.modules.clock.monotonic(), reason });
        await this.checkOnce();
      } catch (e) {
        const err = toSyncError(e);
        this.setError(err);
        this.modules.logger.error("Sync check failed", { code: err.code }, e);
      } finally {
        this.stateValue = { status: "Idle" };
        this.notifier.stop();
      }
    })().finally(() => {
      this.running = null;
      this.lastCheckEnd = this.modules.clock.monotonic();
      if (this.rerun && !this.stopped) {
        this.rerun = false;
        this.requestCheck("rerun");
      }
    });
    this.running = run;
    return run;
  }

  private transition(from: readonly SyncStateStatus[], to: SyncState): void {
    this.stateValue = nextSyncState(this.stateValue, from, to);
  }

  // --- the check ---------------------------------------------------------------------------

  private async checkOnce(): Promise<void> {
    const { chain, view, metrics, logger } = this.modules;
    view.refresh();
    metrics?.syncCoordinatorChecksTotal.inc();
    const ours = chain.height;
    const reports = this.leads.reports();
    const target = consensusTarget(reports);
    this.lastTarget = target;
    // The target needs proof: only masternode peers (an operator key proven in the handshake and
    // listed in the registry) set the figures and the warning an operator alerts on. Heights from
    // other peers still lead a sync when no masternode is around (a full node among full nodes),
    // but two strangers reporting height 0 must not make us announce a fork.
    const proven = target !== null && target.source !== "peers";
    const spread = proven ? reports.filter((r) => r.masternode) : reports;
    this.lastStddev = stddev(spread.map((r) => r.height));
    metrics?.peerHeightVariance.set(this.lastStddev);
    if (target && proven) {
      metrics?.masternodeConsensusHeight.set(target.height);
      metrics?.syncCoordinatorHeightDiff.set(target.height - ours);
      metrics?.localHeightBehindConsensus.set(Math.max(0, target.height - ours));
    } else {
      metrics?.syncCoordinatorHeightDiff.set(0);
      metrics?.localHeightBehindConsensus.set(0);
    }

    // Seed 002: never sync from a minority when the peers we can reach disagree on genesis.
    const refused = view.genesisRefusals();
    const agreeing = view.fresh().length;
    if (refused > 0 && refused > agreeing) {
      if (!this.genesisDisagreement || this.genesisDisagreement.refused !== refused) {
        logger.warn("Peers disagree on the genesis block; refusing to sync", {
          refusedForOtherGenesis: refused,
          peersWithOurGenesis: agreeing,
          genesis: chain.genesisHash.toString("hex"),
        });
      }
      this.genesisDisagreement = { refused, agreeing };
      this.hints.clear();
      return;
    }
    this.genesisDisagreement = null;
    if (!this.opts.enableCoordinator) {
      this.hints.clear();
      return;
    }

    this.lastPossibleFork = proven && ours > target.height + AHEAD_WARNING_BLOCKS;
    if (target && this.lastPossibleFork) {
      metrics?.syncPossibleForkTotal.inc();
      this.logRepeat(
        "ahead",
        "warn",
        "Ahead of the masternode consensus: possible fork or network partition",
        {
          height: ours,
          consensus: target.height,
          ahead: ours - target.height,
          source: target.source,
        },
      );
      this.hints.clear();
      await this.sync("fork-check", reports, target);
      return;
    }
    const behind = target !== null && target.height - ours > this.opts.syncThreshold;
    const hinted = [...this.hints.keys()];
    this.hints.clear();
    if (behind) {
      await this.sync("behind", reports, target, hinted);
      return;
    }
    if (hinted.length > 0 && this.leads.candidates(reports, "peer-ahead", hinted).length > 0) {
      await this.sync("peer-ahead", reports, target, hinted);
      return;
    }
    if (target) this.logInSync(ours, target);
  }

  private logInSync(ours: number, target: ConsensusTarget): void {
    const ctx = { height: ours, consensus: target.height, source: target.source, peers: target.count };
    if (this.wasInSync === true) this.modules.logger.debug("In sync with the masternode consensus", ctx);
    else this.modules.logger.info("In sync with the masternode consensus", ctx);
    this.wasInSync = true;
  }

  // --- a sync ------------------------------------------------------------------------------

  private async sync(
    reason: SyncReason,
    reports: readonly PeerReport[],
    target: ConsensusTarget | null,
    hinted: readonly string[] = [],
  ): Promise<void> {
    const { chain, clock, logger, metrics } = this.modules;
    const startHeight = chain.height;
    const startedAt = clock.monotonic();
    const triedLeads = new Set<string>();
    const requested = new BoundedMap<string, true>(MAX_REQUESTED_RANGES);
    let deadline: number | null = null;
    let lastError: SyncError | null = null;
    let initiated = false;
    let blocks = 0;
    let lastLead: string | null = null;
    for (let n = 0; n < MAX_LEADS_PER_SYNC && !this.stopped; n++) {
      const next = this.leads.candidates(reports, reason, hinted, triedLeads)[0];
      if (!next) break;
      const lead = next.peer;
      triedLeads.add(lead.id);
      lastLead = lead.addr;
      if (!initiated) {
        initiated = true;
        metrics?.syncCoordinatorSyncsInitiatedTotal.inc();
        // Seed 001: masternode syncs get the longer timeout.
        deadline =
          startedAt + (lead.masternode ? this.opts.masternodeSyncTimeoutMs : this.opts.peerSyncTimeoutMs);
        this.logSyncStart(reason, lead, next.priority, target, reports);
        this.notifier.start();
      }
      if (clock.monotonic() >= deadline!) {
        lastError = new SyncError("SYNC_TIMEOUT", "the sync ran out of time");
        break;
      }
      this.transition(["Checking", "Syncing"], {
        status: "Syncing",
        since: startedAt,
        reason,
        lead: lead.id,
        leadAddr: lead.addr,
        target: Math.max(lead.height, target?.height ?? 0),
        startHeight,
        deadline: deadline!,
      });
      const before = chain.height;
      const r = await this.leadSync.run(lead, requested, deadline!, (count) => (blocks += count));
      if (r.error) {
        lastError = r.error;
        this.setError(r.error);
        this.leads.coolDown(lead.id);
        logger.info("Sync from peer ended early", {
          peer: lead.addr,
          code: r.error.code,
          reason: r.error.message,
          height: chain.height,
        });
        if (ENDS_SYNC.has(r.error.code)) break;
        continue;
      }
      this.leads.clearCooldown(lead.id);
      lastError = null;
      // Caught up with this lead. A fork check looks at each of its few candidates; otherwise
      // another peer is tried only while we are still behind the target.
      if (reason === "fork-check") continue;
      const stillBehind = target !== null && target.height - chain.height > this.opts.syncThreshold;
      if (!stillBehind || chain.height === before) break;
    }
    if (!initiated) return;
    const seconds = (clock.monotonic() - startedAt) / 1000;
    const ok = lastError === null;
    metrics?.masternodeSyncDurationSeconds.observe(seconds);
    if (!ok) metrics?.masternodeSyncFailuresTotal.inc({ reason: lastError!.code.toLowerCase() });
    this.lastSync = { from: startHeight, to: chain.height, blocks, seconds, ok, reason, lead: lastLead };
    this.notifier.stop();
    const ctx = {
      from: startHeight,
      to: chain.height,
      blocks,
      seconds: Number(seconds.toFixed(2)),
      ...(lastError ? { code: lastError.code, reason: lastError.message } : {}),
    };
    if (ok) logger.info("Sync finished", ctx);
    else logger.warn("Sync stopped before reaching its target", ctx);
    const t = this.lastTarget;
    if (
      t &&
      chain.height >= t.height - this.opts.syncThreshold &&
      chain.height <= t.height + AHEAD_WARNING_BLOCKS
    ) {
      this.wasInSync = false;
      this.logInSync(chain.height, t);
    }
    // More may be waiting (a new tip, another peer ahead): look again soon.
    if (chain.height !== startHeight) this.rerun = true;
  }

  private logSyncStart(
    reason: SyncReason,
    lead: PeerState,
    priority: boolean,
    target: ConsensusTarget | null,
    reports: readonly PeerReport[],
  ): void {
    const { chain, logger } = this.modules;
    const ours = chain.height;
    const helpers = reports
      .filter((r) => r.id !== lead.id && r.height > ours)
      .map((r) => r.state.addr)
      .slice(0, 8);
    if (priority) {
      logger.info("Priority sync from a whitelisted masternode: trusted without the consensus check", {
        peer: lead.addr,
        peerHeight: lead.height,
        height: ours,
        ahead: lead.height - ours,
      });
    }
    const ctx = {
      height: ours,
      consensus: target?.height ?? null,
      behind: target ? Math.max(0, target.height - ours) : null,
      peer: lead.addr,
      peerHeight: lead.height,
      masternode: lead.masternode,
      whitelisted: lead.whitelisted,
      alsoFrom: helpers,
    };
    switch (reason) {
      case "behind":
        logger.info("Behind the masternode consensus; requesting blocks", ctx);
        break;
      case "peer-ahead":
        logger.info("Peer is ahead; requesting blocks", ctx);
        break;
      case "fork-check":
        logger.info("Checking a peer's branch for more work", ctx);
        break;
    }
    this.wasInSync = false;
  }

  private setError(err: SyncError): void {
    this.lastError = { code: err.code, message: err.message, at: this.modules.clock.now() };
  }

  private logRepeat(key: string, level: "info" | "warn", msg: string, ctx: Record<string, unknown>): void {
    const now = this.modules.clock.monotonic();
    const last = this.logged.get(key);
    if (last !== undefined && now - last < LOG_REPEAT_MS) {
      this.modules.logger.debug(msg, ctx);
      return;
    }
    this.logged.set(key, now);
    this.modules.logger[level](msg, ctx);
  }

  // --- visibility ----------------------------------------------------------------------------

  /** Blocks applied per second over the last 10 s. */
  blocksPerSecond(): number {
    return this.notifier.blocksPerSecond();
  }

  status(): SyncStatus {
    const { chain } = this.modules;
    const height = chain.height;
    const st = this.stateValue;
    const t = this.lastTarget;
    return {
      enabled: this.opts.enableCoordinator,
      state: st.status,
      syncing: st.status === "Syncing",
      height,
      consensusHeight: t?.height ?? null,
      consensusSource: t?.source ?? null,
      behind: t ? Math.max(0, t.height - height) : 0,
      target: st.status === "Syncing" ? Math.max(st.target, height) : null,
      peers: this.modules.view.fresh().length,
      blocksPerSecond: Number(this.blocksPerSecond().toFixed(2)),
      lead: st.status === "Syncing" ? st.leadAddr : null,
      peerHeightStddev: Number(this.lastStddev.toFixed(2)),
      genesisDisagreement: this.genesisDisagreement,
      possibleFork: this.lastPossibleFork,
      lastError: this.lastError,
      lastSync: this.lastSync,
    };
  }
}

/**
 * A sync that ends with one of these stops; others move on to the next lead peer (it may hold
 * the honest chain, or be a whitelisted masternode allowed a deeper search).
 */
const ENDS_SYNC: ReadonlySet<SyncErrorCode> = new Set<SyncErrorCode>([
  "SYNC_TIMEOUT",
  "ABORTED",
  "INTERNAL",
  "WRONG_STATE",
  // The batch already failed on several peers; more leads would only hammer the same ones.
  "MAX_RETRIES",
  "BLOCK_FROM_FUTURE",
  "REORG_REFUSED",
]);

export type { ForkPoint };
