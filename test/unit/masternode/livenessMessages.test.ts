import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { verifySignature } from "../../../src/crypto/ed25519.js";
import { sha256, sha256d } from "../../../src/crypto/hash.js";
import {
  ATTEST_DOMAIN,
  attestationHash,
  HEARTBEAT_DOMAIN,
  heartbeatHash,
  MN_ANNOUNCE_DOMAIN,
  signAttestation,
  signHeartbeat,
  signMnAnnounce,
  verifyAttestation,
  verifyMnAnnounce,
} from "../../../src/masternode/livenessMessages.js";
import {
  ATTESTATION_SIZE,
  decodeMessage,
  encodeMessage,
  HEARTBEAT_SIZE,
  MsgType,
  payloadCap,
  responseReqId,
  type Message,
} from "../../../src/p2p/messages.js";
import {
  DEFAULT_LIVENESS_RATE_CONTEXT,
  livenessRateLimits,
  rateLimitsFor,
  type RateLimitTable,
} from "../../../src/p2p/rateLimits.js";
import { TokenBucket } from "../../../src/util/tokenBucket.js";
import { opKey } from "./helpers.js";

const key = opKey("msg", 0);
const witness = opKey("msg", 1);
const TIP = sha256(Buffer.from("tip"));

function roundTrip(m: Message): Message {
  return decodeMessage(m.type, encodeMessage(m));
}

describe("liveness messages: wire format", () => {
  const hb = signHeartbeat(key, {
    seq: 1_700_000_000_123,
    timestamp: 1_700_000_000_123,
    height: 42,
    tipHash: TIP,
  });
  const att = signAttestation(witness, {
    heartbeatHash: heartbeatHash(hb),
    operatorPubkey: key.publicKey,
    seq: hb.seq,
    timestamp: 1_700_000_000_200,
  });
  const ann = signMnAnnounce(key, {
    nodeId: Buffer.alloc(32, 7),
    address: "[::1]:24200",
    timestamp: 1_700_000_000_300,
  });

  it("Heartbeat 0x0050: fixed layout, signature over the domain and the bytes before it", () => {
    assert.equal(MsgType.Heartbeat, 0x0050);
    const msg: Message = { type: MsgType.Heartbeat, ...hb };
    const bytes = encodeMessage(msg);
    assert.equal(bytes.length, HEARTBEAT_SIZE);
    assert.deepEqual(bytes.subarray(0, 32), key.publicKey);
    assert.equal(bytes.readUInt32LE(48), 42, "height after operator key, seq and timestamp");
    assert.ok(
      verifySignature(
        key.publicKey,
        Buffer.concat([HEARTBEAT_DOMAIN, bytes.subarray(0, -64)]),
        bytes.subarray(-64),
      ),
    );
    assert.deepEqual(heartbeatHash(hb), sha256d(bytes), "hash = SHA-256d of the full payload");
    assert.deepEqual(roundTrip(msg), msg);
  });

  it("Attestation 0x0051 and MnAnnounce 0x0052 round-trip and verify", () => {
    const a: Message = { type: MsgType.Attestation, ...att };
    const abytes = encodeMessage(a);
    assert.equal(abytes.length, ATTESTATION_SIZE);
    assert.ok(
      verifySignature(
        witness.publicKey,
        Buffer.concat([ATTEST_DOMAIN, abytes.subarray(0, -64)]),
        abytes.subarray(-64),
      ),
    );
    assert.deepEqual(attestationHash(att), sha256d(abytes));
    assert.deepEqual(roundTrip(a), a);
    assert.equal(verifyAttestation(att, witness.publicKey), true);
    assert.equal(verifyAttestation(att, key.publicKey), false);

    const n: Message = { type: MsgType.MnAnnounce, ...ann };
    const nbytes = encodeMessage(n);
    assert.ok(
      verifySignature(
        key.publicKey,
        Buffer.concat([MN_ANNOUNCE_DOMAIN, nbytes.subarray(0, -64)]),
        nbytes.subarray(-64),
      ),
    );
    assert.deepEqual(roundTrip(n), n);
    assert.equal(verifyMnAnnounce(ann, key.publicKey), true);
    assert.equal(verifyMnAnnounce({ ...ann, address: "[::1]:24201" }, key.publicKey), false);
  });

  it("GetMnList 0x0053 and MnList 0x0054 carry a reqId; MnList is a response", () => {
    const get: Message = { type: MsgType.GetMnList, reqId: 9 };
    assert.deepEqual(roundTrip(get), get);
    const list: Message = { type: MsgType.MnList, reqId: 9, announces: [ann], heartbeats: [hb, hb] };
    assert.deepEqual(roundTrip(list), list);
    assert.equal(responseReqId(list), 9);
    assert.equal(responseReqId(get), null);
    for (const t of [
      MsgType.Heartbeat,
      MsgType.Attestation,
      MsgType.MnAnnounce,
      MsgType.GetMnList,
      MsgType.MnList,
    ]) {
      assert.ok((payloadCap(t) ?? 0) > 0, `cap for ${MsgType[t]}`);
    }
  });

  it("decoders ignore fields appended later", () => {
    const bytes = Buffer.concat([encodeMessage({ type: MsgType.Heartbeat, ...hb }), Buffer.from([1, 2, 3])]);
    const back = decodeMessage(MsgType.Heartbeat, bytes);
    assert.deepEqual(back, { type: MsgType.Heartbeat, ...hb });
  });
});

describe("liveness messages: rate limits", () => {
  it("announcements 3/min and GetMnList 5/min, as in the original", () => {
    const t = rateLimitsFor(2_000);
    assert.deepEqual(t[MsgType.MnAnnounce], [3 / 60, 3]);
    assert.deepEqual(t[MsgType.GetMnList], [5 / 60, 5]);
    assert.equal(
      (t as RateLimitTable)[MsgType.MnList],
      undefined,
      "a response: only our own requests are answered",
    );
  });

  it("heartbeat and attestation limits scale with the registry and the interval", () => {
    const small = livenessRateLimits({ registrySize: 100, heartbeatIntervalMs: 60_000 });
    const big = livenessRateLimits({ registrySize: 1_000, heartbeatIntervalMs: 60_000 });
    const fast = livenessRateLimits({ registrySize: 100, heartbeatIntervalMs: 1_000 });
    assert.ok(big[MsgType.Heartbeat]![0] > small[MsgType.Heartbeat]![0]);
    assert.ok(fast[MsgType.Heartbeat]![0] > small[MsgType.Heartbeat]![0]);
    assert.ok(big[MsgType.Attestation]![0] > big[MsgType.Heartbeat]![0]);
    assert.deepEqual(
      rateLimitsFor(100)[MsgType.Heartbeat],
      livenessRateLimits(DEFAULT_LIVENESS_RATE_CONTEXT)[MsgType.Heartbeat],
    );
  });

  it("an honest peer relaying every masternode's heartbeat each interval never trips the limit", () => {
    for (const ctx of [
      { registrySize: 6, heartbeatIntervalMs: 1_000 },
      { registrySize: 1_000, heartbeatIntervalMs: 60_000 },
    ]) {
      const [rate, burst] = livenessRateLimits(ctx)[MsgType.Heartbeat]!;
      let now = 0;
      const bucket = new TokenBucket(rate, burst, now);
      // 20 intervals, every heartbeat of every masternode arriving in one bunch per interval.
      for (let i = 0; i < 20; i++) {
        for (let m = 0; m < ctx.registrySize; m++) assert.ok(bucket.take(now), `tripped at interval ${i}`);
        now += ctx.heartbeatIntervalMs;
      }
    }
  });
});
