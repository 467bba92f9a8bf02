// SyncCoordinator over in-process fake peers (each backed by a real Chain and the real
// BlockServer), with a real local Chain: the code under test runs unchanged behind the SyncFns
// seams (Lodestar style).
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { blockHash, decodeBlock, encodeBlock, type Block } from "../../../src/primitives/block.js";
import type { Chain } from "../../../src/chain/chain.js";
import { pubkeyHash } from "../../../src/crypto/address.js";
import { LEAD_COOLDOWN_MS, MAX_WINDOW_HEADERS, PRODUCTION_HOLD_MIN_MS } from "../../../src/sync/constants.js";
import { SyncError } from "../../../src/sync/errors.js";
import { signVote, type Checkpoint } from "../../../src/consensus/finality.js";
import { transitionBatch, type Batch } from "../../../src/sync/batch.js";
import { CHECKS_AHEAD } from "../../../src/sync/rangeDownload.js";
import { PROCESS_SLICE_MS } from "../../../src/sync/turnPacer.js";
import type { SyncCoordinator } from "../../../src/sync/syncCoordinator.js";
import { nextSyncState } from "../../../src/sync/types.js";
import {
  ChainHarness,
  GENESIS_TIME,
  makeTransfer,
  reseal,
  testGenesis,
  testKeys,
  COIN,
} from "../../helpers/chainFixture.js";
import { extend, SyncBed, tamperTxSignature, type FakePeer } from "./helpers.js";

const keys = testKeys("sync-coord", 1);
const funder = testKeys("sync-funder", 1)[0]!;
const genesis = testGenesis({
  masternodes: keys,
  funded: [{ key: funder, amount: 1_000n * COIN, count: 4 }],
});
/** Far enough after every test chain's last block: nothing is "from the future". */
const NOW = GENESIS_TIME + 10_000_000;

const open: Array<{ close(): Promise<void> }> = [];
function track<T extends { close(): Promise<void> }>(x: T): T {
  open.push(x);
  return x;
}
after(async () => {
  for (const x of open.splice(0)) await x.close();
});

/** A source chain with `n` blocks on the genesis. */
function sourceChain(n: number): { src: ChainHarness; blocks: Block[] } {
  const src = track(new ChainHarness(genesis, keys));
  const blocks = extend(src, n);
  return { src, blocks };
}

function bed(opts: ConstructorParameters<typeof SyncBed>[3] = {}): SyncBed {
  return track(new SyncBed(genesis, keys, NOW, opts));
}

/**
 * Syncs `b` from three masternode peers on `source` while a ticker counts turns of the event
 * loop (and fires the bed's timers due now); `setup` gets the count before the sync starts.
 */
async function syncCountingTurns(
  b: SyncBed,
  source: Chain,
  setup: (turn: () => number) => void,
): Promise<void> {
  let turn = 0;
  let ticking = true;
  const tick = (): void => {
    turn++;
    b.local.clock.fireUntil(b.local.clock.now());
    if (ticking) setImmediate(tick);
  };
  setImmediate(tick);
  setup(() => turn);
  b.makeCoordinator();
  for (const id of ["p1", "p2", "p3"]) b.addPeer({ id, masternode: true }, source);
  try {
    await b.coordinator.check();
  } finally {
    ticking = false;
  }
}

/** Every GetBlocks call as "peer/first-hash/count". */
function blockCalls(peers: FakePeer[]): string[] {
  const out: string[] = [];
  for (const p of peers) {
    for (const c of p.calls) {
      if (c.kind !== "blocks") continue;
      const hs = c.arg as Buffer[];
      out.push(`${p.id}/${hs[0]!.toString("hex")}/${hs.length}`);
    }
  }
  return out;
}

const tipOf = (c: Chain): string => c.tip.hash.toString("hex");

