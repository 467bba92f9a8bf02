import { blockHash, type BlockHeader } from "../primitives/block.js";
import { isBetterTip, type Chain } from "../chain/chain.js";
import type { BlockIndex } from "../chain/chainStore.js";
import { buildLocator } from "../chain/locator.js";
import type { Logger } from "../logging/index.js";
import type { Metrics } from "../metrics/metrics.js";
import { MAX_HEADERS_PER_MESSAGE, MAX_LOCATOR } from "../p2p/messages.js";
import type { BoundedMap } from "../util/boundedMap.js";
import type { Clock } from "../util/clock.js";
import { findCommonAncestor, type AncestorResult, type ForkPoint, type LocalChainView } from "./ancestor.js";
import {
  MAX_BATCHES_AHEAD,
  MAX_BATCH_RETRIES,
  MAX_REQUESTS_PER_PEER,
  MAX_WINDOW_HEADERS,
  MAX_TWIN_HEADERS,
  MAX_WINDOWS_PER_SYNC,
  NEXT_WINDOW_AT,
  PRIORITY_MAX_BATCH_RETRIES,
  PRODUCTION_HOLD_MIN_MS,
} from "./constants.js";
import { SyncError, toSyncError } from "./errors.js";
import { validateHeaders, type HeaderParent, type ValidatedHeader } from "./headerChain.js";
import type { SyncFns } from "./interface.js";
import type { PeerState, PeerStateView } from "./peerStateView.js";
import type { DownloadPeer, RangeItem } from "./batch.js";
import { RangeDownload, type DownloadResult } from "./rangeDownload.js";
import type { LeadOutcome } from "./types.js";

/**
 * What a lead sync tells the coordinator about its lead, and asks it about the other peers
 * (the LeadPicker provides it).
 */
export interface LeadBook {
  /** The lead failed with `err`: its failure is recorded (and penalised); returns the outcome. */
  leadFailed(lead: PeerState, err: SyncError): LeadOutcome;
  /** The lead's tip was found no better than ours. */
  markChecked(lead: PeerState): void;
  /** Peers that may serve the lead's branch now. */
  downloadPeers(lead: PeerState): DownloadPeer[];
}

/** The collaborators of a LeadSync, handed over by the coordinator at construction. */
export interface LeadSyncModules {
  chain: Chain;
  view: Pick<PeerStateView, "usable" | "get" | "recordSuccess" | "recordFailure">;
  clock: Clock;
  logger: Logger;
  metrics: Metrics | null;
  fns: SyncFns;
  leads: LeadBook;
  /** `max_sync_batch_size`: blocks per GetBlocks. */
  batchSize: number;
  /** True once the coordinator has stopped: no further window is taken. */
  stopped(): boolean;
  /** Blocks applied (for the blocks-per-second figure). */
  onApplied(count: number): void;
  /** See SyncCoordinatorModules.callerWaiting. */
  callerWaiting?: () => boolean;
}

/** One sync from one lead: the ranges already requested, the deadline, and the block counter. */
interface LeadRun {
  lead: PeerState;
  /** A whitelisted masternode: deeper fork search, more batch retries. */
  priority: boolean;
  requested: BoundedMap<string, true>;
  deadline: number;
  onBlocks: (count: number) => void;
}

/** Headers of the lead's branch received but not yet validated (the ancestor search's last answer). */
type HeaderBatch = { headers: BlockHeader[]; hashes: Buffer[]; more: boolean };

/** The download of a sync, which later header windows are appended to. */
interface ActiveDownload {
  dl: RangeDownload;
  done: Promise<DownloadResult>;
  /** Its run has ended (every batch done after noMore, or an error, timeout or stop). */
  ended: boolean;
}

/** Where the lead's branch leaves our main chain, and the headers already received after it. */
interface ForkFound {
  fork: ForkPoint;
  /** The fork block as the parent of the first window. */
  parent: HeaderParent;
  pending: HeaderBatch;
}

/** A window of validated headers, and where the next one starts. */
interface HeaderWindow {
  validated: ValidatedHeader[];
  more: boolean;
  cursor: HeaderParent;
}

/**
 * Follows one lead peer's branch, in steps: find the fork (common ancestor, findFork), take the
 * next window of validated headers (collectWindow), and download the bodies (RangeDownload).
 * Fork choice alone decides whether the branch is adopted: no vote of peers' hashes, which a
 * lead could answer for its own branch and a third of liars could veto; what no branch can undo
 * is the final block (certificates). Failures of the lead go to
 * the LeadBook; the coordinator decides what happens next.
 */
export class LeadSync {
  private current: RangeDownload | null = null;
  /** The better branch this run is fetching (see productionHold), until when it holds production. */
  private better: { hash: Buffer; height: number; work: bigint; until: number; deadline: number } | null =
    null;

  constructor(private readonly modules: LeadSyncModules) {}

