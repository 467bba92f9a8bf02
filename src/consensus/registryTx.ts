/**
 * Masternode registry transactions: payload codec, consensus rules, the registry state machine
 * used by block validation and the mempool, and helpers that build the transactions.
 * (The payload codec and the builders are in registryPayloads.ts, re-exported from here.)
 *
 * ===================================== CONSENSUS RULES =====================================
 * (docs/CONSENSUS.md copies this block; the code below is the reference.)
 *
 * PAYLOADS. Canonical codec: little-endian integers, u32 length prefix on strings. A payload must
 * decode exactly (no trailing bytes), else BAD_MASTERNODE_TX.
 *   Register   (kind 2): operatorPubkey bytes[32] | address string<255> | tier u8 |
 *                        rewardAddress bytes[20] | hasCollateral u8 (0 or 1)
 *                        [ collateralTxid bytes[32] | collateralIndex u32 ]  (only if 1) |
 *                        ownerPubkey bytes[32] | operatorSig bytes[64]
 *   Update     (kind 3): operatorPubkey bytes[32] | address string<255> | rewardAddress bytes[20]
 *   Deregister (kind 4): operatorPubkey bytes[32]
 *   operatorSig = ed25519 by operatorPubkey over "TIME/mn-reg/v1" ‖ (every payload byte before
 *   operatorSig). The operator consents, so nobody can register someone else's operator key.
 *
 * CONTEXT-FREE RULES (checkTxSanity, i.e. checkBlockSanity and mempool admission), after the rules
 * every non-coinbase transaction follows (TX_VERSION, ≥ 1 input, ≥ 1 output, output amounts,
 * no duplicate input):
 *   R1 BAD_MASTERNODE_TX  the payload decodes exactly for its kind.
 *   R2 BAD_MASTERNODE_TX  tier ∈ {0 Free, 1 Bronze, 2 Silver, 3 Gold}.
 *   R3 BAD_MASTERNODE_TX  address (Register, Update) is "host:port": host = 1+ printable ASCII
 *                         characters (0x21–0x7E), port = 1–5 decimal digits with value 1–65535;
 *                         at most 255 bytes in all.
 *   R4 MN_FREE_TIER       (Register) tier is not Free: Free entries come only from the genesis,
 *                         so every registration on chain posts collateral.
 *      MN_BAD_COLLATERAL  (Register) Bronze, Silver and Gold have hasCollateral = 1.
 *   R5 MN_BAD_COLLATERAL  (Register) no input of the transaction spends the collateral outpoint.
 *
 * STATE RULES. The registry R is updated by the block's transactions in block order, starting
 * from the registry after the parent. For each non-coinbase transaction T, in order:
 *   (a) If T is a registry kind, its action is checked against R as it stands after the earlier
 *       transactions of the block, then applied:
 *       Register:
 *         R6  MN_BAD_OPERATOR_SIG   operatorSig verifies under operatorPubkey.
 *         R7  MN_UNAUTHORISED       some input of T has pubkey = ownerPubkey. (Inputs are signed
 *                                   over the txid, which covers the payload, so the owner signed
 *                                   the registration.)
 *         R8  MN_DUPLICATE_OPERATOR operatorPubkey is not in R.
 *         R9  MN_COLLATERAL_IN_USE  the collateral outpoint is not the collateral of an entry of R.
 *         R10 MN_REGISTRY_FULL      |R| < MAX_REGISTRY_SIZE (20,000).
 *         R11 MN_COLLATERAL_MISSING the collateral outpoint is unspent: in the UTXO set or created
 *                                   by an earlier transaction of the same block, and not spent by
 *                                   an earlier transaction of the block.
 *         R12 MN_BAD_COLLATERAL     its amount = TIER_COLLATERAL[tier] exactly (1,000 / 10,000 /
 *                                   100,000 TIME).
 *         R13 MN_BAD_COLLATERAL     its address = pubkeyHash(ownerPubkey).
 *         R19 MN_SLASHED_OPERATOR   operatorPubkey was not slashed by evidence (on the main chain
 *                                   below this block, or earlier in this block). Chain state: it
 *                                   runs with R11–R13.
 *         Then R gains { operatorPubkey, address, tier, rewardAddress, collateral (or none),
 *         ownerPubkey, registeredHeight = this block's height }.
 *       Update / Deregister:
 *         R14 MN_UNKNOWN            operatorPubkey is in R.
 *         R15 MN_UNAUTHORISED       some input of T has pubkey = the entry's ownerPubkey, or, for
 *                                   an entry with no owner (a genesis entry), = operatorPubkey.
 *         Update replaces the entry's address and rewardAddress (tier, collateral, owner and
 *         registeredHeight stay). Deregister removes the entry.
 *   (b) Then, for each input of T (of ANY kind, in input order): if its outpoint is the collateral
 *       of an entry of R, that entry is removed. Spending the collateral deregisters.
 *   (c) If T is an Evidence transaction (src/consensus/evidence.ts, rules E1–E3 context-free):
 *         E4  EVIDENCE_UNKNOWN_OFFENDER  its producer is in R. The entry is removed (it leaves the
 *                                        schedule and the reward split from the next block), its
 *                                        operator key is slashed for good (R19), and its
 *                                        collateral, if any and still unspent, is burned.
 * Per block (checkBlockSanity):
 *   R18 MN_TOO_MANY_REGISTRATIONS  at most MAX_REGISTRATIONS_PER_BLOCK (8) Register transactions.
 *   E5  TOO_MANY_EVIDENCE          at most MAX_EVIDENCE_PER_BLOCK (8) Evidence transactions.
 * After the last transaction:
 *   R16 REGISTRY_EMPTY   |R| ≥ 1. No block may leave the chain without masternodes.
 *   R17 BAD_MN_ROOT      header.mnRoot = registryRoot(R).
 * All these codes have ban score 100, and each verdict is permanent for the block hash (every
 * byte the rules read is covered by the txids, hence by the merkle root and the block hash).
 *
 * Order of checks inside a block (connectTransactions): per transaction, the input rules
 * (DOUBLE_SPEND, MISSING_INPUT ... OUTPUTS_EXCEED_INPUTS) run before (a) and (b); after the loop
 * come the coinbase rules (BAD_COINBASE_AMOUNT, BAD_COINBASE_SPLIT), then R16, then R17.
 *
 * TIMING. The reward split of block h uses the registry after block h − 1 (its parent); the
 * producer schedule uses h's epoch schedule, fixed at the epoch's anchor, filtered by that same
 * registry. So a masternode registered in block h is paid from block h + 1 and scheduled from
 * the first epoch whose anchor is at or after h; one deregistered, slashed, or whose collateral
 * is spent in block h is still paid in block h and neither paid nor scheduled from h + 1.
 *
 * SIDE BRANCHES. A block that does not extend the tip is checked, before it is stored, with
 * every state rule except R11–R13 (they need the UTXO set at its parent); the registry after it
 * depends only on the parent's registry and the block's transactions, so it is computed and
 * stored too (snapshots are content-addressed by mnRoot). R11–R13 run when the branch is
 * connected during a reorg.
 * ===========================================================================================
 */