describe("SyncCoordinator: catching up", () => {
  it("catches up from several peers at once, applying batches in order, one commit per batch", async () => {
    const { src } = sourceChain(1_200);
    const b = bed();
    const segments: Array<{ from: number; count: number }> = [];
    const process = b.fns.processChainSegment.bind(b.fns);
    b.fns.processChainSegment = (items) => {
      segments.push({ from: items[0]!.block.header.height, count: items.length });
      return process(items);
    };
    b.makeCoordinator();
    const peers = ["p1", "p2", "p3"].map((id) => b.addPeer({ id, masternode: true }, src.chain));
    await b.coordinator.check();
    assert.equal(b.chain.height, 1_200);
    assert.equal(tipOf(b.chain), tipOf(src.chain));
    assert.ok(
      segments.every((s) => s.count <= 100),
      "batches of at most max_sync_batch_size",
    );
    for (let i = 1; i < segments.length; i++) {
      assert.equal(segments[i]!.from, segments[i - 1]!.from + segments[i - 1]!.count, "strictly in order");
    }
    const served = peers.filter((p) => p.count("blocks") > 0).length;
    assert.ok(served >= 2, `batches spread over ${served} peers`);
    assert.equal(await b.metric("sync_coordinator_checks_total"), 1);
    assert.equal(await b.metric("sync_coordinator_syncs_initiated_total"), 1);
    assert.equal(await b.metric("masternode_sync_duration_seconds"), 1);
    assert.equal(await b.metric("sync_blocks_received_total"), 1_200);
    assert.equal(await b.metric("masternode_consensus_height"), 1_200);
    const st = b.coordinator.status();
    assert.equal(st.syncing, false);
    assert.equal(st.lastSync?.ok, true);
    assert.equal(st.lastSync?.to, 1_200);
    assert.ok(b.logged("Behind the masternode consensus; requesting blocks"));
    assert.ok(b.logged("In sync with the masternode consensus"));
  });

  it("with signature checks ahead (the pool), each batch waits for its own check and batches still apply in order", async () => {
    const { src } = sourceChain(800);
    const b = bed();
    const checked = new Set<number>();
    let checks = 0;
    let running = 0;
    let mostAtOnce = 0;
    const headerWindows: number[][] = [];
    b.fns.checkAhead = async (blocks) => {
      // Header windows come as blocks without transactions (not even a coinbase), before any batch.
      if (blocks[0]!.txs.length === 0) {
        assert.equal(checks, 0, "a header window checked after a batch");
        headerWindows.push(blocks.map((x) => x.header.height));
        return;
      }
      checks++;
      running++;
      mostAtOnce = Math.max(mostAtOnce, running);
      const from = blocks[0]!.header.height;
      // Later batches finish their checks first: fewer turns of the event loop the higher they are.
      for (let i = 0; i < Math.max(1, 20 - Math.floor(from / 50)); i++) await new Promise(setImmediate);
      checked.add(from);
      running--;
    };
    const order: number[] = [];
    const process = b.fns.processChainSegment.bind(b.fns);
    b.fns.processChainSegment = (items) => {
      const from = items[0]!.block.header.height;
      assert.ok(checked.has(from), `the batch at ${from} was processed before its check ended`);
      order.push(from);
      return process(items);
    };
    b.makeCoordinator();
    for (const id of ["p1", "p2", "p3"]) b.addPeer({ id, masternode: true }, src.chain);
    await b.coordinator.check();
    assert.equal(b.chain.height, 800);
    assert.equal(checks, order.length, "one check per batch");
    // The head's check never queues behind a pile of later ones.
    assert.ok(mostAtOnce <= 1 + CHECKS_AHEAD, `${mostAtOnce} checks at once`);
    assert.ok(mostAtOnce > 1, "checks ran ahead of the head");
    // Every new header went to the pool once, in order, before it was validated.
    assert.deepEqual(
      headerWindows.flat(),
      Array.from({ length: 800 }, (_, i) => i + 1),
    );
    assert.deepEqual(
      order,
      [...order].sort((x, y) => x - y),
      "strictly in order",
    );
  });

  it("a sync longer than a header window never drains: the next window is fetched and appended while the first one applies", async () => {
    const n = MAX_WINDOW_HEADERS + 400;
    const { src } = sourceChain(n);
    const b = bed();
    const events: string[] = [];
    const getHeaders = b.fns.getHeaders.bind(b.fns);
    b.fns.getHeaders = async (id, locator, max) => {
      const headers = await getHeaders(id, locator, max);
      if (headers.length > 0) events.push(`headers ${headers[0]!.height}`);
      return headers;
    };
    const process = b.fns.processChainSegment.bind(b.fns);
    b.fns.processChainSegment = (items) => {
      events.push(`apply ${items[0]!.block.header.height}-${items[items.length - 1]!.block.header.height}`);
      return process(items);
    };
    b.makeCoordinator();
    for (const id of ["p1", "p2", "p3"]) b.addPeer({ id, masternode: true }, src.chain);
    await b.coordinator.check();
    assert.equal(b.chain.height, n);
    const secondWindow = events.indexOf(`headers ${MAX_WINDOW_HEADERS + 1}`);
    const lastOfFirst = events.findIndex(
      (e) => e.startsWith("apply") && e.endsWith(`-${MAX_WINDOW_HEADERS}`),
    );
    assert.ok(secondWindow >= 0 && lastOfFirst >= 0, events.join(", "));
    assert.ok(
      secondWindow < lastOfFirst,
      `the next window waited for the first to apply: ${events.join(", ")}`,
    );
    // One download: its batches stayed in order across the windows.
    const applied = events
      .filter((e) => e.startsWith("apply"))
      .map((e) => Number(e.split(" ")[1]!.split("-")[0]));
    assert.deepEqual(
      applied,
      [...applied].sort((x, y) => x - y),
    );
  });

  it("slow batches ready at once are processed one per turn of the event loop, so RPC is served between them", async () => {
    const { src } = sourceChain(400);
    const b = bed();
    // Every check ends at the same moment (as when the pool's answers queue up while the main
    // thread imports): the batches are all ready together.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let checks = 0;
    b.fns.checkAhead = async (blocks) => {
      if (blocks[0]!.txs.length === 0) return; // a header window
      // The head's check and CHECKS_AHEAD more run at once; the last batch's starts later.
      if (++checks === 1 + CHECKS_AHEAD) release();
      await gate;
    };
    const turns: number[] = [];
    const process = b.fns.processChainSegment.bind(b.fns);
    await syncCountingTurns(b, src.chain, (turn) => {
      b.fns.processChainSegment = (items) => {
        turns.push(turn());
        // Each batch takes 60 ms of (virtual) time, over the 50 ms slice.
        b.local.clock.set(b.local.clock.now() + 60);
        return process(items);
      };
    });
    assert.equal(b.chain.height, 400);
    assert.equal(turns.length, 4, "four batches of 100");
    assert.equal(new Set(turns).size, turns.length, `two batches in one turn: ${turns.join(", ")}`);
  });

  for (const waiting of [true, false]) {
    it(`${waiting ? "while a caller waits, a batch is committed in parts of one slice, one part per turn" : "with no caller waiting, a batch is one commit, however long"}`, async () => {
      const { src } = sourceChain(300);
      const b = bed();
      b.callerWaiting = waiting;
      const parts: Array<{ turn: number; first: number; applied: number }> = [];
      const process = b.fns.processChainSegment.bind(b.fns);
      await syncCountingTurns(b, src.chain, (turn) => {
        b.fns.processChainSegment = (items, stopAfter) => {
          // Each block takes 30 ms of (virtual) time: a batch of 100 would hold the thread 3 s.
          const r = process(items, () => {
            b.local.clock.set(b.local.clock.now() + 30);
            return stopAfter?.() ?? false;
          });
          if (items[0]!.block.txs.length > 0)
            parts.push({ turn: turn(), first: items[0]!.block.header.height, applied: r.results.length });
          return r;
        };
      });
      assert.equal(b.chain.height, 300);
      assert.equal(tipOf(b.chain), tipOf(src.chain));
      assert.equal(
        parts.reduce((n, p) => n + p.applied, 0),
        300,
      );
      if (!waiting) {
        assert.deepEqual(
          parts.map((p) => p.applied),
          [100, 100, 100],
        );
        return;
      }
      // A part ends with the block that crosses the slice.
      const most = Math.ceil(PROCESS_SLICE_MS / 30);
      for (const p of parts) assert.ok(p.applied <= most, `a part of ${p.applied} blocks from ${p.first}`);
      // Parts follow each other in height, each on a turn of its own.
      for (let i = 1; i < parts.length; i++) {
        assert.equal(parts[i]!.first, parts[i - 1]!.first + parts[i - 1]!.applied);
        assert.ok(parts[i]!.turn > parts[i - 1]!.turn, `two parts in turn ${parts[i]!.turn}`);
      }
    });
  }

  it("a timed-out batch goes to a different peer; no range is ever asked twice of one peer", async () => {
    const { src } = sourceChain(600);
    const b = bed();
    const slow = b.addPeer({ id: "slow", rttMs: 1, behaviour: { blocksTimeout: true } }, src.chain);
    const ok = ["a", "b"].map((id) => b.addPeer({ id }, src.chain));
    await b.coordinator.check();
    assert.equal(b.chain.height, 600);
    const calls = blockCalls([slow, ...ok]);
    assert.equal(new Set(calls).size, calls.length, "a (peer, range) pair requested twice");
    const slowRanges = calls.filter((c) => c.startsWith("slow/")).map((c) => c.split("/")[1]);
    assert.ok(slowRanges.length >= 1);
    for (const first of slowRanges) {
      assert.ok(
        calls.some((c) => !c.startsWith("slow/") && c.split("/")[1] === first),
        "the timed-out range was fetched from another peer",
      );
    }
    assert.ok(b.view.get("slow")!.consecutiveFailures >= 1);
    assert.ok((await b.metric("sync_batch_retries_total")) >= 1);
  });

  it("a peer that disconnects mid-batch: the batch finishes from another peer", async () => {
    const { src } = sourceChain(150);
    const b = bed();
    const gone = b.addPeer({ id: "gone", whitelisted: true, behaviour: { closeOnBlocks: true } }, src.chain);
    const other = b.addPeer({ id: "other" }, src.chain);
    await b.coordinator.check();
    assert.equal(b.chain.height, 150);
    assert.ok(gone.count("blocks") >= 1);
    assert.ok(other.count("blocks") >= 1);
  });

  it("a partial answer (the 4 MiB cap) is kept and the rest is asked for as a new range", async () => {
    const { src } = sourceChain(100);
    const b = bed();
    const half = b.addPeer(
      {
        id: "half",
        whitelisted: true,
        behaviour: { tamperBlocks: (rs) => rs.slice(0, Math.ceil(rs.length / 2)) },
      },
      src.chain,
    );
    await b.coordinator.check();
    assert.equal(b.chain.height, 100);
    assert.deepEqual(
      blockCalls([half]).map((c) => c.split("/")[2]),
      ["100", "50", "25", "12", "6", "3", "1"],
    );
  });

  it("retries: at most 3 for ordinary peers, 10 when the lead is a whitelisted masternode", async () => {
    const { src } = sourceChain(20);
    for (const [priority, expected] of [
      [false, 4],
      [true, 11],
    ] as const) {
      const b = bed();
      const peers = Array.from({ length: 12 }, (_, i) =>
        b.addPeer(
          {
            id: `q${String(i).padStart(2, "0")}`,
            behaviour: { blocksTimeout: true },
            ...(i === 0 ? { whitelisted: priority, masternode: priority, rttMs: 1 } : {}),
          },
          src.chain,
        ),
      );
      await b.coordinator.check();
      assert.equal(b.chain.height, 0);
      assert.equal(blockCalls(peers).length, expected, `priority=${priority}`);
      assert.equal(b.coordinator.status().lastError?.code, "MAX_RETRIES");
      assert.equal(await b.metric("masternode_sync_failures_total"), 1);
    }
  });
});

