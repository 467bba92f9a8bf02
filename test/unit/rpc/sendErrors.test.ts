import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MempoolError } from "../../../src/mempool/errors.js";
import { RpcError } from "../../../src/rpc/errors.js";
import { mempoolRejection, sendRpcError } from "../../../src/rpc/sendErrors.js";
import { WalletError, type WalletErrorCode } from "../../../src/wallet/wallet.js";

describe("sendRpcError: one mapping for every method that sends", () => {
  it("maps each wallet error code to bitcoind's code for it", () => {
    const want: Record<WalletErrorCode, number> = {
      INSUFFICIENT_FUNDS: -6,
      BAD_AMOUNT: -3,
      DUST: -3,
      BAD_FEE_RATE: -3,
      NOT_SPENDABLE: -8,
      CORRUPT_FILE: -4,
      WRONG_NETWORK: -4,
      IO: -4,
    };
    for (const [code, rpc] of Object.entries(want)) {
      const e = sendRpcError(new WalletError(code as WalletErrorCode, `why ${code}`));
      assert.ok(e instanceof RpcError, code);
      assert.equal(e.code, rpc, code);
      assert.equal(e.message, `why ${code}`);
    }
  });

  it("a mempool refusal is -26 with its code and rule; anything else passes through", () => {
    const refused = new MempoolError("INVALID", "a Free registration", {
      banScore: 100,
      ruleCode: "MN_FREE_TIER",
    });
    for (const e of [sendRpcError(refused), mempoolRejection(refused)]) {
      assert.ok(e instanceof RpcError);
      assert.equal(e.code, -26);
      assert.equal(e.message, "transaction rejected: a Free registration");
      assert.deepEqual(e.data, { code: "INVALID", rule: "MN_FREE_TIER" });
    }
    const plain = mempoolRejection(new MempoolError("LOW_FEE", "too cheap"));
    assert.deepEqual(plain.data, { code: "LOW_FEE" });
    const other = new Error("boom");
    assert.equal(sendRpcError(other), other);
  });
});
