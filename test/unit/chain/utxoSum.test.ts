/**
 * The UTXO set's running multiset hash (Sum256): word arithmetic mod 2^256 that must agree with
 * plain BigInt arithmetic, carries and borrows across every word included, since verify and
 * gettxoutsetinfo compare the stored sum with one recomputed from the whole set.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Sum256 } from "../../../src/chain/utxoSet.js";
import { SeededRandom } from "../../../src/util/random.js";

const MOD = 1n << 256n;
const big = (b: Buffer): bigint => BigInt("0x" + b.toString("hex"));
const bytes = (n: bigint): Buffer => Buffer.from(n.toString(16).padStart(64, "0"), "hex");

describe("Sum256", () => {
  it("adds and subtracts mod 2^256 exactly as BigInt does", () => {
    const rnd = new SeededRandom(7);
    // Words of all ones and all zeros force carries and borrows through every word.
    const edge = [Buffer.alloc(32, 0xff), Buffer.alloc(32, 0), bytes(1n), bytes(MOD - 1n), bytes(1n << 255n)];
    const sum = new Sum256();
    let ref = 0n;
    for (let i = 0; i < 2_000; i++) {
      const d = i < edge.length * 2 ? edge[i % edge.length]! : rnd.bytes(32);
      if (rnd.int(3) === 0) {
        sum.sub(d);
        ref = (ref - big(d) + MOD) % MOD;
      } else {
        sum.add(d);
        ref = (ref + big(d)) % MOD;
      }
      assert.equal(big(sum.toBuffer()), ref, `step ${i}`);
    }
  });

  it("round-trips its 32 bytes and refuses any other length", () => {
    const b = new SeededRandom(3).bytes(32);
    assert.deepEqual(new Sum256(b).toBuffer(), b);
    assert.throws(() => new Sum256(Buffer.alloc(31)), /32 bytes, not 31/);
    assert.throws(() => new Sum256().add(Buffer.alloc(33)), /32 bytes, not 33/);
  });

  it("is order-independent: the sum of a set does not depend on the order it was built in", () => {
    const rnd = new SeededRandom(11);
    const items = Array.from({ length: 50 }, () => rnd.bytes(32));
    const a = new Sum256();
    for (const d of items) a.add(d);
    const b = new Sum256();
    for (const d of [...items].reverse()) b.add(d);
    // Adding one and taking it away again leaves the sum as it was.
    b.add(items[0]!);
    b.sub(items[0]!);
    assert.deepEqual(a.toBuffer(), b.toBuffer());
  });
});
