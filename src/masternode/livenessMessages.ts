import { verifySignature, type KeyPair } from "../crypto/ed25519.js";
import { sha256, sha256d } from "../crypto/hash.js";
import {
  attestationBody,
  encodeAttestation,
  encodeHeartbeat,
  encodeMnAnnounce,
  heartbeatBody,
  mnAnnounceBody,
  type Attestation,
  type Heartbeat,
  type MnAnnounce,
} from "../p2p/messages.js";

// Each signature covers a domain ‖ the message's bytes before the signature, so a signature made
// for one kind of message (or for the handshake, "TIME/mn-auth/v1") can never pass as another.
export const HEARTBEAT_DOMAIN = Buffer.from("TIME/heartbeat/v1", "utf8");
export const ATTEST_DOMAIN = Buffer.from("TIME/attest/v1", "utf8");
export const MN_ANNOUNCE_DOMAIN = Buffer.from("TIME/mn-announce/v1", "utf8");

const NO_SIGNATURE = Buffer.alloc(64);

export function signHeartbeat(
  key: KeyPair,
  fields: Omit<Heartbeat, "operatorPubkey" | "signature">,
): Heartbeat {
  const hb: Heartbeat = { ...fields, operatorPubkey: key.publicKey, signature: NO_SIGNATURE };
  return { ...hb, signature: key.sign(Buffer.concat([HEARTBEAT_DOMAIN, heartbeatBody(hb)])) };
}

/** Checks the signature against `pubkey` (the registered key), not merely the key the message names. */
export function verifyHeartbeat(hb: Heartbeat, pubkey: Buffer): boolean {
  return (
    pubkey.equals(hb.operatorPubkey) &&
    verifySignature(pubkey, Buffer.concat([HEARTBEAT_DOMAIN, heartbeatBody(hb)]), hb.signature)
  );
}

/** SHA-256d of the heartbeat's full encoding (signature included): its identity for dedup. */
export function heartbeatHash(hb: Heartbeat): Buffer {
  return sha256d(encodeHeartbeat(hb));
}

export function signAttestation(
  key: KeyPair,
  fields: Omit<Attestation, "witnessPubkey" | "signature">,
): Attestation {
  const att: Attestation = { ...fields, witnessPubkey: key.publicKey, signature: NO_SIGNATURE };
  return { ...att, signature: key.sign(Buffer.concat([ATTEST_DOMAIN, attestationBody(att)])) };
}

export function verifyAttestation(att: Attestation, witnessPubkey: Buffer): boolean {
  return (
    witnessPubkey.equals(att.witnessPubkey) &&
    verifySignature(witnessPubkey, Buffer.concat([ATTEST_DOMAIN, attestationBody(att)]), att.signature)
  );
}

export function attestationHash(att: Attestation): Buffer {
  return sha256d(encodeAttestation(att));
}

export function signMnAnnounce(
  key: KeyPair,
  fields: Omit<MnAnnounce, "operatorPubkey" | "signature">,
): MnAnnounce {
  const ann: MnAnnounce = { ...fields, operatorPubkey: key.publicKey, signature: NO_SIGNATURE };
  return { ...ann, signature: key.sign(Buffer.concat([MN_ANNOUNCE_DOMAIN, mnAnnounceBody(ann)])) };
}

export function verifyMnAnnounce(ann: MnAnnounce, pubkey: Buffer): boolean {
  return (
    pubkey.equals(ann.operatorPubkey) &&
    verifySignature(pubkey, Buffer.concat([MN_ANNOUNCE_DOMAIN, mnAnnounceBody(ann)]), ann.signature)
  );
}

export function mnAnnounceHash(ann: MnAnnounce): Buffer {
  return sha256d(encodeMnAnnounce(ann));
}

/** Expected witnesses per heartbeat under the witness lottery (isDesignatedWitness). */
export const WITNESSES_PER_HEARTBEAT = 2;
const WITNESS_DOMAIN = Buffer.from("TIME/witness/v1", "utf8");

/**
 * The witness lottery. Only the masternodes it designates attest a heartbeat: a registered
 * masternode W is designated for heartbeat H when the first 4 bytes of
 * SHA-256("TIME/witness/v1" ‖ H's hash ‖ W's operator key), read big-endian, are below
 * floor(2^32 × WITNESSES_PER_HEARTBEAT / (registered − 1)); with registered − 1 ≤
 * WITNESSES_PER_HEARTBEAT every other masternode is designated. So a heartbeat draws about 2
 * attestations whatever the number of masternodes, where "everyone attests, the first 32
 * count" had every masternode sign and send one: O(masternodes²) messages per interval.
 * Nobody can choose to be designated: the heartbeat's hash decides, and it is signed by the
 * attested masternode.
 */
export function isDesignatedWitness(
  heartbeatHash: Uint8Array,
  witnessPubkey: Uint8Array,
  registered: number,
): boolean {
  const others = registered - 1;
  if (others <= WITNESSES_PER_HEARTBEAT) return true;
  const draw = sha256(Buffer.concat([WITNESS_DOMAIN, heartbeatHash, witnessPubkey])).readUInt32BE(0);
  return draw < Math.floor((2 ** 32 * WITNESSES_PER_HEARTBEAT) / others);
}