describe("SyncCoordinator: bad data", () => {
  it("garbage, a block that was not asked for, or a tampered header signature: penalised, reassigned, sync goes on", async () => {
    const { src } = sourceChain(120);
    const other = track(new ChainHarness(genesis, keys));
    const foreign = extend(other, 1, { round: 1 })[0]!;
    const variants: Array<[string, (rs: Buffer[]) => Buffer[], string]> = [
      ["garbage", (rs) => rs.map(() => Buffer.from("not a block")), "undecodable"],
      ["foreign", (rs) => [encodeBlock(foreign), ...rs.slice(1)], "wrong_block"],
      [
        "tampered-sig",
        (rs) =>
          rs.map((r) => {
            const blk = decodeBlock(r);
            blk.header.signature[0] = blk.header.signature[0]! ^ 1;
            return encodeBlock(blk);
          }),
        "wrong_block",
      ],
    ];
    for (const [name, tamper, reason] of variants) {
      const b = bed();
      b.addPeer({ id: "liar", whitelisted: true, behaviour: { tamperBlocks: tamper } }, src.chain);
      b.addPeer({ id: "honest" }, src.chain);
      await b.coordinator.check();
      assert.equal(b.chain.height, 120, name);
      assert.equal(tipOf(b.chain), tipOf(src.chain), name);
      assert.deepEqual(
        b.fns.penalties.map((p) => [p.id, p.score]),
        [["liar", 100]],
        name,
      );
      assert.ok(b.fns.penalties[0]!.reason.includes(reason), `${name}: ${b.fns.penalties[0]!.reason}`);
    }
  });

  it("an invalid block in a batch: nothing past it is applied, it comes from another peer, the offender is penalised", async () => {
    const src = track(new ChainHarness(genesis, keys));
    extend(src, 29);
    const coin = src.genesisCoins(funder)[0]!;
    const transfer = makeTransfer(
      funder,
      [coin.outpoint],
      [{ to: pubkeyHash(keys[0]!.publicKey), amount: coin.amount }],
    );
    const b30 = src.mine({ txs: [transfer] });
    extend(src, 30);
    const badHash = blockHash(b30.header);
    const b = bed();
    const applied: Array<{ from: number; count: number; height: number; error?: string }> = [];
    const process = b.fns.processChainSegment.bind(b.fns);
    b.fns.processChainSegment = (items) => {
      const r = process(items);
      applied.push({
        from: items[0]!.block.header.height,
        count: items.length,
        height: b.chain.height,
        ...(r.error ? { error: (r.error as { code: string }).code } : {}),
      });
      return r;
    };
    b.makeCoordinator();
    const offender = b.addPeer(
      {
        id: "offender",
        whitelisted: true,
        behaviour: {
          tamperBlocks: (rs) =>
            rs.map((r) =>
              blockHash(decodeBlock(r).header).equals(badHash) ? tamperTxSignature(r, decodeBlock) : r,
            ),
        },
      },
      src.chain,
    );
    const honest = b.addPeer({ id: "honest" }, src.chain);
    await b.coordinator.check();
    assert.deepEqual(applied[0], { from: 1, count: 60, height: 29, error: "BAD_TX_SIGNATURE" });
    assert.equal(applied[1]!.from, 30, "the rest starts at the invalid block");
    assert.equal(b.chain.height, 60);
    assert.equal(tipOf(b.chain), tipOf(src.chain));
    assert.ok(b.chain.getIndex(badHash), "the genuine block 30 is in the chain");
    const refetch = honest.calls.find((c) => c.kind === "blocks" && (c.arg as Buffer[])[0]!.equals(badHash));
    assert.ok(refetch, "block 30 came from the other peer");
    assert.equal(offender.count("blocks"), 1);
    assert.deepEqual(
      b.fns.penalties.map((p) => [p.id, p.score]),
      [["offender", 100]],
    );
  });

  it("an invalid branch (a validly signed header over an invalid body) is abandoned for the honest chain", async () => {
    const { src } = sourceChain(60);
    // The liar's branch: blocks 1–29 of the honest chain, then a block whose coinbase overpays
    // (signed by the scheduled producer, so its header passes), then children of it.
    const liarChain = track(new ChainHarness(genesis, keys));
    const prefix = extend(liarChain, 29);
    const bad = liarChain.makeBlock({ timestamp: prefix[28]!.header.timestamp + 1_000 });
    bad.txs[0]!.outputs[0]!.amount += 1n;
    reseal(bad, keys[0]!);
    const branch = [bad];
    for (let i = 0; i < 10; i++) branch.push(liarChain.makeBlockOn(branch[branch.length - 1]!));
    const b = bed();
    // Serves its own chain for heights <= 29, then the bad branch (answers built by hand).
    const liar = b.addPeer(
      { id: "liar", whitelisted: true, height: 39, tipHash: blockHash(branch[10]!.header) },
      liarChain.chain,
    );
    const ownHeaders = liar.getHeaders.bind(liar);
    liar.getHeaders = (locator, max) =>
      [...ownHeaders(locator, max), ...branch.map((x) => x.header)].slice(0, max);
    const ownBlocks = liar.getBlocks.bind(liar);
    liar.getBlocks = (hashes) =>
      hashes.map((h) => {
        const x = branch.find((y) => blockHash(y.header).equals(h));
        return x ? encodeBlock(x) : ownBlocks([h])[0]!;
      });
    b.addPeer({ id: "honest" }, src.chain);
    await b.coordinator.check();
    assert.equal(b.chain.height, 60);
    assert.equal(tipOf(b.chain), tipOf(src.chain));
    assert.ok(b.chain.isKnownInvalid(blockHash(bad.header)));
    assert.deepEqual(
      b.fns.penalties.map((p) => [p.id, p.score]),
      [["liar", 100]],
    );
  });

  it("a lead that never answers is cooled down and the next peer finishes the sync", async () => {
    const { src } = sourceChain(80);
    const b = bed();
    const silent = b.addPeer({ id: "silent", whitelisted: true, behaviour: { silent: true } }, src.chain);
    b.addPeer({ id: "honest" }, src.chain);
    await b.coordinator.check();
    assert.equal(b.chain.height, 80);
    assert.equal(silent.count("headers"), 1);
    assert.ok(b.logged("Sync from peer ended early"));
  });

  it("a peer claiming an impossible height is ignored for the target, unscored (no proof), logged once", async () => {
    const { src } = sourceChain(50);
    const b = bed();
    b.addPeer(
      { id: "liar", height: 1_000_000, tipHash: Buffer.alloc(32, 3), behaviour: { silent: true } },
      src.chain,
    );
    b.addPeer({ id: "h1" }, src.chain);
    b.addPeer({ id: "h2" }, src.chain);
    await b.coordinator.check();
    await b.coordinator.check();
    assert.equal(b.chain.height, 50);
    assert.deepEqual(b.fns.penalties, [], "a height is a claim, not proof");
    assert.equal(
      b.logger.records.filter((r) => r.msg === "Ignoring a peer's impossible height").length,
      1,
      "logged once per claimed height",
    );
    assert.equal(b.coordinator.status().consensusHeight, 50);
  });

  it("a lead that cannot back up its claimed tip loses its standing as lead and its say in the target for a while", async () => {
    const { src, blocks } = sourceChain(20);
    const b = bed();
    b.importBlocks(blocks);
    // Claims 8 more blocks than it (or anyone) has, and answers every GetHeaders with nothing.
    const claim = { height: 28, tipHash: Buffer.alloc(32, 9), connected: true };
    b.addPeer({ id: "liar", ...claim, masternode: true }, src.chain);
    await b.coordinator.check();
    assert.equal(await b.metric("sync_coordinator_syncs_initiated_total"), 1);
    assert.ok(b.logged("Peer did not deliver the tip it claimed"));
    assert.deepEqual(b.fns.penalties, [], "not proof: never scored");
    for (let i = 0; i < 5; i++) {
      b.local.clock.advance(60_000);
      b.view.update("liar", claim); // it keeps pinging its claim
      await b.coordinator.check();
    }
    assert.equal(await b.metric("sync_coordinator_syncs_initiated_total"), 1, "not tried again for 10 min");
    assert.equal(await b.metric("local_height_behind_consensus"), 0, "its claim no longer counts");
    assert.equal(b.coordinator.status().behind, 0);
    b.local.clock.advance(6 * 60_000);
    b.view.update("liar", claim);
    await b.coordinator.check();
    assert.equal(
      await b.metric("sync_coordinator_syncs_initiated_total"),
      2,
      "after the bound it may lead again",
    );
  });
});