import { CodecError } from "../codec/index.js";
import { pubkeyHash } from "../crypto/address.js";
import { verifySignature } from "../crypto/ed25519.js";
import { BlockError } from "../primitives/errors.js";
import { TxKind, outpointKey, type OutPoint, type Tx } from "../primitives/tx.js";
import { outpointBytes, type UtxoView } from "../primitives/utxo.js";
import {
  MAX_REGISTRY_SIZE,
  MAX_SERVICE_ADDRESS_LEN,
  type MasternodeEntry,
  type Registry,
} from "./registry.js";
import { TIER_COLLATERAL, Tier, isTier, tierName } from "./tier.js";
import { decodeEquivocation, offenderOf } from "./evidence.js";
import { decodeVoteOffence, voteOffender } from "./voteEvidence.js";
import {
  decodeDeregisterPayload,
  decodeRegisterPayload,
  decodeUpdatePayload,
  registerSigMessage,
  type RegistryTxPayload,
} from "./registryPayloads.js";

// The payload codec and the builders: the rest of the node imports them from here.
export {
  SIG_DOMAIN_MN_REG,
  buildSignedTx,
  decodeDeregisterPayload,
  decodeRegisterPayload,
  decodeUpdatePayload,
  encodeDeregisterPayload,
  encodeRegisterPayload,
  encodeUpdatePayload,
  makeDeregisterTx,
  makeRegisterPayload,
  makeRegisterTx,
  makeUpdateTx,
  registerSigMessage,
  type DeregisterPayload,
  type InputSpec,
  type MakeDeregisterTxOptions,
  type MakeRegisterTxOptions,
  type MakeUpdateTxOptions,
  type RegisterBody,
  type RegisterPayload,
  type RegistryTxPayload,
  type UpdatePayload,
} from "./registryPayloads.js";

