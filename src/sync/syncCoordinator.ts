import { blockHash, type BlockHeader } from "../primitives/block.js";
import { isBetterTip, type Chain } from "../chain/chain.js";
import type { BlockIndex } from "../chain/chainStore.js";
import { buildLocator } from "../chain/locator.js";
import type { Logger } from "../logging/index.js";
import type { Metrics } from "../metrics/metrics.js";
import { MAX_HEADERS_PER_MESSAGE, MAX_LOCATOR } from "../p2p/messages.js";
import type { Peer } from "../p2p/peer.js";
import { BoundedMap } from "../util/boundedMap.js";
import type { Clock, TimerHandle } from "../util/clock.js";
import { findCommonAncestor, type AncestorResult, type ForkPoint, type LocalChainView } from "./ancestor.js";
import {
  AHEAD_WARNING_BLOCKS,
  DISPROVEN_CLAIM_MS,
  FORK_RECHECK_MS,
  LEAD_COOLDOWN_MS,
  LOG_REPEAT_MS,
  MAX_BATCHES_AHEAD,
  MAX_BATCH_RETRIES,
  MAX_FORK_CHECK_PEERS,
  MAX_LEADS_PER_SYNC,
  AGREEMENT_GRACE_MS,
  MAX_AGREEMENT_PEERS,
  MAX_PEER_STATES,
  MAX_REQUESTED_RANGES,
  MAX_REQUESTS_PER_PEER,
  MAX_WINDOW_HEADERS,
  MAX_WINDOWS_PER_SYNC,
  PRIORITY_MAX_BATCH_RETRIES,
} from "./constants.js";
import { penaltyFor, reportSyncError, SyncError, toSyncError, type SyncErrorCode } from "./errors.js";
import {
  agreementHeights,
  tallyAgreement,
  type AgreementQuery,
  type AgreementTally,
} from "./hashAgreement.js";
import { validateHeaders, type HeaderParent, type ValidatedHeader } from "./headerChain.js";
import type { SyncFns, SyncPeerSource, SyncTrigger } from "./interface.js";
import { defaultSyncCoordinatorOptions, type SyncCoordinatorOptions } from "./options.js";
import type { PeerState, PeerStateView } from "./peerStateView.js";
import { peerSyncFns } from "./peerSyncFns.js";
import { RangeDownload, type DownloadPeer, type RangeItem } from "./rangeDownload.js";
import {
  comparePeers,
  consensusCheck,
  consensusTarget,
  maxPlausibleHeight,
  stddev,
  type ConsensusTarget,
  type HeightReport,
} from "./target.js";

/**
 * The coordinator's one state machine. A sync runs only from Checking; a check only from Idle;
 * any other transition throws WRONG_STATE. Single-flight: while not Idle, triggers only mark
 * that another check is wanted.
 */
export type SyncState =
  | { status: "Idle" }
  | { status: "Checking"; since: number; reason: string }
  | {
      status: "Syncing";
      since: number;
      reason: SyncReason;
      /** Node id and address of the peer whose branch is being followed. */
      lead: string;
      leadAddr: string;
      /** Height being synced to (the lead's reported height when it was chosen). */
      target: number;
      startHeight: number;
      /** clock.monotonic() time at which this sync stops. */
      deadline: number;
    };

export type SyncStateStatus = SyncState["status"];

/** Why a sync started: behind the consensus height, a peer (or orphan) ahead, or a fork check. */
export type SyncReason = "behind" | "peer-ahead" | "fork-check";

/** What getsyncstatus reports. */
export interface SyncStatus {
  enabled: boolean;
  state: SyncStateStatus;
  syncing: boolean;
  height: number;
  /** Median height of masternode peers (whitelisted first), or null without peers. */
  consensusHeight: number | null;
  consensusSource: ConsensusTarget["source"] | null;
  behind: number;
  /** Height the running sync is heading for, or null. */
  target: number | null;
  /** Fresh connected peers. */
  peers: number;
  blocksPerSecond: number;
  /** Address of the lead peer of the running sync. */
  lead: string | null;
  /** Standard deviation of the peer heights at the last check. */
  peerHeightStddev: number;
  /** Set when the peers we can reach disagree on genesis: sync is refused. */
  genesisDisagreement: { refused: number; agreeing: number } | null;
  /** We were more than 100 blocks above consensus at the last check. */
  possibleFork: boolean;
  lastError: { code: SyncErrorCode; message: string; at: number } | null;
  lastSync: {
    from: number;
    to: number;
    blocks: number;
    seconds: number;
    ok: boolean;
    reason: SyncReason;
  } | null;
}

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
}

