/**
 * The one mapping from wallet and mempool errors to JSON-RPC errors, for every method that builds
 * or sends a transaction (sendtoaddress, sendrawtransaction, registermasternode, spendcollateral).
 * The codes are bitcoind's for the same failures.
 */
import { MempoolError } from "../mempool/errors.js";
import { WalletError } from "../wallet/wallet.js";
import {
  RPC_INVALID_PARAMETER,
  RPC_TYPE_ERROR,
  RPC_VERIFY_REJECTED,
  RPC_WALLET_ERROR,
  RPC_WALLET_INSUFFICIENT_FUNDS,
  RpcError,
} from "./errors.js";

/** A transaction the mempool refused: -26, with its code (and the consensus rule, if one) as data. */
export function mempoolRejection(e: MempoolError): RpcError {
  return new RpcError(RPC_VERIFY_REJECTED, `transaction rejected: ${e.message}`, {
    code: e.code,
    ...(e.ruleCode ? { rule: e.ruleCode } : {}),
  });
}

/** Maps a WalletError or MempoolError to its RpcError; anything else is returned unchanged. */
export function sendRpcError(e: unknown): unknown {
  if (e instanceof WalletError) {
    switch (e.code) {
      case "INSUFFICIENT_FUNDS":
        return new RpcError(RPC_WALLET_INSUFFICIENT_FUNDS, e.message);
      case "BAD_AMOUNT":
      case "DUST":
      case "BAD_FEE_RATE":
        // bitcoind answers an amount it cannot send with RPC_TYPE_ERROR ("Invalid amount").
        return new RpcError(RPC_TYPE_ERROR, e.message);
      case "NOT_SPENDABLE":
        return new RpcError(RPC_INVALID_PARAMETER, e.message);
      case "CORRUPT_FILE":
      case "WRONG_NETWORK":
      case "IO":
        return new RpcError(RPC_WALLET_ERROR, e.message);
    }
  }
  if (e instanceof MempoolError) return mempoolRejection(e);
  return e;
}