/**
 * Register transactions one block may carry: onboarding stays quick (8 a block is over 1,000 a
 * day on mainnet), and nobody can reshape the registry wholesale in one block.
 */
export const MAX_REGISTRATIONS_PER_BLOCK = 8;

export function isRegistryTxKind(kind: TxKind): boolean {
  return (
    kind === TxKind.MasternodeRegister ||
    kind === TxKind.MasternodeUpdate ||
    kind === TxKind.MasternodeDeregister
  );
}

const SERVICE_ADDRESS = /^[\x21-\x7e]+:([0-9]{1,5})$/;

/** Rule R3: "host:port" with a printable-ASCII host and a port in 1–65535, ≤ 255 bytes. */
export function isServiceAddress(s: string): boolean {
  if (typeof s !== "string" || s.length > MAX_SERVICE_ADDRESS_LEN) return false;
  const m = SERVICE_ADDRESS.exec(s);
  if (!m) return false;
  const port = Number(m[1]);
  return port >= 1 && port <= 65535;
}

function malformed(tx: Tx, msg: string): BlockError {
  return new BlockError("BAD_MASTERNODE_TX", `${TxKind[tx.kind]} transaction: ${msg}`);
}

function decodePayloadOf(tx: Tx): RegistryTxPayload {
  try {
    switch (tx.kind) {
      case TxKind.MasternodeRegister:
        return { kind: tx.kind, ...decodeRegisterPayload(tx.payload) };
      case TxKind.MasternodeUpdate:
        return { kind: tx.kind, ...decodeUpdatePayload(tx.payload) };
      case TxKind.MasternodeDeregister:
        return { kind: tx.kind, ...decodeDeregisterPayload(tx.payload) };
      default:
        throw malformed(tx, "not a masternode transaction kind");
    }
  } catch (e) {
    if (e instanceof CodecError) throw malformed(tx, `payload does not decode: ${e.message}`);
    throw e;
  }
}

/**
 * Context-free rules R1–R5 of a registry transaction. Returns the decoded payload. Called by
 * checkTxSanity; the transaction's generic rules (inputs, outputs, version) are checked there.
 */
export function checkRegistryTxSanity(tx: Tx): RegistryTxPayload {
  const p = decodePayloadOf(tx);
  if (p.kind === TxKind.MasternodeDeregister) return p;
  if (p.kind === TxKind.MasternodeRegister && !isTier(p.tier)) {
    throw malformed(tx, `unknown tier ${p.tier as number}`);
  }
  if (!isServiceAddress(p.address)) {
    throw malformed(tx, `service address ${JSON.stringify(p.address)} is not host:port`);
  }
  if (p.kind !== TxKind.MasternodeRegister) return p;
  if (p.tier === Tier.Free) {
    throw new BlockError(
      "MN_FREE_TIER",
      "tier free cannot be registered on chain: free masternodes come only from the genesis; post collateral for bronze, silver or gold",
    );
  }
  if (!p.collateral) {
    throw new BlockError("MN_BAD_COLLATERAL", `tier ${tierName(p.tier)} needs a collateral outpoint`);
  }
  if (p.collateral) {
    const c = p.collateral;
    if (tx.inputs.some((i) => i.prevout.index === c.index && i.prevout.txid.equals(c.txid))) {
      throw new BlockError(
        "MN_BAD_COLLATERAL",
        `the registration spends its own collateral ${outpointKey(c)}`,
      );
    }
  }
  return p;
}

