import { ADDRESS_HASH_LEN, pubkeyHash } from "../crypto/address.js";
import { verifySignature } from "../crypto/ed25519.js";
import { vrfVerify } from "../crypto/vrf.js";
import { ANCHOR_PAYLOAD_LEN, anchorProof, eraOfFinalHeight, eraSeedInput, isEraAnchor } from "./committee.js";
import { registryRoot, type Registry } from "./registry.js";
import {
  MAX_REGISTRATIONS_PER_BLOCK,
  RegistryBuilder,
  checkRegistryTxSanity,
  isRegistryTxKind,
  registryAfterTxs,
} from "./registryTx.js";
import { checkEquivocation, decodeEquivocation, MAX_EVIDENCE_PER_BLOCK } from "./evidence.js";
import {
  finalHeightOf,
  checkCertificateOnBranch,
  decodeFinalityTx,
  MAX_CERTIFICATES_PER_BLOCK,
  type FinalityContext,
} from "./finalityTx.js";
import type { Certificate } from "./finality.js";
import { checkVoteOffenceSignatures, decodeVoteEvidenceTx, type VoteOffence } from "./voteEvidence.js";
import { CodecError } from "../codec/index.js";
import { coinbaseOutputs } from "./rewards.js";
import { scheduledProducer, slotStart, type EpochSchedule } from "./schedule.js";
import {
  blockHash,
  blockSigMessage,
  encodeBlock,
  merkleRoot,
  rememberedTxids,
  type Block,
} from "../primitives/block.js";
import {
  BLOCK_REWARD,
  HEADER_VERSION,
  MAX_BLOCK_SIZE,
  MAX_MONEY,
  MAX_TX_SIZE,
  TX_VERSION,
} from "../primitives/constants.js";
import { BlockError } from "../primitives/errors.js";
import type { ChainParams } from "../primitives/params.js";
import { TxKind, outpointKey, txSigMessage, txSize, txid, type OutPoint, type Tx } from "../primitives/tx.js";
import { outpointBytes, type UtxoEntry, type UtxoView } from "../primitives/utxo.js";

/** A block that passed the context-free checks, with what they computed. */
export interface CheckedBlock {
  block: Block;
  hash: Buffer;
  txids: Buffer[];
  size: number;
  /** The certificate its Finality transaction carries (rules C1–C2 passed), if any. */
  certificate?: Certificate;
  /** The offences its VoteEvidence transactions carry (rules V1–V2 passed), if any. */
  voteOffences?: VoteOffence[];
}

/** What a block's position in the chain gives validation. */
export interface BlockContext {
  params: ChainParams;
  parentHash: Buffer;
  parentHeight: number;
  parentTimestamp: number;
  /** The masternode registry as it stood after the parent. */
  registry: Registry;
  /** The producer schedule of the block's epoch (src/consensus/schedule.ts). */
  schedule: EpochSchedule;
  /** Local clock, for the future-timestamp rule only. */
  now: number;
  /** For a Finality transaction's rules C4–C6; a block carrying one is invalid without it. */
  finality?: FinalityContext;
  /**
   * The block's producer and input signatures were verified when it was stored (a stored side
   * block connected by a reorg): its bytes are those checked then, and a signature's validity
   * depends on nothing else, so it is not checked again. Every other rule runs.
   */
  signaturesChecked?: boolean;
}

export interface SpentOutput {
  outpoint: OutPoint;
  entry: UtxoEntry;
}

/** The state change a block makes, computed by validation and written by the store. */
export interface BlockChanges {
  spent: SpentOutput[];
  created: SpentOutput[];
  fees: bigint;
  /** The registry after this block, or null when the block leaves it unchanged. */
  registry: Registry | null;
  /** Operator keys this block's Evidence transactions slashed (their collateral is in `spent`). */
  slashed: Buffer[];
}

/**
 * Context-free checks of one transaction (also used by the mempool). Masternode registry kinds
 * follow the transfer rules, and their payload must pass checkRegistryTxSanity (rules R1–R5 in
 * src/consensus/registryTx.ts).
 */
