/**
 * A fresh 6-masternode devnet of real nodes (TimeNode in this process, real LMDB in temp dirs,
 * real TCP on their own loopback IPs, node 0 the only bootstrap peer; 1 s blocks, 0.5 s
 * heartbeats): the masternode list converges, blocks are produced and agreed on, invalid blocks
 * are refused by every node without stalling the chain, spoofed and replayed heartbeats are
 * refused and penalised, and a silent producer is covered by a fallback round.
 *
 * The tests share the devnet and run in order; the last one stops a masternode.
 * This file uses 127.0.70.0/24 (nodes), 127.0.71.0/24 (block-serving raw peers) and
 * 127.0.72.0/24 (liveness raw peers).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { blockHash } from "../../src/primitives/block.js";
import { scheduledProducer, slotStart } from "../../src/consensus/schedule.js";
import { KeyPair } from "../../src/crypto/ed25519.js";
import { signHeartbeat } from "../../src/masternode/livenessMessages.js";
import { MsgType, type HeartbeatMsg } from "../../src/p2p/messages.js";
import type { NodeHandle } from "./helpers/nodes.js";
import { DEVNET, trapEscapes } from "./helpers/nodes.js";
import {
  BlockServingPeer,
  craftBadBlock,
  EXPECTED_CODE,
  masternodeList,
  MnDevnet,
  nextTip,
  sleep,
  waitFor,
  type BadBlockKind,
} from "./helpers/masternodes.js";
import { destroyAllRawPeers, RawPeer } from "./helpers/rawPeer.js";

const NODES = 6;
const BLOCK_MS = 1_000;
const HEARTBEAT_MS = 500;

interface BannedJson {
  address: string;
  reason: string;
}

const bannedIps = async (h: NodeHandle): Promise<string[]> =>
  (await h.rpc.call<BannedJson[]>("listbanned")).map((b) => b.address);

/** The code a node logged when it refused the block with this hash, if it did. */
function refusalCode(h: NodeHandle, hash: Buffer): string | undefined {
  const hex = hash.toString("hex");
  const r = h.logger.records.find((x) => x.msg === "Invalid block from peer" && x.ctx.hash === hex);
  return r?.ctx.code as string | undefined;
}

