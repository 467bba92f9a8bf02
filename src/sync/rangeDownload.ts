import { blockHash, decodeBlock, type Block } from "../primitives/block.js";
import { BlockError, isPermanentForHash } from "../primitives/errors.js";
import { CodecError } from "../codec/index.js";
import type { Logger } from "../logging/index.js";
import type { Metrics } from "../metrics/metrics.js";
import type { BoundedMap } from "../util/boundedMap.js";
import type { Clock, TimerHandle } from "../util/clock.js";
import { TurnPacer } from "./turnPacer.js";
import { reportSyncError, SyncError, toSyncError } from "./errors.js";
import type { SyncFns } from "./interface.js";
import { comparePeers } from "./target.js";
import {
  transitionBatch,
  type Batch,
  type BatchState,
  type BatchStatus,
  type DownloadPeer,
  type RangeItem,
} from "./batch.js";

export interface RangeDownloadOptions {
  batchSize: number;
  /** A batch fails after this many retries on other peers. */
  maxRetries: number;
  maxRequestsPerPeer: number;
  /** Downloaded-but-unprocessed batches allowed beyond the head. */
  maxBatchesAhead: number;
  /** clock.monotonic() time at which the whole download stops with SYNC_TIMEOUT. */
  deadline: number;
  /** The peer the branch came from: it may serve every batch whatever height it reports. */
  leadId: string | null;
}

/**
 * Downloaded batches behind the head whose signature checks may run at once (with the head's):
 * enough to keep the workers busy while the head is processed, few enough that the head's check
 * is never queued behind a pile of later ones.
 */
export const CHECKS_AHEAD = 2;

export interface RangeDownloadModules {
  fns: Pick<SyncFns, "getBlocks" | "reportPeer" | "processChainSegment" | "checkAhead">;
  /** The peers that may serve this branch now (connected, fresh, not failing). */
  peers(): DownloadPeer[];
  clock: Clock;
  logger: Logger;
  metrics: Metrics | null;
  /** Ranges already requested in this sync, as "peer/first-hash/count": never asked twice of one peer. */
  requested: BoundedMap<string, true>;
  /**
   * True while a caller (an RPC client) waits for this thread: a batch is then cut where the
   * turn's slice runs out, each part its own commit, so the caller waits for a part and not for
   * whole batches (turnPacer.ts). Not given, whole batches: a commit per part costs sync speed.
   */
  callerWaiting?: () => boolean;
  /** Peer outcomes, for the peer-state view. */
  onPeerResult?(peerId: string, ok: boolean): void;
  /** Blocks applied (in order), with the peer that sent them. */
  onApplied?(count: number, peerId: string): void;
}

export interface DownloadResult {
  /** Blocks processed (connected, side, reorged or already known). */
  processed: number;
  error: SyncError | null;
}

/**
 * Downloads the bodies of a validated header run in batches of at most `batchSize`, spread over
 * several peers at once, and applies them strictly in order with one commit per batch.
 *
 * - Peers are ranked (whitelisted, masternode, height, RTT, failures); the least loaded of the
 *   ranked peers gets the next batch, with at most `maxRequestsPerPeer` in flight each.
 * - Every request has its own timeout (the seam's); a failed batch goes to a different peer, at
 *   most `maxRetries` times; a range is never requested twice from one peer in one sync.
 * - Bad data (undecodable, a block that is not the one its header names, an invalid block) costs
 *   the sender its penalty, and its batch goes to another peer; the download goes on.
 * - An invalid block stops its batch there: the blocks before it stay applied, nothing after it
 *   is, and the rest of the batch is fetched again from another peer. A block invalid under its
 *   hash (the branch itself is bad) ends the download.
 */
export class RangeDownload {
  private readonly batches: Batch[] = [];
  private readonly inFlight = new Map<string, number>();
  /** Peers that sent bad data, lack the branch, or left: not asked again in this download. */
  private readonly excluded = new Set<string>();
  private nextId = 0;
  private processed = 0;
  private finished = false;
  private resolve: ((r: DownloadResult) => void) | null = null;
  private deadlineTimer: TimerHandle | null = null;
  /** When processing turns run, and how long (turnPacer.ts). */
  private readonly pacer: TurnPacer;

  private readonly items: RangeItem[] = [];
  /** More items may be appended (the next header window): finishing waits for noMore(). */
  private open = false;
  /** A wait for the items left to shrink (whenRemainingAtMost). */
  private lowWater: { n: number; resolve: () => void } | null = null;