export function checkTxSanity(tx: Tx): void {
  if (tx.version !== TX_VERSION)
    throw new BlockError("BAD_TX_VERSION", `unsupported tx version ${tx.version}`);
  if (
    tx.kind !== TxKind.Transfer &&
    tx.kind !== TxKind.Coinbase &&
    tx.kind !== TxKind.Evidence &&
    tx.kind !== TxKind.Finality &&
    tx.kind !== TxKind.VoteEvidence &&
    !isRegistryTxKind(tx.kind)
  ) {
    throw new BlockError("UNSUPPORTED_TX_KIND", `transaction kind ${tx.kind} is not active`);
  }
  if (tx.kind === TxKind.Evidence) {
    checkEvidenceTxSanity(tx);
    return;
  }
  if (tx.kind === TxKind.Finality) {
    decodeFinalityTx(tx);
    return;
  }
  if (tx.kind === TxKind.VoteEvidence) {
    decodeVoteEvidenceTx(tx);
    return;
  }
  if (txSize(tx) > MAX_TX_SIZE)
    throw new BlockError("TX_TOO_LARGE", "transaction larger than the block size cap");
  let total = 0n;
  for (const o of tx.outputs) {
    if (o.amount <= 0n) throw new BlockError("ZERO_OUTPUT", "output amount must be positive");
    if (o.amount > MAX_MONEY)
      throw new BlockError("OUTPUT_OVER_MAX", "output amount above the maximum supply");
    if (o.address.length !== ADDRESS_HASH_LEN) throw new BlockError("OUTPUT_OVER_MAX", "bad output address");
    total += o.amount;
    if (total > MAX_MONEY) throw new BlockError("OUTPUT_OVER_MAX", "outputs sum above the maximum supply");
  }
  if (tx.kind === TxKind.Coinbase) return;
  if (tx.inputs.length === 0) throw new BlockError("TX_NO_INPUTS", "transaction has no inputs");
  if (tx.outputs.length === 0) throw new BlockError("TX_NO_OUTPUTS", "transaction has no outputs");
  if (tx.kind === TxKind.Transfer && tx.payload.length !== 0)
    throw new BlockError("BAD_TX_PAYLOAD", "transfer payload must be empty");
  const seen = new Set<string>();
  for (const i of tx.inputs) {
    const k = outpointKey(i.prevout);
    if (seen.has(k)) throw new BlockError("DUPLICATE_INPUT", `input ${k} spent twice in one transaction`);
    seen.add(k);
  }
  if (tx.kind !== TxKind.Transfer) checkRegistryTxSanity(tx);
}

/**
 * Rules E1–E3 of an Evidence transaction: no inputs and no outputs (E1), a payload of exactly two
 * headers (E2), and proof of equivocation (E3: one producer, one slot, two block hashes in
 * canonical order, both signatures valid).
 */
export function checkEvidenceTxSanity(tx: Tx): void {
  if (tx.inputs.length !== 0 || tx.outputs.length !== 0)
    throw new BlockError("BAD_EVIDENCE", "an Evidence transaction has no inputs and no outputs");
  let ev;
  try {
    ev = decodeEquivocation(tx.payload);
  } catch (e) {
    if (e instanceof CodecError)
      throw new BlockError("BAD_EVIDENCE", `evidence does not decode: ${e.message}`);
    throw e;
  }
  checkEquivocation(ev);
}

/**
 * Context-free block checks: version, size, coinbase position, per-transaction structure,
 * duplicate transactions, the caps on registrations and evidence per block, and the merkle root.
 */