describe("SyncCoordinator: the consensus check (seed 001)", () => {
  it("defers a far-ahead non-whitelisted minority peer until enough peers agree", async () => {
    const { src } = sourceChain(120);
    const b = bed();
    const gTip = b.chain.tip.hash;
    b.addPeer({ id: "n" }, src.chain);
    for (const id of ["b", "c", "d"]) b.addPeer({ id, height: 0, tipHash: gTip }, src.chain);
    b.coordinator.hint("n");
    await b.coordinator.check();
    assert.equal(b.chain.height, 0, "deferred");
    assert.ok(b.logged("Deferring sync: peer is far ahead and not on the consensus chain"));
    assert.ok((await b.metric("sync_deferred_total")) >= 1);
    // Two more peers reach its height: 3 of 4 agree.
    for (const id of ["b", "c"]) b.view.update(id, { height: 118, tipHash: src.chain.getHashAtHeight(118)! });
    await b.coordinator.check();
    assert.equal(b.chain.height, 120);
  });

  it("follows a whitelisted masternode far ahead at once (priority sync), even when most peers are behind", async () => {
    const { src } = sourceChain(120);
    const b = bed();
    const gTip = b.chain.tip.hash;
    b.addPeer({ id: "w", masternode: true, whitelisted: true }, src.chain);
    for (const id of ["b", "c", "d"])
      b.addPeer({ id, height: 0, tipHash: gTip, masternode: true }, src.chain);
    await b.coordinator.check();
    assert.equal(b.chain.height, 120);
    assert.ok(b.logged("Priority sync from a whitelisted masternode"));
    assert.equal(b.coordinator.status().consensusSource, "whitelisted-masternodes");
  });

  it("sync.enable_coordinator = false: heights are watched, nothing is synced", async () => {
    const { src } = sourceChain(40);
    const b = bed({ enableCoordinator: false });
    b.addPeer({ id: "p" }, src.chain);
    await b.coordinator.check();
    assert.equal(b.chain.height, 0);
    const st = b.coordinator.status();
    assert.deepEqual([st.enabled, st.consensusHeight, st.behind], [false, 40, 40]);
    assert.equal(await b.metric("sync_coordinator_checks_total"), 1);
  });
});

