/**
 * Masternode registry transactions: the payload codec (Register, Update, Deregister), the bytes
 * the operator signs, and the helpers that build and sign the transactions (RPC, wallets, tests).
 * The rules these payloads must follow (R1–R19) are in registryTx.ts, which re-exports all of
 * this; import it from there.
 */
import { Writer, decodeExact, type Reader } from "../codec/index.js";
import { ADDRESS_HASH_LEN } from "../crypto/address.js";
import { PUBKEY_LEN, SIGNATURE_LEN, type KeyPair } from "../crypto/ed25519.js";
import { TX_VERSION } from "../primitives/constants.js";
import { TxKind, txSigMessage, txid, type OutPoint, type Tx, type TxOut } from "../primitives/tx.js";
import { MAX_SERVICE_ADDRESS_LEN } from "./registry.js";
import type { Tier } from "./tier.js";

/** Domain tag of the operator's consent signature on a registration. */
export const SIG_DOMAIN_MN_REG = Buffer.from("TIME/mn-reg/v1", "utf8");

export interface RegisterPayload {
  operatorPubkey: Buffer;
  /** Service address "host:port". */
  address: string;
  tier: Tier;
  /** 20-byte pubkey hash that receives the masternode's reward share. */
  rewardAddress: Buffer;
  /** null exactly for tier Free. */
  collateral: OutPoint | null;
  /** The key that owns the collateral and may later update or deregister the masternode. */
  ownerPubkey: Buffer;
  /** ed25519 by operatorPubkey over registerSigMessage(the fields above). */
  operatorSig: Buffer;
}

export type RegisterBody = Omit<RegisterPayload, "operatorSig">;

export interface UpdatePayload {
  operatorPubkey: Buffer;
  address: string;
  rewardAddress: Buffer;
}

export interface DeregisterPayload {
  operatorPubkey: Buffer;
}

export type RegistryTxPayload =
  | ({ kind: TxKind.MasternodeRegister } & RegisterPayload)
  | ({ kind: TxKind.MasternodeUpdate } & UpdatePayload)
  | ({ kind: TxKind.MasternodeDeregister } & DeregisterPayload);

// ---- codec ----

function writeRegisterBody(w: Writer, p: RegisterBody): void {
  w.fixed(p.operatorPubkey, PUBKEY_LEN).string(p.address, MAX_SERVICE_ADDRESS_LEN).u8(p.tier);
  w.fixed(p.rewardAddress, ADDRESS_HASH_LEN);
  if (p.collateral) w.u8(1).fixed(p.collateral.txid, 32).u32(p.collateral.index);
  else w.u8(0);
  w.fixed(p.ownerPubkey, PUBKEY_LEN);
}

/** The bytes the operator signs: "TIME/mn-reg/v1" ‖ the payload without operatorSig. */
export function registerSigMessage(p: RegisterBody): Buffer {
  const w = new Writer(200 + p.address.length);
  w.raw(SIG_DOMAIN_MN_REG);
  writeRegisterBody(w, p);
  return w.toBuffer();
}

export function encodeRegisterPayload(p: RegisterPayload): Buffer {
  const w = new Writer(256 + p.address.length);
  writeRegisterBody(w, p);
  w.fixed(p.operatorSig, SIGNATURE_LEN);
  return w.toBuffer();
}

export function encodeUpdatePayload(p: UpdatePayload): Buffer {
  const w = new Writer(96 + p.address.length);
  w.fixed(p.operatorPubkey, PUBKEY_LEN).string(p.address, MAX_SERVICE_ADDRESS_LEN);
  w.fixed(p.rewardAddress, ADDRESS_HASH_LEN);
  return w.toBuffer();
}

export function encodeDeregisterPayload(p: DeregisterPayload): Buffer {
  return new Writer(PUBKEY_LEN).fixed(p.operatorPubkey, PUBKEY_LEN).toBuffer();
}

/** Decodes a Register payload; throws CodecError. The tier byte is returned as read (see R2). */
export function decodeRegisterPayload(buf: Uint8Array): RegisterPayload {
  return decodeExact(buf, (r: Reader) => {
    const operatorPubkey = r.fixed(PUBKEY_LEN);
    const address = r.string(MAX_SERVICE_ADDRESS_LEN);
    const tier = r.u8() as Tier;
    const rewardAddress = r.fixed(ADDRESS_HASH_LEN);
    const collateral = r.bool() ? { txid: r.fixed(32), index: r.u32() } : null;
    const ownerPubkey = r.fixed(PUBKEY_LEN);
    const operatorSig = r.fixed(SIGNATURE_LEN);
    return { operatorPubkey, address, tier, rewardAddress, collateral, ownerPubkey, operatorSig };
  });
}