export function checkBlockSanity(block: Block, encodedSize?: number): CheckedBlock {
  const h = block.header;
  if (h.version !== HEADER_VERSION)
    throw new BlockError("BAD_HEADER_VERSION", `unsupported header version ${h.version}`);
  const size = encodedSize ?? encodeBlock(block).length;
  if (size > MAX_BLOCK_SIZE)
    throw new BlockError("BLOCK_TOO_LARGE", `block is ${size} bytes, cap ${MAX_BLOCK_SIZE}`);
  if (block.txs.length === 0) throw new BlockError("NO_TRANSACTIONS", "block has no transactions");
  const first = block.txs[0]!;
  if (first.kind !== TxKind.Coinbase)
    throw new BlockError("FIRST_TX_NOT_COINBASE", "first transaction is not a coinbase");
  if (first.inputs.length !== 0) throw new BlockError("BAD_COINBASE_PAYLOAD", "coinbase must have no inputs");
  const anchor = isEraAnchor(h.height);
  if (
    first.payload.length !== (anchor ? ANCHOR_PAYLOAD_LEN : 4) ||
    first.payload.readUInt32LE(0) !== h.height
  ) {
    throw new BlockError(
      "BAD_COINBASE_PAYLOAD",
      anchor
        ? `an era anchor's coinbase payload must be the block height (u32 LE) and its producer's ${ANCHOR_PAYLOAD_LEN - 4}-byte VRF proof`
        : "coinbase payload must be the block height (u32 LE)",
    );
  }
  const txids: Buffer[] = [];
  const known = rememberedTxids(block);
  const seen = new Set<string>();
  let registrations = 0;
  let evidence = 0;
  let certificates = 0;
  let certificate: Certificate | undefined;
  let voteOffences: VoteOffence[] | undefined;
  block.txs.forEach((tx, i) => {
    if (i > 0 && tx.kind === TxKind.Coinbase)
      throw new BlockError("EXTRA_COINBASE", `transaction ${i} is a second coinbase`);
    if (tx.kind === TxKind.MasternodeRegister && ++registrations > MAX_REGISTRATIONS_PER_BLOCK) {
      throw new BlockError(
        "MN_TOO_MANY_REGISTRATIONS",
        `more than ${MAX_REGISTRATIONS_PER_BLOCK} masternode registrations in one block`,
      );
    }
    if (
      (tx.kind === TxKind.Evidence || tx.kind === TxKind.VoteEvidence) &&
      ++evidence > MAX_EVIDENCE_PER_BLOCK
    ) {
      throw new BlockError(
        "TOO_MANY_EVIDENCE",
        `more than ${MAX_EVIDENCE_PER_BLOCK} Evidence and VoteEvidence transactions in one block`,
      );
    }
    if (tx.kind === TxKind.Finality && ++certificates > MAX_CERTIFICATES_PER_BLOCK) {
      throw new BlockError(
        "TOO_MANY_CERTIFICATES",
        `more than ${MAX_CERTIFICATES_PER_BLOCK} Finality transaction in one block`,
      );
    }
    checkTxSanity(tx);
    if (tx.kind === TxKind.Finality) certificate = decodeFinalityTx(tx);
    if (tx.kind === TxKind.VoteEvidence) (voteOffences ??= []).push(decodeVoteEvidenceTx(tx));
    const id = known?.[i] ?? txid(tx);
    const k = id.toString("latin1");
    if (seen.has(k)) throw new BlockError("DUPLICATE_TX", `transaction ${id.toString("hex")} appears twice`);
    seen.add(k);
    txids.push(id);
  });
  if (!merkleRoot(txids).equals(h.merkleRoot))
    throw new BlockError("BAD_MERKLE_ROOT", "merkle root does not match the transactions");
  const out: CheckedBlock = { block, hash: blockHash(h), txids, size };
  if (certificate) out.certificate = certificate;
  if (voteOffences) out.voteOffences = voteOffences;
  return out;
}

/**
 * Ban score of the timestamp rules: 0. The block is refused, but a producer whose clock is off is
 * a fault of the network, not proof of an attack, and the checks come before the producer's
 * signature is verified, so the sender may not even be the producer.
 */
export const TIME_RULE_SCORE = 0;

/**
 * Header rules that need the parent: linkage, height, timestamps against the parent, the slot
 * and the local clock, the producer's entitlement for (height, round), and its signature.
 */
