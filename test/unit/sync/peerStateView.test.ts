import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { GoodbyeReason } from "../../../src/p2p/messages.js";
import type { Peer } from "../../../src/p2p/peer.js";
import type { PeerManagerEvents } from "../../../src/p2p/peerManager.js";
import type { SyncPeerSource } from "../../../src/sync/interface.js";
import { PeerStateView } from "../../../src/sync/peerStateView.js";
import { FAILURE_STREAK_TTL_MS } from "../../../src/sync/constants.js";
import { ManualClock } from "../../../src/util/clock.js";
import { TypedEmitter } from "../../../src/util/typedEmitter.js";

const MIN = 60_000;

function fakePeer(id: string, height: number): Peer {
  return {
    nodeIdHex: id,
    addr: `127.0.0.1:${1000 + height}`,
    state: "ready",
    height,
    tipHash: Buffer.alloc(32, height % 256),
    rttMs: 3,
    lastMessageAt: 0,
    hello: { genesisHash: Buffer.alloc(32, 9) },
  } as unknown as Peer;
}

function fakeSource(
  peers: Peer[],
  flags: Record<string, { masternode: boolean; whitelisted: boolean }> = {},
) {
  const events = new TypedEmitter<PeerManagerEvents>();
  const src: SyncPeerSource = {
    events,
    peers: () => peers.filter((p) => p.state === "ready"),
    getPeer: (id) => peers.find((p) => p.nodeIdHex === id),
    misbehaving: () => undefined,
    peerInfo: () =>
      peers.map((p) => ({
        nodeid: p.nodeIdHex,
        masternode: flags[p.nodeIdHex]?.masternode ?? false,
        whitelisted: flags[p.nodeIdHex]?.whitelisted ?? false,
      })),
  };
  return { src, events };
}

describe("PeerStateView", () => {
  it("learns height, tip, genesis, RTT and flags from the handshake and every state change", () => {
    const clock = new ManualClock();
    const a = fakePeer("aa", 10);
    const { src, events } = fakeSource([a], { aa: { masternode: true, whitelisted: true } });
    const view = new PeerStateView({}, { clock });
    view.observe(src);
    const e = view.get("aa")!;
    assert.deepEqual(
      { h: e.height, mn: e.masternode, wl: e.whitelisted, rtt: e.rttMs, g: e.genesis?.[0] },
      { h: 10, mn: true, wl: true, rtt: 3, g: 9 },
    );
    (a as { height: number }).height = 42;
    events.emit("peerState", a);
    assert.equal(view.get("aa")!.height, 42);
    events.emit("peerClosed", { peer: a, reason: GoodbyeReason.CONNECTION_LOST, message: "", byUs: false });
    assert.equal(view.get("aa")!.connected, false);
    assert.equal(view.fresh().length, 0);
  });

  it("stale entries are not used; disconnected ones expire after the 5-minute TTL, keeping failures until then", () => {
    const clock = new ManualClock();
    const view = new PeerStateView({}, { clock });
    view.update("a", { height: 5 });
    view.update("b", { height: 6 });
    view.recordFailure("b");
    view.disconnected("b");
    clock.advance(4 * MIN);
    view.update("b", { connected: true }); // reconnects: the failure streak is remembered
    assert.equal(view.get("b")!.consecutiveFailures, 1);
    clock.advance(2 * MIN);
    // "a" has not been heard of for 6 minutes: stale, not used for targets.
    assert.deepEqual(
      view.fresh().map((e) => e.id),
      ["b"],
    );
    view.disconnected("b");
    clock.advance(5 * MIN + 1);
    view.prune();
    assert.equal(view.get("b"), undefined);
    assert.ok(view.get("a"), "a connected entry is kept, only excluded while stale");
  });

  it("a success ends a failure streak; three failures in a row make a peer unusable", () => {
    const view = new PeerStateView({}, { clock: new ManualClock() });
    view.update("a", {});
    for (let i = 0; i < 3; i++) view.recordFailure("a");
    assert.equal(view.usable().length, 0);
    view.recordSuccess("a");
    assert.equal(view.usable().length, 1);
    assert.notEqual(view.get("a")!.lastUsefulAt, null);
  });

  it("a failure streak is forgotten a minute after its last failure (a healed partition), not kept for ever", () => {
    const clock = new ManualClock();
    const view = new PeerStateView({}, { clock });
    view.update("a", {});
    for (let i = 0; i < 3; i++) view.recordFailure("a");
    assert.equal(view.usable().length, 0);
    clock.advance(FAILURE_STREAK_TTL_MS);
    view.update("a", {}); // still pinging
    assert.equal(view.usable().length, 0, "not before the minute is over");
    clock.advance(1);
    assert.equal(view.usable().length, 1, "usable again once the streak is old");
    view.recordFailure("a");
    assert.equal(view.get("a")!.consecutiveFailures, 1, "a new failure starts a new streak");
    assert.equal(view.usable().length, 1);
  });

  it("is bounded", () => {
    const view = new PeerStateView({ capacity: 50 }, { clock: new ManualClock() });
    for (let i = 0; i < 500; i++) view.update(`p${i}`, { height: i });
    assert.equal(view.size, 50);
    assert.ok(view.get("p499"));
  });

  it("counts distinct outbound addresses refused for another genesis, within the TTL", () => {
    const clock = new ManualClock();
    const { src, events } = fakeSource([]);
    const view = new PeerStateView({}, { clock });
    view.observe(src);
    const refuse = (
      address: string,
      direction: "inbound" | "outbound",
      reason = GoodbyeReason.WRONG_GENESIS,
    ) => events.emit("handshakeFailed", { address, direction, reason, message: "", byUs: true });
    refuse("10.0.0.1:1", "outbound");
    refuse("10.0.0.1:1", "outbound"); // the same address redialled counts once
    refuse("10.0.0.2:1", "outbound");
    refuse("10.0.0.3", "inbound"); // strangers dialling us do not count
    refuse("10.0.0.4:1", "outbound", GoodbyeReason.WRONG_NETWORK);
    assert.equal(view.genesisRefusals(), 2);
    clock.advance(5 * MIN + 1);
    assert.equal(view.genesisRefusals(), 0);
  });

  it("refresh picks up RTT, liveness and flag changes, and notices peers that vanished", () => {
    const clock = new ManualClock();
    const a = fakePeer("aa", 1);
    const b = fakePeer("bb", 2);
    const flags = { aa: { masternode: false, whitelisted: false } };
    const peers = [a, b];
    const { src } = fakeSource(peers, flags);
    const view = new PeerStateView({}, { clock });
    view.observe(src);
    clock.advance(4 * MIN);
    (a as { rttMs: number }).rttMs = 77;
    (a as { lastMessageAt: number }).lastMessageAt = clock.now();
    flags.aa.masternode = true;
    peers.pop();
    view.refresh();
    clock.advance(2 * MIN);
    assert.deepEqual(
      { rtt: view.get("aa")!.rttMs, mn: view.get("aa")!.masternode, b: view.get("bb")!.connected },
      { rtt: 77, mn: true, b: false },
    );
    assert.deepEqual(
      view.fresh().map((e) => e.id),
      ["aa"],
    );
  });
});
