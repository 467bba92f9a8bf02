/**
 * Opening Chain's store: the genesis block is built from its spec, the store is opened for that
 * network and genesis (a store made for another refuses to open), and on first use the genesis
 * is written and connected.
 */
import { genesisRegistry, type GenesisSpec, buildGenesisBlock } from "../consensus/genesis.js";
import type { CheckedBlock } from "../consensus/validation.js";
import { blockHash, encodeBlock, type Block } from "../primitives/block.js";
import { txid as txidOf } from "../primitives/tx.js";
import { ChainStore } from "./chainStore.js";
import type { KvOpener } from "./kv.js";

/** Opens (or creates) the store in `dir` for `genesis`; returns it with the genesis hash. */
export function openGenesisStore(
  dir: string,
  genesis: GenesisSpec,
  durable: boolean,
  openKv?: KvOpener,
): { store: ChainStore; genesisHash: Buffer } {
  const gBlock = buildGenesisBlock(genesis);
  const gHash = blockHash(gBlock.header);
  const store = ChainStore.open(dir, genesis.network, gHash, { durable, openKv });
  if (store.isEmpty) {
    const checked = checkBlockSanityGenesis(gBlock, gHash);
    const registry = genesisRegistry(genesis);
    store.initGenesis(genesis.network, gBlock, gHash, registry, {
      spent: [],
      created: gBlock.txs[0]!.outputs.map((o, index) => ({
        outpoint: { txid: checked.txids[0]!, index },
        entry: { amount: o.amount, address: o.address, height: 0, coinbase: true },
      })),
      fees: 0n,
      registry,
      slashed: [],
    });
  }
  return { store, genesisHash: gHash };
}

function checkBlockSanityGenesis(block: Block, hash: Buffer): CheckedBlock {
  // The genesis is built locally from the spec, so only its txids are needed.
  const checked = { block, hash, txids: [] as Buffer[], size: encodeBlock(block).length };
  for (const tx of block.txs) checked.txids.push(txidOf(tx));
  return checked;
}