export function checkHeaderContext(checked: CheckedBlock, ctx: BlockContext): void {
  const h = checked.block.header;
  if (!h.prevHash.equals(ctx.parentHash))
    throw new BlockError("BAD_PREV_HASH", "previous hash does not match the parent");
  if (h.height !== ctx.parentHeight + 1) {
    throw new BlockError("BAD_HEIGHT", `height ${h.height} is not parent height ${ctx.parentHeight} + 1`);
  }
  if (h.timestamp <= ctx.parentTimestamp) {
    throw new BlockError(
      "TIME_NOT_AFTER_PARENT",
      `timestamp ${h.timestamp} is not after the parent's ${ctx.parentTimestamp}`,
      TIME_RULE_SCORE,
    );
  }
  const slot = slotStart(ctx.params, ctx.parentTimestamp, h.round);
  if (h.timestamp < slot) {
    throw new BlockError(
      "TIME_BEFORE_SLOT",
      `timestamp ${h.timestamp} is before the slot of round ${h.round} (${slot})`,
      TIME_RULE_SCORE,
    );
  }
  const slotEnd = slotStart(ctx.params, ctx.parentTimestamp, h.round + 1);
  if (h.timestamp >= slotEnd) {
    // A round's block must be stamped inside its own slot: a producer that missed its turn cannot
    // come back later with an early-round block that outweighs the fallback already accepted.
    throw new BlockError(
      "TIME_AFTER_SLOT",
      `timestamp ${h.timestamp} is after the slot of round ${h.round} (ends ${slotEnd})`,
      TIME_RULE_SCORE,
    );
  }
  if (h.timestamp > ctx.now + ctx.params.maxFutureDriftMs) {
    // Not proof of malice (clocks drift); the block may become valid later.
    throw new BlockError(
      "TIME_TOO_FAR_IN_FUTURE",
      `timestamp ${h.timestamp} is too far ahead of local time ${ctx.now}`,
      TIME_RULE_SCORE,
    );
  }
  const expected = scheduledProducer(ctx.schedule, h.height, h.round, ctx.registry);
  if (!expected || !expected.operatorPubkey.equals(h.producer)) {
    throw new BlockError(
      "WRONG_PRODUCER",
      `producer ${h.producer.toString("hex")} is not scheduled for height ${h.height} round ${h.round}`,
    );
  }
  if (!ctx.signaturesChecked && !verifySignature(h.producer, blockSigMessage(checked.hash), h.signature)) {
    throw new BlockError("BAD_PRODUCER_SIGNATURE", "producer signature does not verify");
  }
}

/**
 * The body rules that need no UTXO set: every input signature (each signs its own txid with the
 * key it names), the registry rules that need no UTXO set, and the registry root. Side blocks
 * pass these before they are stored (see Chain.processBlock); connectTransactions checks the same
 * rules again in context. Returns the registry after the block (the parent's when unchanged), so
 * the caller can store its snapshot.
 */
export function checkBodyWithoutUtxos(checked: CheckedBlock, ctx: BlockContext): Registry {
  const { block, txids } = checked;
  for (let i = 1; i < block.txs.length; i++) {
    const tx = block.txs[i]!;
    const msg = txSigMessage(txids[i]!);
    const verified = new Set<string>();
    for (const input of tx.inputs) {
      const pair = input.pubkey.toString("latin1") + input.signature.toString("latin1");
      if (verified.has(pair)) continue;
      if (!verifySignature(input.pubkey, msg, input.signature)) {
        throw new BlockError("BAD_TX_SIGNATURE", `bad signature on input ${outpointKey(input.prevout)}`);
      }
      verified.add(pair);
    }
  }
  checkCertificate(checked, ctx);
  const after = registryAfterBlock(checked, ctx.registry);
  checkRegistryRoot(checked, after);
  return after;
}

/**
 * The registry after a block, from the registry after its parent and the block's transactions,
 * with every registry rule except the collateral's UTXO checks (R11–R13), which need the UTXO set
 * and run in connectTransactions. Returns `registry` itself when the block changes nothing.
 * Throws BlockError for a registry rule broken.
 */
export function registryAfterBlock(checked: CheckedBlock, registry: Registry): Registry {
  return registryAfterTxs(registry, checked.block.txs, checked.block.header.height);
}

/**
 * The finality rules that need the chain: C4–C6 of the block's Finality transaction, and V3 of
 * its VoteEvidence transactions (the votes' signatures cover this chain's genesis hash).
 */
function checkCertificate(checked: CheckedBlock, ctx: BlockContext): void {
  checkEraSeed(checked, ctx);
  if (checked.certificate) checkCertificateOnBranch(checked.certificate, ctx.finality);
  if (checked.voteOffences) {
    if (!ctx.finality)
      throw new BlockError("BAD_EVIDENCE", "vote evidence cannot be checked without the chain it is on");
    for (const o of checked.voteOffences) checkVoteOffenceSignatures(o, ctx.finality.genesisHash);
  }
}

