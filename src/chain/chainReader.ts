/**
 * The read-only face of the chain. A part that only reads it (RPC, the dashboard, metrics, the
 * block server, the wallet and the mempool's view of the UTXO set) takes a ChainReader, so the
 * type says it never writes: only `Chain` itself, the producer, the relays and the sync call
 * `processBlock` and friends.
 */
import type { Registry } from "../consensus/registry.js";
import type { Certificate, Checkpoint } from "../consensus/finality.js";
import type { Equivocation } from "../consensus/evidence.js";
import type { VoteOffence } from "../consensus/voteEvidence.js";
import type { EpochSchedule } from "../consensus/schedule.js";
import type { GenesisSpec } from "../consensus/genesis.js";
import type { Block, BlockHeader } from "../primitives/block.js";
import type { ChainParams } from "../primitives/params.js";
import type { Tx } from "../primitives/tx.js";
import type { TypedEmitter } from "../util/typedEmitter.js";
import type { BlockIndex, ChainStore } from "./chainStore.js";

/** What readers may ask the store directly (never a write). */
export type ChainStoreReader = Pick<
  ChainStore,
  | "getBlockBytes"
  | "getUtxo"
  | "iterateUtxos"
  | "getStats"
  | "getTxLocation"
  | "getSlot"
  | "getRegistryByRoot"
  | "getRegistryRoot"
  | "isSlashed"
  | "slashedAt"
  | "slashedKeys"
>;

export interface ChainEvents {
  /** A block became part of the main chain (in order, also during a reorg). */
  blockConnected: { block: Block; entry: BlockIndex };
  /** A block left the main chain (tip first, during a reorg). */
  blockDisconnected: { block: Block; entry: BlockIndex };
  reorg: { depth: number; oldTip: BlockIndex; newTip: BlockIndex; fork: BlockIndex };
  tip: BlockIndex;
  /** New evidence of equivocation was recorded (found here, or received). */
  evidence: Equivocation;
  /** New evidence against a finality voter was recorded (found here, or received). */
  voteEvidence: VoteOffence;
  /** A block became final (with the certificate that made it so); its ancestors are final too. */
  finalized: { checkpoint: Checkpoint; certificate: Certificate };
  /** A checkpoint became justified (more than 2/3 voted a link into it from a justified one). */
  justified: Checkpoint;
}

export interface ChainReader {
  /** Subscribe only: readers never emit. */
  readonly events: Pick<TypedEmitter<ChainEvents>, "on">;
  readonly params: ChainParams;
  readonly genesisHash: Buffer;
  readonly genesis: GenesisSpec;
  readonly tip: BlockIndex;
  readonly height: number;
  readonly storage: ChainStoreReader;
  getIndex(hash: Uint8Array): BlockIndex | undefined;
  getBlock(hash: Uint8Array): Block | undefined;
  getHeader(hash: Uint8Array): BlockHeader | undefined;
  getHashAtHeight(height: number): Buffer | undefined;
  getRegistry(): Registry;
  registryAfter(entry: BlockIndex): Registry | undefined;
  isKnownInvalid(hash: Uint8Array): boolean;
  isMain(entry: BlockIndex): boolean;
  findFork(entry: BlockIndex): BlockIndex;
  scheduleForChild(parent: BlockIndex): EpochSchedule;
  hasEvidenceAgainst(operator: Uint8Array): boolean;
  listEvidence(): Array<{ evidence: Equivocation; seenAt: number; slashedAt: number | null }>;
  listVoteEvidence(): Array<{ evidence: VoteOffence; seenAt: number; slashedAt: number | null }>;
  pendingEvidenceTxs(max: number): Tx[];
}