  /**
   * The branch the sync is fetching when its validated headers beat our tip and it is still
   * making progress: a producer waits for it instead of building on a tip about to be replaced
   * (PRODUCTION_HOLD_MIN_MS). Null otherwise. The headers were checked against the schedule and
   * the producers' signatures, so only a real heavier branch holds anyone.
   */
  productionHold(): { hash: Buffer; height: number } | null {
    const b = this.better;
    if (!b || this.modules.clock.monotonic() >= b.until) return null;
    if (!isBetterTip({ work: b.work, hash: b.hash } as BlockIndex, this.modules.chain.tip)) return null;
    return { hash: b.hash, height: b.height };
  }

  private holdUntil(deadline: number): number {
    const { clock, chain } = this.modules;
    return Math.min(
      deadline,
      clock.monotonic() + Math.max(PRODUCTION_HOLD_MIN_MS, chain.params.roundTimeoutMs),
    );
  }

  /** Stops the running download, if any. */
  abort(reason: string): void {
    this.current?.abort(reason);
  }

  /** Follows one peer's branch: common ancestor, then windows of headers and bodies. */
  async run(
    lead: PeerState,
    requested: BoundedMap<string, true>,
    deadline: number,
    onBlocks: (count: number) => void,
  ): Promise<LeadOutcome> {
    const run: LeadRun = {
      lead,
      priority: lead.whitelisted && lead.masternode,
      requested,
      deadline,
      onBlocks,
    };
    try {
      return await this.follow(run);
    } finally {
      this.better = null;
    }
  }

  private async follow(run: LeadRun): Promise<LeadOutcome> {
    const { chain, clock, logger } = this.modules;
    const { lead, deadline } = run;
    const found = await this.findFork(run);
    if ("error" in found) return found;
    const { fork } = found;
    // A branch that leaves our chain below the final block can never be ours: refused before a
    // single body is downloaded, whatever its work.
    if (fork.height < chain.finality.finalizedHeight) {
      // Its headers may still prove that a producer signed twice for one slot (a twin of a
      // final block): evidence from the header alone, as for a NewTip.
      for (const h of found.pending.headers.slice(0, MAX_TWIN_HEADERS)) chain.noteHeader(h);
      logger.info("Refusing a peer's branch: it conflicts with the final block", {
        peer: lead.addr,
        fork: fork.height,
        final: chain.finality.finalizedHeight,
      });
      this.modules.leads.markChecked(lead);
      return { error: null };
    }
    let cursor = found.parent;
    let pending: HeaderBatch | null = found.pending;
    // One download runs across the windows: the next window is fetched while the last batches of
    // the ones before still download and process, and is appended, so the pipeline never drains.
    let active: ActiveDownload | null = null;
    const outcome = await (async (): Promise<LeadOutcome> => {
      for (let w = 0; w < MAX_WINDOWS_PER_SYNC && !this.modules.stopped(); w++) {
        if (clock.monotonic() >= deadline)
          return { error: new SyncError("SYNC_TIMEOUT", "the sync ran out of time") };
        if (active) {
          await active.dl.whenRemainingAtMost(NEXT_WINDOW_AT);
          // It ended (an error, a timeout, a stop): its result is the outcome, read below.
          if (active.ended) return { error: null };
        }
        let win: HeaderWindow;
        try {
          win = await this.collectWindow(lead, cursor, pending);
        } catch (e) {
          return this.modules.leads.leadFailed(lead, toSyncError(e));
        }
        pending = null;
        cursor = win.cursor;
        const { validated, more } = this.untilNow(win);
        if (validated.length === 0) {
          if (!more) {
            this.modules.leads.markChecked(lead);
            return { error: null };
          }
          continue;
        }
        const last = validated[validated.length - 1]!;
        // Better: more work, or a block that more than 2/3 of the weight has voted final (votes
        // we hold but cannot count without the block) — fork choice will follow it once it is here.
        const claimed = chain.finality.claimedFinal();
        const holdsClaim = claimed.size > 0 && validated.some((v) => claimed.has(v.hash.toString("hex")));
        const better =
          holdsClaim || isBetterTip({ work: last.work, hash: last.hash } as BlockIndex, chain.tip);
        if (better) {
          this.better = {
            hash: last.hash,
            height: last.header.height,
            work: last.work,
            until: this.holdUntil(deadline),
            deadline,
          };
        }
        if (!better && !more) {
          logger.debug("Peer's branch has no more work than ours", {
            peer: lead.addr,
            branchHeight: last.header.height,
            height: chain.height,
          });
          this.modules.leads.markChecked(lead);
          return { error: null };
        }
        active = this.feed(run, active, validated);
        if (!more) return { error: null };
      }
      return { error: null };
    })();
    // (Assigned inside the closure above, which the compiler's narrowing does not follow.)
    const last = active as ActiveDownload | null;
    if (!last) return outcome;
    last.dl.noMore();
    const r = await last.done;
    this.current = null;
    return r.error ? { error: r.error } : outcome;
  }