/**
 * An era anchor's VRF proof (docs/CONSENSUS.md, "Eras and the voter set"): by the block's
 * producer, over the genesis hash, the era and the previous era's seed on this branch. Like a
 * signature, not checked again for a stored block whose signatures were checked when it was
 * stored.
 */
function checkEraSeed(checked: CheckedBlock, ctx: BlockContext): void {
  const h = checked.block.header;
  if (!isEraAnchor(h.height) || ctx.signaturesChecked) return;
  const fail = (why: string): BlockError => new BlockError("BAD_COINBASE_PAYLOAD", `era seed: ${why}`);
  if (!ctx.finality) throw fail("cannot be checked without the chain it is on");
  const era = eraOfFinalHeight(h.height);
  const previous = ctx.finality.eraSeed(era - 1);
  if (!previous) throw fail(`the seed of era ${era - 1} (its anchor on this branch) is unknown`);
  const input = eraSeedInput(ctx.finality.genesisHash, era, previous);
  if (!vrfVerify(h.producer, anchorProof(checked.block.txs[0]!.payload), input))
    throw fail(`the producer's VRF proof for era ${era} does not verify`);
}

/** The highest block height certified on a branch once this block is on it. */
export function certifiedAfter(checked: CheckedBlock, parentCertified: number): number {
  return checked.certificate ? finalHeightOf(checked.certificate) : parentCertified;
}

function checkRegistryRoot(checked: CheckedBlock, after: Registry): void {
  if (!registryRoot(after).equals(checked.block.header.mnRoot)) {
    throw new BlockError("BAD_MN_ROOT", "masternode registry root does not match");
  }
}

/**
 * Checks one non-coinbase transaction's inputs against a UTXO view: every input exists and is
 * mature, its key matches the output's address, its signature verifies, and outputs do not exceed
 * inputs. Returns the fee and the spent entries. Used by blocks and by the mempool.
 */
export function checkTxInputs(
  tx: Tx,
  id: Buffer,
  view: UtxoView,
  spendHeight: number,
  params: Pick<ChainParams, "coinbaseMaturity">,
  /**
   * false only for a transaction whose exact bytes already passed this check in a connected block
   * (the mempool taking back a disconnected block's transactions): signatures cannot have changed.
   */
  verifySignatures = true,
): { fee: bigint; spent: SpentOutput[] } {
  let inSum = 0n;
  const spent: SpentOutput[] = [];
  const msg = txSigMessage(id);
  // ed25519 is deterministic: one key signs one txid with one signature, so verify each pair once.
  const verified = new Set<string>();
  for (const input of tx.inputs) {
    const entry = view.getUtxo(input.prevout);
    if (!entry)
      throw new BlockError(
        "MISSING_INPUT",
        `input ${outpointKey(input.prevout)} is not an unspent output`,
        100,
      );
    if (entry.coinbase && entry.height > 0 && spendHeight - entry.height < params.coinbaseMaturity) {
      throw new BlockError(
        "IMMATURE_COINBASE_SPEND",
        `coinbase output from height ${entry.height} is not mature at ${spendHeight}`,
      );
    }
    if (!pubkeyHash(input.pubkey).equals(entry.address)) {
      throw new BlockError(
        "INPUT_KEY_MISMATCH",
        `input ${outpointKey(input.prevout)} key does not match the output address`,
      );
    }
    const pair = input.pubkey.toString("latin1") + input.signature.toString("latin1");
    if (verifySignatures && !verified.has(pair)) {
      if (!verifySignature(input.pubkey, msg, input.signature)) {
        throw new BlockError("BAD_TX_SIGNATURE", `bad signature on input ${outpointKey(input.prevout)}`);
      }
      verified.add(pair);
    }
    inSum += entry.amount;
    spent.push({ outpoint: input.prevout, entry });
  }
  let outSum = 0n;
  for (const o of tx.outputs) outSum += o.amount;
  if (outSum > inSum)
    throw new BlockError("OUTPUTS_EXCEED_INPUTS", `outputs ${outSum} exceed inputs ${inSum}`);
  return { fee: inSum - outSum, spent };
}

