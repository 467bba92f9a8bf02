import type { Block } from "../primitives/block.js";
import type { ChainReader } from "../chain/chainReader.js";
import type { BlockIndex } from "../chain/chainStore.js";
import { formatAmount } from "../primitives/amount.js";
import { txid, TxKind, type Tx } from "../primitives/tx.js";
import { encodeAddress } from "../crypto/address.js";
import { parseHash } from "../crypto/hash.js";
import { blockFinalityJson, type FinalityReader } from "./finalityMethods.js";
import { RPC_INVALID_ADDRESS_OR_KEY, RPC_INVALID_PARAMETER, RpcError } from "./errors.js";
import type { RpcServer } from "./server.js";

export interface ChainMethodDeps {
  chain: ChainReader;
  /** The chain's finality (Chain.finality): getblock's `finalized`, getblockchaininfo's final block. */
  finality: FinalityReader;
  /** Seconds since the node started. */
  uptime: () => number;
  /** Asks the node to shut down; the RPC answer goes out first. */
  requestStop: () => void;
}

function resolveBlock(chain: ChainReader, v: unknown, name = "hash_or_height"): BlockIndex {
  if (typeof v === "number") {
    const hash = chain.getHashAtHeight(v);
    if (!hash) {
      throw new RpcError(RPC_INVALID_PARAMETER, `block height ${v} out of range (0..${chain.height})`);
    }
    return chain.getIndex(hash)!;
  }
  const hash = parseHash(String(v));
  if (!hash)
    throw new RpcError(
      RPC_INVALID_PARAMETER,
      `invalid parameter "${name}": expected a 64-hex block hash or a height`,
    );
  const e = chain.getIndex(hash);
  if (!e) throw new RpcError(RPC_INVALID_ADDRESS_OR_KEY, `block not found: ${hash.toString("hex")}`);
  return e;
}

export function txToJson(tx: Tx, network: ChainReader["params"]["network"]): Record<string, unknown> {
  return {
    txid: txid(tx).toString("hex"),
    version: tx.version,
    kind: TxKind[tx.kind]?.toLowerCase() ?? tx.kind,
    vin: tx.inputs.map((i) => ({
      txid: i.prevout.txid.toString("hex"),
      vout: i.prevout.index,
      pubkey: i.pubkey.toString("hex"),
      signature: i.signature.toString("hex"),
    })),
    vout: tx.outputs.map((o, n) => ({
      n,
      value: formatAmount(o.amount),
      address: encodeAddress(o.address, network),
    })),
    payload: tx.payload.toString("hex"),
  };
}

export function blockToJson(
  chain: ChainReader,
  entry: BlockIndex,
  block: Block,
  verbosity: number,
  finality: FinalityReader,
): Record<string, unknown> {
  const main = chain.isMain(entry);
  const next = main ? chain.getHashAtHeight(entry.height + 1) : undefined;
  return {
    hash: entry.hash.toString("hex"),
    confirmations: main ? chain.height - entry.height + 1 : -1,
    height: entry.height,
    version: block.header.version,
    previousblockhash: entry.height > 0 ? entry.prevHash.toString("hex") : null,
    nextblockhash: next ? next.toString("hex") : null,
    merkleroot: block.header.merkleRoot.toString("hex"),
    mnroot: block.header.mnRoot.toString("hex"),
    /** Seconds since the epoch, as bitcoind reports it; `timems` keeps the exact value. */
    time: Math.floor(entry.timestamp / 1000),
    timems: entry.timestamp,
    round: entry.round,
    producer: entry.height > 0 ? entry.producer.toString("hex") : null,
    chainwork: entry.work.toString(16).padStart(16, "0"),
    size: entry.size,
    nTx: block.txs.length,
    tx:
      verbosity >= 2
        ? block.txs.map((t) => txToJson(t, chain.params.network))
        : block.txs.map((t) => txid(t).toString("hex")),
    ...blockFinalityJson(finality, entry, main),
  };
}

/** The chain and node methods of step 1. */
export function registerChainMethods(rpc: RpcServer, deps: ChainMethodDeps): void {
  const { chain, finality } = deps;
  rpc.register("getblockcount", {
    description: "Returns the height of the best chain's tip.",
    params: [],
    result: "n (integer)",
    examples: ["time-cli getblockcount"],
    handler: () => chain.height,
  });
  rpc.register("getbestblockhash", {
    description: "Returns the hash of the best chain's tip.",
    params: [],
    result: '"hex" (string)',
    handler: () => chain.tip.hash.toString("hex"),
  });
  rpc.register("getblockhash", {
    description: "Returns the hash of the main-chain block at a height.",
    params: [{ name: "height", type: "integer", min: 0, description: "block height" }],
    result: '"hex" (string)',
    examples: ["time-cli getblockhash 1000"],
    handler: (p) => {
      const height = p.height as number;
      const hash = chain.getHashAtHeight(height);
      if (!hash)
        throw new RpcError(RPC_INVALID_PARAMETER, `block height ${height} out of range (0..${chain.height})`);
      return hash.toString("hex");
    },
  });
  rpc.register("getblock", {
    description:
      "Returns a block by hash or height. verbosity 0 = hex encoding, 1 = JSON with txids (default), 2 = JSON with decoded transactions.",
    params: [
      {
        name: "hash_or_height",
        type: "hashOrHeight",
        description: "block hash (64 hex) or main-chain height",
      },
      {
        name: "verbosity",
        type: "integer",
        optional: true,
        min: 0,
        max: 2,
        description: "0, 1 or 2 (default 1)",
      },
    ],
    result: "{hash, height, previousblockhash, time, producer, tx, finalized, certificate, ...}",
    examples: ["time-cli getblock 10", "time-cli getblock 00ab...ef 2"],
    handler: (p) => {
      const entry = resolveBlock(chain, p.hash_or_height);
      const verbosity = (p.verbosity as number | undefined) ?? 1;
      if (verbosity === 0) return chain.storage.getBlockBytes(entry.hash)!.toString("hex");
      return blockToJson(chain, entry, chain.getBlock(entry.hash)!, verbosity, finality);
    },
  });
  rpc.register("getblockchaininfo", {
    description:
      "Returns the state of the chain: network, height, tip, genesis, work, UTXO set size and the last final block.",
    params: [],
    result: "{chain, blocks, bestblockhash, genesishash, finalizedheight, finalizedhash, ...}",
    handler: () => {
      const tip = chain.tip;
      const stats = chain.storage.getStats();
      return {
        chain: chain.params.network,
        blocks: tip.height,
        headers: tip.height,
        bestblockhash: tip.hash.toString("hex"),
        genesishash: chain.genesisHash.toString("hex"),
        chainwork: tip.work.toString(16).padStart(16, "0"),
        time: Math.floor(tip.timestamp / 1000),
        timems: tip.timestamp,
        blocktimeseconds: chain.params.blockTimeMs / 1000,
        utxos: stats.count,
        moneysupply: formatAmount(stats.total),
        masternodes: chain.getRegistry().length,
        finalizedheight: finality.finalizedHeight,
        finalizedhash: finality.finalized.hash.toString("hex"),
      };
    },
  });
  rpc.register("uptime", {
    description: "Returns the number of seconds the node has been running.",
    params: [],
    result: "n (integer)",
    handler: () => Math.floor(deps.uptime()),
  });
  rpc.register("stop", {
    description: "Shuts the node down cleanly.",
    params: [],
    result: '"TIME Coin node stopping"',
    handler: () => {
      deps.requestStop();
      return "TIME Coin node stopping";
    },
  });
}
