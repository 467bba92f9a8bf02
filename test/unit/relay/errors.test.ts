import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BlockError } from "../../../src/primitives/errors.js";
import {
  RelayError,
  relayPenalty,
  reportRelayError,
  type RelayErrorCode,
} from "../../../src/relay/errors.js";

describe("relay errors: one mapping from what a peer did wrong to its score", () => {
  it("proof scores 100; an invalid block or transaction scores its rule's own score", () => {
    const want: Record<RelayErrorCode, number> = {
      NEWTIP_MISMATCH: 100,
      UNDECODABLE_BLOCK: 100,
      UNDECODABLE_TX: 100,
      BAD_EVIDENCE: 100,
      BAD_VOTE: 100,
      INVALID_BLOCK: 100,
      INVALID_TX: 100,
    };
    for (const [code, score] of Object.entries(want))
      assert.equal(relayPenalty(new RelayError(code as RelayErrorCode, "m", "e")), score, code);
    const clock = new BlockError("TIME_AFTER_SLOT", "late");
    assert.equal(relayPenalty(RelayError.invalidBlock(clock, "block …")), clock.banScore);
    assert.equal(relayPenalty(new RelayError("INVALID_TX", "m", "e", 0)), 0);
  });

  it("reports a score above 0 with its evidence; a score of 0 reaches no one", () => {
    const calls: Array<[string, number, string, string | undefined]> = [];
    const sink = {
      misbehaving: (p: string, s: number, r: string, e?: string) => void calls.push([p, s, r, e]),
    };
    assert.equal(
      reportRelayError(sink, "peer-a", new RelayError("BAD_EVIDENCE", "invalid evidence: x", "ev")),
      100,
    );
    assert.equal(reportRelayError(sink, "peer-b", new RelayError("INVALID_TX", "fee", "tx", 0)), 0);
    assert.deepEqual(calls, [["peer-a", 100, "invalid evidence: x", "ev"]]);
  });
});