// ---- the registry state machine ----

const collateralIndexCache = new WeakMap<Registry, Map<string, Buffer>>();

function collateralKey(o: OutPoint): string {
  return outpointBytes(o).toString("latin1");
}

/** outpoint → operator key of every entry with a collateral; cached per (immutable) registry. */
function collateralIndex(reg: Registry): Map<string, Buffer> {
  let idx = collateralIndexCache.get(reg);
  if (!idx) {
    idx = new Map();
    for (const e of reg) if (e.collateral) idx.set(collateralKey(e.collateral), e.operatorPubkey);
    collateralIndexCache.set(reg, idx);
  }
  return idx;
}

function searchOperator(reg: Registry, key: Buffer): { found: boolean; index: number } {
  let lo = 0;
  let hi = reg.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const c = Buffer.compare(reg[mid]!.operatorPubkey, key);
    if (c === 0) return { found: true, index: mid };
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return { found: false, index: lo };
}

function hasInputBy(tx: Tx, pubkey: Buffer): boolean {
  return tx.inputs.some((i) => i.pubkey.equals(pubkey));
}

/**
 * The registry as a block's transactions change it, copy-on-write: the starting registry (which
 * may be a shared, cached snapshot) is never mutated. Apply transactions in block order with
 * `apply`, then call `finish` for the final registry (rule R16).
 */
export class RegistryBuilder {
  private entries: MasternodeEntry[] | null = null;
  private collaterals: Map<string, Buffer> | null = null;
  /** Entries removed by Evidence transactions so far, in order (their collateral is burned). */
  readonly slashed: MasternodeEntry[] = [];

  constructor(private readonly base: Registry) {}

  /** The registry as it stands now (the starting one if nothing changed). */
  get registry(): Registry {
    return this.entries ?? this.base;
  }

  /** Whether any transaction changed the registry (it may still have the same root). */
  get changed(): boolean {
    return this.entries !== null;
  }

  find(operatorPubkey: Buffer): MasternodeEntry | undefined {
    const reg = this.registry;
    const s = searchOperator(reg, operatorPubkey);
    return s.found ? reg[s.index] : undefined;
  }

  /** Operator key of the entry whose collateral is `o`, if any. */
  collateralHolder(o: OutPoint): Buffer | undefined {
    return (this.collaterals ?? collateralIndex(this.base)).get(collateralKey(o));
  }

  private mutable(): { entries: MasternodeEntry[]; collaterals: Map<string, Buffer> } {
    if (!this.entries || !this.collaterals) {
      this.entries = this.base.slice();
      this.collaterals = new Map(collateralIndex(this.base));
    }
    return { entries: this.entries, collaterals: this.collaterals };
  }

  private insert(e: MasternodeEntry): void {
    const m = this.mutable();
    const s = searchOperator(m.entries, e.operatorPubkey);
    m.entries.splice(s.index, 0, e);
    if (e.collateral) m.collaterals.set(collateralKey(e.collateral), e.operatorPubkey);
  }

  private replace(e: MasternodeEntry): void {
    const m = this.mutable();
    const s = searchOperator(m.entries, e.operatorPubkey);
    m.entries[s.index] = e;
  }

  private remove(operatorPubkey: Buffer): void {
    const m = this.mutable();
    const s = searchOperator(m.entries, operatorPubkey);
    if (!s.found) return;
    const [gone] = m.entries.splice(s.index, 1);
    if (gone?.collateral) m.collaterals.delete(collateralKey(gone.collateral));
  }