export function decodeUpdatePayload(buf: Uint8Array): UpdatePayload {
  return decodeExact(buf, (r: Reader) => ({
    operatorPubkey: r.fixed(PUBKEY_LEN),
    address: r.string(MAX_SERVICE_ADDRESS_LEN),
    rewardAddress: r.fixed(ADDRESS_HASH_LEN),
  }));
}

export function decodeDeregisterPayload(buf: Uint8Array): DeregisterPayload {
  return decodeExact(buf, (r: Reader) => ({ operatorPubkey: r.fixed(PUBKEY_LEN) }));
}

// ---- builders (RPC, wallets, tests) ----

/** An input to sign: a bare outpoint is signed by the transaction's default key. */
export type InputSpec = OutPoint | { prevout: OutPoint; key: KeyPair };

/**
 * Builds a transaction of `kind` with `payload`, spending `inputs` and paying `outputs`, and signs
 * every input over its txid (bare outpoints with `defaultKey`). The fee is Σ inputs − Σ outputs.
 */
export function buildSignedTx(
  kind: TxKind,
  payload: Buffer,
  inputs: readonly InputSpec[],
  outputs: readonly TxOut[],
  defaultKey: KeyPair,
): Tx {
  const specs = inputs.map((i) =>
    "prevout" in i ? { prevout: i.prevout, key: i.key } : { prevout: i, key: defaultKey },
  );
  const tx: Tx = {
    version: TX_VERSION,
    kind,
    inputs: specs.map((s) => ({ prevout: s.prevout, pubkey: s.key.publicKey, signature: Buffer.alloc(64) })),
    outputs: outputs.map((o) => ({ amount: o.amount, address: o.address })),
    payload,
  };
  const msg = txSigMessage(txid(tx));
  const sigs = new Map<string, Buffer>();
  tx.inputs.forEach((input, i) => {
    const key = specs[i]!.key;
    const id = key.publicKey.toString("hex");
    let sig = sigs.get(id);
    if (!sig) {
      sig = key.sign(msg);
      sigs.set(id, sig);
    }
    input.signature = sig;
  });
  return tx;
}

/** The signed Register payload: the operator key consents to this owner, tier and collateral. */
export function makeRegisterPayload(
  operatorKey: KeyPair,
  body: Omit<RegisterBody, "operatorPubkey">,
): Buffer {
  const full: RegisterBody = { ...body, operatorPubkey: operatorKey.publicKey };
  return encodeRegisterPayload({ ...full, operatorSig: operatorKey.sign(registerSigMessage(full)) });
}

export interface MakeRegisterTxOptions {
  /** Owns the collateral; signs the bare-outpoint inputs (at least one input must be its). */
  ownerKey: KeyPair;
  /** The masternode's operator key; signs its consent. */
  operatorKey: KeyPair;
  address: string;
  tier: Tier;
  rewardAddress: Buffer;
  /** Required for Bronze, Silver and Gold; null for Free. Not spent by this transaction. */
  collateral: OutPoint | null;
  inputs: readonly InputSpec[];
  outputs: readonly TxOut[];
}

export function makeRegisterTx(o: MakeRegisterTxOptions): Tx {
  const payload = makeRegisterPayload(o.operatorKey, {
    address: o.address,
    tier: o.tier,
    rewardAddress: o.rewardAddress,
    collateral: o.collateral,
    ownerPubkey: o.ownerKey.publicKey,
  });
  return buildSignedTx(TxKind.MasternodeRegister, payload, o.inputs, o.outputs, o.ownerKey);
}

export interface MakeUpdateTxOptions {
  /** The entry's owner key (for a genesis entry: its operator key); signs bare-outpoint inputs. */
  ownerKey: KeyPair;
  operatorPubkey: Buffer;
  address: string;
  rewardAddress: Buffer;
  inputs: readonly InputSpec[];
  outputs: readonly TxOut[];
}

export function makeUpdateTx(o: MakeUpdateTxOptions): Tx {
  const payload = encodeUpdatePayload({
    operatorPubkey: o.operatorPubkey,
    address: o.address,
    rewardAddress: o.rewardAddress,
  });
  return buildSignedTx(TxKind.MasternodeUpdate, payload, o.inputs, o.outputs, o.ownerKey);
}

export interface MakeDeregisterTxOptions {
  /** The entry's owner key (for a genesis entry: its operator key); signs bare-outpoint inputs. */
  ownerKey: KeyPair;
  operatorPubkey: Buffer;
  inputs: readonly InputSpec[];
  outputs: readonly TxOut[];
}

export function makeDeregisterTx(o: MakeDeregisterTxOptions): Tx {
  const payload = encodeDeregisterPayload({ operatorPubkey: o.operatorPubkey });
  return buildSignedTx(TxKind.MasternodeDeregister, payload, o.inputs, o.outputs, o.ownerKey);
}
