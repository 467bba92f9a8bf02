import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { sha256 } from "../../../src/crypto/hash.js";
import { findCommonAncestor, spread, type LocalChainView } from "../../../src/sync/ancestor.js";
import { SyncError } from "../../../src/sync/errors.js";
import { ChainHarness, testGenesis, testKeys } from "../../helpers/chainFixture.js";
import { extend, FakePeer, later } from "./helpers.js";

/** Our main chain: the peer's blocks up to `forkHeight`, then blocks of our own up to `height`. */
function forkedView(peer: FakePeer, forkHeight: number, height: number): LocalChainView {
  return {
    height,
    hashAt: (h) => {
      if (h > height) return undefined;
      if (h <= forkHeight) return peer.chain.getHashAtHeight(h);
      return sha256(Buffer.from(`ours/${forkHeight}/${h}`));
    },
  };
}

const asPeer = (p: FakePeer) => ({
  getHeaders: (loc: Buffer[], max: number) => later(() => p.getHeaders(loc, max)),
  getHashes: (hs: number[]) => later(() => p.getHashes(hs)),
});

describe("common ancestor search (locators, then bisection)", () => {
  const keys = testKeys("ancestor", 1);
  let h: ChainHarness;
  let peer: FakePeer;
  const HEIGHT = 10_050;
  /** Forks sit at height 10,000 of the peer's chain; our tip is `depth` blocks above it. */
  const FORK = 10_000;
  const forkAt = (p: FakePeer, depth: number): LocalChainView => forkedView(p, FORK, FORK + depth);

  before(() => {
    h = new ChainHarness(testGenesis({ masternodes: keys }), keys);
    extend(h, HEIGHT);
    peer = new FakePeer("p", h.chain);
  });
  after(async () => h.close());

  it("round trips grow logarithmically with the fork depth (10, 100, 1,000, 10,000)", async () => {
    const trips: Record<number, number> = {};
    for (const depth of [10, 100, 1_000, 10_000]) {
      const fork = FORK;
      peer.calls.length = 0;
      const r = await findCommonAncestor(forkAt(peer, depth), asPeer(peer), { maxDepth: 10_000 });
      assert.equal(r.fork?.height, fork, `depth ${depth}: fork height`);
      assert.ok(r.fork!.hash.equals(h.chain.getHashAtHeight(fork)!), `depth ${depth}: fork hash`);
      assert.equal(r.headers[0]!.height, fork + 1, `depth ${depth}: first branch header`);
      assert.ok(r.hashes[0]!.equals(h.chain.getHashAtHeight(fork + 1)!));
      assert.equal(r.roundTrips, peer.calls.length, "every request is one counted round trip");
      trips[depth] = r.roundTrips;
    }
    // The original walked back one block per round trip: 10,000 trips at depth 10,000.
    assert.deepEqual(trips, { 10: 1, 100: 1, 1000: 1, 10000: 4 });
    for (const [depth, n] of Object.entries(trips)) {
      assert.ok(n <= 2 + Math.ceil(Math.log(Number(depth)) / Math.log(65)), `depth ${depth}: ${n} trips`);
    }
  });

  it("depth is bounded: 2,000 for ordinary peers, 10,000 for whitelisted masternodes", async () => {
    const at = (depth: number, maxDepth: number) =>
      findCommonAncestor(forkAt(peer, depth), asPeer(peer), { maxDepth });
    assert.equal((await at(2_000, 2_000)).fork?.height, FORK);
    await assert.rejects(
      at(2_001, 2_000),
      (e: unknown) => e instanceof SyncError && e.code === "FORK_TOO_DEEP",
    );
    await assert.rejects(
      at(2_500, 2_000),
      (e: unknown) => e instanceof SyncError && e.code === "FORK_TOO_DEEP",
    );
    assert.equal((await at(2_500, 10_000)).fork?.height, FORK);
    assert.equal((await at(10_000, 10_000)).fork?.height, FORK);
    await assert.rejects(
      at(10_001, 10_000),
      (e: unknown) => e instanceof SyncError && e.code === "FORK_TOO_DEEP",
    );
    // A bound hit during bisection never walks further down: a bounded number of requests.
    peer.calls.length = 0;
    await assert.rejects(at(9_000, 2_000));
    assert.ok(peer.calls.length <= 3, `${peer.calls.length} requests`);
  });

  it("a peer ahead on our own chain: one round trip, the branch starts at our tip", async () => {
    const local: LocalChainView = {
      height: 5_000,
      hashAt: (x) => (x <= 5_000 ? h.chain.getHashAtHeight(x) : undefined),
    };
    const r = await findCommonAncestor(local, asPeer(peer), { maxDepth: 2_000 });
    assert.equal(r.roundTrips, 1);
    assert.equal(r.fork?.height, 5_000);
    assert.equal(r.headers.length, 2_000);
    assert.ok(r.more);
  });

  it("a peer behind on our chain: nothing to fetch", async () => {
    const local = forkedView(peer, HEIGHT, HEIGHT + 60);
    const r = await findCommonAncestor(local, asPeer(peer), { maxDepth: 2_000 });
    assert.equal(r.headers.length, 0);
    assert.equal(r.fork?.height, HEIGHT);
  });

  it("contradictory answers are BAD_RESPONSE, never a wrong ancestor", async () => {
    // Claims to differ at a height and to agree above it.
    const liar = new FakePeer("liar", h.chain, {
      tamperHashes: (hs) => hs.map((x, i) => (i === 0 ? Buffer.alloc(32, 7) : x)),
    });
    await assert.rejects(
      findCommonAncestor(forkAt(liar, 10_000), asPeer(liar), { maxDepth: 12_000 }),
      (e: unknown) => e instanceof SyncError && e.code === "BAD_RESPONSE",
    );
    const short = new FakePeer("short", h.chain, { tamperHashes: (hs) => hs.slice(1) });
    await assert.rejects(
      findCommonAncestor(forkAt(short, 10_000), asPeer(short), { maxDepth: 10_000 }),
      (e: unknown) => e instanceof SyncError && e.code === "BAD_RESPONSE",
    );
    const shifted = new FakePeer("shifted", h.chain, { tamperHeaders: (hs) => hs.slice(1) });
    await assert.rejects(
      findCommonAncestor(forkAt(shifted, 10), asPeer(shifted), { maxDepth: 2_000 }),
      (e: unknown) => e instanceof SyncError && e.code === "BAD_RESPONSE",
    );
  });

  it("spread picks distinct heights strictly inside the interval", () => {
    assert.deepEqual(spread(10, 15, 64), [11, 12, 13, 14]);
    const s = spread(0, 10_000, 64);
    assert.equal(s.length, 64);
    assert.ok(s.every((x, i) => x > 0 && x < 10_000 && (i === 0 || x > s[i - 1]!)));
    assert.deepEqual(spread(5, 6, 64), []);
  });
});
