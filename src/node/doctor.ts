/**
 * The node doctor (docs/OPERATIONS.md, "Troubleshooting"): one verdict per question an operator
 * asks, each with its evidence and one suggested command. Every check is a pure function of a
 * DoctorState snapshot (doctorState.ts collects it from a running node), so tests feed states
 * directly.
 *
 * Questions: chain (am I on the network's chain?), sync (am I syncing, and if not, why not?),
 * producing (am I producing? the gate, the schedule, my registration, my clock), finality (is my
 * last block final?), rewards (am I paid?), connections (masternode links, bans, the network
 * switch), clock (is my clock right?).
 */

export type CheckName = "chain" | "sync" | "producing" | "finality" | "rewards" | "connections" | "clock";
export type Status = "ok" | "warn" | "fail" | "n/a";

export interface Verdict {
  check: CheckName;
  status: Status;
  verdict: string;
  evidence: Record<string, unknown>;
  /** One command that helps, or null. */
  suggest: string | null;
}

/** A ready peer as the doctor sees it: where its tip is relative to our chain. */
export interface PeerTipView {
  addr: string;
  masternode: boolean;
  height: number;
  /** "main": its tip is on our main chain; "side": a block we hold off it; "unknown": not stored. */
  tip: "main" | "side" | "unknown";
}

export interface DoctorState {
  height: number;
  tipAgeSeconds: number;
  blockTimeSeconds: number;
  finalHeight: number;
  network: {
    active: boolean;
    peers: number;
    masternodeLinks: number;
    masternodeLinkFloor: number;
    bans: number;
    isolatedSeconds: number | null;
  };
  peerTips: PeerTipView[];
  sync: {
    syncing: boolean;
    behind: number;
    consensusHeight: number | null;
    threshold: number;
    lastError: { code: string; message: string } | null;
    lead: string | null;
  };
  /** Null on a node without an operator key. */
  masternode: {
    operator: string;
    registered: boolean;
    producerState: string;
    producerReason: string;
    activeMasternodes: number;
    minMasternodes: number;
    /** Over the last `window` blocks (the reward report). */
    rewards: { window: number; paid: string; produced: number; missed: number } | null;
  } | null;
  clock: { offsetMs: number | null; warnMs: number };
}

const v = (
  check: CheckName,
  status: Status,
  verdict: string,
  evidence: Record<string, unknown>,
  suggest: string | null,
): Verdict => ({
  check,
  status,
  verdict,
  evidence,
  suggest,
});

export function checkChain(s: DoctorState): Verdict {
  const mn = s.peerTips.filter((p) => p.masternode);
  const ev = { height: s.height, masternodePeers: mn.length };
  if (mn.length === 0)
    return v("chain", "warn", "No masternode peer to compare tips with", ev, "time-cli getpeerinfo");
  // A peer ahead of us with a tip we lack is on our chain, a block or a sync away, unless our
  // last sync refused its branch (invalid, marked invalid, below our final block).
  const refused =
    s.sync.lastError !== null && ["REORG_REFUSED", "INVALID_BRANCH"].includes(s.sync.lastError.code);
  const onOurs = mn.filter(
    (p) => p.tip === "main" || (p.tip === "unknown" && p.height > s.height && !refused),
  );
  const elsewhere = mn.filter((p) => !onOurs.includes(p));
  const detail = {
    ...ev,
    agreeing: onOurs.length,
    onOtherBranches: elsewhere.map((p) => `${p.addr} at ${p.height}`),
  };
  if (2 * elsewhere.length > mn.length)
    return v(
      "chain",
      "fail",
      `This node is on a minority fork: ${elsewhere.length} of ${mn.length} masternode peers are on another branch`,
      detail,
      "time-cli getchaintips",
    );
  if (elsewhere.length > 0)
    return v(
      "chain",
      "warn",
      `${elsewhere.length} of ${mn.length} masternode peers are on another branch`,
      detail,
      "time-cli getchaintips",
    );
  return v("chain", "ok", `On the same chain as all ${mn.length} masternode peers`, detail, null);
}

export function checkSync(s: DoctorState): Verdict {
  const { sync } = s;
  const ev = {
    behind: sync.behind,
    consensusHeight: sync.consensusHeight,
    syncing: sync.syncing,
    lead: sync.lead,
    lastError: sync.lastError,
  };
  if (sync.syncing)
    return v(
      "sync",
      "ok",
      `Syncing from ${sync.lead ?? "a peer"}, ${sync.behind} blocks behind`,
      ev,
      "time-cli getsyncstatus",
    );
  if (sync.behind <= sync.threshold)
    return v("sync", "ok", "In sync with the masternode consensus", ev, null);
  if (!s.network.active || s.network.peers === 0)
    return v(
      "sync",
      "fail",
      `${sync.behind} blocks behind and not syncing: no peer to sync from`,
      ev,
      "time-cli getnetworkinfo",
    );
  if (sync.lastError)
    return v(
      "sync",
      "fail",
      `${sync.behind} blocks behind and not syncing: the last sync ended with ${sync.lastError.code} (${sync.lastError.message})${sync.lead ? ` from ${sync.lead}` : ""}`,
      ev,
      sync.lastError.code === "TIMEOUT" ||
        sync.lastError.code === "MAX_RETRIES" ||
        sync.lastError.code === "SYNC_TIMEOUT"
        ? "time-cli getpeerinfo (then disconnectnode the stalled peer)"
        : "time-cli getsyncstatus",
    );
  return v(
    "sync",
    "warn",
    `${sync.behind} blocks behind; a sync should start at the next check`,
    ev,
    "time-cli getsyncstatus",
  );
}

