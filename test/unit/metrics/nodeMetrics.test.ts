/**
 * NodeMetrics reads its sources at scrape time. p2p_bans_total was brought up to date inside
 * another metric's collect (p2p_banned), which runs after p2p_bans_total is serialised: a ban
 * showed only on the second scrape after it (found by an independent client). Each read of the
 * counter must now show every ban made before it.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Registry } from "prom-client";
import { NodeMetrics, type NodeMetricsSources } from "../../../src/metrics/nodeMetrics.js";

/** Anything NodeMetrics asks of a source it gets: a callable that returns itself. */
function inert(): unknown {
  const f: unknown = new Proxy(() => f, { get: (_t, k) => (k === Symbol.iterator ? undefined : f) });
  return f;
}

function bed(): { registry: Registry; bans: Map<string, number> } {
  const bans = new Map<string, number>();
  const peers = new Proxy(inert() as object, {
    get: (t, k) => (k === "bans" ? bans : k === "listBanned" ? () => [...bans.keys()] : Reflect.get(t, k)),
  });
  const registry = new Registry();
  new NodeMetrics(registry, {
    chain: inert(),
    peers,
    liveness: inert(),
    mempool: inert(),
    operatorKey: null,
    finality: inert(),
  } as unknown as NodeMetricsSources);
  return { registry, bans };
}

const bansOf = (text: string, reason: string): number => {
  const m = new RegExp(`^p2p_bans_total\\{reason="${reason}"\\} (\\d+)$`, "m").exec(text);
  return m ? Number(m[1]) : 0;
};

describe("node metrics", () => {
  it("p2p_bans_total shows every ban on the first read after it, without p2p_banned being read", async () => {
    const { registry, bans } = bed();
    const read = async (): Promise<string> => registry.getSingleMetricAsString("p2p_bans_total");
    assert.equal(bansOf(await read(), "INVALID_DATA"), 0);
    bans.set("INVALID_DATA", 1);
    assert.equal(bansOf(await read(), "INVALID_DATA"), 1);
    bans.set("INVALID_DATA", 3);
    bans.set("MALFORMED_FRAME", 1);
    const text = await read();
    assert.equal(bansOf(text, "INVALID_DATA"), 3);
    assert.equal(bansOf(text, "MALFORMED_FRAME"), 1);
    // A read with nothing new adds nothing (totals become increments once).
    assert.equal(bansOf(await read(), "INVALID_DATA"), 3);
    assert.match(await registry.getSingleMetricAsString("p2p_banned"), /^p2p_banned 2$/m);
  });
});
