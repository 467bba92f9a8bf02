import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  comparePeers,
  consensusCheck,
  consensusTarget,
  maxPlausibleHeight,
  median,
  stddev,
  type HeightReport,
} from "../../../src/sync/target.js";
import { penaltyFor, SyncError, type SyncErrorCode } from "../../../src/sync/errors.js";
import { BlockError } from "../../../src/primitives/errors.js";
import { TIME_RULE_SCORE } from "../../../src/consensus/validation.js";

const peer = (id: string, height: number, masternode = false, whitelisted = false): HeightReport => ({
  id,
  height,
  masternode,
  whitelisted,
});

describe("sync target (seed 001)", () => {
  it("median: odd count takes the middle, even count the floor of the two middles' mean", () => {
    assert.equal(median([]), null);
    assert.equal(median([7]), 7);
    assert.equal(median([5, 1, 9]), 5);
    assert.equal(median([1919, 2817, 3651, 4805]), Math.floor((2817 + 3651) / 2));
  });

  it("whitelisted masternodes first, then masternodes, then every peer", () => {
    const ordinary = [peer("a", 100), peer("b", 110), peer("c", 120)];
    assert.deepEqual(consensusTarget(ordinary), { height: 110, source: "peers", count: 3 });
    const withMn = [...ordinary, peer("m1", 200, true), peer("m2", 210, true), peer("m3", 230, true)];
    assert.deepEqual(consensusTarget(withMn), { height: 210, source: "masternodes", count: 3 });
    // A whitelisted peer that is not a masternode does not make the first group.
    const withWl = [...withMn, peer("w", 999, false, true), peer("wm", 500, true, true)];
    assert.deepEqual(consensusTarget(withWl), { height: 500, source: "whitelisted-masternodes", count: 1 });
    assert.equal(consensusTarget([]), null);
  });

  it("one lying peer cannot move the median of three", () => {
    const t = consensusTarget([peer("a", 100, true), peer("b", 101, true), peer("liar", 1_000_000, true)]);
    assert.equal(t?.height, 101);
  });

  it("standard deviation of peer heights", () => {
    assert.equal(stddev([5]), 0);
    assert.equal(stddev([2, 4, 4, 4, 5, 5, 7, 9]), 2);
  });
});

describe("consensus check (seed 001)", () => {
  const ours = 2_000;
  it("a peer at most 50 ahead needs no agreement", () => {
    const c = consensusCheck(peer("x", ours + 50), ours, [peer("a", ours), peer("b", ours)]);
    assert.equal(c.ok, true);
    assert.equal(c.farAhead, false);
  });

  it("a non-whitelisted peer > 50 ahead is deferred unless half the reporting peers are within 10 of it", () => {
    const x = peer("x", 2_500);
    // Most peers behind (2010–2050): 1 of 4 agrees (itself).
    const behind = [x, peer("a", 2_010), peer("b", 2_030), peer("c", 2_050)];
    const c1 = consensusCheck(x, ours, behind);
    assert.deepEqual(
      { ok: c1.ok, agreeing: c1.agreeing, reporting: c1.reporting },
      { ok: false, agreeing: 1, reporting: 4 },
    );
    // One more within 10 blocks: 2 of 4 = half — enough.
    const c2 = consensusCheck(x, ours, [x, peer("a", 2_495), peer("b", 2_030), peer("c", 2_050)]);
    assert.equal(c2.ok, true);
    // 11 blocks away does not agree.
    const c3 = consensusCheck(x, ours, [x, peer("a", 2_489), peer("b", 2_030), peer("c", 2_050)]);
    assert.equal(c3.ok, false);
  });

  it("a whitelisted masternode skips the check (priority sync); whitelisting alone or masternode alone does not", () => {
    const reporters = [peer("a", 2_010), peer("b", 2_030), peer("c", 2_050)];
    assert.deepEqual(
      (({ ok, priority }) => ({ ok, priority }))(
        consensusCheck(peer("w", 2_500, true, true), ours, reporters),
      ),
      { ok: true, priority: true },
    );
    assert.equal(consensusCheck(peer("w", 2_500, false, true), ours, reporters).ok, false);
    assert.equal(consensusCheck(peer("m", 2_500, true, false), ours, reporters).ok, false);
  });

  it("the candidate is counted once even when it is among the reporters", () => {
    const x = peer("x", 2_500);
    assert.equal(consensusCheck(x, ours, [x, peer("a", 2_010)]).reporting, 2);
    assert.equal(consensusCheck(x, ours, [peer("a", 2_010)]).reporting, 2);
  });
});

describe("plausible heights and ranking", () => {
  it("no chain can be above (now + drift − genesis) / block time (+ slack)", () => {
    const g = 1_700_000_000_000;
    assert.equal(maxPlausibleHeight(g, 1_000, g + 100_000, 500), 100 + 10);
    assert.ok(1_000_000 > maxPlausibleHeight(g, 500, g + 3_600_000, 500));
  });

  it("ranks whitelisted, then masternodes, then height, RTT, failures", () => {
    const base = { rttMs: 10, consecutiveFailures: 0, masternode: false, whitelisted: false, height: 100 };
    const ps = [
      { ...base, id: "slow", rttMs: 50 },
      { ...base, id: "tall", height: 200 },
      { ...base, id: "mn", masternode: true },
      { ...base, id: "wl", whitelisted: true, height: 1 },
      { ...base, id: "fast", rttMs: 1 },
      { ...base, id: "flaky", rttMs: 1, consecutiveFailures: 2 },
      { ...base, id: "unknown-rtt", rttMs: null },
    ];
    assert.deepEqual(
      ps.sort(comparePeers).map((p) => p.id),
      ["wl", "mn", "tall", "fast", "flaky", "slow", "unknown-rtt"],
    );
  });
});

describe("penalties", () => {
  it("every error code has a penalty; only proof is scored, slowness, lies about heights and clock faults are not", () => {
    const codes: SyncErrorCode[] = [
      "UNDECODABLE_BLOCK",
      "WRONG_BLOCK",
      "BAD_RESPONSE",
      "EMPTY_CLAIM",
      "IMPOSSIBLE_HEIGHT",
      "TIMEOUT",
      "NOT_FOUND",
    ];
    const scores = codes.map((c) => penaltyFor(new SyncError(c, c)));
    assert.deepEqual(scores, [100, 100, 0, 0, 0, 0, 0]);
    const future = new BlockError("TIME_TOO_FAR_IN_FUTURE", "x", TIME_RULE_SCORE);
    assert.equal(penaltyFor(new SyncError("INVALID_BLOCK", "x", {}, future)), 0);
    assert.equal(
      penaltyFor(new SyncError("INVALID_HEADERS", "x", {}, new BlockError("WRONG_PRODUCER", "x"))),
      100,
    );
  });
});
