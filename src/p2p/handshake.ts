/**
 * The checks, key agreement and signatures of the handshake (docs/PROTOCOL.md, "Handshake"), as
 * functions of the messages and this node's identity. Peer runs the handshake's state machine
 * and calls them; the test peers and the simulator's adversaries call the same functions.
 *
 * Each side sends a plaintext Hello carrying a fresh X25519 key. From the two Hellos, byte for
 * byte, each side computes the transcript hash and the session keys; everything after the Hellos
 * is sealed in records (secureChannel.ts). Auth, the first record, signs the transcript hash with
 * the node key (and, for a masternode, the operator key). A signature is therefore bound to both
 * ephemeral keys: relayed to another connection it does not verify, and a relay that passes the
 * ephemeral keys through unchanged holds no session key, so it can neither send Auth nor read or
 * write a single record.
 */
import { verifySignature, type KeyPair } from "../crypto/ed25519.js";
import { X25519Key, X25519_KEY_LEN } from "../crypto/x25519.js";
import { MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, USER_AGENT } from "./constants.js";
import { GoodbyeReason, MsgType, type AuthMsg, type HelloMsg } from "./messageTypes.js";
import { RecordOpener, RecordSealer, sessionKeys, transcriptHash, TransportMode } from "./secureChannel.js";

export const AUTH_DOMAIN = Buffer.from("TIME/p2p-auth/v2", "utf8");
export const MN_AUTH_DOMAIN = Buffer.from("TIME/mn-auth/v2", "utf8");

/** The side that dialled is the initiator; the side that accepted is the responder. */
export type Role = "initiator" | "responder";
/** The byte that names the signer's role in Auth's signed message. */
export const ROLE_BYTE: Record<Role, number> = { initiator: 0x01, responder: 0x02 };

/** What the handshake needs to know about this node. */
export interface HandshakeIdentity {
  network: string;
  magic: Buffer;
  genesisHash: Buffer;
  nodeKey: KeyPair;
  operatorKey: KeyPair | null;
  /** Offer and accept only plaintext sessions (a devnet's explicit option); false by default. */
  plaintext?: boolean;
}

export interface Refusal {
  reason: GoodbyeReason;
  message: string;
}

/** Our transport mode, as Hello's `transport` field carries it. */
export function transportOf(me: HandshakeIdentity): TransportMode {
  return me.plaintext ? TransportMode.PLAINTEXT : TransportMode.CHACHA20_POLY1305;
}

const modeName = (m: number): string =>
  m === TransportMode.PLAINTEXT
    ? "plaintext"
    : m === TransportMode.CHACHA20_POLY1305
      ? "encrypted"
      : `mode ${m}`;

/** Our Hello for one connection: who we are, the given fields, and its ephemeral key. */
export function helloFor(
  me: HandshakeIdentity,
  ephemeralKey: Buffer,
  f: Pick<HelloMsg, "challenge" | "listenAddr" | "height" | "tipHash" | "services" | "timestamp">,
): HelloMsg {
  return {
    type: MsgType.Hello,
    version: PROTOCOL_VERSION,
    network: me.network,
    genesisHash: me.genesisHash,
    nodeId: me.nodeKey.publicKey,
    userAgent: USER_AGENT,
    ephemeralKey,
    transport: transportOf(me),
    ...f,
  };
}

/**
 * Why a peer's Hello is refused before any key exists (the Goodbye goes in plaintext): an old
 * version, a missing ephemeral key, or another transport mode. Null if none applies.
 */
export function keyRefusal(hello: HelloMsg, me: HandshakeIdentity): Refusal | null {
  if (hello.version < MIN_PROTOCOL_VERSION)
    return {
      reason: GoodbyeReason.UNSUPPORTED_VERSION,
      message: `protocol version ${hello.version} < ${MIN_PROTOCOL_VERSION} (this node speaks the encrypted transport and finality votes with eras)`,
    };
  if (!hello.ephemeralKey || hello.ephemeralKey.length !== X25519_KEY_LEN)
    return {
      reason: GoodbyeReason.UNSUPPORTED_VERSION,
      message: `protocol version ${hello.version} Hello without an ephemeral key`,
    };
  const ours = transportOf(me);
  if (hello.transport !== ours)
    return {
      reason: GoodbyeReason.TRANSPORT_MISMATCH,
      message: `peer offers ${modeName(hello.transport)} transport, this node requires ${modeName(ours)}`,
    };
  return null;
}

