import type { KeyPair } from "../crypto/ed25519.js";
import { vrfProve } from "../crypto/vrf.js";
import { isEraAnchor } from "./committee.js";
import { findByOperator, registryRoot, type Registry } from "./registry.js";
import { coinbaseOutputs } from "./rewards.js";
import { registryAfterTxs } from "./registryTx.js";
import {
  blockHash,
  blockMerkleRoot,
  blockSigMessage,
  type Block,
  type BlockHeader,
} from "../primitives/block.js";
import { BLOCK_REWARD, HEADER_VERSION, TX_VERSION } from "../primitives/constants.js";
import { BlockError } from "../primitives/errors.js";
import { TxKind, type Tx } from "../primitives/tx.js";

export interface BuildBlockOptions {
  parentHash: Buffer;
  parentHeight: number;
  /** Registry after the parent; the producer must be in it. */
  registry: Registry;
  producer: KeyPair;
  round: number;
  timestamp: number;
  /** Non-coinbase transactions, already checked against the UTXO set, in block order. */
  txs: Tx[];
  /** Sum of the fees of `txs`. */
  fees: bigint;
  /**
   * Registry after this block. By default it is computed from `registry` and `txs` (registry
   * transactions, and spends of collateral); if `txs` break a registry rule, the parent's registry
   * is used, so the block is built anyway and validation rejects it with the precise code.
   */
  registryAfter?: Registry;
  /**
   * For an era anchor (committee.ts, isEraAnchor): what the producer proves its VRF over
   * (eraSeedInput, from the previous era's seed on the parent's branch). Required there.
   */
  eraProofInput?: Buffer;
}

function defaultRegistryAfter(o: BuildBlockOptions, height: number): Registry {
  try {
    return registryAfterTxs(o.registry, o.txs, height);
  } catch (e) {
    if (e instanceof BlockError) return o.registry;
    throw e;
  }
}

/** Assembles and signs a block: coinbase by the reward rule, merkle root, registry root. */
export function buildBlock(o: BuildBlockOptions): Block {
  const me = findByOperator(o.registry, o.producer.publicKey);
  if (!me) throw new Error("producer is not a registered masternode");
  const height = o.parentHeight + 1;
  let payload = Buffer.alloc(4);
  payload.writeUInt32LE(height);
  if (isEraAnchor(height)) {
    if (!o.eraProofInput) throw new Error(`block ${height} is an era anchor: its VRF input is needed`);
    payload = Buffer.concat([payload, vrfProve(o.producer.seed(), o.eraProofInput)]);
  }
  const coinbase: Tx = {
    version: TX_VERSION,
    kind: TxKind.Coinbase,
    inputs: [],
    outputs: coinbaseOutputs(o.registry, me, BLOCK_REWARD, o.fees),
    payload,
  };
  const txs = [coinbase, ...o.txs];
  const header: BlockHeader = {
    version: HEADER_VERSION,
    height,
    prevHash: o.parentHash,
    merkleRoot: blockMerkleRoot(txs),
    mnRoot: registryRoot(o.registryAfter ?? defaultRegistryAfter(o, height)),
    timestamp: o.timestamp,
    round: o.round,
    producer: o.producer.publicKey,
    signature: Buffer.alloc(64),
  };
  header.signature = o.producer.sign(blockSigMessage(blockHash(header)));
  return { header, txs };
}
