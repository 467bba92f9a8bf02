/**
 * Types shared by the SyncCoordinator and the modules it hands work to (LeadPicker, LeadSync,
 * SyncNotifier), and the rule of its state machine. Kept apart so that none of those modules
 * imports the coordinator.
 */
import { SyncError, type SyncErrorCode } from "./errors.js";
import type { PeerState } from "./peerStateView.js";
import type { ConsensusTarget, HeightReport } from "./target.js";

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
    /** The address of the last lead tried. */
    lead: string | null;
  } | null;
}

/** A usable peer's height report, with the peer-state entry it came from. */
export type PeerReport = HeightReport & { state: PeerState };

/** How a sync from one lead peer ended: null error when it caught up or found nothing better. */
export interface LeadOutcome {
  error: SyncError | null;
}