  constructor(
    items: readonly RangeItem[],
    private readonly opts: RangeDownloadOptions,
    private readonly modules: RangeDownloadModules,
  ) {
    this.pacer = new TurnPacer(modules.clock, (afterIo) => this.pump(afterIo), modules.callerWaiting);
    this.addItems(items);
  }

  private addItems(items: readonly RangeItem[]): void {
    const size = Math.max(1, this.opts.batchSize);
    const base = this.items.length;
    for (const it of items) this.items.push(it);
    for (let s = base; s < this.items.length; s += size)
      this.batches.push(this.newBatch(s, Math.min(this.items.length, s + size)));
  }

  /**
   * Says that the next header window may be appended: until noMore(), the download does not end
   * when its batches are done, it waits for more.
   */
  expectMore(): void {
    if (!this.finished) this.open = true;
  }

  /**
   * Appends the next window's items (they continue the last item's branch), while earlier
   * batches still download and process, so the pipeline never drains between windows. False
   * when the download has already ended.
   */
  append(items: readonly RangeItem[]): boolean {
    if (this.finished) return false;
    this.addItems(items);
    this.pump();
    return true;
  }

  /** No more windows: the download ends once its batches are done. */
  noMore(): void {
    this.open = false;
    this.pump();
  }

  /**
   * Resolves once at most `n` items are left to process (or the download has ended): the moment
   * to fetch the next header window, so at most that many plus one window are ever held.
   */
  whenRemainingAtMost(n: number): Promise<void> {
    this.lowWater?.resolve();
    return new Promise((resolve) => {
      this.lowWater = { n, resolve };
      this.checkLowWater();
    });
  }

  private checkLowWater(): void {
    const w = this.lowWater;
    if (!w) return;
    const head = this.batches.find((b) => b.state.status !== "Done");
    const left = head ? this.items.length - head.start : 0;
    if (!this.finished && left > w.n) return;
    this.lowWater = null;
    w.resolve();
  }

  /** The batches, in order (for tests and status). */
  get batchList(): readonly Batch[] {
    return this.batches;
  }

  run(): Promise<DownloadResult> {
    return new Promise((resolve) => {
      this.resolve = resolve;
      const left = this.opts.deadline - this.modules.clock.monotonic();
      this.deadlineTimer = this.modules.clock.setTimeout(
        () => this.finish(new SyncError("SYNC_TIMEOUT", "the sync ran out of time")),
        Math.max(0, left),
      );
      this.pump();
    });
  }

  /** Stops the download; answers still in flight are ignored. */
  abort(reason = "aborted"): void {
    this.finish(new SyncError("ABORTED", reason));
  }

  private newBatch(start: number, end: number, tried: Iterable<string> = [], attempts = 0): Batch {
    return {
      id: this.nextId++,
      start,
      end,
      state: { status: "AwaitingDownload" },
      attempts,
      tried: new Set(tried),
    };
  }

  private transition(b: Batch, from: readonly BatchStatus[], to: BatchState): void {
    transitionBatch(b, from, to);
  }

  private finish(error: SyncError | null): void {
    if (this.finished) return;
    this.finished = true;
    this.open = false;
    this.checkLowWater();
    this.deadlineTimer?.cancel();
    this.pacer.stop();
    this.resolve?.({ processed: this.processed, error });
  }

  /**
   * Processes what is ready, then hands out downloads; called after every event. `afterIo`: from
   * the pacer's callback after an I/O phase (with a caller to look out for, the only place
   * blocks are processed from).
   */
  private pump(afterIo = false): void {
    if (this.finished || this.pacer.deferredPending) return;
    try {
      if (this.pacer.yieldIfJustBusy()) return;
      if (!this.pacer.deferToAfterIo(afterIo)) this.processReady();
      if (this.finished) return;
      this.startChecks();
      this.checkLowWater();
      if (!this.open && this.batches.every((b) => b.state.status === "Done")) {
        this.finish(null);
        return;
      }
      this.assign();
    } catch (e) {
      this.finish(toSyncError(e));
    }
  }

  /**
   * Processes ready batches in order, for at most one slice of this turn (at least one batch, or
   * one part of it while a caller waits); what is still ready then waits for the next turn, so a
   * long sync never starves the event loop (RPC, pings, block relay).
   */
  private processReady(): void {
    const turn = this.pacer.begin();
    try {
      for (;;) {
        const head = this.batches.find((b) => b.state.status !== "Done");
        if (!head || head.state.status !== "AwaitingProcessing" || !head.state.checked) return;
        if (turn.overSlice()) {
          this.pacer.yieldTurn();
          return;
        }
        this.process(head, turn.cut());
        if (this.finished) return;
      }
    } finally {
      turn.end();
    }
  }

