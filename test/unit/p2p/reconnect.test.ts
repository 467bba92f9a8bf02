// Recovery on virtual time: the redial backoff starts over when connectivity comes back, and a
// node cut off from every peer says so.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createMemoryLogger } from "../../../src/logging/index.js";
import { Peer } from "../../../src/p2p/peer.js";
import { PeerManager } from "../../../src/p2p/peerManager.js";
import { CountingTransport, makeLocal, PORT, testKey, VirtualNet } from "./harness.js";

// The node is cut off: nothing answers at B or C, so every dial to them is refused at once. Its
// only contacts are inbound.
const HOST = "10.9.0.1";
const B = `10.9.0.2:${PORT}`;
const C = `10.9.0.3:${PORT}`;

/** Virtual time moves in steps of 250 ms here. */
const STEP = 250;

/** A node with the default options (5 s doubling backoff) but for a 2 s ping and a 1 s dial loop. */
function make(v: VirtualNet) {
  const transport = new CountingTransport(v.transport(HOST), v.clock);
  const logger = createMemoryLogger({ level: "info" });
  const pm = new PeerManager(
    {
      listen: { host: HOST, port: PORT },
      bootstrapPeers: [B, C],
      pingIntervalMs: 2_000,
      dialIntervalMs: 1_000,
    },
    { clock: v.clock, random: v.random(), logger, transport, local: makeLocal(testKey("reconnect/node")) },
  );
  return { pm, transport, logger };
}

/** A Peer at `fromHost` dialling the node: an inbound contact. */
async function contact(v: VirtualNet, fromHost: string, tag: string): Promise<Peer> {
  const conn = await v.dial(fromHost, `${HOST}:${PORT}`);
  const p = new Peer(
    conn,
    makeLocal(testKey(`reconnect/${tag}`)),
    { direction: "outbound", pingIntervalMs: 2_000, rateLimits: {} },
    { clock: v.clock, random: v.random(), logger: createMemoryLogger() },
  );
  p.start();
  return p;
}

test("backoff reset: an inbound contact after a quiet spell redials every target at once", async () => {
  const v = new VirtualNet(701);
  const { pm, transport } = make(v);
  await pm.start();
  try {
    // Alone for a minute: B and C fail over and over, and their backoff grows (5 s doubling).
    await v.advance(60_000, STEP);
    const before = transport.times(C);
    assert.ok(before.length >= 3 && before.length <= 5, `C dialled ${before.length} times in a minute`);
    const gap = before[before.length - 1]! - before[before.length - 2]!;
    assert.ok(gap >= 15_000, `the backoff had grown (${gap} ms)`);
    // The partition heals: B dials us. That is contact after a quiet spell.
    const healedAt = v.clock.now();
    await contact(v, "10.9.0.2", "b");
    await v.advance(1_500, STEP);
    assert.equal(pm.peers().length, 1, "B is connected");
    const after = transport.times(C).filter((t) => t >= healedAt);
    assert.ok(after.length >= 1, "C is redialled at once, not after its backoff");
    assert.ok(after[0]! - healedAt <= 1_100, `redialled ${after[0]! - healedAt} ms after the contact`);
  } finally {
    await pm.stop();
  }
});

test("backoff reset: contacts on a healthy network (no quiet spell) leave a dead address's backoff alone", async () => {
  const v = new VirtualNet(702);
  const { pm, transport } = make(v);
  await pm.start();
  try {
    await v.advance(60_000, STEP);
    // Inbound contacts every second: the network is fine, C is simply dead.
    const since = v.clock.now();
    for (let i = 0; i < 30; i++) {
      await contact(v, `10.9.1.${i + 1}`, `contact-${i}`);
      await v.advance(1_000, STEP);
    }
    assert.equal(pm.peers().length, 30, "every contact is connected");
    const redials = transport.times(C).filter((t) => t >= since);
    // The first contact ended the quiet minute (one reset); after that the backoff (20 s, 40 s) holds.
    assert.ok(redials.length <= 3, `C dialled ${redials.length} times in 30 s of steady contacts`);
  } finally {
    await pm.stop();
  }
});

test("isolation: a node without peers says so in its status and logs, and says when it is back", async () => {
  const v = new VirtualNet(703);
  const { pm, logger } = make(v);
  await pm.start();
  try {
    assert.equal(pm.isolation().isolated, true, "no peer yet");
    await v.advance(10_000, STEP);
    assert.ok(
      logger.records.some((r) => r.level === "warn" && r.msg === "Cut off from every peer"),
      "warned",
    );
    const b = await contact(v, "10.9.0.2", "b");
    await v.advance(500, STEP);
    assert.deepEqual(pm.isolation(), { isolated: false, since: null }, "not isolated once B is connected");
    assert.ok(
      logger.records.some((r) => r.msg === "Connected again after being cut off from every peer"),
      "said it is back",
    );
    b.close(14, "bye");
    await v.advance(500, STEP);
    assert.equal(pm.isolation().isolated, true, "cut off again");
  } finally {
    await pm.stop();
  }
});
