import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Heap } from "../../../src/util/heap.js";

/** A small deterministic generator, so the test needs no injected Random. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1_664_525) + 1_013_904_223) >>> 0;
    return s;
  };
}

describe("Heap", () => {
  it("an empty heap has size 0 and pops undefined", () => {
    const h = new Heap<number>((a, b) => a < b);
    assert.equal(h.size, 0);
    assert.equal(h.pop(), undefined);
    assert.equal(h.size, 0);
  });

  it("pops in the order `before` defines (min-heap and max-heap)", () => {
    const values = [5, 3, 9, 1, 7, 3, 0, 8];
    const min = new Heap<number>((a, b) => a < b);
    const max = new Heap<number>((a, b) => a > b);
    for (const v of values) {
      min.push(v);
      max.push(v);
    }
    assert.equal(min.size, values.length);
    const drain = (h: Heap<number>): number[] => {
      const out: number[] = [];
      for (let x = h.pop(); x !== undefined; x = h.pop()) out.push(x);
      return out;
    };
    assert.deepEqual(
      drain(min),
      [...values].sort((a, b) => a - b),
    );
    assert.deepEqual(
      drain(max),
      [...values].sort((a, b) => b - a),
    );
    assert.equal(min.size, 0);
  });

  it("interleaved pushes and pops always yield the current best", () => {
    const next = lcg(42);
    const h = new Heap<number>((a, b) => a < b);
    const shadow: number[] = [];
    for (let i = 0; i < 2_000; i++) {
      if (shadow.length > 0 && next() % 3 === 0) {
        shadow.sort((a, b) => a - b);
        assert.equal(h.pop(), shadow.shift());
      } else {
        const v = next() % 1_000;
        h.push(v);
        shadow.push(v);
      }
      assert.equal(h.size, shadow.length);
    }
  });
});
