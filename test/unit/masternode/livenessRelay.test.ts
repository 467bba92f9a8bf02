/** LivenessRelay: who hears of a relayed heartbeat, and the bounds on what peers can make it do. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createMemoryLogger } from "../../../src/logging/index.js";
import { LivenessRelay, POOL_TTL_MS, trickleIntervalMs } from "../../../src/masternode/livenessRelay.js";
import { MsgType } from "../../../src/p2p/messages.js";
import type { Peer } from "../../../src/p2p/peer.js";
import { ManualClock } from "../../../src/util/clock.js";
import { fakePeer, opKey, type FakePeer } from "./helpers.js";

/** A relay over these peers; a masternode peer is one with an operator key (registration aside). */
function rig(peers: FakePeer[], masternode = true, clock = new ManualClock(0)): LivenessRelay {
  return new LivenessRelay(1_000, {
    clock,
    logger: createMemoryLogger(),
    network: { peers: () => peers as unknown as Peer[] },
    isMasternode: () => masternode,
    isMasternodePeer: (p) => p.operatorPubkey !== null,
    has: () => false,
  });
}

const announced = (p: FakePeer): number =>
  p.sent.reduce((n, m) => n + (m.type === MsgType.LivenessInv ? m.hashes.length : 0), 0);

void describe("LivenessRelay", () => {
  it("a masternode announces every message to every masternode peer, and to no full-node peer", () => {
    const mns = [1, 2].map((i) => fakePeer(i, opKey("relay", i)));
    const others = Array.from({ length: 14 }, (_, i) => fakePeer(10 + i));
    const relay = rig([...mns, ...others]);
    const messages = 40;
    for (let i = 0; i < messages; i++) {
      relay.relay(i % 2 ? "heartbeat" : "attestation", Buffer.alloc(32, i), Buffer.alloc(150));
    }
    relay.flush();
    for (const p of mns) assert.equal(announced(p), messages, "masternode peers hear of everything");
    for (const p of others) assert.deepEqual(p.sent, [], "full-node peers hear of nothing");
    assert.equal(relay.sizes.pool, messages, "pooled to serve the masternode peers");
  });

  it("a full node neither announces nor pools what it accepted", () => {
    const peers = [fakePeer(1, opKey("relay", 1)), fakePeer(2)];
    const clock = new ManualClock(0);
    const relay = rig(peers, false, clock);
    relay.start();
    relay.relay("heartbeat", Buffer.alloc(32, 1), Buffer.alloc(150));
    relay.relay("attestation", Buffer.alloc(32, 2), Buffer.alloc(150));
    clock.advance(10_000);
    relay.flush();
    for (const p of peers) assert.deepEqual(p.sent, [], "nothing announced");
    assert.equal(relay.sizes.pool, 0, "nothing pooled");
    relay.onGet(peers[0] as unknown as Peer, [Buffer.alloc(32, 1)]);
    assert.deepEqual(peers[0]!.sent, [], "nothing to serve");
    relay.stop();
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
    const relay = rig([peer], true, clock);
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