describe("SyncCoordinator: forks", () => {
  it("a branch against our final block is refused before download, and a twin header in it is kept as evidence", async () => {
    const src = track(new ChainHarness(genesis, keys));
    const prefix = extend(src, 2);
    const theirs = extend(src, 10); // heavier than ours, and its block 3 is a twin of ours
    const b = bed();
    b.importBlocks(prefix);
    // Our block 3: the same producer and slot as theirs, 1 ms later (a different block).
    const twin = b.local.makeBlockOn(prefix[1]!, { timestamp: theirs[0]!.header.timestamp + 1 });
    b.importBlocks([twin]);
    extend(b.local, 2);
    // The single masternode votes our block 3 final (both links).
    const hash = blockHash(twin.header);
    const first: Checkpoint = { epoch: 6, hash };
    const source = b.chain.finality.tracker.justifiedAncestor(hash);
    b.chain.finality.addVote(signVote(keys[0]!, b.chain.genesisHash, source, first));
    b.chain.finality.addVote(signVote(keys[0]!, b.chain.genesisHash, first, { epoch: 7, hash }));
    assert.equal(b.chain.finality.finalizedHeight, 3);
    const ourTip = tipOf(b.chain);
    const lead = b.addPeer({ id: "mn", masternode: true }, src.chain);
    await b.coordinator.check();
    assert.equal(tipOf(b.chain), ourTip, "the heavier branch against the final block is refused");
    assert.equal(lead.count("blocks"), 0, "refused before a single body is downloaded");
    assert.ok(b.logged("Refusing a peer's branch: it conflicts with the final block"));
    // The peer's block 3 header and ours, both signed by the one producer for (3, 0): evidence.
    assert.ok(b.chain.hasEvidenceAgainst(keys[0]!.publicKey), "the twin header is evidence");
    const [row] = b.chain.listEvidence();
    assert.deepEqual(
      new Set([blockHash(row!.evidence.a), blockHash(row!.evidence.b)].map((x) => x.toString("hex"))),
      new Set([hash, blockHash(theirs[0]!.header)].map((x) => x.toString("hex"))),
    );
  });

  it("a fork deeper than 2,000 blocks is resolved only with a whitelisted masternode (10,000 deep)", async () => {
    const src = track(new ChainHarness(genesis, keys));
    const prefix = extend(src, 10);
    extend(src, 2_600);
    const b = bed();
    b.importBlocks(prefix);
    extend(b.local, 2_500, { round: 1 }); // our own branch: 2,500 blocks above the fork, less work
    const ourTip = tipOf(b.chain);
    const lead = b.addPeer({ id: "mn" }, src.chain);
    await b.coordinator.check();
    assert.equal(tipOf(b.chain), ourTip, "an ordinary peer may not take us 2,500 blocks back");
    assert.equal(b.coordinator.status().lastError?.code, "FORK_TOO_DEEP");
    assert.equal(lead.count("blocks"), 0);

    b.view.update("mn", { masternode: true, whitelisted: true });
    b.local.clock.advance(LEAD_COOLDOWN_MS + 1);
    await b.coordinator.check();
    assert.equal(tipOf(b.chain), tipOf(src.chain));
    assert.ok(b.logged("Priority fork resolution"));
    assert.equal(await b.metric("reorgs_total"), 1);
    assert.equal(await b.metric("reorg_depth"), 1);
  });

  it("more than 100 blocks above consensus: logs a possible fork, counts it, and adopts a branch with more work", async () => {
    const src = track(new ChainHarness(genesis, keys));
    const prefix = extend(src, 10);
    extend(src, 150); // round 0: full work per block
    const b = bed();
    b.importBlocks(prefix);
    extend(b.local, 300, { round: 2 }); // 300 blocks of a third of the work each: taller, lighter
    for (const id of ["p1", "p2", "p3"]) b.addPeer({ id, masternode: true }, src.chain);
    await b.coordinator.check();
    assert.ok(b.logged("possible fork or network partition"));
    assert.equal(await b.metric("sync_possible_fork_total"), 1);
    assert.equal(tipOf(b.chain), tipOf(src.chain), "switched to the branch with more work");
    assert.equal(b.chain.height, 160);
  });

  it("the target needs proof: peers without a masternode proof never raise the possible-fork warning or the alerting figures", async () => {
    const src = track(new ChainHarness(genesis, keys));
    extend(src, 3);
    const b = bed();
    extend(b.local, 150);
    // Two strangers (no operator key proven) reporting a low height.
    for (const id of ["s1", "s2"]) b.addPeer({ id, height: 0 }, src.chain);
    await b.coordinator.check();
    await b.coordinator.check();
    assert.ok(!b.logged("possible fork or network partition"));
    assert.equal(await b.metric("sync_possible_fork_total"), 0);
    assert.equal(await b.metric("local_height_behind_consensus"), 0);
    assert.equal(b.chain.height, 150, "and our chain is left alone");
    // One masternode peer far below us is proof enough for the warning.
    b.addPeer({ id: "mn", masternode: true }, src.chain);
    await b.coordinator.check();
    assert.ok(b.logged("possible fork or network partition"));
    assert.equal(await b.metric("sync_possible_fork_total"), 1);
  });

  it("a new peer's first hint is looked at at once; later hints wait out the spacing between checks", async () => {
    const { src } = sourceChain(20);
    const b = bed();
    await b.coordinator.check(); // nobody to sync from: a check that has just ended
    const settle = async (): Promise<void> => {
      for (let i = 0; i < 200; i++) await new Promise((r) => setImmediate(r));
    };
    b.addPeer({ id: "p", height: 20, tipHash: src.chain.getHashAtHeight(20)! }, src.chain);
    b.coordinator.hint("p");
    b.local.clock.advance(0);
    await settle();
    assert.equal(b.chain.height, 20, "the new peer's chain was fetched without waiting");
    extend(src, 5);
    b.view.update("p", { height: 25, tipHash: src.chain.getHashAtHeight(25)! });
    b.coordinator.hint("p");
    b.local.clock.advance(0);
    await settle();
    assert.equal(b.chain.height, 20, "a second hint from the same peer waits");
    b.local.clock.advance(200);
    await settle();
    assert.equal(b.chain.height, 25);
  });

  it("a heavier but shorter branch is adopted when its peer announces it (work decides, not height)", async () => {
    const src = track(new ChainHarness(genesis, keys));
    const prefix = extend(src, 10);
    extend(src, 15); // 15 blocks of full work
    const b = bed();
    b.importBlocks(prefix);
    extend(b.local, 30, { round: 2 }); // 30 blocks of a third of the work each: taller, lighter
    const ourTip = tipOf(b.chain);
    b.addPeer({ id: "p" }, src.chain);
    await b.coordinator.check();
    assert.equal(tipOf(b.chain), ourTip, "a lower peer is not synced from without a reason");
    b.coordinator.hint("p"); // it announced a block whose parent we lack
    await b.coordinator.check();
    assert.equal(tipOf(b.chain), tipOf(src.chain));
    assert.equal(b.chain.height, 25);
  });

  it("no peer vote on the branch: a third of liars cannot veto a heavier branch, which fork choice adopts", async () => {
    // The old 2/3 hash agreement deferred this reorg: two peers out of three answered GetHashes
    // with a third block at the target height (HASH_DISAGREEMENT), unverified, and held the
    // honest heavier branch off. Fork choice and the final block decide now.
    const src = track(new ChainHarness(genesis, keys));
    const prefix = extend(src, 10);
    extend(src, 40);
    const b = bed();
    b.importBlocks(prefix);
    extend(b.local, 20, { round: 1 });
    const gTip = b.chain.tip.hash;
    b.addPeer({ id: "lead", whitelisted: true }, src.chain);
    for (const id of ["q1", "q2"])
      b.addPeer(
        {
          id,
          height: 50,
          tipHash: gTip,
          behaviour: { tamperHashes: (hs) => hs.map((h, i) => (i === 2 ? Buffer.alloc(32, 5) : h)) },
        },
        src.chain,
      );
    await b.coordinator.check();
    assert.equal(tipOf(b.chain), tipOf(src.chain));
    assert.equal(b.coordinator.status().lastError, null);
  });

  it("holds production while it fetches a better branch: from its validated headers, until it lands or stops making progress", async () => {
    const src = track(new ChainHarness(genesis, keys));
    const prefix = extend(src, 10);
    extend(src, 15); // 15 blocks of full work
    const b = bed();
    b.importBlocks(prefix);
    extend(b.local, 30, { round: 2 }); // taller, lighter
    // A lighter branch never holds anyone.
    const light = track(new ChainHarness(genesis, keys));
    light.chain.processBlocks(prefix.map((block) => ({ block })));
    extend(light, 5, { round: 3 });
    b.addPeer({ id: "light" }, light.chain);
    b.coordinator.hint("light");
    await b.coordinator.check();
    assert.equal(b.coordinator.productionHold(), null);
    assert.equal(b.chain.height, 40);

    let release = (): void => undefined;
    const gate = new Promise<void>((r) => (release = r));
    b.addPeer({ id: "p", behaviour: { blocksGate: gate } }, src.chain);
    b.coordinator.hint("p");
    const check = b.coordinator.check();
    let hold: ReturnType<SyncCoordinator["productionHold"]> = null;
    for (let i = 0; i < 50 && !hold; i++) {
      await new Promise((r) => setImmediate(r));
      hold = b.coordinator.productionHold();
    }
    assert.ok(hold, "the branch's headers beat our tip: production holds");
    assert.equal(hold.height, 25);
    assert.equal(hold.hash.toString("hex"), tipOf(src.chain));
    // No progress for the hold's period: the download may be stalled by its peer, so the hold
    // lapses and production goes on (the sync itself keeps trying).
    b.local.clock.advance(PRODUCTION_HOLD_MIN_MS);
    assert.equal(b.coordinator.productionHold(), null, "a stalled download holds no one past its period");
    release();
    await check;
    assert.equal(tipOf(b.chain), tipOf(src.chain));
    assert.equal(b.coordinator.productionHold(), null, "the branch landed: nothing to wait for");
  });

  it("never stalls when the first 2,000 headers of the branch are already stored", async () => {
    const src = track(new ChainHarness(genesis, keys));
    const prefix = extend(src, 5);
    const branch = extend(src, 3_000, { round: 1 }); // half the work per block: 1,500 blocks' worth
    const b = bed();
    b.importBlocks(prefix);
    extend(b.local, 1_000); // our main chain: 1,000 blocks' worth of work
    // A sync that fetched the first 1,900 blocks of that branch, then stopped: they are stored as
    // a side branch (950 < 1,000) because that sync expected them.
    b.chain.expect(
      branch.slice(0, 1_900).map((x) => blockHash(x.header)),
      3_600_000,
    );
    b.importBlocks(branch.slice(0, 1_900));
    const ourTip = tipOf(b.chain);
    assert.equal(b.chain.height, 1_005);
    const peer = b.addPeer({ id: "p", whitelisted: true }, src.chain);
    await b.coordinator.check();
    assert.notEqual(tipOf(b.chain), ourTip);
    assert.equal(
      tipOf(b.chain),
      tipOf(src.chain),
      b.logger.records.map((r) => `${r.msg} ${JSON.stringify(r.ctx)}`).join("\n"),
    );
    assert.ok(peer.count("headers") <= 4, `${peer.count("headers")} header requests`);
    const fetched = blockCalls([peer]).reduce((n, c) => n + Number(c.split("/")[2]), 0);
    assert.equal(fetched, 1_100, "only the blocks we lacked were downloaded");
  });
});

