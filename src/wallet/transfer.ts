/** Building and signing the wallet's transfers: the size formula its fees use, and the signatures. */
import { TX_VERSION } from "../primitives/constants.js";
import { TxKind, txSigMessage, txid as txidOf, type OutPoint, type Tx } from "../primitives/tx.js";
import type { UtxoEntry } from "../primitives/utxo.js";
import type { KeyPair } from "../crypto/ed25519.js";
import type { SelectableCoin } from "./coinSelection.js";

/** Size of a transfer, as txSize counts it: 17 bytes + 132 per input + 28 per output. */
export const TX_BASE_SIZE = 17;
export const INPUT_SIZE = 132;
export const OUTPUT_SIZE = 28;

/** One of our unspent outputs on the main chain, as coin selection and signing see it. */
export interface Coin extends SelectableCoin {
  outpoint: OutPoint;
  entry: UtxoEntry;
}

/**
 * A transfer spending `coins` (ours) to `outputs`, every input signed with its key; `keys` holds
 * every key we can sign with, by the hex of its 20-byte address hash.
 */
export function signTransfer(
  coins: readonly Coin[],
  outputs: Tx["outputs"],
  keys: ReadonlyMap<string, KeyPair>,
): Tx {
  const tx: Tx = {
    version: TX_VERSION,
    kind: TxKind.Transfer,
    inputs: coins.map((c) => ({
      prevout: c.outpoint,
      pubkey: keys.get(c.entry.address.toString("hex"))!.publicKey,
      signature: Buffer.alloc(64),
    })),
    outputs,
    payload: Buffer.alloc(0),
  };
  const msg = txSigMessage(txidOf(tx));
  const sigs = new Map<string, Buffer>();
  for (const [i, c] of coins.entries()) {
    const h = c.entry.address.toString("hex");
    let sig = sigs.get(h);
    if (!sig) {
      sig = keys.get(h)!.sign(msg);
      sigs.set(h, sig);
    }
    tx.inputs[i]!.signature = sig;
  }
  return tx;
}
