// Stall detection, the resumed burst and the Hello deadline, on one Peer pair over the virtual
// network (a link taken down holds its bytes, as TCP does) with a virtual clock: time is
// advanced, never slept.
import assert from "node:assert/strict";
import { test } from "node:test";
import { nullLogger } from "../../../src/logging/index.js";
import { PING_REFRESH_INTERVALS } from "../../../src/p2p/constants.js";
import { GoodbyeReason, MsgType } from "../../../src/p2p/messages.js";
import { Peer, type PeerEvents } from "../../../src/p2p/peer.js";
import { rateLimitsFor } from "../../../src/p2p/rateLimits.js";
import type { Connection } from "../../../src/p2p/transport.js";
import { makeLocal, PORT, testKey, VirtualNet } from "./harness.js";

const PING_MS = 1_000;
/** Virtual time moves in steps of 50 ms here. */
const STEP = 50;

const A = "10.8.0.1";
const B = "10.8.0.2";

/** A raw connection from A to B: [A's end, B's end]. */
async function link(v: VirtualNet): Promise<[Connection, Connection]> {
  const accepted: Connection[] = [];
  await v.transport(B).listen(B, PORT, (c) => accepted.push(c));
  const ca = await v.dial(A, `${B}:${PORT}`);
  await v.settle();
  assert.equal(accepted.length, 1, "B accepted the connection");
  return [ca, accepted[0]!];
}

async function pair(v: VirtualNet, aPingMs = PING_MS) {
  const [ca, cb] = await link(v);
  const mk = (conn: Connection, direction: "inbound" | "outbound", tag: string, pingMs: number): Peer =>
    new Peer(
      conn,
      makeLocal(testKey(`stall/${v.seed}/${tag}`)),
      { direction, pingIntervalMs: pingMs, rateLimits: rateLimitsFor(PING_MS), helloTimeoutMs: 3_000 },
      { clock: v.clock, random: v.random(), logger: nullLogger },
    );
  const a = mk(ca, "outbound", "a", aPingMs);
  const b = mk(cb, "inbound", "b", PING_MS);
  const misbehaviour: Array<PeerEvents["misbehaviour"]> = [];
  for (const p of [a, b]) p.events.on("misbehaviour", (e) => misbehaviour.push(e));
  a.start();
  b.start();
  await v.settle();
  return { a, b, ca, cb, misbehaviour };
}

test("stall: a link that is silent for 3 ping intervals is closed STALLED within 4 intervals", async () => {
  const v = new VirtualNet(601);
  const { a, b } = await pair(v);
  assert.equal(a.state, "ready", "a finished its handshake");
  assert.equal(b.state, "ready", "b finished its handshake");
  await v.advance(20 * PING_MS, STEP);
  assert.equal(a.state, "ready", "a healthy link is never closed on a timer");
  v.net.setLinkDown(A, B, true);
  const from = v.clock.now();
  let closedAt: number | null = null;
  a.events.on("closed", () => (closedAt ??= v.clock.now()));
  await v.advance(3 * PING_MS, STEP);
  assert.equal(a.state, "ready", "not before 3 silent intervals");
  await v.advance(PING_MS + 1, STEP);
  assert.equal(a.state, "closed", "closed in the 4th silent interval");
  assert.equal(a.closeReason, GoodbyeReason.STALLED, "as STALLED");
  assert.ok(closedAt! - from <= 4 * PING_MS + 1, `closed ${closedAt! - from} ms after the stall began`);
});

/** Counts the Pings a Peer sends from now on. */
function countPings(p: Peer): { n: number } {
  const count = { n: 0 };
  const send = p.send.bind(p);
  p.send = (m) => {
    if (m.type === MsgType.Ping) count.n++;
    return send(m);
  };
  return count;
}

test("ping policy: the dialer pings every interval, the listener every 4th; a stall is still caught on both sides", async () => {
  const v = new VirtualNet(605);
  const { a, b, misbehaviour } = await pair(v);
  await v.advance(2 * PING_MS, STEP);
  const pa = countPings(a);
  const pb = countPings(b);
  const rttA: number[] = [];
  for (let i = 0; i < 40; i++) {
    b.rttMs = null;
    await v.advance(PING_MS, STEP);
    if (b.rttMs !== null) rttA.push(i);
  }
  assert.equal(pa.n, 40, "a, the dialer, pinged in every interval");
  assert.equal(pb.n, 40 / PING_REFRESH_INTERVALS, "b, answered by a's pings, pinged every 4th");
  assert.equal(rttA.length, 10, "and b's RTT came back from its own pings");
  assert.equal(b.clockOffsetMs !== null && Math.abs(b.clockOffsetMs) < 50, true, "b follows a's clock");
  assert.deepEqual(misbehaviour, []);
  // The link goes silent: b, which pings rarely, closes it as fast as a does.
  v.net.setLinkDown(A, B, true);
  const from = v.clock.now();
  const closedAt: Record<string, number> = {};
  a.events.on("closed", () => (closedAt.a ??= v.clock.now() - from));
  b.events.on("closed", () => (closedAt.b ??= v.clock.now() - from));
  await v.advance(4 * PING_MS + 1, STEP);
  assert.equal(a.closeReason, GoodbyeReason.STALLED);
  assert.equal(b.closeReason, GoodbyeReason.STALLED);
  assert.ok(closedAt.a! <= 4 * PING_MS + 1 && closedAt.b! <= 4 * PING_MS + 1, JSON.stringify(closedAt));
});

