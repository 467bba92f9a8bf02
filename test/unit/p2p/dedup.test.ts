import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { keepIncoming, type DedupView } from "../../../src/p2p/peerManager.js";

const A = Buffer.alloc(32, 0x11);
const B = Buffer.alloc(32, 0x22);

test("dedup: keeps the connection dialled by the smaller node id, on both sides", () => {
  // Seen from A (the smaller id): A's own dial is outbound, B's is inbound.
  const aOut: DedupView = { direction: "outbound", remoteId: B, seq: 1 };
  const aIn: DedupView = { direction: "inbound", remoteId: B, seq: 2 };
  assert.equal(keepIncoming(A, aOut, aIn), false, "A keeps its own dial");
  assert.equal(keepIncoming(A, aIn, aOut), true, "A switches to its own dial");
  // Seen from B: A's dial is inbound, B's own is outbound.
  const bIn: DedupView = { direction: "inbound", remoteId: A, seq: 1 };
  const bOut: DedupView = { direction: "outbound", remoteId: A, seq: 2 };
  assert.equal(keepIncoming(B, bIn, bOut), false, "B keeps A's dial");
  assert.equal(keepIncoming(B, bOut, bIn), true, "B switches to A's dial");
});

test("dedup: two connections dialled by the same side keep the newer one", () => {
  const old: DedupView = { direction: "inbound", remoteId: B, seq: 5 };
  const fresh: DedupView = { direction: "inbound", remoteId: B, seq: 9 };
  assert.equal(keepIncoming(A, old, fresh), true);
  assert.equal(keepIncoming(A, fresh, old), false);
  const o1: DedupView = { direction: "outbound", remoteId: B, seq: 3 };
  const o2: DedupView = { direction: "outbound", remoteId: B, seq: 4 };
  assert.equal(keepIncoming(A, o1, o2), true);
});

test("dedup: both sides pick the same survivor whatever order connections become ready in", () => {
  const id = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((u) => Buffer.from(u));
  fc.assert(
    fc.property(
      id,
      id,
      // Each connection: which side dialled it. Index = establishment order (same on both ends).
      fc.array(fc.boolean(), { minLength: 2, maxLength: 6 }),
      fc.integer({ min: 0, max: 2 ** 31 - 1 }),
      fc.integer({ min: 0, max: 2 ** 31 - 1 }),
      (x, y, dialedByX, seedX, seedY) => {
        fc.pre(!x.equals(y));
        const order = (n: number, seed: number): number[] => {
          const idx = [...Array(n).keys()];
          let s = seed;
          for (let i = n - 1; i > 0; i--) {
            s = (s * 1103515245 + 12345) & 0x7fffffff;
            const j = s % (i + 1);
            [idx[i], idx[j]] = [idx[j]!, idx[i]!];
          }
          return idx;
        };
        const survivor = (local: Buffer, remote: Buffer, localIsX: boolean, seed: number): number => {
          let kept: number | null = null;
          const view = (i: number): DedupView => ({
            direction: dialedByX[i] === localIsX ? "outbound" : "inbound",
            remoteId: remote,
            seq: i,
          });
          for (const i of order(dialedByX.length, seed)) {
            if (kept === null || keepIncoming(local, view(kept), view(i))) kept = i;
          }
          return kept!;
        };
        const sx = survivor(x, y, true, seedX);
        const sy = survivor(y, x, false, seedY);
        assert.equal(sx, sy);
        // And it was dialled by the smaller id whenever that id dialled at all.
        const xSmaller = Buffer.compare(x, y) < 0;
        if (dialedByX.some((d) => d === xSmaller)) assert.equal(dialedByX[sx], xSmaller);
      },
    ),
    { numRuns: 500 },
  );
});