/** Hints from events are looked at no more often than this (pings can come many times a second). */
const MIN_CHECK_SPACING_MS = 200;
/** Samples kept for the blocks-per-second figure (one per applied batch). */
const RATE_SAMPLES = 64;
/** The blocks-per-second figure covers this much recent time. */
const RATE_WINDOW_MS = 10_000;

interface LeadOutcome {
  error: SyncError | null;
}

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
 * are validated before any body is fetched, a 2/3 hash agreement before a reorg (seed 002), and
 * the bodies in parallel batches (RangeDownload). The whole sync stops after peer_sync_timeout
 * (masternode_sync_timeout when the lead is a masternode).
 */
export class SyncCoordinator implements SyncTrigger {
  private readonly opts: SyncCoordinatorOptions;
  private readonly fns: SyncFns;
  private stateValue: SyncState = { status: "Idle" };
  private running: Promise<void> | null = null;
  private rerun = false;
  private rerunTimer: TimerHandle | null = null;
  private tickTimer: TimerHandle | null = null;
  private notifierTimer: TimerHandle | null = null;
  private stopped = false;
  private started = false;
  private lastCheckEnd = Number.NEGATIVE_INFINITY;
  private unsubscribe: Array<() => void> = [];
  private currentDownload: RangeDownload | null = null;

  /** Peers that showed a height above ours or sent an orphan since the last check. */
  private readonly hints = new BoundedMap<string, true>(MAX_PEER_STATES);
  /** Lead peers that failed a sync: not chosen again before the time stored. */
  private readonly leadCooldown = new BoundedMap<string, { until: number; failures: number }>(
    MAX_PEER_STATES,
  );
  /** Peer tips found not better than ours: "id" → tip hex and when. */
  private readonly checkedTips = new BoundedMap<string, { tip: string; at: number }>(MAX_PEER_STATES);
  /** Peers already logged for an impossible height, with the height. */
  private readonly impossible = new BoundedMap<string, number>(MAX_PEER_STATES);
  /** Peers whose claimed tip turned out empty: no lead, no say in the target until the time stored. */
  private readonly disproven = new BoundedMap<string, number>(MAX_PEER_STATES);
  /** Last time a repeated log line was written, by key. */
  private readonly logged = new BoundedMap<string, number>(MAX_PEER_STATES);

  private lastTarget: ConsensusTarget | null = null;
  private lastStddev = 0;
  private lastPossibleFork = false;
  private wasInSync: boolean | null = null;
  private genesisDisagreement: { refused: number; agreeing: number } | null = null;
  private lastError: SyncStatus["lastError"] = null;
  private lastSync: SyncStatus["lastSync"] = null;
  private readonly rate: Array<{ at: number; blocks: number }> = [];

  constructor(
    opts: Partial<SyncCoordinatorOptions>,
    private readonly modules: SyncCoordinatorModules,
  ) {
    this.opts = { ...defaultSyncCoordinatorOptions, ...opts };
    const base: Partial<SyncFns> = modules.peers
      ? peerSyncFns(modules.peers, modules.chain, { requestTimeoutMs: this.opts.requestTimeoutMs })
      : { processChainSegment: (items) => modules.chain.processBlocks(items) };
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
    this.notifierTimer?.cancel();
    this.currentDownload?.abort("coordinator stopped");
    for (const u of this.unsubscribe.splice(0)) u();
  }

  get state(): SyncState {
    return this.stateValue;
  }