  /** Processes a batch, or its first blocks when `stopAfter` says the turn's time is up. */
  private process(b: Batch, stopAfter?: () => boolean): void {
    const st = b.state;
    if (st.status !== "AwaitingProcessing") return;
    const peer = st.peer;
    this.transition(b, ["AwaitingProcessing"], { status: "Processing", peer });
    let res: ReturnType<SyncFns["processChainSegment"]>;
    try {
      res = this.modules.fns.processChainSegment(st.blocks, stopAfter);
    } catch (e) {
      this.finish(new SyncError("INTERNAL", `block batch commit failed: ${(e as Error).message}`));
      return;
    }
    const applied = res.results.length;
    this.processed += applied;
    if (applied > 0) this.modules.onApplied?.(applied, peer);
    for (const r of res.results) {
      if (r.status === "reorg-refused") {
        this.finish(new SyncError("REORG_REFUSED", `reorg of depth ${r.depth} refused (max_reorg_depth)`));
        return;
      }
      if (r.status === "orphan") {
        this.finish(new SyncError("INTERNAL", `block ${r.hash.toString("hex")} has an unknown parent`));
        return;
      }
      if (r.status === "side-refused" || r.status === "equivocation") {
        // Not stored (its branch cannot win, or it is a producer's second block for a slot): the
        // rest of the branch would be orphans. Nobody is at fault; a later check looks again.
        const why = r.status === "side-refused" ? `its branch is ${r.reason}` : "equivocation";
        this.finish(new SyncError("REORG_REFUSED", `block ${r.hash.toString("hex")} not stored: ${why}`));
        return;
      }
    }
    if (res.error === undefined) {
      if (applied < st.blocks.length) {
        // Stopped for time: the applied part is done, and the rest (already checked) becomes
        // the next batch, processed on a later turn.
        const rest = this.newBatch(b.start + applied, b.end, b.tried, b.attempts);
        rest.state = { ...st, blocks: st.blocks.slice(applied), checking: false };
        b.end = b.start + applied;
        this.batches.splice(this.batches.indexOf(b) + 1, 0, rest);
      }
      this.transition(b, ["Processing"], { status: "Done", peer });
      return;
    }
    const e = res.error;
    if (!(e instanceof BlockError)) {
      this.finish(toSyncError(e));
      return;
    }
    const bad = this.items[b.start + applied]!;
    const ctx = { peer, height: bad.height, hash: bad.hash.toString("hex"), rule: e.code };
    if (e.code === "INVALIDATED") {
      // This node's operator marked the branch invalid (invalidateblock): every peer would send
      // the same blocks, and none of them did anything wrong.
      this.finish(new SyncError("REORG_REFUSED", `block at height ${bad.height}: ${e.message}`, ctx, e));
      return;
    }
    if (e.code === "TIME_TOO_FAR_IN_FUTURE") {
      // Every peer would send the same block: wait for our clock to catch up instead.
      this.penalise(peer, new SyncError("BLOCK_FROM_FUTURE", e.message, ctx, e));
      this.finish(new SyncError("BLOCK_FROM_FUTURE", e.message, ctx, e));
      return;
    }
    const err = new SyncError("INVALID_BLOCK", `invalid block at height ${bad.height}: ${e.message}`, ctx, e);
    this.penalise(peer, err);
    if (isPermanentForHash(e.code)) {
      // The block is invalid under its hash: every copy is, so the branch ends here.
      this.finish(new SyncError("INVALID_BRANCH", err.message, ctx, e));
      return;
    }
    // A tampered copy (signatures are outside the hash): nothing past it was applied; the rest of
    // the batch, the bad block first, comes from another peer.
    const rest = this.newBatch(b.start + applied, b.end, [...b.tried, peer], b.attempts + 1);
    b.end = b.start + applied;
    this.transition(b, ["Processing"], { status: "Done", peer });
    this.modules.metrics?.syncBatchRetriesTotal.inc({ cause: "invalid" });
    if (b.end === b.start) this.batches.splice(this.batches.indexOf(b), 1, rest);
    else this.batches.splice(this.batches.indexOf(b) + 1, 0, rest);
    if (rest.attempts > this.opts.maxRetries) this.fail(rest, "MAX_RETRIES");
  }