/**
 * Applies a block's transactions to a view: checks every input (no double spend within the block
 * or against the set), the coinbase amount and split, and the registry root. Outputs created
 * earlier in the same block may be spent later in it. Returns the changes; writes nothing.
 */
export function connectTransactions(checked: CheckedBlock, ctx: BlockContext, view: UtxoView): BlockChanges {
  const { block, txids } = checked;
  const height = block.header.height;
  const created = new Map<string, SpentOutput>();
  const spentKeys = new Set<string>();
  const overlay: UtxoView = {
    getUtxo(o) {
      const k = outpointBytes(o).toString("latin1");
      if (spentKeys.has(k)) return undefined;
      return created.get(k)?.entry ?? view.getUtxo(o);
    },
    isSlashed: (op) => view.isSlashed?.(op) === true,
  };
  const spent: SpentOutput[] = [];
  checkCertificate(checked, ctx);
  const registry = new RegistryBuilder(ctx.registry);
  let fees = 0n;
  for (let i = 1; i < block.txs.length; i++) {
    const tx = block.txs[i]!;
    for (const input of tx.inputs) {
      if (spentKeys.has(outpointBytes(input.prevout).toString("latin1"))) {
        throw new BlockError(
          "DOUBLE_SPEND",
          `output ${outpointKey(input.prevout)} is spent twice in this block`,
        );
      }
    }
    const r = checkTxInputs(tx, txids[i]!, overlay, height, ctx.params, !ctx.signaturesChecked);
    // Registry action and collateral removals, against the outputs as this transaction sees them.
    const slashedBefore = registry.slashed.length;
    registry.apply(tx, height, overlay);
    fees += r.fee;
    const burned: SpentOutput[] = [];
    for (const e of registry.slashed.slice(slashedBefore)) {
      // Evidence burns the offender's collateral: it leaves the UTXO set with the entry.
      const entry = e.collateral ? overlay.getUtxo(e.collateral) : undefined;
      if (e.collateral && entry) burned.push({ outpoint: e.collateral, entry });
    }
    for (const s of [...r.spent, ...burned]) {
      const k = outpointBytes(s.outpoint).toString("latin1");
      spentKeys.add(k);
      if (created.has(k)) created.delete(k);
      else spent.push(s);
    }
    addOutputs(created, tx, txids[i]!, height, false);
  }
  const coinbase = block.txs[0]!;
  const producer = scheduledProducer(ctx.schedule, height, block.header.round, ctx.registry);
  if (!producer) throw new BlockError("WRONG_PRODUCER", "empty registry: no producer");
  const expected = coinbaseOutputs(ctx.registry, producer, BLOCK_REWARD, fees);
  let got = 0n;
  for (const o of coinbase.outputs) got += o.amount;
  let want = 0n;
  for (const o of expected) want += o.amount;
  if (got !== want)
    throw new BlockError("BAD_COINBASE_AMOUNT", `coinbase pays ${got}, expected reward plus fees ${want}`);
  const sameSplit =
    expected.length === coinbase.outputs.length &&
    expected.every(
      (o, i) => o.amount === coinbase.outputs[i]!.amount && o.address.equals(coinbase.outputs[i]!.address),
    );
  if (!sameSplit)
    throw new BlockError("BAD_COINBASE_SPLIT", "coinbase does not split the reward as the reward rule says");
  addOutputs(created, coinbase, txids[0]!, height, true);

  const after = registry.finish();
  checkRegistryRoot(checked, after);
  return {
    spent,
    created: [...created.values()],
    fees,
    registry: registry.changed ? after : null,
    slashed: registry.slashed.map((e) => e.operatorPubkey),
  };
}

function addOutputs(
  into: Map<string, SpentOutput>,
  tx: Tx,
  id: Buffer,
  height: number,
  coinbase: boolean,
): void {
  tx.outputs.forEach((o, index) => {
    const outpoint = { txid: id, index };
    into.set(outpointBytes(outpoint).toString("latin1"), {
      outpoint,
      entry: { amount: o.amount, address: o.address, height, coinbase },
    });
  });
}

/** Header hash helper re-exported for callers that only validate headers. */
export { blockHash };