  /**
   * Applies one non-coinbase transaction of a block at `height`: step (a), the registry action of
   * a registry kind (rules R6–R15), then step (b), removal of every entry whose collateral it
   * spends. With `view` (the UTXO set as the transaction sees it: earlier transactions of the
   * block applied), R11–R13 are checked too; without it they are skipped (side blocks).
   * Throws BlockError; a throw leaves the builder in an unspecified state, so discard it.
   */
  apply(tx: Tx, height: number, view?: UtxoView): void {
    if (tx.kind === TxKind.Coinbase) return;
    if (tx.kind === TxKind.Evidence || tx.kind === TxKind.VoteEvidence) {
      this.applyEvidence(tx);
      return;
    }
    if (isRegistryTxKind(tx.kind)) this.applyAction(tx, checkRegistryTxSanity(tx), height, view);
    const idx = this.collaterals ?? collateralIndex(this.base);
    if (idx.size === 0) return;
    for (const input of tx.inputs) {
      const holder = this.collateralHolder(input.prevout);
      if (holder) this.remove(holder);
    }
  }

  /**
   * Rule E4 (for Evidence and VoteEvidence alike): the offender must be registered; it is removed
   * and remembered as slashed.
   */
  private applyEvidence(tx: Tx): void {
    let offender: Buffer;
    try {
      offender =
        tx.kind === TxKind.VoteEvidence
          ? voteOffender(decodeVoteOffence(tx.payload))
          : offenderOf(decodeEquivocation(tx.payload));
    } catch (e) {
      if (e instanceof CodecError)
        throw new BlockError("BAD_EVIDENCE", `evidence does not decode: ${e.message}`);
      throw e;
    }
    const entry = this.find(offender);
    if (!entry) {
      throw new BlockError(
        "EVIDENCE_UNKNOWN_OFFENDER",
        `evidence against ${offender.toString("hex")}, which is not a registered masternode`,
      );
    }
    this.remove(entry.operatorPubkey);
    this.slashed.push(entry);
  }

  private applyAction(tx: Tx, p: RegistryTxPayload, height: number, view: UtxoView | undefined): void {
    const opHex = p.operatorPubkey.toString("hex");
    if (p.kind === TxKind.MasternodeRegister) {
      if (!verifySignature(p.operatorPubkey, registerSigMessage(p), p.operatorSig)) {
        throw new BlockError("MN_BAD_OPERATOR_SIG", `operator signature of ${opHex} does not verify`);
      }
      if (!hasInputBy(tx, p.ownerPubkey)) {
        throw new BlockError(
          "MN_UNAUTHORISED",
          `registration of ${opHex} has no input signed by its owner ${p.ownerPubkey.toString("hex")}`,
        );
      }
      if (this.find(p.operatorPubkey)) {
        throw new BlockError("MN_DUPLICATE_OPERATOR", `operator ${opHex} is already registered`);
      }
      if (p.collateral) {
        const holder = this.collateralHolder(p.collateral);
        if (holder) {
          throw new BlockError(
            "MN_COLLATERAL_IN_USE",
            `collateral ${outpointKey(p.collateral)} already backs masternode ${holder.toString("hex")}`,
          );
        }
      }
      if (this.registry.length >= MAX_REGISTRY_SIZE) {
        throw new BlockError("MN_REGISTRY_FULL", `the registry already holds ${MAX_REGISTRY_SIZE} entries`);
      }
      if (
        this.slashed.some((e) => e.operatorPubkey.equals(p.operatorPubkey)) ||
        view?.isSlashed?.(p.operatorPubkey) === true
      ) {
        throw new BlockError(
          "MN_SLASHED_OPERATOR",
          `operator ${opHex} was slashed for equivocation and cannot be registered again`,
        );
      }
      if (view && p.collateral) {
        const c = p.collateral;
        const utxo = view.getUtxo(c);
        if (!utxo) {
          throw new BlockError(
            "MN_COLLATERAL_MISSING",
            `collateral ${outpointKey(c)} is not an unspent output`,
          );
        }
        const want = TIER_COLLATERAL[p.tier];
        if (utxo.amount !== want) {
          throw new BlockError(
            "MN_BAD_COLLATERAL",
            `collateral ${outpointKey(c)} holds ${utxo.amount} units; tier ${tierName(p.tier)} needs exactly ${want}`,
          );
        }
        if (!utxo.address.equals(pubkeyHash(p.ownerPubkey))) {
          throw new BlockError(
            "MN_BAD_COLLATERAL",
            `collateral ${outpointKey(c)} is not owned by the owner key`,
          );
        }
      }
      this.insert({
        operatorPubkey: p.operatorPubkey,
        address: p.address,
        tier: p.tier,
        rewardAddress: p.rewardAddress,
        collateral: p.collateral,
        ownerPubkey: p.ownerPubkey,
        registeredHeight: height,
      });
      return;
    }
    const entry = this.find(p.operatorPubkey);
    if (!entry) throw new BlockError("MN_UNKNOWN", `operator ${opHex} is not registered`);
    const authority = entry.ownerPubkey ?? entry.operatorPubkey;
    if (!hasInputBy(tx, authority)) {
      throw new BlockError(
        "MN_UNAUTHORISED",
        `${TxKind[tx.kind]} of ${opHex} has no input signed by ${entry.ownerPubkey ? "its owner" : "its operator key"}`,
      );
    }
    if (p.kind === TxKind.MasternodeUpdate) {
      this.replace({ ...entry, address: p.address, rewardAddress: p.rewardAddress });
    } else {
      this.remove(entry.operatorPubkey);
    }
  }

