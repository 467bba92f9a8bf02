import type { ChainReader } from "../chain/chainReader.js";
import { formatAmount } from "../primitives/amount.js";
import { decodeTx, encodeTx, txSize, txid as txidOf, type Tx } from "../primitives/tx.js";
import { AddressError, decodeAddress, type NetworkName } from "../crypto/address.js";
import { MempoolError } from "../mempool/errors.js";
import { formatFeeRate, type Mempool } from "../mempool/mempool.js";
import { txToJson } from "./chainMethods.js";
import { RPC_DESERIALIZATION_ERROR, RPC_INVALID_ADDRESS_OR_KEY, RPC_TYPE_ERROR, RpcError } from "./errors.js";
import { mempoolRejection } from "./sendErrors.js";
import { showValue } from "./params.js";
import type { RpcServer } from "./server.js";

/** bitcoind's RPC_VERIFY_ALREADY_IN_CHAIN: the transaction is already in a block. */
export const RPC_VERIFY_ALREADY_IN_CHAIN = -27;

export interface TxMethodDeps {
  chain: ChainReader;
  mempool: Mempool;
  /** TxRelay.submitLocal, so sendrawtransaction announces to peers; without it, Mempool.accept. */
  relay?: { submitLocal(tx: Tx): { txid: Buffer; fee: bigint }; announce?(txid: Buffer): void };
}

const HEX_RE = /^(?:[0-9a-fA-F]{2})*$/;

