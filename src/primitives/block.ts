import { Reader, Writer, decodeExact } from "../codec/index.js";
import { PUBKEY_LEN, SIGNATURE_LEN } from "../crypto/ed25519.js";
import { sha256d } from "../crypto/hash.js";
import { MAX_BLOCK_TXS, SIG_DOMAIN_BLOCK } from "./constants.js";
import { readTx, txid, writeTxTo, type Tx } from "./tx.js";

/**
 * Header layout (docs/PROTOCOL.md): version u32 | height u32 | prevHash 32 | merkleRoot 32 |
 * mnRoot 32 | timestamp u64 (ms) | round u32 | producer 32 | signature 64.
 * `mnRoot` commits to the masternode registry after this block. New state roots are added by
 * bumping `version`; a version-2 header appends its fields after `producer` (see CONSENSUS.md).
 */
export interface BlockHeader {
  version: number;
  height: number;
  prevHash: Buffer;
  merkleRoot: Buffer;
  mnRoot: Buffer;
  /** Milliseconds since the Unix epoch. */
  timestamp: number;
  /** Fallback round: 0 is the scheduled producer, r > 0 the r-th fallback. */
  round: number;
  /** Operator public key of the producer. */
  producer: Buffer;
  /** ed25519 over SIG_DOMAIN_BLOCK ‖ block hash. Not part of the hash. */
  signature: Buffer;
}

export interface Block {
  header: BlockHeader;
  txs: Tx[];
}

export const HEADER_SIZE = 4 + 4 + 32 + 32 + 32 + 8 + 4 + PUBKEY_LEN + SIGNATURE_LEN;
export const HEADER_UNSIGNED_SIZE = HEADER_SIZE - SIGNATURE_LEN;

function writeHeaderUnsigned(w: Writer, h: BlockHeader): void {
  w.u32(h.version)
    .u32(h.height)
    .fixed(h.prevHash, 32)
    .fixed(h.merkleRoot, 32)
    .fixed(h.mnRoot, 32)
    .u64n(h.timestamp)
    .u32(h.round)
    .fixed(h.producer, PUBKEY_LEN);
}

export function writeHeader(w: Writer, h: BlockHeader): void {
  writeHeaderUnsigned(w, h);
  w.fixed(h.signature, SIGNATURE_LEN);
}

export function readHeader(r: Reader): BlockHeader {
  return {
    version: r.u32(),
    height: r.u32(),
    prevHash: r.fixed(32),
    merkleRoot: r.fixed(32),
    mnRoot: r.fixed(32),
    timestamp: r.u64n(),
    round: r.u32(),
    producer: r.fixed(PUBKEY_LEN),
    signature: r.fixed(SIGNATURE_LEN),
  };
}

export function encodeHeader(h: BlockHeader): Buffer {
  const w = new Writer(HEADER_SIZE);
  writeHeader(w, h);
  return w.toBuffer();
}

export function decodeHeader(buf: Uint8Array): BlockHeader {
  return decodeExact(buf, readHeader);
}

/** Block hash = SHA-256d of the header without its signature. */
/**
 * Txids already computed for a Block object (the signature pool's items need them before the
 * block is validated, and validation needs them again). A decoded block is never changed in
 * place, so the list stays right; it is only a cache, and only for whole lists.
 */
const knownTxids = new WeakMap<Block, readonly Buffer[]>();

/** Remembers every txid of `block`, in order. */
export function rememberTxids(block: Block, ids: readonly Buffer[]): void {
  if (ids.length === block.txs.length) knownTxids.set(block, ids);
}

/** The txids remembered for this Block object, if any. */
export function rememberedTxids(block: Block): readonly Buffer[] | undefined {
  const ids = knownTxids.get(block);
  return ids && ids.length === block.txs.length ? ids : undefined;
}

export function blockHash(h: BlockHeader): Buffer {
  const w = new Writer(HEADER_UNSIGNED_SIZE);
  writeHeaderUnsigned(w, h);
  return sha256d(w.toBuffer());
}

export function blockSigMessage(hash: Uint8Array): Buffer {
  return Buffer.concat([SIG_DOMAIN_BLOCK, hash]);
}

export function writeBlock(w: Writer, b: Block): void {
  writeHeader(w, b.header);
  w.array(b.txs, MAX_BLOCK_TXS, (w, tx) => writeTxTo(w, tx));
}

export function encodeBlock(b: Block): Buffer {
  const w = new Writer(HEADER_SIZE + 256 * b.txs.length);
  writeBlock(w, b);
  return w.toBuffer();
}

export function readBlock(r: Reader): Block {
  const header = readHeader(r);
  const txs = r.array(MAX_BLOCK_TXS, readTx);
  return { header, txs };
}

export function decodeBlock(buf: Uint8Array): Block {
  return decodeExact(buf, readBlock);
}

/**
 * Merkle root over txids: pairs hash as SHA-256d(left ‖ right); an odd node at the end of a level
 * is carried up unchanged (not duplicated, which avoids Bitcoin's duplicate-subtree ambiguity).
 * An empty list has the zero root; a valid block always has at least its coinbase.
 */
export function merkleRoot(ids: readonly Buffer[]): Buffer {
  if (ids.length === 0) return Buffer.alloc(32);
  let level: Buffer[] = ids.slice();
  while (level.length > 1) {
    const next: Buffer[] = [];
    for (let i = 0; i < level.length; i += 2) {
      const left = level[i]!;
      const right = level[i + 1];
      next.push(right ? sha256d(Buffer.concat([left, right])) : left);
    }
    level = next;
  }
  return level[0]!;
}

export function blockMerkleRoot(txs: readonly Tx[]): Buffer {
  return merkleRoot(txs.map(txid));
}
