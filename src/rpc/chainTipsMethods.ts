/**
 * getchaintips, invalidateblock and reconsiderblock, with bitcoind's names and meanings
 * (src/chain/chainTips.ts; docs/OPERATIONS.md, "Chain tips and recovery").
 */
import { ChainTipError, type ChainTip } from "../chain/chainTips.js";
import type { BlockIndex } from "../chain/chainStore.js";
import { RPC_INVALID_ADDRESS_OR_KEY, RPC_INVALID_PARAMETER, RPC_MISC_ERROR, RpcError } from "./errors.js";
import type { RpcServer } from "./server.js";

export interface ChainTipsDeps {
  chain: {
    chainTips(): ChainTip[];
    invalidateBlock(hash: Buffer): { tip: BlockIndex; marked: number };
    reconsiderBlock(hash: Buffer): { tip: BlockIndex; cleared: number };
  };
}

function asRpcError(e: unknown): never {
  if (e instanceof ChainTipError) {
    const code =
      e.code === "NOT_FOUND"
        ? RPC_INVALID_ADDRESS_OR_KEY
        : e.code === "NOT_APPLIED"
          ? RPC_MISC_ERROR
          : RPC_INVALID_PARAMETER;
    throw new RpcError(code, e.message);
  }
  throw e;
}

const tipJson = (tip: BlockIndex): { height: number; hash: string } => ({
  height: tip.height,
  hash: tip.hash.toString("hex"),
});

export function registerChainTipsMethods(rpc: RpcServer, deps: ChainTipsDeps): void {
  const hashParam = [{ name: "blockhash", type: "hash" as const, description: "the block's hash" }];
  rpc.register("getchaintips", {
    description:
      "Lists every branch end this node stores: the active tip (branchlen 0), then side branches, highest first. status: active; valid-fork (every block of the branch was once on the main chain, so fully validated); valid-headers (stored and checked without the UTXO set, never connected); invalid (the branch holds a block invalid by a rule or by invalidateblock). headers-only never appears: this node stores no header without its block.",
    params: [],
    result: "[{height, hash, branchlen, status}]",
    examples: ["time-cli getchaintips"],
    handler: () => deps.chain.chainTips(),
  });
  rpc.register("invalidateblock", {
    description:
      "Marks a block and its stored descendants invalid by the operator's decision and, if it is on the main chain, moves the tip to the best branch without it, in one write transaction. A final block (or one below it) cannot be invalidated. Peers that send the marked blocks are not blamed. Undo with reconsiderblock.",
    params: hashParam,
    result: "{tip: {height, hash}, marked}",
    examples: ["time-cli invalidateblock 00ab…"],
    handler: (p) => {
      try {
        const r = deps.chain.invalidateBlock(Buffer.from(p.blockhash as string, "hex"));
        return { tip: tipJson(r.tip), marked: r.marked };
      } catch (e) {
        return asRpcError(e);
      }
    },
  });
  rpc.register("reconsiderblock", {
    description:
      "Clears the invalid marks of a block, its stored descendants and its side-branch ancestors (the operator's, and remembered rule failures), then lets fork choice take the best branch again, in one write transaction. Fork choice never leaves the final block's branch.",
    params: hashParam,
    result: "{tip: {height, hash}, cleared}",
    examples: ["time-cli reconsiderblock 00ab…"],
    handler: (p) => {
      try {
        const r = deps.chain.reconsiderBlock(Buffer.from(p.blockhash as string, "hex"));
        return { tip: tipJson(r.tip), cleared: r.cleared };
      } catch (e) {
        return asRpcError(e);
      }
    },
  });
}
