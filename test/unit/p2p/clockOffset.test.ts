/**
 * The node's time offset (src/p2p/clockOffset.ts): the median of its peers' clock offsets, so a
 * minority of wrong clocks cannot move it; a warning past a third of maxFutureDrift, logged once
 * when the state changes (and once when it clears), never on every check.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ClockWatch, medianOffsetMs } from "../../../src/p2p/clockOffset.js";
import { createMemoryLogger } from "../../../src/logging/index.js";

const peers = (...xs: Array<number | null>): Array<{ clockOffsetMs: number | null }> =>
  xs.map((clockOffsetMs) => ({ clockOffsetMs }));

describe("clock offset", () => {
  it("is the median of the known offsets: one wrong clock among three does not move it", () => {
    assert.equal(medianOffsetMs(peers()), null);
    assert.equal(medianOffsetMs(peers(null, null)), null);
    assert.equal(medianOffsetMs(peers(10, 5_000, -20)), 10);
    assert.equal(medianOffsetMs(peers(10, 30, null, 5_000)), 30);
    assert.equal(medianOffsetMs(peers(-100, 100)), 0);
  });

  it("warns past a third of maxFutureDrift, once per change", () => {
    const logger = createMemoryLogger({ level: "info" });
    let current = peers(0, 0, 0);
    const watch = new ClockWatch({ peers: () => current, maxFutureDriftMs: 1_500, logger });
    assert.equal(watch.thresholdMs, 500);
    assert.equal(watch.check(), false);
    current = peers(-600, -700, -650);
    assert.equal(watch.check(), true);
    assert.equal(watch.check(), true);
    current = peers(-100, 0, 100);
    assert.equal(watch.check(), false);
    const msgs = logger.records.map((r) => [r.level, r.msg]);
    assert.deepEqual(msgs, [
      [
        "warn",
        "This node's clock differs from its peers' median by more than a third of the allowed drift: check NTP",
      ],
      ["info", "This node's clock agrees with its peers again"],
    ]);
    assert.deepEqual(logger.records[0]!.ctx, { offsetSeconds: -0.65, thresholdSeconds: 0.5 });
  });
});
