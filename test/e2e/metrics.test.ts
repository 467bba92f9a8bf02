import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { dataDirPaths } from "../../src/node/dataDir.js";
import { Devnet, cleanupAll, waitFor } from "./helpers/nodes.js";

/** The seeds' metric names, fixed by INTERFACE.md. */
const SEED_METRICS = [
  "sync_coordinator_checks_total",
  "sync_coordinator_syncs_initiated_total",
  "sync_coordinator_height_diff",
  "masternode_sync_duration_seconds",
  "masternode_sync_blocks_received_total",
  "masternode_sync_failures_total",
  "peer_height_variance",
  "masternode_consensus_height",
  "local_height_behind_consensus",
];

/** What an operator needs besides (issue 7). */
const OPERATOR_METRICS = [
  "chain_height",
  "chain_finalized_height",
  "finality_lag_blocks",
  "finality_votes_total",
  "finality_offences_total",
  "p2p_peers",
  "p2p_disconnects_total",
  "p2p_bans_total",
  "masternodes_active",
  "masternodes_registered",
  "blocks_produced_total",
  "blocks_missed_total",
  "mempool_transactions",
  "reorgs_total",
  "reorg_depth",
  "rpc_request_duration_seconds",
  "nodejs_eventloop_lag_seconds",
  "nodejs_heap_size_used_bytes",
];

function promtool(): string {
  for (const p of ["/usr/bin/promtool", "/usr/local/bin/promtool"]) if (existsSync(p)) return p;
  throw new Error("promtool is missing: .ci/run installs Debian's prometheus package, which provides it");
}

async function scrape(
  url: string,
  auth: string | null,
): Promise<{ status: number; body: string; type: string }> {
  const res = await fetch(new URL("/metrics", url), {
    headers: auth ? { Authorization: `Basic ${auth}` } : {},
    signal: AbortSignal.timeout(10_000),
  });
  return { status: res.status, body: await res.text(), type: res.headers.get("content-type") ?? "" };
}

void describe("GET /metrics", () => {
  let net: Devnet | undefined;
  before(async () => {
    net = await Devnet.create({
      name: "metrics",
      blockTime: 0.5,
      nodes: [
        { host: "127.0.95.1", masternode: true, produce: true },
        { host: "127.0.95.2", bootstrap: [0] },
      ],
    });
  });
  after(() => cleanupAll(net));

  void it("serves every named metric in a format promtool accepts, from a node that has been syncing", async () => {
    const producer = net!.node(0);
    const follower = net!.node(1);
    // The follower syncs a few blocks from the producer first.
    await waitFor(
      "the follower syncs 4 blocks",
      async () => (await follower.rpc.call<number>("getblockcount")) >= 4,
      { timeoutMs: 20_000 },
    );
    await follower.rpc.call("getblockcount"); // one RPC call so the latency histogram has a sample
    const cookie = readFileSync(dataDirPaths(follower.dir).cookie, "utf8").trim();
    const auth = Buffer.from(cookie).toString("base64");
    const url = follower.n.rpcUrl!;

    const denied = await scrape(url, null);
    assert.equal(denied.status, 401, "metrics need the RPC credentials");

    const { status, body, type } = await scrape(url, auth);
    assert.equal(status, 200);
    assert.match(type, /^text\/plain/);
    for (const name of [...SEED_METRICS, ...OPERATOR_METRICS]) {
      assert.match(body, new RegExp(`^# TYPE ${name} `, "m"), `metric ${name} is exported`);
    }
    const height = Number(/^chain_height (\d+)/m.exec(body)?.[1]);
    assert.ok(height >= 4, `chain_height reports the synced height (${height})`);
    assert.match(
      body,
      /^p2p_peers\{direction="outbound",class="masternode"\} 1$/m,
      "the producer is an outbound masternode peer",
    );

    // Every metric the shipped Grafana dashboard queries exists under that name.
    const grafana = JSON.parse(readFileSync("docs/grafana-dashboard.json", "utf8")) as {
      panels: Array<{ targets: Array<{ expr: string }> }>;
    };
    const queried = new Set<string>();
    for (const panel of grafana.panels) {
      for (const t of panel.targets) {
        for (const m of t.expr.matchAll(/\b([a-z][a-z0-9_]*)(?=[[{\s)]|$)/g)) {
          const name = m[1]!.replace(/_bucket$/, "");
          if (name.includes("_") && !["histogram_quantile", "sum", "rate", "increase"].includes(name))
            queried.add(name);
        }
      }
    }
    assert.ok(queried.size >= 15, `the dashboard queries many metrics (${queried.size})`);
    for (const name of queried)
      assert.match(body, new RegExp(`^# TYPE ${name} `, "m"), `grafana panel metric ${name} exists`);

    const check = spawnSync(promtool(), ["check", "metrics"], {
      input: body,
      encoding: "utf8",
      timeout: 30_000,
    });
    assert.equal(check.status, 0, `promtool check metrics failed:\n${check.stdout}${check.stderr}`);

    // The producer's own counters move too.
    const p = await scrape(
      producer.n.rpcUrl!,
      Buffer.from(readFileSync(dataDirPaths(producer.dir).cookie, "utf8").trim()).toString("base64"),
    );
    const produced = Number(/^blocks_produced_total (\d+)/m.exec(p.body)?.[1]);
    assert.ok(produced >= 4, `blocks_produced_total counts the producer's blocks (${produced})`);
  });
});