/** Why a peer's Hello is refused once the session exists, or null if it is acceptable. */
export function helloRefusal(hello: HelloMsg, me: HandshakeIdentity): Refusal | null {
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

/** A session: its transcript hash, and the record sealer and opener (null in plaintext). */
export interface Session {
  role: Role;
  transcript: Buffer;
  sealer: RecordSealer | null;
  opener: RecordOpener | null;
}

/**
 * One side of a handshake: our ephemeral key and our Hello's bytes. `establish` takes the peer's
 * Hello, as received, and gives the session.
 */
export class HandshakeState {
  readonly ephemeral: X25519Key;
  private ourHello: Buffer | null = null;

  constructor(
    readonly role: Role,
    ephemeralPrivate: Buffer,
  ) {
    this.ephemeral = new X25519Key(ephemeralPrivate);
  }

  /** Records our Hello's payload, exactly as sent. */
  sent(helloPayload: Buffer): void {
    this.ourHello = helloPayload;
  }

  /**
   * The session with the peer whose Hello is `hello` (its payload `raw`, as received), or a
   * refusal: a key that gives an all-zero secret is refused as a bad key (BAD_SIGNATURE: no
   * honest peer sends one).
   */
  establish(hello: HelloMsg, raw: Buffer, me: HandshakeIdentity): Session | Refusal {
    if (!this.ourHello) throw new Error("establish before our Hello was sent");
    const secret = hello.ephemeralKey ? this.ephemeral.agree(hello.ephemeralKey) : null;
    if (!secret)
      return { reason: GoodbyeReason.BAD_SIGNATURE, message: "ephemeral key gives no shared secret" };
    const [hi, hr] = this.role === "initiator" ? [this.ourHello, raw] : [raw, this.ourHello];
    const transcript = transcriptHash(me.magic, hi, hr);
    if (me.plaintext) return { role: this.role, transcript, sealer: null, opener: null };
    const keys = sessionKeys(secret, transcript);
    const [send, receive] =
      this.role === "initiator"
        ? [keys.initiatorToResponder, keys.responderToInitiator]
        : [keys.responderToInitiator, keys.initiatorToResponder];
    return {
      role: this.role,
      transcript,
      sealer: new RecordSealer(me.magic, send),
      opener: new RecordOpener(receive),
    };
  }
}

const other = (r: Role): Role => (r === "initiator" ? "responder" : "initiator");

function signedBytes(domain: Buffer, role: Role, transcript: Buffer): Buffer {
  return Buffer.concat([domain, Buffer.of(ROLE_BYTE[role]), transcript]);
}

/**
 * Our Auth: the node key signs AUTH_DOMAIN ‖ our role ‖ transcript hash; a masternode's operator
 * key signs MN_AUTH_DOMAIN ‖ our role ‖ transcript hash.
 */
export function authFor(session: Pick<Session, "role" | "transcript">, me: HandshakeIdentity): AuthMsg {
  const op = me.operatorKey;
  return {
    type: MsgType.Auth,
    signature: me.nodeKey.sign(signedBytes(AUTH_DOMAIN, session.role, session.transcript)),
    operator: op
      ? {
          pubkey: op.publicKey,
          signature: op.sign(signedBytes(MN_AUTH_DOMAIN, session.role, session.transcript)),
        }
      : null,
  };
}

/**
 * Checks a peer's Auth against the session's transcript: the operator key it proved (or null for
 * none), or the refusal (BAD_SIGNATURE) when a signature does not verify.
 */
export function checkAuth(
  auth: AuthMsg,
  them: Buffer,
  session: Pick<Session, "role" | "transcript">,
): { operator: Buffer | null } | Refusal {
  const theirRole = other(session.role);
  if (!verifySignature(them, signedBytes(AUTH_DOMAIN, theirRole, session.transcript), auth.signature))
    return {
      reason: GoodbyeReason.BAD_SIGNATURE,
      message: "node key signature over the handshake transcript does not verify",
    };
  if (!auth.operator) return { operator: null };
  const opOk = verifySignature(
    auth.operator.pubkey,
    signedBytes(MN_AUTH_DOMAIN, theirRole, session.transcript),
    auth.operator.signature,
  );
  if (!opOk)
    return {
      reason: GoodbyeReason.BAD_SIGNATURE,
      message: "operator key signature over the handshake transcript does not verify",
    };
  return { operator: auth.operator.pubkey };
}
