import { CodecError, Reader, Writer, decodeExact } from "../codec/index.js";
import { ADDRESS_HASH_LEN } from "../crypto/address.js";
import { PUBKEY_LEN } from "../crypto/ed25519.js";
import { sha256d } from "../crypto/hash.js";
import type { OutPoint } from "../primitives/tx.js";
import { isTier, type Tier } from "./tier.js";

/** Longest "host:port" service address a registration may carry. */
export const MAX_SERVICE_ADDRESS_LEN = 255;
/** Upper bound on registered masternodes; keeps the coinbase split inside the block size cap. */
export const MAX_REGISTRY_SIZE = 20_000;

/** One masternode as the chain knows it. The registry is derived only from blocks. */
export interface MasternodeEntry {
  operatorPubkey: Buffer;
  /** Service address "host:port" where it accepts P2P connections. */
  address: string;
  tier: Tier;
  /** 20-byte pubkey hash that receives its share of rewards. */
  rewardAddress: Buffer;
  /** Collateral outpoint; null for Free tier and for genesis masternodes. */
  collateral: OutPoint | null;
  /** The key that may update or deregister it (the collateral owner); null for genesis/Free. */
  ownerPubkey: Buffer | null;
  registeredHeight: number;
}

/** The registry is always kept sorted by operator public key, so its encoding is canonical. */
export type Registry = readonly MasternodeEntry[];

export function compareEntries(a: MasternodeEntry, b: MasternodeEntry): number {
  return Buffer.compare(a.operatorPubkey, b.operatorPubkey);
}

export function sortRegistry(entries: readonly MasternodeEntry[]): MasternodeEntry[] {
  return entries.slice().sort(compareEntries);
}

export function writeEntry(w: Writer, e: MasternodeEntry): void {
  w.fixed(e.operatorPubkey, PUBKEY_LEN).string(e.address, MAX_SERVICE_ADDRESS_LEN).u8(e.tier);
  w.fixed(e.rewardAddress, ADDRESS_HASH_LEN);
  if (e.collateral) w.u8(1).fixed(e.collateral.txid, 32).u32(e.collateral.index);
  else w.u8(0);
  if (e.ownerPubkey) w.u8(1).fixed(e.ownerPubkey, PUBKEY_LEN);
  else w.u8(0);
  w.u32(e.registeredHeight);
}

export function readEntry(r: Reader): MasternodeEntry {
  const operatorPubkey = r.fixed(PUBKEY_LEN);
  const address = r.string(MAX_SERVICE_ADDRESS_LEN);
  const tier = r.u8();
  if (!isTier(tier)) throw new CodecError("INVALID_VALUE", `unknown tier ${tier}`);
  const rewardAddress = r.fixed(ADDRESS_HASH_LEN);
  const hasCollateral = r.bool();
  const collateral = hasCollateral ? { txid: r.fixed(32), index: r.u32() } : null;
  const hasOwner = r.bool();
  const ownerPubkey = hasOwner ? r.fixed(PUBKEY_LEN) : null;
  const registeredHeight = r.u32();
  return { operatorPubkey, address, tier, rewardAddress, collateral, ownerPubkey, registeredHeight };
}

export function encodeRegistry(reg: Registry): Buffer {
  const w = new Writer(64 + reg.length * 160);
  w.array(reg, MAX_REGISTRY_SIZE, writeEntry);
  return w.toBuffer();
}

export function decodeRegistry(buf: Uint8Array): MasternodeEntry[] {
  return decodeExact(buf, (r) => r.array(MAX_REGISTRY_SIZE, readEntry));
}

/** mnRoot = SHA-256d of the canonical registry encoding (sorted by operator key). */
export function registryRoot(reg: Registry): Buffer {
  return sha256d(encodeRegistry(reg));
}

export function findByOperator(reg: Registry, pubkey: Uint8Array): MasternodeEntry | undefined {
  // Binary search: the registry is sorted by operator key.
  let lo = 0;
  let hi = reg.length - 1;
  const key = Buffer.from(pubkey.buffer, pubkey.byteOffset, pubkey.byteLength);
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const c = Buffer.compare(reg[mid]!.operatorPubkey, key);
    if (c === 0) return reg[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return undefined;
}
