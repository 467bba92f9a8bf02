/**
 * The session test vectors of docs/PROTOCOL.md ("Test vectors"), recomputed from their fixed
 * inputs with the node's own handshake and record code: the document's values must be what the
 * node computes, byte for byte, so a peer written from the document alone can check itself.
 * `PRINT_VECTORS=1` prints the computed block (to update the document after a deliberate change).
 *
 * Also the record layer's properties: a tampered, replayed, reordered or foreign-key record never
 * opens, and the sequence numbers of the two directions are independent.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { KeyPair } from "../../../src/crypto/ed25519.js";
import { X25519Key } from "../../../src/crypto/x25519.js";
import {
  authFor,
  checkAuth,
  HandshakeState,
  type HandshakeIdentity,
  type Session,
} from "../../../src/p2p/handshake.js";
import { encodeMessage, MsgType, type HelloMsg } from "../../../src/p2p/messages.js";
import { FrameDecoder, FrameError } from "../../../src/p2p/frame.js";
import { payloadCap } from "../../../src/p2p/messages.js";
import { RecordOpener, RecordSealer, sessionKeys } from "../../../src/p2p/secureChannel.js";

const MAGIC = Buffer.from("54494d64", "hex");
const GENESIS = Buffer.alloc(32, 0xaa);
const fill = (b: number): Buffer => Buffer.alloc(32, b);

function identity(nodeSeed: number, operatorSeed: number | null): HandshakeIdentity {
  return {
    network: "devnet",
    magic: MAGIC,
    genesisHash: GENESIS,
    nodeKey: KeyPair.fromSeed(fill(nodeSeed)),
    operatorKey: operatorSeed === null ? null : KeyPair.fromSeed(fill(operatorSeed)),
  };
}

function hello(me: HandshakeIdentity, hs: HandshakeState, o: Partial<HelloMsg>): HelloMsg {
  return {
    type: MsgType.Hello,
    version: 2,
    network: "devnet",
    genesisHash: GENESIS,
    nodeId: me.nodeKey.publicKey,
    challenge: fill(0),
    listenAddr: "",
    height: 0,
    tipHash: GENESIS,
    services: 2,
    userAgent: "timed-ts/0.1",
    timestamp: 1_700_000_000_000,
    ephemeralKey: hs.ephemeral.publicKey,
    transport: 1,
    ...o,
  };
}

interface Run {
  vectors: Array<[string, string]>;
  /** A fresh pair of sessions of the same handshake (the vectors used up the first pair's sequence numbers). */
  i: Session;
  r: Session;
}

/** Both sides of the documented handshake, and every value the document lists. */
function run(): Run {
  const meI = identity(0x01, null);
  const meR = identity(0x02, 0x03);
  const hsI = new HandshakeState("initiator", fill(0x11));
  const hsR = new HandshakeState("responder", fill(0x22));
  const helloI = hello(meI, hsI, { challenge: fill(0x44) });
  const helloR = hello(meR, hsR, {
    challenge: fill(0x55),
    listenAddr: "127.0.0.1:24200",
    services: 3,
    timestamp: 1_700_000_000_001,
  });
  const rawI = encodeMessage(helloI);
  const rawR = encodeMessage(helloR);
  hsI.sent(rawI);
  hsR.sent(rawR);
  const establish = (): { i: Session; r: Session } => {
    const i = hsI.establish(helloR, rawR, meI);
    const r = hsR.establish(helloI, rawI, meR);
    if ("reason" in i || "reason" in r) throw new Error("the documented handshake was refused");
    return { i, r };
  };
  const { i, r } = establish();
  const shared = new X25519Key(fill(0x11)).agree(hsR.ephemeral.publicKey)!;
  const keys = sessionKeys(shared, i.transcript);
  const authI = authFor(i, meI);
  const authR = authFor(r, meR);
  const ping = encodeMessage({
    type: MsgType.Ping,
    nonce: 1,
    height: 0,
    tipHash: GENESIS,
    timestamp: 1_700_000_000_002,
  });
  const vectors: Array<[string, string]> = [
    ["initiator_node_pubkey", meI.nodeKey.publicKey.toString("hex")],
    ["responder_node_pubkey", meR.nodeKey.publicKey.toString("hex")],
    ["responder_operator_pubkey", meR.operatorKey!.publicKey.toString("hex")],
    ["initiator_ephemeral_pubkey", hsI.ephemeral.publicKey.toString("hex")],
    ["responder_ephemeral_pubkey", hsR.ephemeral.publicKey.toString("hex")],
    ["initiator_hello", rawI.toString("hex")],
    ["responder_hello", rawR.toString("hex")],
    ["shared_secret", shared.toString("hex")],
    ["transcript_hash", i.transcript.toString("hex")],
    ["key_initiator_to_responder", keys.initiatorToResponder.toString("hex")],
    ["key_responder_to_initiator", keys.responderToInitiator.toString("hex")],
    ["initiator_auth", encodeMessage(authI).toString("hex")],
    ["responder_auth", encodeMessage(authR).toString("hex")],
    ["initiator_record_0_auth", i.sealer!.seal(MsgType.Auth, encodeMessage(authI)).toString("hex")],
    ["initiator_record_1_ping", i.sealer!.seal(MsgType.Ping, ping).toString("hex")],
    ["responder_record_0_auth", r.sealer!.seal(MsgType.Auth, encodeMessage(authR)).toString("hex")],
  ];
  return { vectors, ...establish() };
}