  /** Hands AwaitingDownload batches (within the look-ahead) to the least loaded eligible peers. */
  private assign(): void {
    const headIdx = this.batches.findIndex((b) => b.state.status !== "Done");
    if (headIdx < 0) return;
    const limit = Math.min(this.batches.length, headIdx + 1 + this.opts.maxBatchesAhead);
    const peers = this.modules.peers().filter((p) => !this.excluded.has(p.id));
    peers.sort(comparePeers);
    for (let i = headIdx; i < limit && !this.finished; i++) {
      const b = this.batches[i]!;
      if (b.state.status !== "AwaitingDownload") continue;
      const candidates = peers.filter((p) => this.canServe(p, b));
      const free = candidates.filter((p) => (this.inFlight.get(p.id) ?? 0) < this.opts.maxRequestsPerPeer);
      if (free.length === 0) {
        // Nobody may ever take it: fail now rather than wait for the deadline.
        if (candidates.length === 0 && !this.anyInFlight()) this.fail(b, "NO_PEERS");
        continue;
      }
      // Spread: the least loaded first, ties in rank order (the sort is stable).
      let best = free[0]!;
      for (const p of free) if ((this.inFlight.get(p.id) ?? 0) < (this.inFlight.get(best.id) ?? 0)) best = p;
      this.startDownload(b, best);
    }
  }

  private anyInFlight(): boolean {
    for (const n of this.inFlight.values()) if (n > 0) return true;
    return false;
  }

  private rangeKey(peerId: string, b: Batch): string {
    return `${peerId}/${this.items[b.start]!.hash.toString("hex")}/${b.end - b.start}`;
  }

  private canServe(p: DownloadPeer, b: Batch): boolean {
    if (b.tried.has(p.id)) return false;
    if (this.modules.requested.has(this.rangeKey(p.id, b))) return false;
    return p.id === this.opts.leadId || p.height >= this.items[b.end - 1]!.height;
  }

  private fail(b: Batch, code: "MAX_RETRIES" | "NO_PEERS"): void {
    const first = this.items[b.start]!;
    const error = new SyncError(
      code,
      code === "MAX_RETRIES"
        ? `batch from height ${first.height} failed on ${b.attempts} peers`
        : `no peer can serve the batch from height ${first.height}`,
      { batch: b.id, height: first.height, attempts: b.attempts },
    );
    b.state = { status: "Failed", error };
    this.finish(error);
  }

  private startDownload(b: Batch, peer: DownloadPeer): void {
    const key = this.rangeKey(peer.id, b);
    this.modules.requested.set(key, true);
    this.inFlight.set(peer.id, (this.inFlight.get(peer.id) ?? 0) + 1);
    this.transition(b, ["AwaitingDownload"], { status: "Downloading", peer: peer.id });
    const hashes = this.items.slice(b.start, b.end).map((it) => it.hash);
    this.modules.logger.debug("Requesting blocks", {
      batch: b.id,
      peer: peer.addr,
      from: this.items[b.start]!.height,
      count: hashes.length,
      attempt: b.attempts,
    });
    void this.download(b, peer.id, key, hashes);
  }

  private async download(b: Batch, peerId: string, key: string, hashes: Buffer[]): Promise<void> {
    let raws: Buffer[] | null = null;
    let err: SyncError | null = null;
    try {
      raws = await this.modules.fns.getBlocks(peerId, hashes);
    } catch (e) {
      err = toSyncError(e);
    }
    this.inFlight.set(peerId, Math.max(0, (this.inFlight.get(peerId) ?? 1) - 1));
    if (this.finished) return;
    try {
      if (err) this.onRequestError(b, peerId, key, err);
      else this.onBlocks(b, peerId, raws ?? []);
    } catch (e) {
      this.finish(toSyncError(e));
      return;
    }
    this.pump();
  }

  private onRequestError(b: Batch, peerId: string, key: string, err: SyncError): void {
    switch (err.code) {
      case "TOO_MANY_REQUESTS":
        // Nothing was sent: the range may still go to this peer.
        this.modules.requested.delete(key);
        this.transition(b, ["Downloading"], { status: "AwaitingDownload" });
        return;
      case "PEER_CLOSED":
      case "NOT_FOUND":
        // Gone, or it does not have this branch: not asked again in this download.
        this.excluded.add(peerId);
        break;
      default:
        break;
    }
    this.retry(b, peerId, err);
  }