  /** The registry after every applied transaction; rule R16 (never empty). */
  finish(): Registry {
    const reg = this.registry;
    if (reg.length === 0) {
      throw new BlockError("REGISTRY_EMPTY", "the block's transactions would leave no masternode registered");
    }
    return reg;
  }
}

/**
 * The registry after `txs` (a block's transactions, in order; a coinbase is skipped) are applied
 * to `registry` at `height`, with every state rule except R11–R13, which need the UTXO set.
 * Returns `registry` itself when nothing changed. Throws BlockError.
 */
export function registryAfterTxs(registry: Registry, txs: readonly Tx[], height: number): Registry {
  const b = new RegistryBuilder(registry);
  for (const tx of txs) b.apply(tx, height);
  return b.finish();
}

export interface RegistryTxCheck {
  /** The decoded payload, or null for a transaction that is not a registry kind. */
  payload: RegistryTxPayload | null;
  /** The registry as it would be after this transaction alone. */
  registry: Registry;
  /** Operator keys of the masternodes this transaction removes by spending their collateral. */
  releasedCollateralOf: Buffer[];
}

/**
 * Mempool admission: checks one transaction against the current registry and UTXO view with
 * every registry rule (R1–R16). Works for any non-coinbase kind: for a transfer it reports the
 * masternodes whose collateral it spends (and rejects it with REGISTRY_EMPTY if it would remove
 * the last one). Call it after checkTxSanity and checkTxInputs (R7/R15 rely on the inputs'
 * signatures having been verified there). `height` is the height the transaction would be mined
 * at (only used as the new entry's registeredHeight in the returned registry).
 *
 * Conflicts between pooled transactions (two registrations of one operator or one collateral)
 * are the mempool's to resolve: each is checked here against chain state only.
 */
export function checkRegistryTx(
  tx: Tx,
  registry: Registry,
  view: UtxoView,
  opts: { height?: number } = {},
): RegistryTxCheck {
  if (tx.kind === TxKind.Coinbase) throw new BlockError("BAD_MASTERNODE_TX", "a coinbase is not admitted");
  const payload = isRegistryTxKind(tx.kind) ? checkRegistryTxSanity(tx) : null;
  const b = new RegistryBuilder(registry);
  b.apply(tx, opts.height ?? 0, view);
  const after = b.finish();
  const released: Buffer[] = [];
  const idx = collateralIndex(registry);
  if (idx.size > 0) {
    for (const i of tx.inputs) {
      const holder = idx.get(collateralKey(i.prevout));
      if (holder) released.push(holder);
    }
  }
  return { payload, registry: after, releasedCollateralOf: released };
}