/** The `name = hex` lines of the fenced block after "#### Test vectors" in PROTOCOL.md. */
function documented(): Map<string, string> {
  const doc = readFileSync(new URL("../../../docs/PROTOCOL.md", import.meta.url), "utf8");
  const at = doc.indexOf("#### Test vectors");
  assert.ok(at >= 0, "PROTOCOL.md has a Test vectors section");
  const block = /```text\n([\s\S]*?)```/.exec(doc.slice(at));
  assert.ok(block, "with a text block");
  const out = new Map<string, string>();
  let last = "";
  for (const line of block[1]!.split("\n")) {
    const m = /^([a-z0-9_]+)\s*=\s*([0-9a-f]*)$/.exec(line.trim());
    if (m) out.set((last = m[1]!), m[2]!);
    else if (/^[0-9a-f]+$/.test(line.trim()) && last) out.set(last, out.get(last)! + line.trim());
  }
  return out;
}

test("session vectors: PROTOCOL.md's values are what the node computes", () => {
  const { vectors } = run();
  if (process.env.PRINT_VECTORS) {
    for (const [k, v] of vectors) {
      const lines = v.match(/.{1,64}/g) ?? [""];
      console.log(`${k} =${lines.length > 1 ? "" : " " + lines[0]}`);
      if (lines.length > 1) for (const l of lines) console.log(`  ${l}`);
    }
  }
  const doc = documented();
  assert.deepEqual(
    [...doc.keys()],
    vectors.map(([k]) => k),
    "the same values, in the same order",
  );
  for (const [k, v] of vectors) assert.equal(doc.get(k), v, k);
});

test("session vectors: both sides agree, and each verifies the other's Auth", () => {
  const { i, r } = run();
  assert.ok(i.transcript.equals(r.transcript));
  const meI = identity(0x01, null);
  const meR = identity(0x02, 0x03);
  const fromR = checkAuth(authFor(r, meR), meR.nodeKey.publicKey, i);
  assert.ok(!("reason" in fromR) && fromR.operator?.equals(meR.operatorKey!.publicKey));
  assert.ok(!("reason" in checkAuth(authFor(i, meI), meI.nodeKey.publicKey, r)));
  // A signature made for one role does not verify for the other (no reflection).
  assert.ok("reason" in checkAuth(authFor(r, meR), meR.nodeKey.publicKey, { ...i, role: "responder" }));
});

test("records: in order they open; tampered, replayed, reordered or foreign ones never do", () => {
  const { i, r } = run();
  const dec = new FrameDecoder(MAGIC, payloadCap);
  dec.setOpener(r.opener!);
  const ping = (nonce: number): Buffer =>
    encodeMessage({ type: MsgType.Ping, nonce, height: 0, tipHash: GENESIS, timestamp: 0 });
  const a = i.sealer!.seal(MsgType.Ping, ping(1));
  const b = i.sealer!.seal(MsgType.Ping, ping(2));
  // In order, split at every byte: both open.
  const frames = [...Buffer.concat([a, b])].flatMap((byte) => dec.push(Buffer.of(byte)));
  assert.deepEqual(
    frames.map((f) => f.type),
    [MsgType.Ping, MsgType.Ping],
  );
  const fails = (opener: RecordOpener, bytes: Buffer): boolean => {
    const d = new FrameDecoder(MAGIC, payloadCap);
    d.setOpener(opener);
    try {
      d.push(bytes);
      return false;
    } catch (e) {
      return e instanceof FrameError && e.code === "BAD_RECORD";
    }
  };
  // Replay: the receiver has moved on past a and b.
  assert.ok(fails(r.opener!, a), "a replayed record");
  // Reorder: a fresh pair of sessions, second record first.
  const s = run();
  const c = s.i.sealer!.seal(MsgType.Ping, ping(3));
  const d = s.i.sealer!.seal(MsgType.Ping, ping(4));
  assert.ok(fails(s.r.opener!, Buffer.concat([d, c])), "two records out of order");
  // Tamper: every byte of a record, one bit at a time, in the header, ciphertext or tag.
  for (let at = 0; at < c.length; at++) {
    const t = run();
    const rec = Buffer.from(t.i.sealer!.seal(MsgType.Ping, ping(3)));
    rec[at] = rec[at]! ^ 0x01;
    const d2 = new FrameDecoder(MAGIC, payloadCap);
    d2.setOpener(t.r.opener!);
    try {
      const got = d2.push(rec);
      // A flipped length bit can only leave the record incomplete: nothing opens.
      assert.deepEqual(got, [], `byte ${at}`);
    } catch (e) {
      assert.ok(e instanceof FrameError && e.code === "BAD_RECORD", `byte ${at}: ${String(e)}`);
    }
  }
  // A record sealed in the other direction, or with another session's key.
  const u = run();
  assert.ok(fails(u.i.opener!, u.i.sealer!.seal(MsgType.Ping, ping(5))), "our own direction's record");
  assert.ok(
    fails(
      new RecordOpener(Buffer.alloc(32, 9)),
      new RecordSealer(MAGIC, Buffer.alloc(32, 8)).seal(1, ping(6)),
    ),
  );
});