test("ping policy: a listener whose dialer stops pinging pings every interval itself", async () => {
  const v = new VirtualNet(606);
  // a pings once, when ready, and never again.
  const { a, b } = await pair(v, 1e9);
  await v.advance(3 * PING_MS, STEP);
  const pb = countPings(b);
  await v.advance(20 * PING_MS, STEP);
  assert.equal(pb.n, 20, "b pinged in every interval");
  assert.equal(a.state, "ready");
  assert.equal(b.state, "ready", "a's pongs keep the link alive");
});

test("stall: a shorter stall ends in a burst (pings far over their bucket) that is dropped unscored; the link stays", async () => {
  const v = new VirtualNet(602);
  const { a, b, misbehaviour } = await pair(v);
  await v.advance(5 * PING_MS, STEP);
  v.net.setLinkDown(A, B, true);
  await v.advance(2.5 * PING_MS, STEP);
  // A backlog much larger than the bucket allows (3/s, burst 6 at 1 s pings).
  for (let i = 0; i < 200; i++)
    a.send({
      type: MsgType.Ping,
      nonce: 10_000 + i,
      height: 1,
      tipHash: Buffer.alloc(32),
      timestamp: v.clock.now(),
    });
  v.net.setLinkDown(A, B, false);
  await v.settle();
  assert.equal(a.state, "ready", "a survives the stall");
  assert.equal(b.state, "ready", "b survives the burst");
  assert.ok(b.droppedOverLimit >= 190, `excess dropped (${b.droppedOverLimit})`);
  assert.deepEqual(misbehaviour, [], "a burst of liveness is never misbehaviour");
  await v.advance(20 * PING_MS, STEP);
  assert.equal(b.state, "ready", "and the link lives on");
});

test("stall: a large frame still arriving is not silence (partial frames count as bytes received)", async () => {
  const v = new VirtualNet(603);
  // a is the sender of the large frame: it pings once and never again, so only b's view is tested.
  const { a, b, ca } = await pair(v, 1e9);
  await v.advance(2 * PING_MS, STEP);
  // Nothing else from a reaches b: a stops reading (so it never answers b's pings), and the
  // test writes the bytes of one large Peers frame on a's connection, a slice per interval.
  ca.pause();
  const peers = Array.from({ length: 500 }, (_, i) => ({
    nodeId: Buffer.alloc(32, i % 256),
    address: `10.8.1.${i % 250}:${1000 + i}`,
    services: 1,
    lastSeen: 0,
  }));
  // The record a would send: sealed in a's session, then written a slice at a time.
  const frame = a.wireBytes(a.encode({ type: MsgType.Peers, peers }));
  const slices = 10;
  const size = Math.ceil(frame.length / slices);
  for (let i = 0; i < slices; i++) {
    await v.advance(PING_MS, STEP);
    ca.write(frame.subarray(i * size, (i + 1) * size));
    await v.settle();
    assert.equal(
      b.state,
      "ready",
      `still ready after ${i + 1} of ${slices} slices (${(i + 2) * PING_MS} ms without a frame)`,
    );
  }
});

test("Hello deadline: a connection that never completes its Hello is closed after helloTimeoutMs", async () => {
  const v = new VirtualNet(604);
  const [c1, c2] = await link(v);
  const p = new Peer(
    c2,
    makeLocal(testKey("stall/hello-deadline")),
    { direction: "inbound", pingIntervalMs: PING_MS, rateLimits: {}, helloTimeoutMs: 3_000 },
    { clock: v.clock, random: v.random(), logger: nullLogger },
  );
  p.start();
  await v.settle();
  // The remote drips one byte a second of what could be a Hello.
  for (let i = 0; i < 2; i++) {
    await v.advance(1_000, STEP);
    c1.write(Buffer.from([0x00]));
  }
  assert.equal(p.state, "handshaking", "still in the handshake after 2 s");
  await v.advance(1_001, STEP);
  assert.equal(p.state, "closed", "closed at the 3 s Hello deadline");
  assert.equal(p.closeReason, GoodbyeReason.HANDSHAKE_TIMEOUT, "as a handshake timeout");
});
