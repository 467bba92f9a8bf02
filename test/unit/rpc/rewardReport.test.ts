/**
 * getrewardreport on a real chain: the payments add up to the block rewards, each block's producer
 * is credited with it, and a height whose round-0 slot went to a fallback round is listed as
 * missed for the member that held the slot, with the producer that filled it.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { scheduledProducer } from "../../../src/consensus/schedule.js";
import { parseAmount } from "../../../src/primitives/amount.js";
import { BLOCK_REWARD } from "../../../src/primitives/constants.js";
import { rewardReport } from "../../../src/rpc/rewardReport.js";
import { ChainHarness, testGenesis, testKeys } from "../../helpers/chainFixture.js";
import { extend } from "../../helpers/chainBuild.js";

const mns = testKeys("reward-report", 3);
const genesis = testGenesis({ masternodes: mns });
const h = new ChainHarness(genesis, mns);
after(() => h.close());

interface Row {
  operator: string;
  paid: string;
  produced: number;
  missed: Array<{ height: number; round: number; producer: string }>;
  payments?: Array<{ height: number; amount: string; produced: boolean }>;
}

describe("getrewardreport", () => {
  it("adds up to the rewards, credits producers, and lists the slots a fallback round filled", () => {
    extend(h, 4); // heights 1-4, round 0
    const fallback = extend(h, 2, { round: 1 }); // heights 5-6, round 1
    const r = rewardReport({ chain: h.chain }, null, 100) as { from: number; to: number; masternodes: Row[] };
    assert.deepEqual([r.from, r.to], [1, 6]);
    const total = r.masternodes.reduce((s, m) => s + parseAmount(m.paid), 0n);
    assert.equal(total, 6n * BLOCK_REWARD, "every unit of the 6 rewards is someone's (no fees here)");
    assert.equal(
      r.masternodes.reduce((s, m) => s + m.produced, 0),
      6,
    );
    // Who held round 0 at 5 and 6: the schedule says; they are listed as missed, with the producer.
    const missed = r.masternodes.flatMap((m) => m.missed.map((x) => ({ ...x, by: m.operator })));
    assert.equal(missed.length, 2);
    for (const [i, b] of fallback.entries()) {
      const parent = h.chain.getIndex(b.header.prevHash)!;
      const registry = h.chain.registryAfter(parent)!;
      const slot = scheduledProducer(
        h.chain.scheduleForChild(parent),
        b.header.height,
        0,
        registry,
      )!.operatorPubkey;
      const m = missed.find((x) => x.height === b.header.height)!;
      assert.ok(m, `height ${5 + i} missed`);
      assert.equal(m.by, slot.toString("hex"));
      assert.equal(m.round, 1);
      assert.equal(m.producer, b.header.producer.toString("hex"));
    }
    // One operator: every payment listed.
    const one = rewardReport({ chain: h.chain }, mns[0]!.publicKey, 3) as { masternodes: Row[] };
    assert.equal(one.masternodes.length, 1);
    assert.deepEqual(
      one.masternodes[0]!.payments!.map((p) => p.height),
      [4, 5, 6],
    );
  });
});
