/**
 * Every signature a block's validation will check, as (key, message, signature) triples for the
 * signature pool (crypto/sigPool.ts): the producer's, each distinct input signature of each
 * transaction, and the votes of a Finality transaction's certificate. Malformed parts are left
 * out: validation finds them and refuses the block, whatever was checked ahead.
 */
import { blockHash, blockSigMessage, rememberTxids, type Block } from "../primitives/block.js";
import { TxKind, txid, txSigMessage } from "../primitives/tx.js";
import { decodeFinalityTx } from "../consensus/finalityTx.js";
import { voteSigningBytes } from "../consensus/finality.js";
import type { SigItem } from "../crypto/sigPool.js";

export function blockSignatureItems(blocks: readonly Block[], genesisHash: Buffer): SigItem[] {
  const out: SigItem[] = [];
  for (const block of blocks) {
    const h = block.header;
    out.push({ pubkey: h.producer, message: blockSigMessage(blockHash(h)), signature: h.signature });
    // Every txid, kept with the block for its validation; a malformed transaction (which
    // validation refuses anyway) leaves the block's transactions unchecked ahead.
    let ids: Buffer[];
    try {
      ids = block.txs.map((tx) => txid(tx));
    } catch {
      continue;
    }
    rememberTxids(block, ids);
    for (let i = 1; i < block.txs.length; i++) {
      const tx = block.txs[i]!;
      if (tx.kind === TxKind.Finality) {
        try {
          const cert = decodeFinalityTx(tx);
          const message = voteSigningBytes(genesisHash, cert.era, cert.source, cert.target);
          for (const v of cert.votes) out.push({ pubkey: v.voter, message, signature: v.signature });
        } catch {
          // Malformed: validation refuses it.
        }
        continue;
      }
      if (tx.inputs.length === 0) continue;
      const message = txSigMessage(ids[i]!);
      if (tx.inputs.length === 1) {
        // Nothing to deduplicate: most transactions (no set, no key strings).
        const input = tx.inputs[0]!;
        out.push({ pubkey: input.pubkey, message, signature: input.signature });
        continue;
      }
      const seen = new Set<string>();
      for (const input of tx.inputs) {
        const pair = input.pubkey.toString("latin1") + input.signature.toString("latin1");
        if (seen.has(pair)) continue;
        seen.add(pair);
        out.push({ pubkey: input.pubkey, message, signature: input.signature });
      }
    }
  }
  return out;
}
