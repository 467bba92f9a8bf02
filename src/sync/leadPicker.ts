import type { Chain } from "../chain/chain.js";
import type { Logger } from "../logging/index.js";
import type { Metrics } from "../metrics/metrics.js";
import { BoundedMap } from "../util/boundedMap.js";
import type { Clock } from "../util/clock.js";
import {
  DISPROVEN_CLAIM_MS,
  FORK_RECHECK_MS,
  LEAD_COOLDOWN_MS,
  MAX_FORK_CHECK_PEERS,
  MAX_PEER_STATES,
} from "./constants.js";
import { penaltyFor, reportSyncError, type SyncError } from "./errors.js";
import type { SyncFns } from "./interface.js";
import type { PeerState, PeerStateView } from "./peerStateView.js";
import type { DownloadPeer } from "./batch.js";
import { comparePeers, consensusCheck, maxPlausibleHeight } from "./target.js";
import type { LeadOutcome, PeerReport, SyncReason } from "./types.js";

/** A log line written at `level` at most once per LOG_REPEAT_MS for its key (debug otherwise). */
export type RepeatLog = (
  key: string,
  level: "info" | "warn",
  msg: string,
  ctx: Record<string, unknown>,
) => void;

/** What the LeadPicker reads and reports to; plain collaborators, handed over by the coordinator. */
export interface LeadPickerModules {
  chain: Pick<Chain, "height" | "genesis" | "params" | "getIndex" | "isKnownInvalid">;
  view: Pick<PeerStateView, "usable" | "get" | "recordFailure">;
  clock: Clock;
  logger: Logger;
  metrics: Metrics | null;
  fns: Pick<SyncFns, "reportPeer">;
  logRepeat: RepeatLog;
}

/**
 * Which peers may lead a sync or serve its blocks, and what the coordinator remembers about past
 * leads: the ones cooling down after a failure, the tips found no better than ours, the heights
 * no chain can have reached, and the claims a lead could not back up.
 */
export class LeadPicker {
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

  constructor(private readonly modules: LeadPickerModules) {}

  /** Fresh, not-failing peers' heights, without those claiming an impossible height (penalised once). */
  reports(): PeerReport[] {
    const { chain, clock } = this.modules;
    const maxHeight = maxPlausibleHeight(
      chain.genesis.timestamp,
      chain.params.blockTimeMs,
      clock.now(),
      chain.params.maxFutureDriftMs,
    );
    const out: PeerReport[] = [];
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

  /**
   * Peers we could follow, best first: tip unknown to us, not cooling down after a failure, not
   * already found no better, and passing the consensus check (deferred ones are logged).
   */
  candidates(
    reports: readonly PeerReport[],
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
        this.modules.logRepeat(
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

  /** Peers that may serve the lead's branch: usable, plausible, and passing the consensus check. */
  downloadPeers(lead: PeerState): DownloadPeer[] {
    const reports = this.reports();
    const ours = this.modules.chain.height;
    const out: DownloadPeer[] = [];
    for (const r of reports) {
      const e = r.state;
      if (e.id !== lead.id && !consensusCheck(r, ours, reports).ok) continue;
      out.push(downloadPeerOf(e));
    }
    if (!out.some((p) => p.id === lead.id)) {
      const e = this.modules.view.get(lead.id);
      if (e?.connected) out.push(downloadPeerOf(e));
    }
    return out;
  }

  /** The lead failed with `err` (its fault, or just slow or gone): records and penalises it. */
  leadFailed(lead: PeerState, err: SyncError): LeadOutcome {
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
      { reportPeer: (id, score, reason) => this.modules.fns.reportPeer(id, score, reason), logger, metrics },
      peer,
      err,
      "Penalising peer",
    );
  }

  /** A sync from this lead ended early: not chosen again for a while, longer after each failure. */
  coolDown(id: string): void {
    const prev = this.leadCooldown.get(id);
    const failures = (prev?.failures ?? 0) + 1;
    const ms = Math.min(LEAD_COOLDOWN_MS * 2 ** (failures - 1), 30 * LEAD_COOLDOWN_MS);
    this.leadCooldown.set(id, { until: this.modules.clock.monotonic() + ms, failures });
  }

  /** A sync from this lead caught up: its failures are forgotten. */
  clearCooldown(id: string): void {
    this.leadCooldown.delete(id);
  }

  /** The lead's tip was found no better than ours: not looked at again for FORK_RECHECK_MS. */
  markChecked(lead: PeerState): void {
    this.checkedTips.set(lead.id, { tip: lead.tipHash.toString("hex"), at: this.modules.clock.monotonic() });
  }

  /** Looks at the peer's tip again at the next check, even if it was found no better. */
  forgetChecked(id: string): void {
    this.checkedTips.delete(id);
  }
}

/** What RangeDownload needs to know of a peer to rank it. */
function downloadPeerOf(e: PeerState): DownloadPeer {
  return {
    id: e.id,
    addr: e.addr,
    whitelisted: e.whitelisted,
    masternode: e.masternode,
    height: e.height,
    rttMs: e.rttMs,
    consecutiveFailures: e.consecutiveFailures,
  };
}