  private retry(b: Batch, peerId: string, err: SyncError): void {
    this.modules.onPeerResult?.(peerId, false);
    b.tried.add(peerId);
    b.attempts++;
    this.modules.metrics?.syncBatchRetriesTotal.inc({ cause: err.code.toLowerCase() });
    this.modules.logger.debug("Batch download failed; retrying on another peer", {
      batch: b.id,
      peer: peerId.slice(0, 16),
      attempt: b.attempts,
      code: err.code,
      reason: err.message,
    });
    this.transition(b, ["Downloading"], { status: "AwaitingDownload" });
    if (b.attempts > this.opts.maxRetries) this.fail(b, "MAX_RETRIES");
  }

  private penalise(peerId: string, err: SyncError): void {
    this.excluded.add(peerId);
    const { fns, logger, metrics } = this.modules;
    reportSyncError(
      { reportPeer: (id, score, reason) => fns.reportPeer(id, score, reason), logger, metrics },
      { id: peerId, addr: peerId.slice(0, 16) },
      err,
      "Bad data from peer during sync",
      err.context,
    );
  }

  private onBlocks(b: Batch, peerId: string, raws: Buffer[]): void {
    if (raws.length === 0) {
      this.onRequestError(b, peerId, "", new SyncError("NOT_FOUND", "empty Blocks answer"));
      return;
    }
    const want = this.items.slice(b.start, b.end);
    const blocks: Array<{ block: Block; raw: Buffer }> = [];
    for (let i = 0; i < raws.length; i++) {
      const raw = raws[i]!;
      let block: Block;
      try {
        block = decodeBlock(raw);
      } catch (e) {
        if (!(e instanceof CodecError)) throw e;
        this.badData(b, peerId, new SyncError("UNDECODABLE_BLOCK", `undecodable block: ${e.message}`));
        return;
      }
      const hash = blockHash(block.header);
      const expected = want[i];
      if (expected && hash.equals(expected.hash)) {
        if (!block.header.signature.equals(expected.header.signature)) {
          this.badData(
            b,
            peerId,
            new SyncError("WRONG_BLOCK", "block header differs from the validated header"),
          );
          return;
        }
        blocks.push({ block, raw });
        continue;
      }
      // A later block of the batch: the peer skipped some it lacks. Keep the prefix, refetch the rest.
      if (want.some((w, j) => j > i && w.hash.equals(hash))) break;
      this.badData(
        b,
        peerId,
        new SyncError("WRONG_BLOCK", `block ${hash.toString("hex")} was not requested`),
      );
      return;
    }
    if (blocks.length === 0) {
      this.onRequestError(b, peerId, "", new SyncError("NOT_FOUND", "the first requested block is missing"));
      return;
    }
    this.modules.onPeerResult?.(peerId, true);
    this.modules.metrics?.syncBlocksReceivedTotal.inc(blocks.length);
    if (blocks.length < b.end - b.start) {
      // A partial answer (the 4 MiB cap): the rest is a new, different range.
      const rest = this.newBatch(b.start + blocks.length, b.end);
      b.end = b.start + blocks.length;
      this.batches.splice(this.batches.indexOf(b) + 1, 0, rest);
    }
    const checked = !this.modules.fns.checkAhead;
    const state: BatchState = {
      status: "AwaitingProcessing",
      peer: peerId,
      blocks,
      checked,
      checking: false,
    };
    this.transition(b, ["Downloading"], state);
    this.startChecks();
  }

  /**
   * Starts the signature checks of downloaded batches among the head and the CHECKS_AHEAD after
   * it. A batch waits for its check (bounded by the pool's job timeout) while the batches before
   * it are processed, which is where the time is won. Checks further ahead would only queue on
   * the workers in front of the head's, so the first batch of a sync would wait for all of them.
   */
  private startChecks(): void {
    const checkAhead = this.modules.fns.checkAhead;
    if (!checkAhead) return;
    const headIdx = this.batches.findIndex((x) => x.state.status !== "Done");
    if (headIdx < 0) return;
    const end = Math.min(this.batches.length, headIdx + 1 + CHECKS_AHEAD);
    for (let i = headIdx; i < end; i++) {
      const st = this.batches[i]!.state;
      if (st.status !== "AwaitingProcessing" || st.checked || st.checking) continue;
      st.checking = true;
      const done = (): void => {
        st.checking = false;
        st.checked = true;
        this.pump();
      };
      checkAhead(st.blocks.map((x) => x.block)).then(done, done);
    }
  }

  private badData(b: Batch, peerId: string, err: SyncError): void {
    this.penalise(peerId, err);
    this.retry(b, peerId, err);
  }
}
