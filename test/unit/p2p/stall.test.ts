// Stall detection, the resumed burst and the Hello deadline, on one Peer pair over an in-memory
// pipe with a virtual clock: time is advanced, never slept.
import assert from "node:assert/strict";
import { test } from "node:test";
import { KeyPair } from "../../../src/crypto/ed25519.js";
import { nullLogger } from "../../../src/logging/index.js";
import { encodeFrame } from "../../../src/p2p/frame.js";
import { encodeMessage, GoodbyeReason, MsgType } from "../../../src/p2p/messages.js";
import { Peer, type PeerEvents } from "../../../src/p2p/peer.js";
import { rateLimitsFor } from "../../../src/p2p/rateLimits.js";
import { ManualClock } from "../../../src/util/clock.js";
import { SeededRandom } from "../../../src/util/random.js";
import { MAGIC, makeLocal } from "./harness.js";
import { pipe, type PipeEnd } from "./memoryPipe.js";

const PING_MS = 1_000;

/** Advances virtual time in 50 ms steps, letting the pipes deliver between steps. */
async function run(clock: ManualClock, ms: number): Promise<void> {
  for (let t = 0; t < ms; t += 50) {
    clock.advance(Math.min(50, ms - t));
    await settle();
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

async function pair(clock: ManualClock, aPingMs = PING_MS) {
  const [ca, cb] = pipe();
  const mk = (conn: PipeEnd, direction: "inbound" | "outbound", seed: number, pingMs: number): Peer =>
    new Peer(
      conn,
      makeLocal(KeyPair.generate()),
      { direction, pingIntervalMs: pingMs, rateLimits: rateLimitsFor(PING_MS), helloTimeoutMs: 3_000 },
      { clock, random: new SeededRandom(seed), logger: nullLogger },
    );
  const a = mk(ca, "outbound", 1, aPingMs);
  const b = mk(cb, "inbound", 2, PING_MS);
  const misbehaviour: Array<PeerEvents["misbehaviour"]> = [];
  for (const p of [a, b]) p.events.on("misbehaviour", (e) => misbehaviour.push(e));
  a.start();
  b.start();
  await settle();
  return { a, b, ca, cb, misbehaviour };
}

test("stall: a link that is silent for 3 ping intervals is closed STALLED within 4 intervals", async () => {
  const clock = new ManualClock();
  const { a, b, ca, cb } = await pair(clock);
  assert.equal(a.state, "ready");
  assert.equal(b.state, "ready");
  await run(clock, 20 * PING_MS);
  assert.equal(a.state, "ready", "a healthy link is never closed on a timer");
  ca.stalled = true;
  cb.stalled = true;
  const from = clock.now();
  let closedAt: number | null = null;
  a.events.on("closed", () => (closedAt ??= clock.now()));
  await run(clock, 3 * PING_MS);
  assert.equal(a.state, "ready", "not before 3 silent intervals");
  await run(clock, PING_MS + 1);
  assert.equal(a.state, "closed");
  assert.equal(a.closeReason, GoodbyeReason.STALLED);
  assert.ok(closedAt! - from <= 4 * PING_MS + 1, `closed ${closedAt! - from} ms after the stall began`);
});

test("stall: a shorter stall ends in a burst (pings far over their bucket) that is dropped unscored; the link stays", async () => {
  const clock = new ManualClock();
  const { a, b, ca, cb, misbehaviour } = await pair(clock);
  await run(clock, 5 * PING_MS);
  ca.stalled = true;
  cb.stalled = true;
  await run(clock, 2.5 * PING_MS);
  // A backlog much larger than the bucket allows (3/s, burst 6 at 1 s pings).
  for (let i = 0; i < 200; i++)
    a.send({
      type: MsgType.Ping,
      nonce: 10_000 + i,
      height: 1,
      tipHash: Buffer.alloc(32),
      timestamp: clock.now(),
    });
  ca.release();
  cb.release();
  await settle();
  assert.equal(a.state, "ready");
  assert.equal(b.state, "ready");
  assert.ok(b.droppedOverLimit >= 190, `excess dropped (${b.droppedOverLimit})`);
  assert.deepEqual(misbehaviour, [], "a burst of liveness is never misbehaviour");
  await run(clock, 20 * PING_MS);
  assert.equal(b.state, "ready", "and the link lives on");
});

test("stall: a large frame still arriving is not silence (partial frames count as bytes received)", async () => {
  const clock = new ManualClock();
  // a is the sender of the large frame: it pings once and never again, so only b's view is tested.
  const { b, ca, cb } = await pair(clock, 1e9);
  await run(clock, 2 * PING_MS);
  // Nothing else from a reaches b: only the bytes of one large Peers frame, a slice per interval.
  ca.stalled = true;
  const peers = Array.from({ length: 500 }, (_, i) => ({
    nodeId: Buffer.alloc(32, i % 256),
    address: `127.0.8.${i % 250}:${1000 + i}`,
    services: 1,
    lastSeen: 0,
  }));
  const frame = encodeFrame(MAGIC, MsgType.Peers, encodeMessage({ type: MsgType.Peers, peers }));
  const slices = 10;
  const size = Math.ceil(frame.length / slices);
  for (let i = 0; i < slices; i++) {
    await run(clock, PING_MS);
    cb.deliver(frame.subarray(i * size, (i + 1) * size));
    await settle();
    assert.equal(
      b.state,
      "ready",
      `still ready after ${i + 1} of ${slices} slices (${(i + 2) * PING_MS} ms without a frame)`,
    );
  }
});

test("Hello deadline: a connection that never completes its Hello is closed after helloTimeoutMs", async () => {
  const clock = new ManualClock();
  const [c1, c2] = pipe();
  const p = new Peer(
    c1,
    makeLocal(KeyPair.generate()),
    { direction: "inbound", pingIntervalMs: PING_MS, rateLimits: {}, helloTimeoutMs: 3_000 },
    { clock, random: new SeededRandom(3), logger: nullLogger },
  );
  p.start();
  await Promise.resolve();
  // The remote drips one byte a second of what could be a Hello.
  for (let i = 0; i < 2; i++) {
    await run(clock, 1_000);
    c2.write(Buffer.from([0x00]));
  }
  assert.equal(p.state, "handshaking");
  await run(clock, 1_001);
  assert.equal(p.state, "closed");
  assert.equal(p.closeReason, GoodbyeReason.HANDSHAKE_TIMEOUT);
});
