/**
 * The doctor's snapshot of a running node (doctor.ts checks it), and the `doctor` RPC.
 */
import type { Chain } from "../chain/chain.js";
import { findByOperator } from "../consensus/registry.js";
import type { MasternodeLiveness } from "../masternode/liveness.js";
import type { BlockProducer } from "../masternode/producer.js";
import type { ClockWatch } from "../p2p/clockOffset.js";
import type { PeerManager } from "../p2p/peerManager.js";
import type { RpcServer } from "../rpc/server.js";
import { rewardReport } from "../rpc/rewardReport.js";
import type { SyncCoordinator } from "../sync/syncCoordinator.js";
import type { Clock } from "../util/clock.js";
import { diagnose, type DoctorState, type PeerTipView, type Verdict } from "./doctor.js";

/** Blocks the rewards question looks back over. */
export const DOCTOR_REWARD_WINDOW = 100;

export interface DoctorSources {
  chain: Chain;
  peers: PeerManager;
  sync: Pick<SyncCoordinator, "status">;
  liveness: Pick<MasternodeLiveness, "activeCount">;
  producer: Pick<BlockProducer, "status"> | null;
  operatorKey: Buffer | null;
  minMasternodes: number;
  syncThreshold: number;
  clockWatch: Pick<ClockWatch, "offsetMs" | "thresholdMs">;
  clock: Clock;
}

export function doctorState(src: DoctorSources): DoctorState {
  const { chain, peers } = src;
  const tip = chain.tip;
  const peerTips: PeerTipView[] = peers.peers().map((p) => {
    const e = chain.getIndex(p.tipHash);
    return {
      addr: p.addr,
      masternode: p.operatorPubkey !== null,
      height: p.height,
      tip: !e ? "unknown" : chain.isMain(e) ? "main" : "side",
    };
  });
  const st = src.sync.status();
  const iso = peers.isolation();
  const op = src.operatorKey;
  let masternode: DoctorState["masternode"] = null;
  if (op) {
    const registered = findByOperator(chain.getRegistry(), op) !== undefined;
    const ps = src.producer?.status ?? { state: "disabled", reason: "no producer" };
    let rewards = null;
    if (registered) {
      const r = rewardReport({ chain }, op, DOCTOR_REWARD_WINDOW) as {
        blocks: number;
        masternodes: Array<{ paid: string; produced: number; missed: unknown[] }>;
      };
      const row = r.masternodes[0];
      rewards = {
        window: r.blocks,
        paid: row?.paid ?? "0",
        produced: row?.produced ?? 0,
        missed: row?.missed.length ?? 0,
      };
    }
    masternode = {
      operator: op.toString("hex"),
      registered,
      producerState: ps.state,
      producerReason: ps.reason,
      activeMasternodes: src.liveness.activeCount(),
      minMasternodes: src.minMasternodes,
      rewards,
    };
  }
  return {
    height: tip.height,
    tipAgeSeconds: Math.max(0, Math.round((src.clock.now() - tip.timestamp) / 1000)),
    blockTimeSeconds: chain.params.blockTimeMs / 1000,
    finalHeight: chain.finality.finalizedHeight,
    network: {
      active: peers.networkActive,
      peers: peerTips.length,
      masternodeLinks: peers.masternodeLinks(),
      masternodeLinkFloor: peers.masternodeLinkFloor(),
      bans: peers.listBanned().length,
      isolatedSeconds: iso.since === null ? null : Math.round((src.clock.now() - iso.since) / 1000),
    },
    peerTips,
    sync: {
      syncing: st.syncing,
      behind: st.behind,
      consensusHeight: st.consensusHeight,
      threshold: src.syncThreshold,
      lastError: st.lastError ? { code: st.lastError.code, message: st.lastError.message } : null,
      lead: st.lead ?? st.lastSync?.lead ?? null,
    },
    masternode,
    clock: { offsetMs: src.clockWatch.offsetMs(), warnMs: src.clockWatch.thresholdMs },
  };
}

export function registerDoctor(rpc: RpcServer, src: DoctorSources): void {
  rpc.register("doctor", {
    description:
      "Answers the operator's questions, one verdict each with its evidence and one suggested command: chain (am I on the network's chain?), sync (am I syncing, and if not, why not?), producing (am I producing?), finality (is my last block final?), rewards (am I paid?), connections (links, bans, the network switch), clock (is my clock right?). status: ok, warn, fail, or n/a.",
    params: [],
    result: "{ok, verdicts: [{check, status, verdict, evidence, suggest}]}",
    examples: ["time-cli doctor"],
    handler: () => {
      const verdicts = diagnose(doctorState(src));
      return { ok: verdicts.every((x) => x.status !== "fail"), verdicts };
    },
  });
}

/** How long the dashboard's doctor verdicts are reused. */
export const DOCTOR_CACHE_MS = 5_000;

/** The verdicts, recomputed at most once per `maxAgeMs` (for the dashboard's frequent polls). */
export function cachedDiagnosis(src: DoctorSources, maxAgeMs: number): () => Verdict[] {
  let cache: { at: number; verdicts: Verdict[] } | null = null;
  return () => {
    const now = src.clock.monotonic();
    if (!cache || now - cache.at > maxAgeMs) cache = { at: now, verdicts: diagnose(doctorState(src)) };
    return cache.verdicts;
  };
}
