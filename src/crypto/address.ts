import { CodedError } from "../util/codedError.js";
import { base58Decode, base58Encode } from "./base58.js";
import { sha256, sha256d } from "./hash.js";

export const ADDRESS_HASH_LEN = 20;
/** ceil(24 * log(256) / log(58)) = 33 base58 characters for payload ‖ checksum. */
const MAX_BODY_CHARS = 33;

export type NetworkName = "mainnet" | "testnet" | "devnet";

export type AddressErrorCode =
  "BAD_PREFIX" | "WRONG_NETWORK" | "BAD_ENCODING" | "BAD_LENGTH" | "BAD_CHECKSUM";
export class AddressError extends CodedError<AddressErrorCode> {}

/** As in the original: `TIME1…` on mainnet, `TIME0…` on testnet (and devnet). */
export function addressPrefix(network: NetworkName): string {
  return network === "mainnet" ? "TIME1" : "TIME0";
}

/** The 20-byte payload an address commits to: the first 20 bytes of SHA-256(pubkey). */
export function pubkeyHash(pubkey: Uint8Array): Buffer {
  return sha256(pubkey).subarray(0, ADDRESS_HASH_LEN);
}

/** prefix + base58(payload20 ‖ first 4 bytes of SHA-256d(payload20)). */
export function encodeAddress(hash20: Uint8Array, network: NetworkName): string {
  if (hash20.length !== ADDRESS_HASH_LEN)
    throw new AddressError("BAD_LENGTH", "address payload must be 20 bytes");
  const check = sha256d(hash20).subarray(0, 4);
  return addressPrefix(network) + base58Encode(Buffer.concat([hash20, check]));
}

export function addressFromPubkey(pubkey: Uint8Array, network: NetworkName): string {
  return encodeAddress(pubkeyHash(pubkey), network);
}

/** Decodes an address for `network`, or throws an AddressError that says what is wrong. */
export function decodeAddress(addr: string, network: NetworkName): Buffer {
  if (typeof addr !== "string" || !/^TIME[01]/.test(addr)) {
    throw new AddressError("BAD_PREFIX", `address must start with TIME0 or TIME1: ${String(addr)}`);
  }
  const want = addressPrefix(network);
  if (!addr.startsWith(want)) {
    throw new AddressError(
      "WRONG_NETWORK",
      `address ${addr} is not a ${network} address (expected prefix ${want})`,
    );
  }
  const body = addr.slice(want.length);
  // 24 bytes take at most 33 base58 characters. Checking first keeps the (quadratic) BigInt
  // decode away from arbitrarily long input arriving over RPC.
  if (body.length > MAX_BODY_CHARS) {
    throw new AddressError("BAD_LENGTH", `address is ${addr.length} characters, too long to be an address`);
  }
  const raw = base58Decode(body);
  if (!raw) throw new AddressError("BAD_ENCODING", `address ${addr} has a character outside base58`);
  if (raw.length !== ADDRESS_HASH_LEN + 4) {
    throw new AddressError("BAD_LENGTH", `address ${addr} decodes to ${raw.length} bytes, expected 24`);
  }
  const payload = raw.subarray(0, ADDRESS_HASH_LEN);
  const check = sha256d(payload).subarray(0, 4);
  if (!check.equals(raw.subarray(ADDRESS_HASH_LEN))) {
    throw new AddressError("BAD_CHECKSUM", `address ${addr} has a bad checksum`);
  }
  return Buffer.from(payload);
}
