/**
 * The event stream (GET /events, server-sent events) read by a real client, `curl -N`, with the
 * RPC cookie's credentials, on two real masternodes (TimeNode, LMDB, TCP on loopback) split with
 * setban and healed: each stream carries blocks, the peer disconnects and bans of the split, and,
 * on the node whose branch lost, the reorg to the other branch; then finality resumes.
 *
 * This file uses 127.0.141.0/24.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readCookieFile } from "../../src/rpc/cookie.js";
import { dataDirPaths } from "../../src/node/dataDir.js";
import { cleanupAll, Devnet, waitFor, type NodeHandle } from "./helpers/nodes.js";
import { heal, partition } from "./helpers/splitNet.js";

interface SseEvent {
  id: number;
  type: string;
  data: Record<string, unknown>;
}

/** `curl -N` on a node's /events, its output parsed as it arrives. */
class CurlEvents {
  readonly child: ChildProcess;
  private text = "";
  constructor(h: NodeHandle) {
    const creds = readCookieFile(dataDirPaths(h.dir).cookie)!;
    this.child = spawn("curl", ["-sN", "-u", `${creds.user}:${creds.password}`, `${h.n.rpcUrl}events`], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child.stdout!.setEncoding("utf8").on("data", (s: string) => (this.text += s));
  }
  events(): SseEvent[] {
    const out: SseEvent[] = [];
    for (const chunk of this.text.split("\n\n")) {
      const id = /^id: (\d+)$/m.exec(chunk);
      const ev = /^event: (\w+)$/m.exec(chunk);
      const data = /^data: (.*)$/m.exec(chunk);
      if (id && ev && data)
        out.push({ id: Number(id[1]), type: ev[1]!, data: JSON.parse(data[1]!) as Record<string, unknown> });
    }
    return out;
  }
  of(type: string): SseEvent[] {
    return this.events().filter((e) => e.type === type);
  }
  stop(): void {
    this.child.kill("SIGKILL");
  }
}

void describe("event stream (real nodes, curl -N)", () => {
  let net: Devnet | undefined;
  const streams: CurlEvents[] = [];

  before(async () => {
    net = await Devnet.create({
      name: "events",
      nodes: [0, 1].map((i) => ({
        host: `127.0.141.${i + 1}`,
        masternode: true,
        produce: true,
        bootstrap: i === 0 ? [] : [0],
      })),
      blockTime: 0.5,
    });
  });

  after(async () => {
    for (const s of streams) s.stop();
    await cleanupAll(net);
  });

  it("blocks, the split's disconnects and bans, the losing side's reorg, and finality again", async () => {
    const [a, b] = net!.nodes as [NodeHandle, NodeHandle];
    await waitFor("both at height 3", () => a.n.chain.height >= 3 && b.n.chain.height >= 3, {
      timeoutMs: 30_000,
    });
    const sa = new CurlEvents(a);
    const sb = new CurlEvents(b);
    streams.push(sa, sb);
    await waitFor(
      "both streams carry a block",
      () => sa.of("block").length > 0 && sb.of("block").length > 0,
      {
        timeoutMs: 10_000,
      },
    );

    await partition([a], [b]);
    const split = Math.max(a.n.chain.height, b.n.chain.height);
    await waitFor(
      "each side 3 blocks past the split, on its own branch",
      () =>
        a.n.chain.height >= split + 3 &&
        b.n.chain.height >= split + 3 &&
        !a.n.chain.getIndex(b.n.chain.tip.hash) &&
        !b.n.chain.getIndex(a.n.chain.tip.hash),
      { timeoutMs: 30_000, detail: () => `${a.describe()}\n${b.describe()}` },
    );
    await heal([a, b]);
    await waitFor("one tip again", () => a.n.chain.tip.hash.equals(b.n.chain.tip.hash), {
      timeoutMs: 30_000,
    });
    await waitFor("a reorg event on one stream", () => sa.of("reorg").length + sb.of("reorg").length > 0, {
      timeoutMs: 10_000,
    });

    for (const [h, s] of [
      [a, sa],
      [b, sb],
    ] as const) {
      const events = s.events();
      // Ids count up from 1 with no gap: nothing was lost on the way.
      assert.deepEqual(
        events.map((e) => e.id),
        events.map((_, i) => i + 1),
      );
      const blocks = s.of("block");
      assert.ok(blocks.length >= 3, `${h.name}: ${blocks.length} block events`);
      for (const e of blocks) {
        assert.match(String(e.data.hash), /^[0-9a-f]{64}$/);
        assert.equal(typeof e.data.height, "number");
      }
      const other = h === a ? b : a;
      assert.ok(
        s.of("peer").some((e) => e.data.action === "disconnect" && e.data.nodeid === other.nodeId),
        `${h.name}: the split's disconnect`,
      );
      assert.ok(
        s.of("ban").some((e) => e.data.subject === other.host && e.data.source === "manual"),
        `${h.name}: the setban of the split: ${JSON.stringify(s.of("ban"))}`,
      );
      assert.ok(
        s.of("peer").some((e) => e.data.action === "connect" && e.data.nodeid === other.nodeId),
        `${h.name}: the reconnect after the heal`,
      );
    }
    const loser = sa.of("reorg").length > 0 ? a : b;
    const stream = loser === a ? sa : sb;
    const reorg = stream.of("reorg")[0]!.data as {
      depth: number;
      fork: { height: number };
      newtip: { height: number; hash: string };
    };
    assert.ok(reorg.depth >= 3, JSON.stringify(reorg));
    assert.ok(reorg.fork.height <= split);
    assert.ok(loser.n.chain.getIndex(Buffer.from(reorg.newtip.hash, "hex")), "its new tip is a stored block");
    // Finality resumes with both voting again (2 of 2), and both streams say so.
    const tipAfter = a.n.chain.height;
    await waitFor(
      "a finalized event above the heal on both streams",
      () => [sa, sb].every((s) => s.of("finalized").some((e) => Number(e.data.height) >= tipAfter)),
      { timeoutMs: 20_000 },
    );
  });
});
