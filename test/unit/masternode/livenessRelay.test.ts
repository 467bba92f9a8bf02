/** LivenessRelay: who hears of a relayed heartbeat, and the bounds on what peers can make it do. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createMemoryLogger } from "../../../src/logging/index.js";
import {
  LivenessRelay,
  POOL_TTL_MS,
  RELAY_FANOUT,
  trickleIntervalMs,
} from "../../../src/masternode/livenessRelay.js";
import { MsgType } from "../../../src/p2p/messages.js";
import type { Peer } from "../../../src/p2p/peer.js";
import { ManualClock } from "../../../src/util/clock.js";
import { SeededRandom } from "../../../src/util/random.js";
import { fakePeer, opKey, type FakePeer } from "./helpers.js";

function rig(peers: FakePeer[]): LivenessRelay {
  return new LivenessRelay(1_000, {
    clock: new ManualClock(0),
    random: new SeededRandom(4),
    logger: createMemoryLogger(),
    network: { peers: () => peers as unknown as Peer[] },
    has: () => false,
  });
}

const announced = (p: FakePeer): number =>
  p.sent.reduce((n, m) => n + (m.type === MsgType.LivenessInv ? m.hashes.length : 0), 0);

void describe("LivenessRelay", () => {
  it("announces to every masternode peer and to RELAY_FANOUT others, a different draw per message", () => {
    const mns = [1, 2].map((i) => fakePeer(i, opKey("relay", i)));
    const others = Array.from({ length: 14 }, (_, i) => fakePeer(10 + i));
    const relay = rig([...mns, ...others]);
    const messages = 40;
    for (let i = 0; i < messages; i++) relay.relay("heartbeat", Buffer.alloc(32, i), Buffer.alloc(150));
    relay.flush();
    for (const p of mns) assert.equal(announced(p), messages, "masternode peers hear of everything");
    const total = others.reduce((n, p) => n + announced(p), 0);
    assert.equal(total, messages * RELAY_FANOUT, "each message to exactly RELAY_FANOUT other peers");
    assert.ok(
      others.every((p) => announced(p) > 0),
      "the draw varies: every other peer hears of some",
    );
  });

  it("a peer that sent a message, or is known to have it, is never told of it", () => {
    const from = fakePeer(1, opKey("relay", 1));
    const knowing = fakePeer(2, opKey("relay", 2));
    const relay = rig([from, knowing]);
    const h = Buffer.alloc(32, 7);
    knowing.markKnown(h);
    relay.relay("heartbeat", h, Buffer.alloc(150), from as unknown as Peer);
    relay.flush();
    assert.equal(announced(from) + announced(knowing), 0);
  });

  it("trickles at half the heartbeat interval, between 50 ms and 2 s", () => {
    assert.equal(trickleIntervalMs(1_000), 500);
    assert.equal(trickleIntervalMs(60_000), 2_000);
    assert.equal(trickleIntervalMs(20), 50);
  });
});

void describe("LivenessRelay pool", () => {
  it("serves what it relayed, and forgets it after POOL_TTL_MS", () => {
    const peer = fakePeer(1, opKey("relay", 1));
    const clock = new ManualClock(0);
    const relay = new LivenessRelay(1_000, {
      clock,
      random: new SeededRandom(4),
      logger: createMemoryLogger(),
      network: { peers: () => [peer] as unknown as Peer[] },
      has: () => false,
    });
    const h = Buffer.alloc(32, 3);
    relay.relay("heartbeat", h, Buffer.alloc(150, 1));
    relay.onGet(peer as unknown as Peer, [h]);
    assert.equal(peer.sent.filter((m) => m.type === MsgType.LivenessBatch).length, 1);
    clock.advance(POOL_TTL_MS + 1);
    relay.flush();
    assert.equal(relay.sizes.pool, 0);
    relay.onGet(peer as unknown as Peer, [h]);
    assert.equal(peer.sent.filter((m) => m.type === MsgType.LivenessBatch).length, 1, "nothing to serve");
  });
});