  get isSyncing(): boolean {
    return this.stateValue.status === "Syncing";
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
    this.requestCheck("hint");
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
    if (this.rerunTimer) return;
    const wait = Math.max(0, this.lastCheckEnd + MIN_CHECK_SPACING_MS - this.modules.clock.monotonic());
    this.rerunTimer = this.modules.clock.setTimeout(
      () => {
        this.rerunTimer = null;
        if (!this.running && !this.stopped) void this.runCheck(reason);
      },
      reason === "tick" || reason === "start" ? 0 : wait,
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
        this.stopNotifier();
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
    const reports = this.reports();
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
    if (hinted.length > 0 && this.candidates(reports, "peer-ahead", hinted).length > 0) {
      await this.sync("peer-ahead", reports, target, hinted);
      return;
    }
    if (target) this.logInSync(ours, target);
  }

  /** Fresh, not-failing peers' heights, without those claiming an impossible height (penalised once). */
  private reports(): Array<HeightReport & { state: PeerState }> {
    const { chain, clock } = this.modules;
    const maxHeight = maxPlausibleHeight(
      chain.genesis.timestamp,
      chain.params.blockTimeMs,
      clock.now(),
      chain.params.maxFutureDriftMs,
    );
    const out: Array<HeightReport & { state: PeerState }> = [];
    const now = clock.monotonic();
    for (const e of this.modules.view.usable()) {
      if (e.height > maxHeight) {
        if (this.impossible.get(e.id) !== e.height) {
          this.impossible.set(e.id, e.height);
          this.modules.logger.info("Ignoring a peer's impossible height", {
            peer: e.addr,
            height: e.height,
            highestPossible: maxHeight,
          });
        }
        continue;
      }
      const until = this.disproven.get(e.id);
      if (until !== undefined) {
        if (until > now && !chain.getIndex(e.tipHash)) continue;
        this.disproven.delete(e.id);
      }
      out.push({
        id: e.id,
        height: e.height,
        masternode: e.masternode,
        whitelisted: e.whitelisted,
        state: e,
      });
    }
    return out;
  }

  private logInSync(ours: number, target: ConsensusTarget): void {
    const ctx = { height: ours, consensus: target.height, source: target.source, peers: target.count };
    if (this.wasInSync === true) this.modules.logger.debug("In sync with the masternode consensus", ctx);
    else this.modules.logger.info("In sync with the masternode consensus", ctx);
    this.wasInSync = true;
  }

  /**
   * Peers we could follow, best first: tip unknown to us, not cooling down after a failure, not
   * already found no better, and passing the consensus check (deferred ones are logged).
   */
  private candidates(
    reports: ReadonlyArray<HeightReport & { state: PeerState }>,
    reason: SyncReason,
    hinted: readonly string[] = [],
    exclude: ReadonlySet<string> = new Set(),
  ): Array<{ peer: PeerState; priority: boolean }> {
    const { chain, clock } = this.modules;
    const ours = chain.height;
    const now = clock.monotonic();
    const out: Array<{ peer: PeerState; priority: boolean }> = [];
    for (const r of reports) {
      const e = r.state;
      if (exclude.has(e.id)) continue;
      if (chain.getIndex(e.tipHash) || chain.isKnownInvalid(e.tipHash)) continue;
      // Work decides, not height: a peer that sent us a block whose parent we lack may hold a
      // heavier branch that is shorter than ours, so a hinted peer is looked at whatever its height.
      const isHinted = hinted.includes(e.id);
      if (reason !== "fork-check" && e.height < ours && !isHinted) continue;
      if (reason === "peer-ahead" && !isHinted && e.height <= ours) continue;
      const cool = this.leadCooldown.get(e.id);
      if (cool && cool.until > now) continue;
      const checked = this.checkedTips.get(e.id);
      if (checked && checked.tip === e.tipHash.toString("hex") && now - checked.at < FORK_RECHECK_MS)
        continue;
      const c = consensusCheck(r, ours, reports);
      if (!c.ok) {
        this.modules.metrics?.syncDeferredTotal.inc();
        this.logRepeat(
          `defer:${e.id}`,
          "info",
          "Deferring sync: peer is far ahead and not on the consensus chain",
          {
            peer: e.addr,
            height: e.height,
            ourHeight: ours,
            agreeing: c.agreeing,
            reporting: c.reporting,
          },
        );
        continue;
      }
      out.push({ peer: e, priority: c.priority && c.farAhead });
    }
    out.sort((a, b) => comparePeers(a.peer, b.peer));
    return reason === "fork-check" ? out.slice(0, MAX_FORK_CHECK_PEERS) : out;
  }

  // --- a sync ------------------------------------------------------------------------------

  private async sync(
    reason: SyncReason,
    reports: ReadonlyArray<HeightReport & { state: PeerState }>,
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
    for (let n = 0; n < MAX_LEADS_PER_SYNC && !this.stopped; n++) {
      const next = this.candidates(reports, reason, hinted, triedLeads)[0];
      if (!next) break;
      const lead = next.peer;
      triedLeads.add(lead.id);
      if (!initiated) {
        initiated = true;
        metrics?.syncCoordinatorSyncsInitiatedTotal.inc();
        // Seed 001: masternode syncs get the longer timeout.
        deadline =
          startedAt + (lead.masternode ? this.opts.masternodeSyncTimeoutMs : this.opts.peerSyncTimeoutMs);
        this.logSyncStart(reason, lead, next.priority, target, reports);
        this.startNotifier();
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
      const r = await this.syncFromLead(lead, requested, deadline!, (count) => (blocks += count));
      if (r.error) {
        lastError = r.error;
        this.setError(r.error);
        this.coolDown(lead.id);
        logger.info("Sync from peer ended early", {
          peer: lead.addr,
          code: r.error.code,
          reason: r.error.message,
          height: chain.height,
        });
        if (ENDS_SYNC.has(r.error.code)) break;
        continue;
      }
      this.leadCooldown.delete(lead.id);
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
    this.lastSync = { from: startHeight, to: chain.height, blocks, seconds, ok, reason };
    this.stopNotifier();
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
    reports: ReadonlyArray<HeightReport & { state: PeerState }>,
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

  /** Follows one peer's branch: common ancestor, then windows of headers and bodies. */
  private async syncFromLead(
    lead: PeerState,
    requested: BoundedMap<string, true>,
    deadline: number,
    onBlocks: (count: number) => void,
  ): Promise<LeadOutcome> {
    const { chain, clock, logger, metrics, view } = this.modules;
    const priority = lead.whitelisted && lead.masternode;
    const { reorg } = chain.params;
    const maxDepth = Math.min(priority ? reorg.prioritySearchDepth : reorg.searchDepth, reorg.maxDepth);
    const ours = chain.height;
    const local: LocalChainView = { height: ours, hashAt: (h) => chain.getHashAtHeight(h) };
    let anc: AncestorResult;
    try {
      anc = await findCommonAncestor(
        local,
        {
          getHeaders: (loc, max) => this.fns.getHeaders(lead.id, loc, max),
          getHashes: (heights) => this.fns.getHashes(lead.id, heights),
        },
        { maxDepth },
      );
    } catch (e) {
      return this.leadFailed(lead, toSyncError(e));
    }
    metrics?.syncAncestorRoundtrips.observe(anc.roundTrips);
    view.recordSuccess(lead.id);
    if (!anc.fork || anc.headers.length === 0) {
      if (lead.height > ours) {
        return this.leadFailed(
          lead,
          new SyncError("EMPTY_CLAIM", `reports height ${lead.height} but has nothing after our locator`),
        );
      }
      this.markChecked(lead);
      return { error: null };
    }
    const fork = anc.fork;
    logger.debug("Common ancestor found", {
      peer: lead.addr,
      fork: fork.height,
      depth: ours - fork.height,
      roundTrips: anc.roundTrips,
    });
    if (fork.height < ours) {
      const ctx = { peer: lead.addr, fork: fork.height, depth: ours - fork.height, maxDepth };
      if (priority) {
        logger.warn(
          "Priority fork resolution: whitelisted masternode has a conflicting chain; searching deeper for the common ancestor",
          ctx,
        );
      } else logger.info("Peer has a conflicting branch", ctx);
    }
    const forkEntry = chain.getIndex(fork.hash);
    if (!forkEntry) return { error: new SyncError("INTERNAL", "fork block is not in our index") };
    let cursor = this.parentOf(forkEntry);
    let pending: { headers: BlockHeader[]; hashes: Buffer[]; more: boolean } | null = anc;
    let confirmed = false;
    for (let w = 0; w < MAX_WINDOWS_PER_SYNC && !this.stopped; w++) {
      if (clock.monotonic() >= deadline)
        return { error: new SyncError("SYNC_TIMEOUT", "the sync ran out of time") };
      let win: { validated: ValidatedHeader[]; more: boolean; cursor: HeaderParent };
      try {
        win = await this.collectWindow(lead, cursor, pending);
      } catch (e) {
        return this.leadFailed(lead, toSyncError(e));
      }
      pending = null;
      cursor = win.cursor;
      let validated = win.validated;
      let more = win.more;
      // Blocks ahead of our clock would be refused: stop the window there (no one's fault yet).
      const limit = clock.now() + chain.params.maxFutureDriftMs;
      const early = validated.findIndex((v) => v.header.timestamp > limit);
      if (early >= 0) {
        validated = validated.slice(0, early);
        more = false;
      }
      if (validated.length === 0) {
        if (!more) {
          this.markChecked(lead);
          return { error: null };
        }
        continue;
      }
      const last = validated[validated.length - 1]!;
      const better = isBetterTip({ work: last.work, hash: last.hash } as BlockIndex, chain.tip);
      const first = validated[0]!;
      const extendsTip = first.header.prevHash.equals(chain.tip.hash);
      if (!better && !more) {
        logger.debug("Peer's branch has no more work than ours", {
          peer: lead.addr,
          branchHeight: last.header.height,
          height: chain.height,
        });
        this.markChecked(lead);
        return { error: null };
      }
      if (better && !extendsTip && !confirmed) {
        const q: AgreementQuery = {
          fork,
          target: { height: last.header.height, hash: last.hash },
          ours: { height: chain.tip.height, hash: chain.tip.hash },
          oursAtTarget: chain.getHashAtHeight(last.header.height) ?? null,
        };
        const tally = await this.confirmBranch(q, lead);
        if (!tally.confirmed) {
          logger.warn("Branch not confirmed by 2/3 of the answering peers; reorg deferred", {
            peer: lead.addr,
            fork: fork.height,
            target: q.target.height,
            ...tallyContext(tally),
          });
          return {
            error: new SyncError(
              "HASH_DISAGREEMENT",
              "fewer than 2/3 of the answering peers confirm the branch",
              {
                ...tallyContext(tally),
              },
            ),
          };
        }
        confirmed = true;
      }
      const items: RangeItem[] = [];
      for (const v of validated) {
        if (!chain.getIndex(v.hash)) items.push({ hash: v.hash, height: v.header.height, header: v.header });
      }
      if (items.length > 0) {
        // Validated headers we are about to fetch: the chain stores their blocks even while the
        // branch is still lighter than our tip (it only wins at its end).
        chain.expect(
          items.map((i) => i.hash),
          Math.max(0, deadline - clock.monotonic()) + 60_000,
        );
        const dl = new RangeDownload(
          items,
          {
            batchSize: this.opts.maxSyncBatchSize,
            maxRetries: priority ? PRIORITY_MAX_BATCH_RETRIES : MAX_BATCH_RETRIES,
            maxRequestsPerPeer: MAX_REQUESTS_PER_PEER,
            maxBatchesAhead: MAX_BATCHES_AHEAD,
            deadline,
            leadId: lead.id,
          },
          {
            fns: this.fns,
            peers: () => this.downloadPeers(lead),
            clock,
            logger,
            metrics,
            requested,
            onPeerResult: (id, ok) => (ok ? view.recordSuccess(id) : view.recordFailure(id)),
            onApplied: (count, peerId) => {
              onBlocks(count);
              this.recordRate(count);
              if (view.get(peerId)?.masternode) metrics?.masternodeSyncBlocksReceivedTotal.inc(count);
            },
          },
        );
        this.currentDownload = dl;
        const r = await dl.run();
        this.currentDownload = null;
        if (r.error) return { error: r.error };
      }
      if (!more) return { error: null };
    }
    return { error: null };
  }

  /**
   * Fetches and validates up to MAX_WINDOW_HEADERS new headers of the lead's branch after
   * `cursor`. Each next GetHeaders starts its locator at the last header received (not at our
   * tip), so a branch whose first thousands of headers we already hold never stalls the sync.
   */
  private async collectWindow(
    lead: PeerState,
    start: HeaderParent,
    pending: { headers: BlockHeader[]; hashes: Buffer[]; more: boolean } | null,
  ): Promise<{ validated: ValidatedHeader[]; more: boolean; cursor: HeaderParent }> {
    const { chain } = this.modules;
    const out: ValidatedHeader[] = [];
    let cursor = start;
    let more = true;
    let batch = pending;
    // Known headers may precede the new ones: allow enough requests to cross a whole search depth.
    const depth = chain.params.reorg.prioritySearchDepth;
    const maxRequests = Math.ceil((MAX_WINDOW_HEADERS + depth) / MAX_HEADERS_PER_MESSAGE) + 2;
    for (let req = 0; out.length < MAX_WINDOW_HEADERS && req <= maxRequests;) {
      if (!batch) {
        const locator = [cursor.hash, ...buildLocator(chain)].slice(0, MAX_LOCATOR);
        const headers = await this.fns.getHeaders(lead.id, locator, MAX_HEADERS_PER_MESSAGE);
        req++;
        batch = { headers, hashes: [], more: headers.length >= MAX_HEADERS_PER_MESSAGE };
      }
      const { headers } = batch;
      if (headers.length === 0) {
        more = false;
        break;
      }
      // The lead switched branches since the last answer: end this window; a later check restarts.
      if (!headers[0]!.prevHash.equals(cursor.hash)) {
        if (out.length === 0 && batch !== pending) {
          throw new SyncError("BAD_RESPONSE", "headers do not continue from the last header received");
        }
        more = false;
        break;
      }
      let i = 0;
      // Headers we already hold (stored on some branch) are skipped, not validated again.
      for (; i < headers.length && out.length === 0; i++) {
        const h = headers[i]!;
        const hash = batch.hashes[i] ?? null;
        const known = chain.getIndex(hash ?? blockHash(h));
        if (!known || !h.prevHash.equals(cursor.hash)) break;
        cursor = this.parentOf(known);
      }
      const rest = headers.slice(i);
      const restHashes = batch.hashes.length > 0 ? batch.hashes.slice(i) : undefined;
      const v = validateHeaders(rest, cursor, this.headerContext(), restHashes);
      out.push(...v.valid);
      if (v.valid.length > 0) {
        const last = v.valid[v.valid.length - 1]!;
        cursor = {
          hash: last.hash,
          height: last.header.height,
          timestamp: last.header.timestamp,
          mnRoot: last.header.mnRoot,
          work: last.work,
          schedule: last.childSchedule,
        };
      }
      if (v.error) {
        throw new SyncError(
          "INVALID_HEADERS",
          `invalid header at height ${rest[v.valid.length]?.height ?? "?"}: ${v.error.message}`,
          { rule: v.error.code },
          v.error,
        );
      }
      more = batch.more;
      batch = null;
      if (!more) break;
    }
    return { validated: out, more, cursor };
  }

  /** A stored block as the parent of a run of headers, with the schedule of its children's epoch. */
  private parentOf(e: BlockIndex): HeaderParent {
    let schedule = null;
    try {
      schedule = this.modules.chain.scheduleForChild(e);
    } catch (err) {
      this.modules.logger.debug(
        "No schedule for a header run's parent",
        { hash: e.hash.toString("hex") },
        err,
      );
    }
    return {
      hash: e.hash,
      height: e.height,
      timestamp: e.timestamp,
      mnRoot: e.mnRoot,
      work: e.work,
      schedule,
    };
  }

  private headerContext(): Parameters<typeof validateHeaders>[2] {
    const { chain } = this.modules;
    return { params: chain.params, registryByRoot: (root) => chain.storage.getRegistryByRoot(root) };
  }

  /** Peers that may serve the lead's branch: usable, plausible, and passing the consensus check. */
  private downloadPeers(lead: PeerState): DownloadPeer[] {
    const reports = this.reports();
    const ours = this.modules.chain.height;
    const out: DownloadPeer[] = [];
    for (const r of reports) {
      const e = r.state;
      if (e.id !== lead.id && !consensusCheck(r, ours, reports).ok) continue;
      out.push({
        id: e.id,
        addr: e.addr,
        whitelisted: e.whitelisted,
        masternode: e.masternode,
        height: e.height,
        rttMs: e.rttMs,
        consecutiveFailures: e.consecutiveFailures,
      });
    }
    if (!out.some((p) => p.id === lead.id)) {
      const e = this.modules.view.get(lead.id);
      if (e?.connected) {
        out.push({
          id: e.id,
          addr: e.addr,
          whitelisted: e.whitelisted,
          masternode: e.masternode,
          height: e.height,
          rttMs: e.rttMs,
          consecutiveFailures: e.consecutiveFailures,
        });
      }
    }
    return out;
  }

  /** Seed 002: asks up to 16 peers for their hashes at the fork, our tip and the target heights. */
  private async confirmBranch(q: AgreementQuery, lead: PeerState): Promise<AgreementTally> {
    const { metrics, logger } = this.modules;
    const peers = this.modules.view.usable().sort(comparePeers).slice(0, MAX_AGREEMENT_PEERS);
    if (!peers.some((p) => p.id === lead.id)) peers.push(lead);
    const heights = agreementHeights(q);
    const answers: Array<Buffer[] | null> = peers.map(() => null);
    // Every asked peer gets up to the request timeout, but a silent minority cannot hold a reorg
    // that long: once the lead and a majority of the asked peers have answered, the rest get
    // AGREEMENT_GRACE_MS more and are then counted as not answering.
    await new Promise<void>((resolve) => {
      let settled = 0;
      let answered = 0;
      let leadDone = false;
      let grace: TimerHandle | null = null;
      let finished = false;
      const done = (): void => {
        if (finished) return;
        finished = true;
        grace?.cancel();
        resolve();
      };
      peers.forEach((p, i) => {
        void this.fns
          .getHashes(p.id, heights)
          .then(
            (hs) => {
              if (hs.length !== heights.length) return;
              answers[i] = hs;
              answered++;
            },
            () => undefined,
          )
          .finally(() => {
            settled++;
            if (p.id === lead.id) leadDone = true;
            if (settled === peers.length) return done();
            if (!finished && !grace && leadDone && 2 * answered > peers.length) {
              grace = this.modules.clock.setTimeout(done, AGREEMENT_GRACE_MS);
            }
          });
      });
    });
    const tally = tallyAgreement(q, answers.slice());
    if (tally.mismatches > 0) {
      metrics?.syncHashMismatchTotal.inc(tally.mismatches);
      const disagree: string[] = [];
      answers.forEach((a, i) => {
        if (!a) return;
        const other = (!a[0]!.equals(q.fork.hash) && !a[0]!.every((b) => b === 0)) || isOtherAtTarget(q, a);
        if (other) disagree.push(peers[i]!.addr);
      });
      logger.warn("Block hash mismatch: peers disagree with the branch we are about to adopt", {
        fork: q.fork.height,
        target: q.target.height,
        peers: disagree,
        ...tallyContext(tally),
      });
    }
    return tally;
  }

  private leadFailed(lead: PeerState, err: SyncError): LeadOutcome {
    switch (err.code) {
      case "TIMEOUT":
      case "PEER_CLOSED":
        this.modules.view.recordFailure(lead.id);
        break;
      case "EMPTY_CLAIM":
        // It could not back up its claim: no lead, and no say in the target, for a while.
        this.disproven.set(lead.id, this.modules.clock.monotonic() + DISPROVEN_CLAIM_MS);
        this.modules.metrics?.syncPeerPenaltiesTotal.inc({ code: err.code });
        this.modules.logger.info("Peer did not deliver the tip it claimed; ignoring its height for a while", {
          peer: lead.addr,
          claimed: lead.height,
          height: this.modules.chain.height,
          seconds: DISPROVEN_CLAIM_MS / 1000,
        });
        break;
      default:
        break;
    }
    if (penaltyFor(err) > 0) this.penalise(lead, err);
    return { error: err };
  }

  private penalise(peer: PeerState, err: SyncError): void {
    const { logger, metrics } = this.modules;
    reportSyncError(
      { reportPeer: (id, score, reason) => this.fns.reportPeer(id, score, reason), logger, metrics },
      peer,
      err,
      "Penalising peer",
    );
  }

  private coolDown(id: string): void {
    const prev = this.leadCooldown.get(id);
    const failures = (prev?.failures ?? 0) + 1;
    const ms = Math.min(LEAD_COOLDOWN_MS * 2 ** (failures - 1), 30 * LEAD_COOLDOWN_MS);
    this.leadCooldown.set(id, { until: this.modules.clock.monotonic() + ms, failures });
  }

  private markChecked(lead: PeerState): void {
    this.checkedTips.set(lead.id, { tip: lead.tipHash.toString("hex"), at: this.modules.clock.monotonic() });
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

  private recordRate(blocks: number): void {
    this.rate.push({ at: this.modules.clock.monotonic(), blocks });
    if (this.rate.length > RATE_SAMPLES) this.rate.shift();
  }

  /** Blocks applied per second over the last 10 s. */
  blocksPerSecond(): number {
    const now = this.modules.clock.monotonic();
    let blocks = 0;
    let oldest = now;
    for (const s of this.rate) {
      if (now - s.at > RATE_WINDOW_MS) continue;
      blocks += s.blocks;
      oldest = Math.min(oldest, s.at);
    }
    if (blocks === 0) return 0;
    const span = Math.max(1_000, now - oldest);
    return (blocks * 1000) / span;
  }

  private startNotifier(): void {
    this.stopNotifier();
    this.notifierTimer = this.modules.clock.setInterval(() => this.notify(), this.opts.notifierIntervalMs);
  }

  private stopNotifier(): void {
    this.notifierTimer?.cancel();
    this.notifierTimer = null;
  }

  /** Lodestar-style notifier: "Syncing — 4,210/12,000 — 310 blocks/s — 25 s left — 8 peers". */
  private notify(): void {
    const st = this.stateValue;
    if (st.status !== "Syncing") return;
    const height = this.modules.chain.height;
    const target = Math.max(st.target, height);
    const bps = this.blocksPerSecond();
    const left = target - height;
    const eta = bps > 0 ? formatDuration(left / bps) : "unknown";
    const peers = this.modules.view.fresh().length;
    this.modules.logger.info(
      `Syncing — ${height.toLocaleString("en-US")}/${target.toLocaleString("en-US")} — ${bps.toFixed(1)} blocks/s — ${eta} left — ${peers} peers`,
      { height, target, blocksPerSecond: Number(bps.toFixed(1)), peers, lead: st.leadAddr },
    );
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
  // Deferred until the network agrees; the next check asks again.
  "HASH_DISAGREEMENT",
  "BLOCK_FROM_FUTURE",
  "REORG_REFUSED",
]);

/** The state machine's one transition rule: `to` only from one of `from`, else WRONG_STATE. */
export function nextSyncState(
  current: SyncState,
  from: readonly SyncStateStatus[],
  to: SyncState,
): SyncState {
  if (!from.includes(current.status)) {
    throw new SyncError("WRONG_STATE", `sync state ${current.status} -> ${to.status}`, {
      from: current.status,
      to: to.status,
    });
  }
  return to;
}

function isOtherAtTarget(q: AgreementQuery, a: readonly Buffer[]): boolean {
  const atOurs = a[1]!;
  const atTarget = a[2]!;
  return (
    !atTarget.equals(q.target.hash) &&
    !atOurs.equals(q.ours.hash) &&
    !(q.oursAtTarget?.equals(atTarget) ?? false) &&
    !atTarget.every((b) => b === 0)
  );
}

function tallyContext(t: AgreementTally): Record<string, number> {
  return {
    answered: t.answered,
    forkAgree: t.forkAgree,
    forkOther: t.forkOther,
    branch: t.branch,
    onOurChain: t.ours,
    below: t.none,
    other: t.other,
  };
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "unknown";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export type { ForkPoint };
