/**
 * `timed devnet` as an operator runs it (a real process, four masternodes on 127.0.1.1–4, the
 * devnet's own ports and layout). The `stop` RPC on one node stops that node only: its RPC goes
 * away, the status line shows it as stopped, and the other three go on producing. Before, the
 * devnet opened its nodes without listening for their stop request: the RPC answered "stopping"
 * and the node kept running. Ctrl-C (SIGINT) then stops the rest and the command exits 0.
 * `time-cli --devnet DIR --node NAME` reaches a node by the name the status line uses.
 *
 * This file uses 127.0.1.0/24 (the devnet's addresses), which no other test uses.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { join } from "node:path";
import {
  killAllChildren,
  makeTempDir,
  NodeProcess,
  removeDir,
  rpcClient,
  runCli,
  waitFor,
} from "./helpers/proc.js";

const ROW = /^ {2}(node-\d+) {2}p2p \S+ {2}rpc (http:\/\/\S+) +\(cookie (.+?)\)/gm;

void describe("timed devnet (a real process)", () => {
  const base = makeTempDir("devnet-cmd");
  after(async () => {
    await killAllChildren();
    removeDir(base);
  });

  it("`stop` on one node stops that node only, the status line shows it, and Ctrl-C ends the rest", async () => {
    const dir = join(base, "net");
    const p = new NodeProcess(["devnet", "--nodes", "4", "--block-time", "0.5", "--dir", dir]);
    await waitFor("the devnet to list its nodes", () => p.stdout.includes("Ctrl-C stops every node."), {
      timeoutMs: 60_000,
      detail: () => p.output(),
    });
    const rows = [...p.stdout.matchAll(ROW)].map((m) => ({ name: m[1]!, url: m[2]!, cookie: m[3]! }));
    assert.deepEqual(
      rows.map((r) => r.name),
      ["node-1", "node-2", "node-3", "node-4"],
    );
    const [n1, n2] = rows.map((r) => rpcClient(r.url, r.cookie, 3_000));
    await waitFor("height 2 at node-1", async () => (await n1!.call<number>("getblockcount")) >= 2, {
      timeoutMs: 30_000,
      detail: () => p.output(),
    });
    // time-cli reaches devnet nodes by name (their cookie and RPC address from devnet.json).
    const byName = await runCli(["--devnet", dir, "--node", "node-3", "getblockcount"]);
    assert.equal(byName.code, 0, byName.stderr);
    assert.ok(Number(byName.stdout.trim()) >= 2);
    const first = await runCli(["--devnet", dir, "getbestblockhash"]);
    assert.match(first.stdout.trim(), /^[0-9a-f]{64}$/, "node-1 by default");
    const unknown = await runCli(["--devnet", dir, "--node", "node-9", "getblockcount"]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /has no node named "node-9" \(it has node-1, node-2, node-3, node-4\)/);
    const stop = await runCli(["--devnet", dir, "--node", "node-2", "stop"]);
    assert.equal(stop.code, 0, stop.stderr);
    assert.match(stop.stdout, /stopping/i);
    await waitFor("node-2 reported stopped", () => p.stdout.includes("node-2 stopped (stop RPC)"), {
      timeoutMs: 15_000,
      detail: () => p.output(),
    });
    await assert.rejects(n2!.call("getblockcount"), "node-2's RPC is gone");
    await waitFor("a status line that shows node-2 as stopped", () => /node-2 stopped {2}\|/.test(p.stdout), {
      timeoutMs: 15_000,
      detail: () => p.output(),
    });
    // The other three go on producing (min_masternodes is 3 on the devnet).
    assert.ok(p.running, "the devnet keeps running");
    const h = await n1!.call<number>("getblockcount");
    await waitFor(
      "node-1 to produce on without node-2",
      async () => (await n1!.call<number>("getblockcount")) >= h + 3,
      {
        timeoutMs: 30_000,
        detail: () => p.output(),
      },
    );
    const { code } = await p.kill("SIGINT", 30_000);
    assert.equal(code, 0, p.output());
    assert.ok(p.stdout.includes("stopping devnet…"));
  });
});