void describe("a 6-masternode devnet (real nodes)", () => {
  let net: MnDevnet;
  const escapes = trapEscapes();
  const blockPeers: BlockServingPeer[] = [];

  before(async () => {
    net = await MnDevnet.create({
      name: "six",
      nodes: Array.from({ length: NODES }, (_, i) => ({ host: `127.0.70.${i + 1}` })),
      blockTime: BLOCK_MS / 1000,
      heartbeatInterval: HEARTBEAT_MS / 1000,
      minMasternodes: 3,
    });
  });

  after(async () => {
    for (const p of blockPeers) p.close();
    destroyAllRawPeers();
    escapes.release();
    await net?.cleanup();
    assert.deepEqual(escapes.errors, [], "nothing escaped to the process");
  });

  const keyOf = (pk: Buffer): KeyPair | undefined => net.byOperator(pk)?.operatorKey ?? undefined;

  it("every node lists all 6 masternodes active within 3 heartbeat intervals; blocks are produced and agreed on", async () => {
    const started = performance.now();
    await net.waitMesh();
    const connected = performance.now();
    const nodes = net.running();
    let lists: Array<Awaited<ReturnType<typeof masternodeList>>> = [];
    await waitFor(
      "every node's masternodelist to show all 6 masternodes active",
      async () => {
        lists = await Promise.all(nodes.map((h) => masternodeList(h)));
        return lists.every((l) => l.length === NODES && l.every((r) => r.status === "active"));
      },
      {
        timeoutMs: 10_000,
        detail: () => JSON.stringify(lists.map((l) => l.map((r) => r.status))),
        stepMs: 5,
      },
    );
    const converged = performance.now();
    const convergeMs = converged - connected;
    console.log(
      `mn_list_converge_ms ${convergeMs.toFixed(0)} (all ${NODES} active on all ${NODES} nodes, from full mesh; ` +
        `mesh after ${(connected - started).toFixed(0)} ms; heartbeat interval ${HEARTBEAT_MS} ms)`,
    );
    assert.ok(
      convergeMs <= 3 * HEARTBEAT_MS,
      `converged in ${convergeMs.toFixed(0)} ms, more than 3 heartbeat intervals (${3 * HEARTBEAT_MS} ms)`,
    );
    // Every list names exactly the genesis masternodes.
    const operators = net.nodes.map((h) => h.operatorKey!.publicKey.toString("hex")).sort();
    for (const l of lists) assert.deepEqual(l.map((r) => r.pubkey).sort(), operators);

    const tip = await net.waitAgree(3, 15_000);
    const best = await Promise.all(nodes.map((h) => h.rpc.call<string>("getbestblockhash")));
    // A block may land between two RPCs: then they agree again on the next one.
    if (new Set(best).size !== 1) await net.waitAgree(tip.height + 1);
    else assert.ok(best.every((b) => b === best[0]));
    for (const h of nodes) {
      const st = await h.rpc.call<{ status: string; activemasternodes: number }>("masternodestatus");
      assert.equal(st.status, "producing", `${h.name}: ${JSON.stringify(st)}`);
      assert.equal(st.activemasternodes, NODES);
    }
  });

  it("invalid blocks (wrong producer, bad signature, wrong reward split, future slot) are refused by every node; proof bans the sender with the block as evidence, a clock fault does not; the chain goes on", async () => {
    const nodes = net.running();
    const kinds: BadBlockKind[] = ["wrong-split", "wrong-producer", "bad-signature", "future-slot"];
    // One raw peer per (kind, node), each from its own IP, so each penalty is the sender's own.
    const peerOf = new Map<string, BlockServingPeer>();
    let ip = 1;
    for (const kind of kinds) {
      for (const h of nodes) {
        const p = await BlockServingPeer.connect(h, `127.0.71.${ip++}`, net.genesisHash);
        blockPeers.push(p);
        peerOf.set(`${kind}/${h.name}`, p);
      }
    }
    const n0 = net.node(0);
    const offered = new Map<string, Buffer>();

    // Every kind is offered on the tip: the reward split is checked only when a block extends the
    // tip, and with finality the tip's parent is already final, so a block on it forks below the
    // final block and is dropped unchecked (below-final). Offered after 0.6 block times (the
    // round-0 slot start is then within the allowed drift) and before the slot opens (so no
    // genuine block can get in first).
    let tip = n0.n.chain.tip;
    for (let attempt = 0; ; attempt++) {
      assert.ok(attempt < 10, "found no quiet moment to offer the wrong-split blocks");
      await nextTip(n0);
      tip = n0.n.chain.tip;
      await sleep(tip.timestamp + 0.6 * BLOCK_MS - Date.now());
      const same = nodes.every((h) => h.n.chain.tip.hash.equals(tip.hash));
      if (same && Date.now() < tip.timestamp + 0.8 * BLOCK_MS) break;
    }
    for (const kind of kinds) {
      for (const h of nodes) {
        offered.set(
          `${kind}/${h.name}`,
          peerOf.get(`${kind}/${h.name}`)!.offer(craftBadBlock(h, kind, keyOf)),
        );
      }
    }

    // Every node refuses every block under the rule it breaks. The three that prove malice ban the
    // sender at once, the block kept as evidence; the timestamp is a clock fault and costs nothing.
    await waitFor(
      "every node to refuse every crafted block",
      () =>
        [...offered].every(
          ([key, hash]) => refusalCode(net.node(Number(key.split("node-")[1])), hash) !== undefined,
        ),
      {
        timeoutMs: 10_000,
        detail: () =>
          [...offered]
            .filter(([key, hash]) => refusalCode(net.node(Number(key.split("node-")[1])), hash) === undefined)
            .map(([key]) => key)
            .join(", "),
      },
    );
    for (const h of nodes) {
      const banned = await bannedIps(h);
      for (const kind of kinds) {
        const hash = offered.get(`${kind}/${h.name}`)!;
        const peer = peerOf.get(`${kind}/${h.name}`)!;
        assert.equal(
          refusalCode(h, hash),
          EXPECTED_CODE[kind],
          `${h.name} refused the ${kind} block by its rule`,
        );
        for (const other of nodes) {
          assert.equal(
            other.n.chain.getIndex(hash),
            undefined,
            `the ${kind} block is stored on no node (${other.name})`,
          );
        }
        if (kind === "future-slot") {
          assert.equal(
            h.n.peers.banManager.score(peer.ip),
            0,
            `${h.name} did not score the future-slot sender`,
          );
          assert.ok(!banned.includes(peer.ip));
        } else {
          assert.ok(
            banned.includes(peer.ip),
            `${h.name} banned the ${kind} sender ${peer.ip}: ${banned.join(", ")}`,
          );
          const ban = h.n.peers.listBanned().find((b) => b.subject === peer.ip)!;
          assert.equal(ban.source, "proof");
          assert.ok(
            ban.evidence.includes(hash.toString("hex")) && ban.evidence.includes(EXPECTED_CODE[kind]),
            `${h.name}: the evidence names the block and the rule: ${ban.evidence}`,
          );
          await peer.raw.waitClosed(5_000);
        }
      }
    }
    // The chain keeps growing, and every node is on it.
    const after = await net.waitAgree(tip.height + 4, 15_000, "the chain to grow past the invalid blocks");
    assert.ok(after.height >= tip.height + 4);
  });

  it("a heartbeat signed by an unregistered key and stale relayed heartbeats are refused and not counted, and never cost the sender anything", async () => {
    const n0 = net.node(0);
    const rawOpts = (localHost: string) => ({
      target: n0.p2p,
      localHost,
      magic: DEVNET.magic,
      network: "devnet",
      genesisHash: net.genesisHash,
      answerPings: true,
    });
    const spoofer = await RawPeer.connect(rawOpts("127.0.72.1"));
    await spoofer.handshake();
    const replayer = await RawPeer.connect(rawOpts("127.0.72.2"));
    await replayer.handshake();
    // The node gossips every heartbeat to its peers, the raw ones too: collect a few.
    const heartbeats = (): HeartbeatMsg[] => replayer.received(MsgType.Heartbeat) as HeartbeatMsg[];
    const older = (): HeartbeatMsg[] =>
      heartbeats().filter((hb) =>
        heartbeats().some((n) => n.operatorPubkey.equals(hb.operatorPubkey) && n.seq > hb.seq),
      );
    await replayer.waitFor(
      () => older().length >= 5,
      "5 heartbeats with a newer one from the same masternode",
      10_000,
    );
    const verdicts = n0.n.heartbeats.stats.verdicts;
    const count = (k: string): number => verdicts.get(k) ?? 0;
    const before = { unknown: count("heartbeat:unknown-operator"), replay: count("heartbeat:replay") };

    // Five heartbeats from a key the registry does not hold (a peer a block apart may relay them).
    const stranger = KeyPair.generate();
    const tip = n0.n.chain.tip;
    for (let i = 0; i < 5; i++) {
      const hb = signHeartbeat(stranger, {
        seq: Date.now() + i,
        timestamp: Date.now(),
        height: tip.height,
        tipHash: tip.hash,
      });
      spoofer.send({ type: MsgType.Heartbeat, ...hb });
    }
    // Five genuine but stale heartbeats, older than copies the node already has: what a link that
    // resumes after a stall delivers.
    const replays = older().slice(0, 5);
    for (const hb of replays) replayer.send(hb);
    await waitFor(
      "the node to judge all ten",
      () =>
        count("heartbeat:unknown-operator") - before.unknown >= 5 &&
        count("heartbeat:replay") - before.replay >= 5,
      { timeoutMs: 5_000 },
    );
    assert.equal(count("heartbeat:unknown-operator") - before.unknown, 5);
    assert.equal(count("heartbeat:replay") - before.replay, 5);
    await sleep(200);
    assert.equal(spoofer.closed, false, "the spoofing peer stays connected");
    assert.equal(replayer.closed, false, "the relaying peer stays connected");
    assert.equal(n0.n.peers.banManager.score("127.0.72.1"), 0);
    assert.equal(n0.n.peers.banManager.score("127.0.72.2"), 0);
    const banned = await bannedIps(n0);
    assert.ok(!banned.includes("127.0.72.1") && !banned.includes("127.0.72.2"), banned.join(", "));
    // Not counted: the list holds exactly the registered masternodes, all active, and no
    // masternode's latest heartbeat was rolled back to a replayed one.
    const list = await masternodeList(n0);
    assert.equal(list.length, NODES);
    assert.ok(!list.some((r) => r.pubkey === stranger.publicKey.toString("hex")));
    assert.equal(list.filter((r) => r.status === "active").length, NODES);
    for (const hb of replays) {
      const row = list.find((r) => r.pubkey === hb.operatorPubkey.toString("hex"))!;
      assert.ok(
        row.seq !== null && row.seq > hb.seq,
        `${row.pubkey.slice(0, 8)}: seq ${row.seq} after replay of ${hb.seq}`,
      );
    }
    // Refused evidence is not relayed.
    for (const h of net.running().slice(1)) {
      assert.equal(h.n.heartbeats.stats.verdicts.get("heartbeat:unknown-operator") ?? 0, 0, h.name);
    }
  });

  it("a silent scheduled producer is covered by a fallback round, and every node accepts the same blocks", async () => {
    const n0 = net.node(0);
    // Wait for a tip whose round-0 producer for the next height is not node 0, and stop that
    // masternode well before its slot opens, so it certainly never produced that block.
    let tip = n0.n.chain.tip;
    let silent: NodeHandle | undefined;
    for (let attempt = 0; !silent; attempt++) {
      assert.ok(attempt < 30, "no tip scheduled another masternode next");
      await nextTip(n0);
      tip = n0.n.chain.tip;
      const next = scheduledProducer(
        n0.n.chain.scheduleForChild(tip),
        tip.height + 1,
        0,
        n0.n.chain.getRegistry(),
      )!;
      const who = net.byOperator(next.operatorPubkey)!;
      if (who === n0 || Date.now() > slotStart(n0.n.chain.params, tip.timestamp, 0) - 300) continue;
      if (!who.n.chain.tip.hash.equals(tip.hash)) continue;
      silent = who;
    }
    const silentKey = silent.operatorKey!.publicKey;
    await silent.stop();
    assert.ok(Date.now() < slotStart(n0.n.chain.params, tip.timestamp, 0), "stopped before its slot opened");

    const height = tip.height + 1;
    await waitFor(`height ${height} on node 0`, () => n0.n.chain.height >= height, {
      timeoutMs: 10_000,
      detail: () => net.describe(),
    });
    const block = n0.n.chain.getBlock(n0.n.chain.getHashAtHeight(height)!)!;
    assert.ok(
      block.header.round >= 1,
      `height ${height} came from a fallback round (round ${block.header.round})`,
    );
    assert.ok(!block.header.producer.equals(silentKey), "not from the stopped masternode");
    const tipEntry = n0.n.chain.getIndex(tip.hash)!;
    const expected = scheduledProducer(
      n0.n.chain.scheduleForChild(tipEntry),
      height,
      block.header.round,
      n0.n.chain.registryAfter(tipEntry)!,
    )!;
    assert.ok(
      block.header.producer.equals(expected.operatorPubkey),
      "its producer is the one scheduled for that round",
    );

    // Every running node has the same block at that height and the same tip afterwards.
    const agreed = await net.waitAgree(height + 2, 15_000);
    const hashes = await Promise.all(net.running().map((h) => h.rpc.call<string>("getblockhash", [height])));
    assert.deepEqual(new Set(hashes), new Set([blockHash(block.header).toString("hex")]));
    assert.ok(agreed.height >= height + 2);
    // Liveness notices too: the stopped masternode goes inactive everywhere, the others stay active.
    await waitFor(
      "every node to list the stopped masternode inactive",
      async () => {
        const lists = await Promise.all(net.running().map((h) => masternodeList(h)));
        return lists.every(
          (l) =>
            l.find((r) => r.pubkey === silentKey.toString("hex"))?.status === "inactive" &&
            l.filter((r) => r.status === "active").length === NODES - 1,
        );
      },
      { timeoutMs: 6 * HEARTBEAT_MS + 5_000, detail: () => net.describe() },
    );
  });
});