/** Decodes a raw transaction from hex, or throws -22 "TX decode failed: …". */
export function decodeTxHex(hex: string): Tx {
  if (hex.length === 0) throw new RpcError(RPC_DESERIALIZATION_ERROR, "TX decode failed: empty hex string");
  if (!HEX_RE.test(hex)) {
    throw new RpcError(
      RPC_DESERIALIZATION_ERROR,
      "TX decode failed: not a hex string (expected an even number of 0-9a-f characters)",
    );
  }
  try {
    return decodeTx(Buffer.from(hex, "hex"));
  } catch (e) {
    throw new RpcError(
      RPC_DESERIALIZATION_ERROR,
      `TX decode failed: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
}

/** The networks whose address prefix `addr` carries ("TIME1" mainnet, "TIME0" testnet and devnet). */
export function networksOfAddress(addr: string): NetworkName[] {
  if (addr.startsWith("TIME1")) return ["mainnet"];
  if (addr.startsWith("TIME0")) return ["testnet", "devnet"];
  return [];
}

/**
 * Decodes an address for this node's network, or throws -5 saying what is wrong; for an address
 * of another network, which network it belongs to.
 */
export function decodeAddressParam(addr: string, network: NetworkName): Buffer {
  try {
    return decodeAddress(addr, network);
  } catch (e) {
    if (!(e instanceof AddressError)) throw e;
    if (e.code === "WRONG_NETWORK") {
      const owners = networksOfAddress(addr).join(" or ");
      throw new RpcError(
        RPC_INVALID_ADDRESS_OR_KEY,
        `invalid address: ${addr} is a ${owners} address, and this node is on ${network}`,
      );
    }
    throw new RpcError(RPC_INVALID_ADDRESS_OR_KEY, `invalid address: ${e.message}`);
  }
}

/** Parses a verbose flag the way bitcoind accepts it: a boolean or 0/1. */
function verboseParam(v: unknown): boolean {
  if (v === undefined) return false;
  if (typeof v === "boolean") return v;
  if (v === 0 || v === 1) return v === 1;
  throw new RpcError(RPC_TYPE_ERROR, `verbose must be a boolean (or 0/1), got ${showValue(v)}`);
}

/** The transaction methods of step 3. */
export function registerTxMethods(rpc: RpcServer, deps: TxMethodDeps): void {
  const { chain, mempool } = deps;
  const network = chain.params.network;

  rpc.register("sendrawtransaction", {
    description:
      "Validates a signed transaction (hex), adds it to the mempool and announces it to peers. " +
      "Sending a transaction already in the mempool again is not an error.",
    params: [{ name: "hexstring", type: "string", description: "the signed transaction, hex encoded" }],
    result: '"txid" (string)',
    examples: ["time-cli sendrawtransaction 01000000..."],
    handler: (p) => {
      const tx = decodeTxHex(p.hexstring as string);
      const id = txidOf(tx);
      if (mempool.has(id)) {
        deps.relay?.announce?.(id);
        return id.toString("hex");
      }
      try {
        if (deps.relay) deps.relay.submitLocal(tx);
        else mempool.accept(tx);
      } catch (e) {
        if (!(e instanceof MempoolError)) throw e;
        if (e.code === "ALREADY_KNOWN" && !mempool.has(id)) {
          throw new RpcError(RPC_VERIFY_ALREADY_IN_CHAIN, `transaction rejected: ${e.message}`);
        }
        if (e.code === "ALREADY_KNOWN") return id.toString("hex");
        throw mempoolRejection(e);
      }
      return id.toString("hex");
    },
  });

  rpc.register("getrawtransaction", {
    description:
      "Returns a transaction from the mempool or the main chain: hex, or with verbose a JSON object " +
      "(plus blockhash and confirmations when it is in a block, fee when it is in the mempool).",
    params: [
      { name: "txid", type: "hash", description: "the transaction id" },
      { name: "verbose", type: "any", optional: true, description: "true (or 1) for JSON (default false)" },
    ],
    result: '"hex" (string), or {txid, vin, vout, hex, size, ...} with verbose',
    examples: ["time-cli getrawtransaction 9f3c...e1", "time-cli getrawtransaction 9f3c...e1 true"],
    handler: (p) => {
      const id = Buffer.from(p.txid as string, "hex");
      const verbose = verboseParam(p.verbose);
      const pooled = mempool.getEntry(id);
      if (pooled) {
        if (!verbose) return hexOf(pooled.tx);
        return {
          ...txJson(pooled.tx, network),
          in_mempool: true,
          fee: formatAmount(pooled.fee),
          time: Math.floor(pooled.time / 1000),
        };
      }
      const loc = chain.storage.getTxLocation(id);
      const block = loc ? chain.getBlock(loc.blockHash) : undefined;
      const entry = loc ? chain.getIndex(loc.blockHash) : undefined;
      const tx = loc && block ? block.txs[loc.index] : undefined;
      if (!loc || !tx || !entry) {
        throw new RpcError(
          RPC_INVALID_ADDRESS_OR_KEY,
          `no such mempool or main-chain transaction: ${id.toString("hex")}`,
        );
      }
      if (!verbose) return hexOf(tx);
      return {
        ...txJson(tx, network),
        in_mempool: false,
        blockhash: loc.blockHash.toString("hex"),
        blockheight: entry.height,
        confirmations: chain.height - entry.height + 1,
        time: Math.floor(entry.timestamp / 1000),
        blocktime: Math.floor(entry.timestamp / 1000),
      };
    },
  });

  rpc.register("decoderawtransaction", {
    description: "Decodes a raw transaction (hex) into JSON without checking it against the chain.",
    params: [{ name: "hexstring", type: "string", description: "the transaction, hex encoded" }],
    result: "{txid, version, kind, vin, vout, payload, size}",
    handler: (p) => {
      const tx = decodeTxHex(p.hexstring as string);
      const { hex: _hex, ...json } = txJson(tx, network);
      return json;
    },
  });

  rpc.register("getmempoolinfo", {
    description: "Returns the mempool's size, bytes, caps and fee thresholds (fees in TIME per 1,000 bytes).",
    params: [],
    result: "{loaded, size, bytes, usage, maxmempool, maxcount, minrelaytxfee, mempoolminfee, ...}",
    handler: () => mempool.info(),
  });

  rpc.register("getrawmempool", {
    description:
      "Lists the mempool's txids, or with verbose an object of txid → {fee, size, feerate, time, depends, spentby}.",
    params: [
      {
        name: "verbose",
        type: "any",
        optional: true,
        description: "true (or 1) for details (default false)",
      },
    ],
    result: '["txid", ...] or {"txid": {...}, ...}',
    handler: (p) => {
      if (!verboseParam(p.verbose)) return mempool.txids().map((id) => id.toString("hex"));
      const out: Record<string, unknown> = {};
      for (const e of mempool.entries()) {
        out[e.txid.toString("hex")] = {
          fee: formatAmount(e.fee),
          size: e.size,
          feerate: formatFeeRate(e.fee, e.size),
          time: Math.floor(e.time / 1000),
          timems: e.time,
          depends: e.depends.map((d) => d.toString("hex")),
          spentby: e.spentBy.map((d) => d.toString("hex")),
        };
      }
      return out;
    },
  });

  rpc.register("gettxoutsetinfo", {
    description:
      "Returns statistics of the UTXO set at the tip. hash_serialized is the set's multiset hash: " +
      "the sum of SHA-256(outpoint ‖ entry) over every unspent output, mod 2^256, so two nodes with " +
      "the same set have the same hash whatever order they built it in.",
    params: [],
    result: "{height, bestblock, txouts, total_amount, hash_serialized, hash_type}",
    handler: () => {
      const stats = chain.storage.getStats();
      return {
        height: chain.height,
        bestblock: chain.tip.hash.toString("hex"),
        txouts: stats.count,
        total_amount: formatAmount(stats.total),
        hash_serialized: stats.hash.toString("hex"),
        hash_type: "multiset-sha256",
      };
    },
  });

  rpc.register("validateaddress", {
    description:
      "Says whether an address is valid on this node's network, and if not, why (wrong network, bad checksum, ...).",
    params: [{ name: "address", type: "string", description: "the address to check" }],
    result:
      "{isvalid, address, network, pubkeyhash} or {isvalid: false, address, error, error_code, network?}",
    handler: (p) => {
      const address = p.address as string;
      try {
        const hash = decodeAddress(address, network);
        return { isvalid: true, address, network, pubkeyhash: hash.toString("hex") };
      } catch (e) {
        if (!(e instanceof AddressError)) throw e;
        const owners = networksOfAddress(address);
        return {
          isvalid: false,
          address,
          error: e.message,
          error_code: e.code,
          ...(e.code === "WRONG_NETWORK" ? { network: owners.join(" or ") } : {}),
        };
      }
    },
  });
}

function hexOf(tx: Tx): string {
  return encodeTx(tx).toString("hex");
}

function txJson(tx: Tx, network: NetworkName): Record<string, unknown> {
  return { ...txToJson(tx, network), size: txSize(tx), hex: hexOf(tx) };
}