  /**
   * Finds the common ancestor with the lead (locators, then GetHashes bisection, down to the
   * reorg policy's search depth). Returns the outcome when there is nothing to follow (the lead
   * failed, has nothing after our locator, or holds nothing we lack).
   */
  private async findFork(run: LeadRun): Promise<ForkFound | LeadOutcome> {
    const { chain, logger, metrics, view } = this.modules;
    const { lead, priority } = run;
    const { reorg } = chain.params;
    const maxDepth = Math.min(priority ? reorg.prioritySearchDepth : reorg.searchDepth, reorg.maxDepth);
    const ours = chain.height;
    const local: LocalChainView = { height: ours, hashAt: (h) => chain.getHashAtHeight(h) };
    let anc: AncestorResult;
    try {
      anc = await findCommonAncestor(
        local,
        {
          getHeaders: (loc, max) => this.modules.fns.getHeaders(lead.id, loc, max),
          getHashes: (heights) => this.modules.fns.getHashes(lead.id, heights),
        },
        { maxDepth },
      );
    } catch (e) {
      return this.modules.leads.leadFailed(lead, toSyncError(e));
    }
    metrics?.syncAncestorRoundtrips.observe(anc.roundTrips);
    view.recordSuccess(lead.id);
    if (!anc.fork || anc.headers.length === 0) {
      if (lead.height > ours) {
        return this.modules.leads.leadFailed(
          lead,
          new SyncError("EMPTY_CLAIM", `reports height ${lead.height} but has nothing after our locator`),
        );
      }
      this.modules.leads.markChecked(lead);
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
    return { fork, parent: this.parentOf(forkEntry), pending: anc };
  }

  /** Blocks ahead of our clock would be refused: stop the window there (no one's fault yet). */
  private untilNow(win: HeaderWindow): { validated: ValidatedHeader[]; more: boolean } {
    const { chain, clock } = this.modules;
    const limit = clock.now() + chain.params.maxFutureDriftMs;
    const early = win.validated.findIndex((v) => v.header.timestamp > limit);
    if (early < 0) return { validated: win.validated, more: win.more };
    return { validated: win.validated.slice(0, early), more: false };
  }

  /**
   * Fetches and validates up to MAX_WINDOW_HEADERS new headers of the lead's branch after
   * `cursor`. Each next GetHeaders starts its locator at the last header received (not at our
   * tip), so a branch whose first thousands of headers we already hold never stalls the sync.
   */
  private async collectWindow(
    lead: PeerState,
    start: HeaderParent,
    pending: HeaderBatch | null,
  ): Promise<HeaderWindow> {
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
        const headers = await this.modules.fns.getHeaders(lead.id, locator, MAX_HEADERS_PER_MESSAGE);
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
      // Their producer signatures go to the signature pool first (if there is one), all at once;
      // validation then finds them checked instead of checking each on this thread.
      await this.modules.fns.checkAhead?.(rest.map((header) => ({ header, txs: [] })));
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

  /** Downloads and applies the bodies of the window's headers we lack (RangeDownload). */
  /**
   * Hands a window's headers to the running download (appended), or starts one that expects
   * more windows. Returns the download that runs now (the same one when there was nothing new).
   */
  private feed(
    run: LeadRun,
    active: ActiveDownload | null,
    validated: readonly ValidatedHeader[],
  ): ActiveDownload | null {
    const { chain, clock, logger, metrics, view } = this.modules;
    const { lead, deadline } = run;
    const items: RangeItem[] = [];
    for (const v of validated) {
      if (!chain.getIndex(v.hash)) items.push({ hash: v.hash, height: v.header.height, header: v.header });
    }
    if (items.length === 0) return active;
    // Validated headers we are about to fetch: the chain stores their blocks even while the
    // branch is still lighter than our tip (it only wins at its end).
    chain.expect(
      items.map((i) => i.hash),
      Math.max(0, deadline - clock.monotonic()) + 60_000,
    );
    // Ended while the window was fetched: nothing more goes to it; its result ends the sync.
    if (active && (active.ended || active.dl.append(items))) return active;
    const dl = new RangeDownload(
      items,
      {
        batchSize: this.modules.batchSize,
        maxRetries: run.priority ? PRIORITY_MAX_BATCH_RETRIES : MAX_BATCH_RETRIES,
        maxRequestsPerPeer: MAX_REQUESTS_PER_PEER,
        maxBatchesAhead: MAX_BATCHES_AHEAD,
        deadline,
        leadId: lead.id,
      },
      {
        fns: this.modules.fns,
        peers: () => this.modules.leads.downloadPeers(lead),
        clock,
        logger,
        metrics,
        requested: run.requested,
        callerWaiting: this.modules.callerWaiting,
        onPeerResult: (id, ok) => (ok ? view.recordSuccess(id) : view.recordFailure(id)),
        onApplied: (count, peerId) => {
          if (this.better) this.better.until = this.holdUntil(this.better.deadline);
          run.onBlocks(count);
          this.modules.onApplied(count);
          if (view.get(peerId)?.masternode) metrics?.masternodeSyncBlocksReceivedTotal.inc(count);
        },
      },
    );
    dl.expectMore();
    this.current = dl;
    const started: ActiveDownload = {
      dl,
      ended: false,
      done: dl.run().then((r) => {
        started.ended = true;
        return r;
      }),
    };
    return started;
  }
}
