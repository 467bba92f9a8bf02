/**
 * Chain tips and manual recovery on a real chain store (src/chain/chainTips.ts): getchaintips's
 * statuses, invalidateblock and reconsiderblock round trips, the final-block guard, persistence
 * across a restart, atomicity when the move is refused, and that blocks refused because of the
 * operator's mark blame nobody.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Chain } from "../../../src/chain/chain.js";
import { ChainTipError } from "../../../src/chain/chainTips.js";
import { BlockError } from "../../../src/primitives/errors.js";
import { blockHash, type Block } from "../../../src/primitives/block.js";
import { ChainHarness, tempDir, testGenesis, testKeys } from "../../helpers/chainFixture.js";
import { extend } from "../../helpers/chainBuild.js";
import { createMemoryLogger } from "../../../src/logging/index.js";
import { RpcClient } from "../../../src/rpc/client.js";
import { registerChainTipsMethods } from "../../../src/rpc/chainTipsMethods.js";
import { RpcServer } from "../../../src/rpc/server.js";
import { SystemClock } from "../../../src/util/clock.js";
import { CryptoRandom } from "../../../src/util/random.js";
import { finaliseBlock } from "../../helpers/finality.js";

const mns = testKeys("tips-mn", 3);
const genesis = testGenesis({ masternodes: mns });
const hex = (b: Block): string => blockHash(b.header).toString("hex");
const hashOf = (b: Block): Buffer => blockHash(b.header);

const finalise = (h: ChainHarness, b: Block): void => finaliseBlock(h, b, mns);

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof ChainTipError || e instanceof BlockError) return e.code;
    throw e;
  }
  return "ok";
}

describe("chain tips and manual recovery", () => {
  it("getchaintips, then invalidateblock and reconsiderblock round trip on the main chain", async () => {
    const h = new ChainHarness(genesis, mns);
    try {
      const main = extend(h, 5);
      const side = extend(h, 1, { parent: main[1]!, round: 1 }); // a lighter block at height 3
      assert.deepEqual(h.chain.chainTips(), [
        { height: 5, hash: hex(main[4]!), branchlen: 0, status: "active" },
        { height: 3, hash: hex(side[0]!), branchlen: 1, status: "valid-headers" },
      ]);

      const r = h.chain.invalidateBlock(hashOf(main[3]!));
      assert.equal(r.marked, 2, "block 4 and its descendant 5");
      assert.equal(h.chain.tip.height, 3);
      assert.ok(h.chain.tip.hash.equals(hashOf(main[2]!)), "the parent is the best branch without it");
      assert.deepEqual(h.chain.chainTips(), [
        { height: 3, hash: hex(main[2]!), branchlen: 0, status: "active" },
        { height: 5, hash: hex(main[4]!), branchlen: 2, status: "invalid" },
        { height: 3, hash: hex(side[0]!), branchlen: 1, status: "valid-headers" },
      ]);
      // The marked blocks, and anything built on them, are refused, blaming no one.
      for (const b of [main[3]!, h.makeBlockOn(main[4]!)]) {
        assert.throws(
          () => h.chain.processBlock(b),
          (e: unknown) => e instanceof BlockError && e.code === "INVALIDATED" && e.banScore === 0,
        );
      }
      assert.ok(h.chain.isKnownInvalid(hashOf(main[4]!)));

      const back = h.chain.reconsiderBlock(hashOf(main[3]!));
      assert.ok(back.tip.hash.equals(hashOf(main[4]!)), "fork choice takes the branch back");
      assert.equal(h.chain.chainTips()[0]!.status, "active");
      assert.ok(!h.chain.isKnownInvalid(hashOf(main[4]!)));
    } finally {
      await h.close();
    }
  });

  it("a branch the main chain left after a reorg is a valid-fork", async () => {
    const h = new ChainHarness(genesis, mns);
    try {
      const main = extend(h, 3);
      // Five fallback-round blocks (half the work each) outweigh the two round-0 blocks they replace.
      const heavier = extend(h, 5, { parent: main[0]!, round: 1 });
      assert.ok(h.chain.tip.hash.equals(hashOf(heavier[4]!)));
      const tips = h.chain.chainTips();
      assert.deepEqual(tips[1], { height: 3, hash: hex(main[2]!), branchlen: 2, status: "valid-fork" });
    } finally {
      await h.close();
    }
  });

  it("never crosses a final block: a final block and those below it cannot be invalidated", async () => {
    const h = new ChainHarness(genesis, mns);
    try {
      const main = extend(h, 5);
      finalise(h, main[2]!);
      assert.equal(h.chain.finality.finalizedHeight, 3);
      assert.equal(
        codeOf(() => h.chain.invalidateBlock(hashOf(main[2]!))),
        "FINAL",
      );
      assert.equal(
        codeOf(() => h.chain.invalidateBlock(hashOf(main[0]!))),
        "FINAL",
      );
      assert.equal(
        codeOf(() => h.chain.invalidateBlock(h.chain.genesisHash)),
        "GENESIS",
      );
      assert.equal(
        codeOf(() => h.chain.invalidateBlock(Buffer.alloc(32, 1))),
        "NOT_FOUND",
      );
      assert.equal(h.chain.tip.height, 5);
      // Above it is fine.
      assert.equal(
        codeOf(() => h.chain.invalidateBlock(hashOf(main[3]!))),
        "ok",
      );
      assert.equal(h.chain.tip.height, 3);
    } finally {
      await h.close();
    }
  });

  it("is atomic: a move the reorg guard refuses changes nothing, marks included", async () => {
    const h = new ChainHarness(genesis, mns, undefined, { maxReorgDepth: 2 });
    try {
      const main = extend(h, 6);
      assert.equal(
        codeOf(() => h.chain.invalidateBlock(hashOf(main[1]!))),
        "NOT_APPLIED",
      );
      assert.equal(h.chain.tip.height, 6);
      assert.ok(!h.chain.isKnownInvalid(hashOf(main[1]!)));
      assert.ok(!h.chain.isKnownInvalid(hashOf(main[5]!)));
      assert.equal(h.chain.chainTips().length, 1);
    } finally {
      await h.close();
    }
  });

  it("the operator's marks survive a restart", async () => {
    const t = tempDir();
    const h = new ChainHarness(genesis, mns, t.dir);
    try {
      const main = extend(h, 4);
      h.chain.invalidateBlock(hashOf(main[2]!));
      assert.equal(h.chain.tip.height, 2);
      await h.chain.close();
      const again = Chain.open(h.dir, genesis, { clock: h.clock });
      try {
        assert.equal(again.tip.height, 2, "fork choice at open does not take the marked branch back");
        assert.ok(again.isKnownInvalid(hashOf(main[3]!)));
        assert.equal(again.reconsiderBlock(hashOf(main[2]!)).tip.height, 4);
      } finally {
        await again.close();
      }
    } finally {
      t.cleanup();
    }
  });

  it("over RPC: getchaintips, invalidateblock and reconsiderblock, with clear errors", async () => {
    const h = new ChainHarness(genesis, mns);
    const server = new RpcServer(
      { host: "127.0.0.1", port: 0, auth: { kind: "userpass", user: "u", password: "p" } },
      { logger: createMemoryLogger({ level: "info" }), clock: new SystemClock(), random: new CryptoRandom() },
    );
    try {
      const main = extend(h, 4);
      registerChainTipsMethods(server, { chain: h.chain });
      const addr = await server.start();
      const rpc = new RpcClient({ url: `http://${addr.host}:${addr.port}/`, user: "u", password: "p" });
      const r = await rpc.call<{ tip: { height: number; hash: string }; marked: number }>("invalidateblock", [
        hex(main[2]!),
      ]);
      assert.deepEqual(r, { tip: { height: 2, hash: hex(main[1]!) }, marked: 2 });
      const tips = await rpc.call<Array<{ status: string; height: number }>>("getchaintips");
      assert.deepEqual(
        tips.map((t) => [t.status, t.height]),
        [
          ["active", 2],
          ["invalid", 4],
        ],
      );
      const back = await rpc.call<{ tip: { height: number } }>("reconsiderblock", [hex(main[2]!)]);
      assert.equal(back.tip.height, 4);
      await assert.rejects(rpc.call("invalidateblock", ["00".repeat(32)]), /block not found/);
      await assert.rejects(rpc.call("invalidateblock", ["xyz"]), /blockhash/);
      await assert.rejects(rpc.call("invalidateblock", [h.chain.genesisHash.toString("hex")]), /genesis/);
    } finally {
      await server.stop();
      await h.close();
    }
  });
});
