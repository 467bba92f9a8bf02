/**
 * Clock checks between real nodes (TimeNode, LMDB, TCP on loopback): three masternodes with
 * correct clocks and one full node whose clock runs 1.5 s ahead, on 2 s blocks (maxFutureDrift
 * 1 s, so the warning threshold is a third of it). The skewed node sees its peers' median
 * offset near −1.5 s and warns (log, getnetworkinfo, metric); the others, whose median peer is a
 * correct clock, see near 0 and do not. The doctor names the skewed clock (more than half a block
 * time) on that node, and a node whose network is switched off.
 *
 * This file uses 127.0.142.0/24.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { cleanupAll, Devnet, waitFor, type NodeHandle } from "./helpers/nodes.js";

const SKEW_MS = 1_500;

void describe("clock offset (real nodes)", () => {
  let net: Devnet | undefined;

  before(async () => {
    net = await Devnet.create({
      name: "clock",
      blockTime: 2,
      pingInterval: 0.2,
      nodes: [
        ...[0, 1, 2].map((i) => ({
          host: `127.0.142.${i + 1}`,
          masternode: true,
          produce: true,
          bootstrap: i === 0 ? [] : [0],
        })),
        { host: "127.0.142.9", bootstrap: [0, 1, 2], clockSkewMs: SKEW_MS },
      ],
    });
  });

  after(async () => {
    await cleanupAll(net);
  });

  interface NetInfo {
    timeoffset: number;
    timeoffsetwarning: boolean;
  }

  it("the skewed node sees the median offset and warns; the others do not", async () => {
    const nodes = net!.nodes as NodeHandle[];
    const skewed = nodes[3]!;
    await waitFor(
      "everyone connected to everyone",
      () => nodes.every((n) => n.n.peers.peers().length === 3),
      {
        timeoutMs: 30_000,
        detail: () => net!.describe(),
      },
    );
    // Pongs refine the Hello's estimate; a few ping rounds.
    await waitFor(
      "the skewed node's getnetworkinfo warns",
      async () => {
        const info = await skewed.rpc.call<NetInfo>("getnetworkinfo");
        return info.timeoffsetwarning && Math.abs(info.timeoffset + SKEW_MS / 1000) < 0.3 ? info : undefined;
      },
      { timeoutMs: 15_000, stepMs: 200 },
    );
    assert.ok(
      skewed.logger.records.some((r) => r.msg.startsWith("This node's clock differs from its peers' median")),
      "logged",
    );
    const metrics = await fetchMetrics(skewed);
    const m = /^p2p_time_offset_seconds (\S+)$/m.exec(metrics);
    assert.ok(m && Math.abs(Number(m[1]) + SKEW_MS / 1000) < 0.3, `metric: ${m?.[0]}`);
    for (const h of nodes.slice(0, 3)) {
      const info = await h.rpc.call<NetInfo>("getnetworkinfo");
      assert.equal(info.timeoffsetwarning, false, `${h.name}: ${JSON.stringify(info)}`);
      assert.ok(Math.abs(info.timeoffset) < 0.3, `${h.name}: ${JSON.stringify(info)}`);
    }
  });

  interface Doctor {
    ok: boolean;
    verdicts: Array<{ check: string; status: string; verdict: string; suggest: string | null }>;
  }
  const verdict = (d: Doctor, check: string) => d.verdicts.find((x) => x.check === check)!;

  it("the doctor names the skewed clock, and a node whose network is switched off", async () => {
    const nodes = net!.nodes as NodeHandle[];
    const skewed = await nodes[3]!.rpc.call<Doctor>("doctor");
    assert.equal(verdict(skewed, "clock").status, "fail", JSON.stringify(skewed.verdicts));
    assert.match(verdict(skewed, "clock").verdict, /ahead of its peers' median: more than half a block time/);
    assert.equal(verdict(skewed, "producing").status, "n/a", "a full node");
    const fine = await nodes[0]!.rpc.call<Doctor>("doctor");
    assert.equal(verdict(fine, "clock").status, "ok", JSON.stringify(fine.verdicts));
    assert.equal(verdict(fine, "connections").status, "ok");

    const off = nodes[2]!;
    await off.rpc.call("setnetworkactive", [false]);
    try {
      const d = await off.rpc.call<Doctor>("doctor");
      assert.equal(d.ok, false);
      assert.equal(verdict(d, "connections").status, "fail");
      assert.equal(verdict(d, "connections").suggest, "time-cli setnetworkactive true");
    } finally {
      await off.rpc.call("setnetworkactive", [true]);
    }
  });
});

async function fetchMetrics(h: NodeHandle): Promise<string> {
  const { readCookieFile } = await import("../../src/rpc/cookie.js");
  const { dataDirPaths } = await import("../../src/node/dataDir.js");
  const creds = readCookieFile(dataDirPaths(h.dir).cookie)!;
  const res = await fetch(`${h.n.rpcUrl}metrics`, {
    headers: { Authorization: `Basic ${Buffer.from(`${creds.user}:${creds.password}`).toString("base64")}` },
  });
  return res.text();
}
