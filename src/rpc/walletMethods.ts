import { formatAmount, parseAmount } from "../primitives/amount.js";
import type { Wallet } from "../wallet/wallet.js";
import { RPC_TYPE_ERROR, RpcError } from "./errors.js";
import { showValue } from "./params.js";
import type { RpcServer } from "./server.js";
import { sendRpcError } from "./sendErrors.js";
import { decodeAddressParam } from "./txMethods.js";

export interface WalletMethodDeps {
  wallet: Wallet;
  network: "mainnet" | "testnet" | "devnet";
}

/**
 * Parses an amount parameter into units. Accepted: a decimal string with at most 8 decimals
 * ("12.5", "0.00000001") or a JSON number, which is read through its shortest decimal form (so
 * 0.1 is exactly 0.1 TIME, and 0.1 + 0.2 = 0.30000000000000004 is refused, never rounded).
 * Anything else (negative, more than 8 decimals, exponents, empty, not a number or string) is
 * RPC_TYPE_ERROR (-3) with a message saying what is wrong.
 */
export function parseAmountParam(value: unknown, name = "amount"): bigint {
  if (typeof value === "string") {
    if (value.trim().startsWith("-")) {
      throw new RpcError(RPC_TYPE_ERROR, `invalid ${name} ${showValue(value)}: amounts must not be negative`);
    }
  } else if (typeof value === "number") {
    if (value < 0 || Object.is(value, -0)) {
      throw new RpcError(RPC_TYPE_ERROR, `invalid ${name} ${value}: amounts must not be negative`);
    }
  } else {
    throw new RpcError(
      RPC_TYPE_ERROR,
      `invalid ${name}: expected a decimal string such as "12.5" or a number, got ${showValue(value)}`,
    );
  }
  try {
    return parseAmount(value);
  } catch (e) {
    throw new RpcError(RPC_TYPE_ERROR, e instanceof Error ? e.message : String(e));
  }
}

/** The wallet methods of step 3. */
export function registerWalletMethods(rpc: RpcServer, deps: WalletMethodDeps): void {
  const { wallet, network } = deps;

  rpc.register("getnewaddress", {
    description: "Makes a new key in the wallet and returns its address.",
    params: [],
    result: '"address" (string)',
    handler: () => {
      try {
        return wallet.getNewAddress();
      } catch (e) {
        throw sendRpcError(e);
      }
    },
  });

  rpc.register("getbalance", {
    description:
      "Returns the wallet's spendable balance in TIME: confirmed, mature coins not already spent by a mempool transaction, leaving out locked masternode collateral.",
    params: [],
    result: '"amount" (string, 8 decimals)',
    handler: () => formatAmount(wallet.getBalance()),
  });

  rpc.register("listunspent", {
    description:
      "Lists the wallet's unspent outputs with at least minconf confirmations (default 1). " +
      "Immature coinbase outputs, and locked masternode collateral (see spendcollateral), are listed with spendable false.",
    params: [
      {
        name: "minconf",
        type: "integer",
        optional: true,
        min: 0,
        description: "minimum confirmations (default 1)",
      },
    ],
    result: "[{txid, vout, address, amount, confirmations, height, coinbase, locked, spendable}, ...]",
    handler: (p) =>
      wallet.listUnspent((p.minconf as number | undefined) ?? 1).map((c) => ({
        txid: c.outpoint.txid.toString("hex"),
        vout: c.outpoint.index,
        address: c.address,
        amount: formatAmount(c.amount),
        confirmations: c.confirmations,
        height: c.height,
        coinbase: c.coinbase,
        locked: c.locked,
        spendable: c.spendable,
      })),
  });

  rpc.register("sendtoaddress", {
    description:
      "Sends an amount of TIME to an address: picks coins, pays the fee, returns change to the " +
      "wallet, signs, and broadcasts. Returns the txid.",
    params: [
      { name: "address", type: "address", description: "the address to pay" },
      {
        name: "amount",
        type: "any",
        description:
          'amount in TIME: a decimal string such as "12.5" (exact), or a number; at most 8 decimals',
      },
    ],
    result: '"txid" (string)',
    examples: ['time-cli sendtoaddress TIME0... "12.5"'],
    handler: (p) => {
      const address = p.address as string;
      decodeAddressParam(address, network);
      const amount = parseAmountParam(p.amount);
      if (amount === 0n) throw new RpcError(RPC_TYPE_ERROR, "invalid amount: must be greater than 0");
      try {
        return wallet.send(address, amount).toString("hex");
      } catch (e) {
        throw sendRpcError(e);
      }
    },
  });
}
