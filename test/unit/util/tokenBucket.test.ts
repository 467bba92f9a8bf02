import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TokenBucket } from "../../../src/util/tokenBucket.js";

describe("TokenBucket", () => {
  it("take: all or nothing; refills at the rate up to the burst", () => {
    const b = new TokenBucket(10, 5, 0);
    assert.equal(b.take(0, 5), true);
    assert.equal(b.take(0), false, "empty");
    assert.equal(b.take(100), true, "100 ms at 10/s: one token");
    assert.equal(b.take(100), false);
    assert.equal(b.take(100_000, 6), false, "never more than the burst, however long it waited");
    assert.equal(b.take(100_000, 5), true);
  });

  it("takeUpTo: as many whole tokens as there are, at most n", () => {
    const b = new TokenBucket(50, 100, 0);
    assert.equal(b.takeUpTo(0, 30), 30);
    assert.equal(b.takeUpTo(0, 100), 70);
    assert.equal(b.takeUpTo(0, 1), 0);
    assert.equal(b.takeUpTo(250, 100), 12, "250 ms at 50/s is 12.5 tokens: 12 whole ones");
    assert.equal(b.takeUpTo(260, 100), 1, "the half token carried over");
  });

  it("a clock that steps back refills nothing for the step; time then counts from there", () => {
    const b = new TokenBucket(10, 2, 1_000);
    assert.equal(b.takeUpTo(1_000, 2), 2);
    assert.equal(b.take(500), false, "a negative interval adds no tokens");
    assert.equal(b.take(600), true, "100 ms after the last reading: one token");
  });
});
