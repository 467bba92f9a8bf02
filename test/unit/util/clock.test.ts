/** ManualClock: the virtual time every unit and simulation test runs on. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ManualClock } from "../../../src/util/clock.js";
import { SeededRandom } from "../../../src/util/random.js";

void describe("ManualClock", () => {
  it("fires timers in time order, ties in the order they were set, intervals again and again", () => {
    const c = new ManualClock(0);
    const fired: string[] = [];
    c.setTimeout(() => fired.push("b@20"), 20);
    c.setTimeout(() => fired.push("a@10"), 10);
    c.setTimeout(() => fired.push("c@20"), 20);
    const every = c.setInterval(() => fired.push(`i@${c.now()}`), 15);
    c.advance(31);
    assert.deepEqual(fired, ["a@10", "i@15", "b@20", "c@20", "i@30"]);
    assert.equal(c.now(), 31);
    every.cancel();
    c.advance(100);
    assert.equal(fired.length, 5);
  });

  it("a timer set while firing, due within the step, fires in the same step", () => {
    const c = new ManualClock(0);
    const fired: number[] = [];
    c.setTimeout(() => c.setTimeout(() => fired.push(c.now()), 5), 10);
    c.advance(15);
    assert.deepEqual(fired, [15]);
  });

  it("nextDue and fireUntil step from one due time to the next, skipping cancelled timers", () => {
    const c = new ManualClock(1_000);
    const t1 = c.setTimeout(() => assert.fail("cancelled"), 5);
    c.setTimeout(() => undefined, 9);
    t1.cancel();
    assert.equal(c.nextDue(), 1_009);
    assert.equal(c.fireUntil(1_009), 1);
    assert.equal(c.now(), 1_009);
    assert.equal(c.nextDue(), undefined);
  });

  it("many timers, most cancelled: order holds and the heap sheds the cancelled ones", () => {
    const c = new ManualClock(0);
    const rnd = new SeededRandom(3);
    const kept: number[] = [];
    const fired: number[] = [];
    for (let i = 0; i < 20_000; i++) {
      const at = rnd.int(100_000);
      const h = c.setTimeout(() => fired.push(at), at);
      if (i % 10 === 0) kept.push(at);
      else h.cancel();
    }
    assert.ok(c.pendingTimers <= 2_000 + 1_024, `pending ${c.pendingTimers}`);
    c.advance(100_000);
    assert.deepEqual(
      fired,
      kept.sort((a, b) => a - b),
    );
  });
});
