// The seeds' sync scenarios (000–002) and the failure cases of ORIGINAL.md, "Sync as it really
// ran", with real TimeNodes over TCP on loopback. Chains are pre-built with ChainHarness on a
// genesis two hours old and imported into the "producing" nodes, so a test does not wait for
// hundreds of block intervals; the nodes under test get every block over the network.
import { anchorInput } from "../../src/consensus/committee.js";
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { blockHash, decodeBlock, encodeBlock, type Block } from "../../src/primitives/block.js";
import { NETWORKS } from "../../src/primitives/params.js";
import { pubkeyHash } from "../../src/crypto/address.js";
import { KeyPair } from "../../src/crypto/ed25519.js";
import { sha256 } from "../../src/crypto/hash.js";
import { buildBlock } from "../../src/consensus/blockBuilder.js";
import { MsgType } from "../../src/p2p/messages.js";
import type { GetSyncStatusResult } from "../../src/rpc/syncMethods.js";
import { extend } from "../helpers/chainBuild.js";
import { makeTransfer, type ChainHarness } from "../helpers/chainFixture.js";
import { sleep, waitFor } from "./helpers/nodes.js";
import { destroyAllRawPeers } from "./helpers/rawPeer.js";
import { ServingPeer } from "./helpers/servingPeer.js";
import { SyncNet } from "./helpers/syncNet.js";

const MAGIC = NETWORKS.devnet.magic;
const nets: SyncNet[] = [];
const harnesses: ChainHarness[] = [];

after(async () => {
  destroyAllRawPeers();
  await Promise.allSettled(nets.map((n) => n.cleanup()));
  await Promise.allSettled(harnesses.map((h) => h.close()));
});

async function makeNet(opts: Parameters<typeof SyncNet.create>[0]): Promise<SyncNet> {
  const net = await SyncNet.create(opts);
  nets.push(net);
  return net;
}

function harness(net: SyncNet): ChainHarness {
  const h = net.harness();
  harnesses.push(h);
  return h;
}

const hex = (b: Buffer): string => b.toString("hex");

function logged(net: SyncNet, i: number, fragment: string): boolean {
  return net.node(i).logger.records.some((r) => r.msg.includes(fragment));
}

async function metric(net: SyncNet, i: number, name: string): Promise<number> {
  const values = (await net.sync(i).metrics.registry.getSingleMetric(name)?.get())?.values ?? [];
  return values.reduce((s, v) => s + v.value, 0);
}

/** Waits until node `i` is at `height` on the tip `tip`. */
function reach(net: SyncNet, i: number, height: number, tip: string, timeoutMs = 30_000): Promise<true> {
  return waitFor(
    `${net.node(i).name} at height ${height}`,
    () => net.node(i).n.chain.height === height && net.tipHex(i) === tip,
    { timeoutMs: timeoutMs, detail: () => `${net.describe()}\n${net.node(i).recentLogs(15)}` },
  );
}

