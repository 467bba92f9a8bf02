/**
 * The checks and signatures of the handshake (docs/PROTOCOL.md, "Handshake"), as functions of
 * the messages and this node's identity. Peer runs the handshake's state machine and calls them.
 */
import { verifySignature, type KeyPair } from "../crypto/ed25519.js";
import { MIN_PROTOCOL_VERSION } from "./constants.js";
import { GoodbyeReason, MsgType, type AuthMsg, type HelloMsg } from "./messageTypes.js";

export const AUTH_DOMAIN = Buffer.from("TIME/p2p-auth/v1", "utf8");
export const MN_AUTH_DOMAIN = Buffer.from("TIME/mn-auth/v1", "utf8");

/** What the handshake needs to know about this node. */
export interface HandshakeIdentity {
  network: string;
  genesisHash: Buffer;
  nodeKey: KeyPair;
  operatorKey: KeyPair | null;
}

export interface Refusal {
  reason: GoodbyeReason;
  message: string;
}

/** Why a peer's Hello is refused (a Goodbye reason and its message), or null if it is acceptable. */
export function helloRefusal(hello: HelloMsg, me: HandshakeIdentity): Refusal | null {
  if (hello.version < MIN_PROTOCOL_VERSION)
    return {
      reason: GoodbyeReason.UNSUPPORTED_VERSION,
      message: `protocol version ${hello.version} < ${MIN_PROTOCOL_VERSION}`,
    };
  if (hello.network !== me.network)
    return {
      reason: GoodbyeReason.WRONG_NETWORK,
      message: `peer is on ${hello.network}, we are on ${me.network}`,
    };
  if (!hello.genesisHash.equals(me.genesisHash))
    return {
      reason: GoodbyeReason.WRONG_GENESIS,
      message: `peer genesis ${hello.genesisHash.toString("hex")} is not ours`,
    };
  if (hello.nodeId.equals(me.nodeKey.publicKey))
    return { reason: GoodbyeReason.SELF_CONNECTION, message: "connected to ourselves" };
  return null;
}

/**
 * Our Auth for a peer's Hello: the node key signs its challenge, both node ids and the genesis;
 * a masternode's operator key signs its challenge and our node id.
 */
export function authFor(hello: HelloMsg, me: HandshakeIdentity): AuthMsg {
  const id = me.nodeKey.publicKey;
  const signature = me.nodeKey.sign(
    Buffer.concat([AUTH_DOMAIN, hello.challenge, id, hello.nodeId, me.genesisHash]),
  );
  const op = me.operatorKey;
  return {
    type: MsgType.Auth,
    signature,
    operator: op
      ? { pubkey: op.publicKey, signature: op.sign(Buffer.concat([MN_AUTH_DOMAIN, hello.challenge, id])) }
      : null,
  };
}

/**
 * Checks a peer's Auth against the challenge we sent it: the operator key it proved (or null for
 * none), or the refusal (BAD_SIGNATURE) when a signature does not verify.
 */
export function checkAuth(
  auth: AuthMsg,
  them: Buffer,
  ourChallenge: Buffer,
  me: HandshakeIdentity,
): { operator: Buffer | null } | Refusal {
  const ok = verifySignature(
    them,
    Buffer.concat([AUTH_DOMAIN, ourChallenge, them, me.nodeKey.publicKey, me.genesisHash]),
    auth.signature,
  );
  if (!ok)
    return {
      reason: GoodbyeReason.BAD_SIGNATURE,
      message: "node key signature over our challenge does not verify",
    };
  if (!auth.operator) return { operator: null };
  const opOk = verifySignature(
    auth.operator.pubkey,
    Buffer.concat([MN_AUTH_DOMAIN, ourChallenge, them]),
    auth.operator.signature,
  );
  if (!opOk)
    return {
      reason: GoodbyeReason.BAD_SIGNATURE,
      message: "operator key signature over our challenge does not verify",
    };
  return { operator: auth.operator.pubkey };
}
