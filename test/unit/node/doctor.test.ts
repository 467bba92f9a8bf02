/**
 * The doctor's checks (src/node/doctor.ts) on states fed directly: a healthy masternode passes
 * every question, and each named fault is diagnosed by the right check with the right cause:
 * a minority fork, a node behind a stalled peer, a masternode below min_masternodes, one whose
 * registration was removed, a clock skewed by more than half a block time, and the network off.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { diagnose, type CheckName, type DoctorState, type Verdict } from "../../../src/node/doctor.js";

function healthy(): DoctorState {
  return {
    height: 100,
    tipAgeSeconds: 3,
    blockTimeSeconds: 10,
    finalHeight: 99,
    network: {
      active: true,
      peers: 6,
      masternodeLinks: 4,
      masternodeLinkFloor: 3,
      bans: 0,
      isolatedSeconds: null,
    },
    peerTips: [
      { addr: "10.0.0.1:24000", masternode: true, height: 100, tip: "main" },
      { addr: "10.0.0.2:24000", masternode: true, height: 100, tip: "main" },
      { addr: "10.0.0.3:24000", masternode: true, height: 101, tip: "unknown" },
      { addr: "10.0.0.4:24000", masternode: false, height: 90, tip: "side" },
    ],
    sync: { syncing: false, behind: 0, consensusHeight: 100, threshold: 5, lastError: null, lead: null },
    masternode: {
      operator: "ab".repeat(32),
      registered: true,
      producerState: "ready",
      producerReason: "produced height 98",
      activeMasternodes: 6,
      minMasternodes: 3,
      rewards: { window: 100, paid: "1666.66666666", produced: 17, missed: 0 },
    },
    clock: { offsetMs: 40, warnMs: 1_667 },
  };
}

const of = (vs: Verdict[], check: CheckName): Verdict => vs.find((x) => x.check === check)!;
const failing = (vs: Verdict[]): CheckName[] => vs.filter((x) => x.status === "fail").map((x) => x.check);

describe("doctor", () => {
  it("a healthy masternode: every question ok", () => {
    const vs = diagnose(healthy());
    assert.deepEqual(
      vs.map((x) => [x.check, x.status]),
      [
        ["chain", "ok"],
        ["sync", "ok"],
        ["producing", "ok"],
        ["finality", "ok"],
        ["rewards", "ok"],
        ["connections", "ok"],
        ["clock", "ok"],
      ],
    );
  });

  it("a node on a minority fork", () => {
    const s = healthy();
    s.peerTips = s.peerTips.map((p, i) => (i < 2 ? { ...p, tip: "side" as const, height: 99 } : p));
    s.peerTips[2] = { ...s.peerTips[2]!, tip: "unknown", height: 97 };
    const vs = diagnose(s);
    assert.deepEqual(failing(vs), ["chain"]);
    assert.match(of(vs, "chain").verdict, /minority fork: 3 of 3 masternode peers are on another branch/);
    assert.equal(of(vs, "chain").suggest, "time-cli getchaintips");
  });

  it("a node behind a stalled peer", () => {
    const s = healthy();
    s.sync = {
      syncing: false,
      behind: 40,
      consensusHeight: 140,
      threshold: 5,
      lastError: { code: "TIMEOUT", message: "peer did not answer GetBlocks within 15 s" },
      lead: "10.0.0.3:24000",
    };
    const vs = diagnose(s);
    assert.deepEqual(failing(vs), ["sync"]);
    assert.match(
      of(vs, "sync").verdict,
      /40 blocks behind and not syncing: the last sync ended with TIMEOUT .* from 10\.0\.0\.3:24000/,
    );
    assert.match(of(vs, "sync").suggest!, /disconnectnode/);
  });

  it("a masternode below min_masternodes", () => {
    const s = healthy();
    s.masternode = {
      ...s.masternode!,
      activeMasternodes: 2,
      producerState: "waiting",
      producerReason: "only 2 of 3 active",
    };
    const vs = diagnose(s);
    assert.deepEqual(failing(vs), ["producing"]);
    assert.match(
      of(vs, "producing").verdict,
      /only 2 masternodes are active, fewer than min_masternodes \(3\)/,
    );
  });

  it("a masternode whose registration was removed", () => {
    const s = healthy();
    s.masternode = {
      ...s.masternode!,
      registered: false,
      rewards: null,
      producerState: "not-registered",
      producerReason: "not registered",
    };
    const vs = diagnose(s);
    assert.deepEqual(failing(vs), ["producing", "rewards"]);
    assert.match(of(vs, "producing").verdict, /not in the masternode registry/);
    assert.equal(of(vs, "producing").suggest, "time-cli masternodestatus");
  });

  it("a clock skewed by more than half a block time", () => {
    const s = healthy();
    s.clock = { offsetMs: -6_000, warnMs: 1_667 };
    const vs = diagnose(s);
    assert.deepEqual(failing(vs), ["producing", "clock"]);
    assert.match(of(vs, "clock").verdict, /6\.0 s ahead of its peers' median: more than half a block time/);
    assert.equal(of(vs, "clock").suggest, "timedatectl set-ntp true");
    // A smaller skew only warns.
    s.clock = { offsetMs: 2_000, warnMs: 1_667 };
    assert.equal(of(diagnose(s), "clock").status, "warn");
  });

  it("a node with its network switched off", () => {
    const s = healthy();
    s.network = { ...s.network, active: false, peers: 0, masternodeLinks: 0, isolatedSeconds: 120 };
    s.peerTips = [];
    s.clock = { offsetMs: null, warnMs: 1_667 };
    const vs = diagnose(s);
    assert.equal(of(vs, "connections").status, "fail");
    assert.match(of(vs, "connections").verdict, /switched off/);
    assert.equal(of(vs, "connections").suggest, "time-cli setnetworkactive true");
    // And it does not blame the chain for having no one to compare with.
    assert.equal(of(vs, "chain").status, "warn");
  });
});