describe("sync scenarios from the seeds, over TCP", { timeout: 180_000 }, () => {
  it("seed scenario 1: a node 100 blocks behind catches up and ends on the same tip hash", async (t) => {
    const net = await makeNet({
      name: "s1",
      nodes: [
        { host: "127.0.40.1", masternode: true },
        { host: "127.0.40.2", masternode: true, bootstrap: [0] },
        { host: "127.0.40.3", masternode: true, bootstrap: [0] },
        { host: "127.0.40.4", bootstrap: [0, 1] },
      ],
    });
    await net.startAll();
    const blocks = extend(harness(net), 120);
    const top = hex(blockHash(blocks[119]!.header));
    const at20 = hex(blockHash(blocks[19]!.header));
    net.importInto(0, blocks.slice(0, 20));
    for (const i of [1, 2, 3]) await reach(net, i, 20, at20);

    // X leaves the network while the others move on 100 blocks.
    const x = net.node(3);
    await x.rpc.call("setnetworkactive", [false]);
    await waitFor("X has no peers", () => x.n.peers.peers().length === 0, { timeoutMs: 10_000 });
    net.importInto(0, blocks.slice(20));
    for (const i of [1, 2]) await reach(net, i, 120, top);
    assert.equal(x.n.chain.height, 20);

    const t0 = performance.now();
    await x.rpc.call("setnetworkactive", [true]);
    await reach(net, 3, 120, top);
    const took = performance.now() - t0;
    for (const i of [0, 1, 2, 3]) assert.equal(net.tipHex(i), top, `node ${i} on the same tip`);
    const st = await x.rpc.call<GetSyncStatusResult>("getsyncstatus");
    assert.equal(st.height, 120);
    assert.equal(st.behind, 0);
    assert.equal(st.syncing, false);
    assert.ok(st.peers >= 1);
    assert.equal(typeof st.blockspersecond, "number");
    assert.ok(st.consensusheight === 120, `consensusheight ${st.consensusheight}`);
    assert.ok(
      logged(net, 3, "Behind the masternode consensus; requesting blocks") || logged(net, 3, "Peer is ahead"),
      x.recentLogs(20),
    );
    assert.ok((await metric(net, 3, "sync_coordinator_syncs_initiated_total")) >= 1);
    t.diagnostic(`100 blocks caught up in ${took.toFixed(0)} ms (from setnetworkactive true to the tip)`);
    assert.ok(took < 20_000, `catch-up took ${took.toFixed(0)} ms`);
  });

  it("seed scenario 2: most peers behind, one whitelisted masternode far ahead: the node syncs to it (priority sync)", async () => {
    const net = await makeNet({
      name: "s2a",
      nodes: [
        { host: "127.0.41.1", masternode: true },
        { host: "127.0.41.2", masternode: true, bootstrap: [0] },
        { host: "127.0.41.3", masternode: true, bootstrap: [0] },
        { host: "127.0.41.4", bootstrap: [0, 1, 2], network: { whitelisted_peers: ["127.0.41.1"] } },
      ],
    });
    const blocks = extend(harness(net), 140);
    const top = hex(blockHash(blocks[139]!.header));
    await net.startAll();
    // W (node 0) is 130 ahead of the node under test; B and C are only 5 and 10 ahead of it.
    net.importInto(0, blocks);
    net.importInto(1, blocks.slice(0, 15));
    net.importInto(2, blocks.slice(0, 20));
    net.importInto(3, blocks.slice(0, 10));
    await reach(net, 3, 140, top);
    assert.ok(logged(net, 3, "Priority sync from a whitelisted masternode"), net.node(3).recentLogs(20));
    const st = await net.node(3).rpc.call<GetSyncStatusResult>("getsyncstatus");
    assert.equal(st.consensussource, "whitelisted-masternodes");
  });

  it("seed scenario 2: the same chain from a non-whitelisted minority peer is deferred until enough peers agree", async () => {
    const net = await makeNet({
      name: "s2b",
      nodes: [
        { host: "127.0.42.1", masternode: true },
        { host: "127.0.42.2", masternode: true, bootstrap: [0] },
        { host: "127.0.42.3", masternode: true, bootstrap: [0] },
        { host: "127.0.42.4", bootstrap: [0, 1, 2] },
      ],
    });
    const blocks = extend(harness(net), 140);
    const top = hex(blockHash(blocks[139]!.header));
    await net.startAll();
    // A full mesh before node 0 goes far ahead: a node that saw fewer peers would rightly count
    // node 0 as half its consensus or more, and follow it.
    await waitFor(
      "the four nodes in a full mesh",
      () => [0, 1, 2, 3].every((i) => net.node(i).n.peers.peers().length >= 3),
      { timeoutMs: 15_000, detail: () => net.describe() },
    );
    net.importInto(0, blocks);
    net.importInto(1, blocks.slice(0, 15));
    net.importInto(2, blocks.slice(0, 20));
    net.importInto(3, blocks.slice(0, 10));
    await waitFor("the node defers the far-ahead peer", () => logged(net, 3, "Deferring sync"), {
      timeoutMs: 15_000,
      detail: () => [1, 2].map((i) => net.node(i).recentLogs(25)).join("\n=====\n"),
    });
    // Several coordinator intervals later it is still no further than its agreeing peers.
    await sleep(2_000);
    assert.ok(net.node(3).n.chain.height <= 20, `height ${net.node(3).n.chain.height}`);
    assert.ok((await metric(net, 3, "sync_deferred_total")) >= 1);
    // Two more peers reach the far-ahead height: now 3 of the 3 masternode peers agree.
    net.importInto(1, blocks.slice(15));
    net.importInto(2, blocks.slice(20));
    await reach(net, 3, 140, top);
  });

  it("seed scenario 4: getpeerinfo heights follow the real heights within one ping interval, both sides of a link", async (t) => {
    const pingInterval = 0.2;
    const net = await makeNet({
      name: "s4",
      pingInterval,
      nodes: [
        { host: "127.0.43.1", produce: true },
        { host: "127.0.43.2", bootstrap: [0] },
      ],
      // A fresh genesis: production starts at round 0 at once.
      genesisAgeSeconds: 1,
    });
    await net.startAll();
    const [p, f] = [net.node(0), net.node(1)];
    const lags: number[] = [];
    // The ping interval, plus what the test itself adds: RPC polling every 10 ms and the event
    // loop of two nodes and this test sharing one process (CI machines have 2 cores).
    const grace = 800;
    for (let round = 0; round < 4; round++) {
      const h0 = p.n.chain.height;
      await waitFor(`P produces above ${h0}`, () => p.n.chain.height > h0, {
        timeoutMs: 10_000,
        detail: () => net.describe(),
      });
      const h = p.n.chain.height;
      const t0 = performance.now();
      // F must learn P's height, P must learn F's (F reaches h by syncing or relay).
      await waitFor(
        `both sides report height >= ${h}`,
        async () => {
          const [pi, fi] = await Promise.all([p.peerInfo(), f.peerInfo()]);
          return fi.some((x) => x.height >= h) && pi.some((x) => x.height >= h);
        },
        { timeoutMs: 5_000, detail: () => net.describe(), stepMs: 10 },
      );
      lags.push(performance.now() - t0);
    }
    // F also reaches P's tip, and getsyncstatus agrees.
    const st = await f.rpc.call<GetSyncStatusResult>("getsyncstatus");
    assert.ok(st.height >= lags.length);
    t.diagnostic(`heights showed on both sides after ${lags.map((l) => l.toFixed(0)).join(", ")} ms`);
    for (const lag of lags) {
      assert.ok(
        lag <= pingInterval * 1000 + grace,
        `heights took ${lags.map((l) => l.toFixed(0)).join(", ")} ms`,
      );
    }
  });

  describe("a lying peer cannot stall or mislead sync", () => {
    /**
     * Two honest nodes with 60 blocks and the node under test at genesis with no peers (none of
     * them is a genesis masternode, so nobody dials anybody). The liar connects first; the honest
     * nodes are added afterwards with `addnode`.
     */
    async function lyingNet(name: string, third: number) {
      const net = await makeNet({
        name,
        extraMasternodes: 1,
        nodes: [{ host: `127.0.${third}.1` }, { host: `127.0.${third}.2` }, { host: `127.0.${third}.3` }],
      });
      const blocks = extend(harness(net), 60);
      await net.start(0);
      await net.start(1);
      net.importInto(0, blocks);
      net.importInto(1, blocks);
      const x = await net.start(2);
      const addHonest = async (): Promise<void> => {
        for (const i of [0, 1]) await x.rpc.call("addnode", [net.node(i).p2p, "onetry"]);
      };
      return { net, x, addHonest, top: hex(blockHash(blocks[59]!.header)) };
    }

    const junk = (tag: string): Buffer => sha256(Buffer.from(`junk/${tag}/${performance.now()}`));

    it("a peer that serves headers but stalls on blocks: the doctor names the stalled sync and who it was from; honest peers finish it", async () => {
      const { net, x, addHonest, top } = await lyingNet("s5d", 49);
      const staller = await ServingPeer.connect({
        target: x.p2p,
        localHost: "127.0.49.9",
        magic: MAGIC,
        network: "devnet",
        genesisHash: x.n.chain.genesisHash,
        chain: net.node(0).n.chain,
        onGetBlocks: () => "silent",
      });
      interface Doctor {
        verdicts: Array<{ check: string; status: string; verdict: string; suggest: string | null }>;
      }
      const sync = await waitFor(
        "the doctor's sync verdict to fail",
        async () => {
          const d = await x.rpc.call<Doctor>("doctor");
          const v = d.verdicts.find((y) => y.check === "sync")!;
          return v.status === "fail" ? v : undefined;
        },
        { timeoutMs: 90_000, stepMs: 500, detail: () => x.recentLogs(20) },
      );
      assert.match(sync.verdict, /60 blocks behind and not syncing: the last sync ended with \w+/);
      assert.match(sync.verdict, /127\.0\.49\.9/, "it names the stalled peer");
      assert.match(sync.suggest ?? "", /getpeerinfo|getsyncstatus/);
      assert.ok(staller.received(MsgType.GetBlocks).length >= 1, "blocks were asked of it");
      await addHonest();
      await reach(net, 2, 60, top);
    });

    it("claims a height a million blocks ahead and serves nothing: ignored (a claim is no proof), sync finishes from honest peers", async () => {
      const { net, x, addHonest, top } = await lyingNet("s5a", 44);
      const liar = await ServingPeer.connect({
        target: x.p2p,
        localHost: "127.0.44.9",
        magic: MAGIC,
        network: "devnet",
        genesisHash: x.n.chain.genesisHash,
        chain: null,
        height: 1_000_000,
        tipHash: junk("tip"),
      });
      await waitFor(
        "the liar's height is ignored",
        () => logged(net, 2, "Ignoring a peer's impossible height"),
        { timeoutMs: 10_000, detail: () => x.recentLogs(20) },
      );
      await addHonest();
      await reach(net, 2, 60, top);
      assert.equal(liar.received(MsgType.GetHeaders).length, 0, "never followed");
      assert.equal(liar.received(MsgType.GetBlocks).length, 0);
      const st = await x.rpc.call<GetSyncStatusResult>("getsyncstatus");
      assert.equal(st.consensusheight, 60, "the lie did not move the target");
      assert.equal(st.behind, 0);
      // Only proof costs a peer score: an impossible claim is ignored, not punished.
      assert.equal(logged(net, 2, "Penalising peer"), false);
    });

    it("serves headers that connect to nothing: dropped as a sync source (not banned: a stale branch looks the same), the node finishes from honest peers", async () => {
      const { net, x, addHonest, top } = await lyingNet("s5b", 45);
      const liar = await ServingPeer.connect({
        target: x.p2p,
        localHost: "127.0.45.9",
        magic: MAGIC,
        network: "devnet",
        genesisHash: x.n.chain.genesisHash,
        chain: null,
        height: 90,
        tipHash: junk("tip"),
        onGetHeaders: (m) => ({
          type: MsgType.Headers,
          reqId: m.reqId,
          headers: Array.from({ length: 20 }, (_, i) => ({
            version: 1,
            height: i + 1,
            prevHash: junk(`p${i}`),
            merkleRoot: junk(`m${i}`),
            mnRoot: junk(`r${i}`),
            timestamp: Date.now(),
            round: 0,
            producer: junk(`k${i}`),
            signature: Buffer.concat([junk(`s${i}`), junk(`t${i}`)]),
          })),
        }),
        onGetBlocks: (m) => ({
          type: MsgType.Blocks,
          reqId: m.reqId,
          blocks: m.hashes.map(() => Buffer.from("garbage")),
        }),
      });
      await waitFor(
        "the liar is asked and dropped as a sync source",
        () => logged(net, 2, "Sync from peer ended early"),
        { timeoutMs: 10_000, detail: () => x.recentLogs(20) },
      );
      assert.ok(
        liar.received(MsgType.GetHeaders).length >= 1,
        "the liar was followed first (it claimed the most)",
      );
      const ended = x.logger.records
        .filter((r) => r.msg === "Sync from peer ended early")
        .map((r) => r.ctx?.code);
      assert.ok(ended.length >= 1 && ended.every((c) => c === "BAD_RESPONSE"), ended.join(","));
      assert.equal(logged(net, 2, "Penalising peer"), false, "headers that connect to nothing are no proof");
      assert.equal(x.n.chain.height, 0);
      await addHonest();
      await reach(net, 2, 60, top);
    });

    it("serves an invalid branch (headers signed by a key that is not scheduled): banned, nothing of it downloaded", async () => {
      const { net, x, addHonest, top } = await lyingNet("s5c", 46);
      const gHash = x.n.chain.genesisHash;
      const stranger = KeyPair.generate();
      const registry = [{ ...x.n.chain.getRegistry()[0]!, operatorPubkey: stranger.publicKey }];
      const branch: Block[] = [];
      let parent = { hash: gHash, height: 0, timestamp: net.genesis.timestamp };
      for (let i = 0; i < 30; i++) {
        const b = buildBlock({
          parentHash: parent.hash,
          parentHeight: parent.height,
          registry,
          producer: stranger,
          round: 0,
          timestamp: parent.timestamp + net.genesis.blockTimeMs,
          txs: [],
          fees: 0n,
          eraProofInput: anchorInput(gHash, parent.height + 1, (h) => branch[h - 1]),
        });
        branch.push(b);
        parent = { hash: blockHash(b.header), height: b.header.height, timestamp: b.header.timestamp };
      }
      const liar = await ServingPeer.connect({
        target: x.p2p,
        localHost: "127.0.46.9",
        magic: MAGIC,
        network: "devnet",
        genesisHash: gHash,
        chain: null,
        height: 30,
        tipHash: blockHash(branch[29]!.header),
        onGetHeaders: (m) => ({
          type: MsgType.Headers,
          reqId: m.reqId,
          headers: m.locator.some((h) => h.equals(gHash)) ? branch.map((b) => b.header) : [],
        }),
        onGetBlocks: (m) => ({
          type: MsgType.Blocks,
          reqId: m.reqId,
          blocks: branch.filter((b) => m.hashes.some((h) => h.equals(blockHash(b.header)))).map(encodeBlock),
        }),
      });
      await waitFor("the liar is banned and disconnected", () => liar.closed, {
        timeoutMs: 10_000,
        detail: () => x.recentLogs(20),
      });
      assert.equal(liar.raw.goodbyeReason, "banned");
      const pens = x.logger.records.filter((r) => r.msg === "Penalising peer").map((r) => r.ctx?.code);
      assert.deepEqual(pens, ["INVALID_HEADERS"]);
      assert.equal(
        liar.received(MsgType.GetBlocks).length,
        0,
        "no body of the invalid branch was downloaded",
      );
      await addHonest();
      await reach(net, 2, 60, top);
      assert.equal(x.n.chain.getIndex(blockHash(branch[0]!.header)), undefined);
    });
  });

  /**
   * A whitelisted raw peer R (ranked first) and an honest node H, both with the chain; the node
   * under test X starts with neither. R connects, and holds its headers answer until X has also
   * connected to H, so the sync led by R has H at hand for every retry.
   */
  async function servedNet(
    name: string,
    third: number,
    blocks: (h: ChainHarness, net: SyncNet) => Block[],
    batch = 500,
  ) {
    const net = await makeNet({
      name,
      extraMasternodes: 1,
      nodes: [
        { host: `127.0.${third}.1` },
        {
          host: `127.0.${third}.2`,
          network: { whitelisted_peers: [`127.0.${third}.9`] },
          sync: { max_sync_batch_size: batch },
        },
      ],
    });
    const h = harness(net);
    const all = blocks(h, net);
    await net.start(0);
    net.importInto(0, all);
    const x = await net.start(1);
    const bothConnected = (): Promise<true> =>
      waitFor("X connected to R and H", () => x.n.peers.peers().length >= 2, {
        timeoutMs: 10_000,
        detail: () => net.describe(),
      });
    return { net, h, x, top: hex(h.chain.tip.hash), bothConnected };
  }

  it("the serving peer disconnects in the middle of a batch: the batch finishes from another peer", async () => {
    const { net, h, x, top, bothConnected } = await servedNet("s6", 47, (hh) => extend(hh, 300), 50);
    let served = 0;
    let cut = false;
    const r = await ServingPeer.connect({
      target: x.p2p,
      localHost: "127.0.47.9",
      magic: MAGIC,
      network: "devnet",
      genesisHash: x.n.chain.genesisHash,
      chain: h.chain,
      onGetHeaders: async (_m, honest) => {
        await bothConnected();
        return honest();
      },
      // Hang up on the second batch asked of it, while that batch is in flight.
      onGetBlocks: (_m, honest) => {
        if (served++ === 1) {
          cut = true;
          return "close";
        }
        return honest();
      },
    });
    await x.rpc.call("addnode", [net.node(0).p2p, "onetry"]);
    await reach(net, 1, 300, top);
    assert.ok(cut, "the whitelisted peer was serving batches and hung up mid-batch");
    assert.ok(r.received(MsgType.GetBlocks).length >= 2);
    assert.ok((await metric(net, 1, "sync_batch_retries_total")) >= 1);
    assert.equal(await metric(net, 1, "masternode_sync_failures_total"), 0, "one sync, finished");
  });

  it("an invalid block in a batch: nothing past it is applied, it comes from another peer, the offender is penalised", async () => {
    let badHash: Buffer = Buffer.alloc(32);
    const { net, h, x, top, bothConnected } = await servedNet("s7", 48, (hh, n) => {
      extend(hh, 29);
      const coin = hh.genesisCoins(n.funder)[0]!;
      const transfer = makeTransfer(
        n.funder,
        [coin.outpoint],
        [{ to: pubkeyHash(n.keys[0]!.publicKey), amount: coin.amount }],
      );
      badHash = blockHash(hh.mine({ txs: [transfer] }).header);
      extend(hh, 70);
      return Array.from({ length: 100 }, (_, i) => hh.chain.getBlock(hh.chain.getHashAtHeight(i + 1)!)!);
    });
    const connected: number[] = [];
    x.n.chain.events.on("blockConnected", (e) => connected.push(e.entry.height));
    const tamper = (raw: Buffer): Buffer => {
      const b = decodeBlock(raw);
      if (!blockHash(b.header).equals(badHash)) return raw;
      const sig = Buffer.from(b.txs[1]!.inputs[0]!.signature);
      sig[0] = sig[0]! ^ 1;
      b.txs[1]!.inputs[0]!.signature = sig; // same txid, same block hash: a tampered copy
      return encodeBlock(b);
    };
    const r = await ServingPeer.connect({
      target: x.p2p,
      localHost: "127.0.48.9",
      magic: MAGIC,
      network: "devnet",
      genesisHash: x.n.chain.genesisHash,
      chain: h.chain,
      onGetHeaders: async (_m, honest) => {
        await bothConnected();
        return honest();
      },
      onGetBlocks: (_m, honest) => {
        const a = honest();
        return typeof a === "object" && a.type === MsgType.Blocks
          ? { ...a, blocks: a.blocks.map(tamper) }
          : a;
      },
    });
    await x.rpc.call("addnode", [net.node(0).p2p, "onetry"]);
    await reach(net, 1, 100, top);
    const bad = x.logger.records.find((rec) => rec.msg === "Bad data from peer during sync");
    assert.ok(bad, x.recentLogs(30));
    assert.deepEqual(
      [bad.ctx?.code, bad.ctx?.rule, bad.ctx?.height],
      ["INVALID_BLOCK", "BAD_TX_SIGNATURE", 30],
    );
    assert.equal(r.received(MsgType.GetBlocks).length, 1, "the offender is not asked again");
    await waitFor("the offender is disconnected (whitelisted: closed, never banned)", () => r.closed, {
      timeoutMs: 10_000,
    });
    assert.equal(r.raw.goodbyeReason, "misbehaviour");
    assert.ok(x.n.chain.getIndex(badHash), "the genuine block 30 came from the honest peer");
    assert.deepEqual(
      connected,
      Array.from({ length: 100 }, (_, i) => i + 1),
      "every block connected once, in order: nothing past block 30 before it",
    );
    assert.equal(await metric(net, 1, "reorgs_total"), 0);
  });
});
