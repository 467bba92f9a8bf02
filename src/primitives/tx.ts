import { CodecError, Reader, Writer, decodeExact } from "../codec/index.js";
import { ADDRESS_HASH_LEN } from "../crypto/address.js";
import { PUBKEY_LEN, SIGNATURE_LEN } from "../crypto/ed25519.js";
import { sha256d } from "../crypto/hash.js";
import { MAX_TX_INPUTS, MAX_TX_OUTPUTS, MAX_TX_PAYLOAD, SIG_DOMAIN_TX } from "./constants.js";

export enum TxKind {
  /** First transaction of a block: mints the reward plus fees. Payload = u32 height. */
  Coinbase = 0,
  /** Moves coins. */
  Transfer = 1,
  /** Masternode registration (payload defined in docs/CONSENSUS.md). */
  MasternodeRegister = 2,
  /** Masternode update of address or reward address. */
  MasternodeUpdate = 3,
  /** Masternode deregistration. */
  MasternodeDeregister = 4,
  /**
   * Equivocation evidence: two headers one producer signed for the same (height, round). No
   * inputs, no outputs; the payload is the evidence (docs/CONSENSUS.md). Its producer is removed
   * from the registry and its collateral burned.
   */
  Evidence = 5,
  /**
   * A finality certificate of an earlier block of the same branch. No inputs, no outputs; the
   * payload is the certificate (docs/CONSENSUS.md, "Certificates on chain").
   */
  Finality = 6,
  /**
   * Evidence against a finality voter: two votes one operator key signed that break a voting
   * rule. No inputs, no outputs; like Evidence, it removes the offender (docs/CONSENSUS.md).
   */
  VoteEvidence = 7,
}
const MAX_TX_KIND = 7;

export interface OutPoint {
  txid: Buffer;
  index: number;
}

export interface TxIn {
  prevout: OutPoint;
  /** The ed25519 key whose 20-byte hash is the spent output's address. */
  pubkey: Buffer;
  /** ed25519 over SIG_DOMAIN_TX ‖ txid. Not part of the txid. */
  signature: Buffer;
}

export interface TxOut {
  amount: bigint;
  /** 20-byte pubkey hash. */
  address: Buffer;
}

export interface Tx {
  version: number;
  kind: TxKind;
  inputs: TxIn[];
  outputs: TxOut[];
  payload: Buffer;
}

function writeTx(w: Writer, tx: Tx, withSignatures: boolean): void {
  w.u32(tx.version).u8(tx.kind);
  w.array(tx.inputs, MAX_TX_INPUTS, (w, i) => {
    w.fixed(i.prevout.txid, 32).u32(i.prevout.index).fixed(i.pubkey, PUBKEY_LEN);
    if (withSignatures) w.fixed(i.signature, SIGNATURE_LEN);
  });
  w.array(tx.outputs, MAX_TX_OUTPUTS, (w, o) => {
    w.u64(o.amount).fixed(o.address, ADDRESS_HASH_LEN);
  });
  w.varBytes(tx.payload, MAX_TX_PAYLOAD);
}

export function writeTxTo(w: Writer, tx: Tx): void {
  writeTx(w, tx, true);
}

export function encodeTx(tx: Tx): Buffer {
  const w = new Writer(64 + tx.inputs.length * 132 + tx.outputs.length * 28 + tx.payload.length);
  writeTx(w, tx, true);
  return w.toBuffer();
}

export function readTx(r: Reader): Tx {
  const version = r.u32();
  const kind = r.u8();
  if (kind > MAX_TX_KIND) {
    throw new CodecError("INVALID_VALUE", `unknown transaction kind ${kind}`);
  }
  const inputs = r.array(MAX_TX_INPUTS, (r) => ({
    prevout: { txid: r.fixed(32), index: r.u32() },
    pubkey: r.fixed(PUBKEY_LEN),
    signature: r.fixed(SIGNATURE_LEN),
  }));
  const outputs = r.array(MAX_TX_OUTPUTS, (r) => ({ amount: r.u64(), address: r.fixed(ADDRESS_HASH_LEN) }));
  const payload = r.varBytes(MAX_TX_PAYLOAD);
  return { version, kind: kind as TxKind, inputs, outputs, payload };
}

export function decodeTx(buf: Uint8Array): Tx {
  return decodeExact(buf, readTx);
}

/**
 * txid = SHA-256d of the transaction encoded without its signatures, so a signature can never
 * change the id (no malleability). Everything else is covered: version, kind, every outpoint and
 * public key, every output, and the payload.
 */
export function txid(tx: Tx): Buffer {
  const w = new Writer(64 + tx.inputs.length * 68 + tx.outputs.length * 28 + tx.payload.length);
  writeTx(w, tx, false);
  return sha256d(w.toBuffer());
}

/** The message each input signs. */
export function txSigMessage(id: Uint8Array): Buffer {
  return Buffer.concat([SIG_DOMAIN_TX, id]);
}

export function txSize(tx: Tx): number {
  // 4 version + 1 kind + 4 count + 132 per input + 4 count + 28 per output + 4 + payload
  return 17 + tx.inputs.length * 132 + tx.outputs.length * 28 + tx.payload.length;
}

export function outpointKey(o: OutPoint): string {
  return o.txid.toString("hex") + ":" + o.index;
}