export function checkProducing(s: DoctorState): Verdict {
  const m = s.masternode;
  if (!m) return v("producing", "n/a", "Not a masternode (no operator key)", {}, null);
  const ev = {
    operator: m.operator,
    state: m.producerState,
    reason: m.producerReason,
    active: m.activeMasternodes,
    min: m.minMasternodes,
  };
  if (!m.registered)
    return v(
      "producing",
      "fail",
      "Not producing: this operator key is not in the masternode registry (never registered, deregistered, its collateral spent, or removed by evidence)",
      ev,
      "time-cli masternodestatus",
    );
  if (m.activeMasternodes < m.minMasternodes)
    return v(
      "producing",
      "fail",
      `Not producing: only ${m.activeMasternodes} masternodes are active, fewer than min_masternodes (${m.minMasternodes})`,
      ev,
      "time-cli masternodelist",
    );
  if (s.clock.offsetMs !== null && Math.abs(s.clock.offsetMs) > (s.blockTimeSeconds * 1000) / 2)
    return v(
      "producing",
      "fail",
      "Producing at risk: this node's clock is off by more than half a block time (see clock)",
      ev,
      "timedatectl set-ntp true",
    );
  if (m.producerState === "waiting" || m.producerState === "not-registered")
    return v("producing", "warn", `Not producing: ${m.producerReason}`, ev, "time-cli masternodestatus");
  return v("producing", "ok", `Producing on schedule (${m.producerReason})`, ev, null);
}

export function checkFinality(s: DoctorState): Verdict {
  const lag = s.height - s.finalHeight;
  const ev = { height: s.height, finalHeight: s.finalHeight, lagBlocks: lag };
  if (lag <= 2)
    return v("finality", "ok", `The last block final is ${s.finalHeight} (${lag} behind the tip)`, ev, null);
  return v(
    "finality",
    lag > 10 ? "fail" : "warn",
    `Finality lags ${lag} blocks: more than 1/3 of the voting weight is offline or cut off from this node`,
    ev,
    "time-cli getfinalitystatus",
  );
}

export function checkRewards(s: DoctorState): Verdict {
  const m = s.masternode;
  if (!m) return v("rewards", "n/a", "Not a masternode", {}, null);
  const r = m.rewards;
  if (!m.registered || !r)
    return v(
      "rewards",
      "fail",
      "Not paid: not in the registry",
      { operator: m.operator },
      "time-cli masternodestatus",
    );
  const ev = { ...r };
  if (r.missed > 0)
    return v(
      "rewards",
      "warn",
      `Paid ${r.paid} TIME over the last ${r.window} blocks, but ${r.missed} of its round-0 slots went to a fallback round (fees lost)`,
      ev,
      `time-cli getrewardreport ${m.operator} ${r.window}`,
    );
  return v(
    "rewards",
    "ok",
    `Paid ${r.paid} TIME over the last ${r.window} blocks, ${r.produced} produced, none missed`,
    ev,
    null,
  );
}

export function checkConnections(s: DoctorState): Verdict {
  const n = s.network;
  const ev = { ...n };
  if (!n.active)
    return v(
      "connections",
      "fail",
      "The network is switched off (setnetworkactive false): no peer, no blocks",
      ev,
      "time-cli setnetworkactive true",
    );
  if (n.peers === 0)
    return v(
      "connections",
      "fail",
      `No peer${n.isolatedSeconds !== null ? ` for ${n.isolatedSeconds} s` : ""}: check the bootstrap peers and the firewall`,
      ev,
      "time-cli getpeerinfo",
    );
  if (n.masternodeLinks < n.masternodeLinkFloor)
    return v(
      "connections",
      "warn",
      `Only ${n.masternodeLinks} masternode links, below the floor of ${n.masternodeLinkFloor}`,
      ev,
      "time-cli masternodelist",
    );
  return v(
    "connections",
    "ok",
    `${n.peers} peers, ${n.masternodeLinks} masternode links, ${n.bans} bans`,
    ev,
    null,
  );
}

export function checkClock(s: DoctorState): Verdict {
  const off = s.clock.offsetMs;
  const ev = { offsetSeconds: off === null ? null : off / 1000, warnSeconds: s.clock.warnMs / 1000 };
  if (off === null) return v("clock", "warn", "No peer to compare the clock with", ev, null);
  if (Math.abs(off) > (s.blockTimeSeconds * 1000) / 2)
    return v(
      "clock",
      "fail",
      `This node's clock is ${(Math.abs(off) / 1000).toFixed(1)} s ${off > 0 ? "behind" : "ahead of"} its peers' median: more than half a block time`,
      ev,
      "timedatectl set-ntp true",
    );
  if (Math.abs(off) > s.clock.warnMs)
    return v(
      "clock",
      "warn",
      `This node's clock is ${(off / 1000).toFixed(2)} s off its peers' median`,
      ev,
      "timedatectl set-ntp true",
    );
  return v("clock", "ok", "The clock agrees with the peers'", ev, null);
}

/** Every verdict, in the questions' order. */
export function diagnose(s: DoctorState): Verdict[] {
  return [
    checkChain(s),
    checkSync(s),
    checkProducing(s),
    checkFinality(s),
    checkRewards(s),
    checkConnections(s),
    checkClock(s),
  ];
}