describe("SyncCoordinator: genesis, single flight, state machines", () => {
  it("refuses to sync when the peers it can reach disagree on genesis, and says so", async () => {
    const { src } = sourceChain(30);
    const b = bed();
    b.addPeer({ id: "p" }, src.chain);
    for (const a of ["10.0.0.1:1", "10.0.0.2:1"]) b.view.recordGenesisRefusal(a);
    await b.coordinator.check();
    assert.equal(b.chain.height, 0);
    assert.deepEqual(b.coordinator.status().genesisDisagreement, { refused: 2, agreeing: 1 });
    assert.ok(b.logged("Peers disagree on the genesis block; refusing to sync"));
    // One refusal against one agreeing peer is not a disagreement of "the peers we can reach".
    b.local.clock.advance(5 * 60_000 + 1);
    b.view.update("p", {});
    b.view.recordGenesisRefusal("10.0.0.3:1");
    await b.coordinator.check();
    assert.equal(b.chain.height, 30);
    assert.equal(b.coordinator.status().genesisDisagreement, null);
  });

  it("is single-flight: concurrent checks share one run, and the state is Syncing only inside it", async () => {
    const { src } = sourceChain(300);
    const b = bed();
    const seen: string[] = [];
    const getBlocks = b.fns.getBlocks.bind(b.fns);
    b.fns.getBlocks = async (id, hs) => {
      seen.push(b.coordinator.state.status);
      return getBlocks(id, hs);
    };
    b.makeCoordinator();
    b.addPeer({ id: "p" }, src.chain);
    const first = b.coordinator.check();
    const second = b.coordinator.check();
    assert.equal(first, second);
    assert.equal(b.coordinator.isSyncing || b.coordinator.state.status === "Checking", true);
    await first;
    assert.equal(b.chain.height, 300);
    assert.ok(seen.length > 0 && seen.every((s) => s === "Syncing"));
    assert.equal(b.coordinator.state.status, "Idle");
    assert.equal(await b.metric("sync_coordinator_checks_total"), 1);
    assert.equal(await b.metric("sync_coordinator_syncs_initiated_total"), 1);
  });

  it("logs a notifier line every few seconds while syncing: height/target, blocks/s, ETA, peers", async () => {
    const { src } = sourceChain(400);
    const b = bed({ notifierIntervalMs: 5_000 });
    const getBlocks = b.fns.getBlocks.bind(b.fns);
    b.fns.getBlocks = async (id, hs) => {
      const r = await getBlocks(id, hs);
      b.local.clock.advance(5_000); // time passes while batches arrive
      return r;
    };
    b.makeCoordinator();
    b.addPeer({ id: "p" }, src.chain);
    b.addPeer({ id: "q" }, src.chain);
    await b.coordinator.check();
    assert.equal(b.chain.height, 400);
    const lines = b.logger.records.filter((r) => r.msg.startsWith("Syncing — "));
    assert.ok(lines.length >= 1, "no notifier line");
    assert.match(
      lines[lines.length - 1]!.msg,
      /^Syncing — [\d,]+\/400 — [\d.]+ blocks\/s — .+ left — 2 peers$/,
    );
  });

  it("transitions from the wrong state throw WRONG_STATE", () => {
    assert.throws(
      () => nextSyncState({ status: "Idle" }, ["Checking"], { status: "Idle" }),
      (e: unknown) => e instanceof SyncError && e.code === "WRONG_STATE",
    );
    const batch: Batch = {
      id: 1,
      start: 0,
      end: 1,
      state: { status: "AwaitingDownload" },
      attempts: 0,
      tried: new Set(),
    };
    transitionBatch(batch, ["AwaitingDownload"], { status: "Downloading", peer: "p" });
    assert.throws(
      () => transitionBatch(batch, ["AwaitingProcessing"], { status: "Processing", peer: "p" }),
      (e: unknown) => e instanceof SyncError && e.code === "WRONG_STATE",
    );
  });
});
