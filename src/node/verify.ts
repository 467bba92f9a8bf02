import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { blockHash, type Block } from "../primitives/block.js";
import { blockSignatureItems } from "../chain/blockSignatures.js";
import { defaultSigPoolThreads, SignaturePool } from "../crypto/sigPool.js";
import { Chain } from "../chain/chain.js";
import { ChainStore } from "../chain/chainStore.js";
import { BlockError } from "../primitives/errors.js";
import { genesisHash, type GenesisSpec } from "../consensus/genesis.js";
import { registryRoot } from "../consensus/registry.js";
import type { Clock } from "../util/clock.js";
import { SystemClock } from "../util/clock.js";

export interface VerifyResult {
  ok: boolean;
  height: number;
  tip: string;
  utxos: number;
  /**
   * The highest block made final by a certificate the main chain carries (each one re-checked on
   * replay: signatures, voters, weight); 0 when none.
   */
  finalized?: number;
  /** The first inconsistency found, when !ok. */
  problem?: string;
}

/** A clock far in the future: replay must not reject old blocks for the local-time rule. */
class ReplayClock extends SystemClock implements Clock {
  override now(): number {
    return 8_000_000_000_000_000;
  }
}

/**
 * Re-validates the stored main chain from genesis into a scratch database and checks that the
 * stored UTXO set (its content and its running stats), the registry and the slashed operator keys
 * equal what replay gives.
 */
/** Blocks replayed per write transaction, and batches whose signatures are checked ahead. */
const REPLAY_BATCH = 500;
const CHECK_AHEAD = 2;

export async function verifyChain(
  chainDir: string,
  genesis: GenesisSpec,
  opts: { sigPoolThreads?: number } = {},
): Promise<VerifyResult> {
  const store = ChainStore.open(chainDir, genesis.network, genesisHash(genesis));
  const scratch = mkdtempSync(join(tmpdir(), "timed-verify-"));
  let replay: Chain | null = null;
  const threads = opts.sigPoolThreads ?? defaultSigPoolThreads();
  const pool = threads > 0 ? new SignaturePool({ threads }) : null;
  try {
    if (store.isEmpty)
      return { ok: false, height: 0, tip: "", utxos: 0, problem: "the chain database is empty" };
    const tipHash = store.getTipHash();
    const tip = store.getIndex(tipHash);
    const fail = (problem: string): VerifyResult => ({
      ok: false,
      height: tip?.height ?? 0,
      tip: tipHash.toString("hex"),
      utxos: store.getStats().count,
      problem,
    });
    if (!tip) return fail("the tip has no block index entry");
    replay = Chain.open(scratch, genesis, { clock: new ReplayClock() });
    const g = store.getHashAtHeight(0);
    if (!g || !g.equals(replay.genesisHash)) return fail("height 0 is not the genesis block");
    // Replayed REPLAY_BATCH blocks per write transaction (the scratch database is thrown away, so
    // a commit per block would buy nothing), with the next batches' signatures checked ahead on
    // the signature pool while one replays; a block's verdict is the same either way.
    const readBatch = (from: number): Block[] | string => {
      const out: Block[] = [];
      for (let h = from; h <= Math.min(tip.height, from + REPLAY_BATCH - 1); h++) {
        const hash = store.getHashAtHeight(h);
        if (!hash) return `no main-chain block recorded at height ${h}`;
        const block = store.getBlock(hash);
        if (!block) return `block ${hash.toString("hex")} at height ${h} is missing`;
        if (!blockHash(block.header).equals(hash))
          return `block stored under ${hash.toString("hex")} has another hash`;
        out.push(block);
      }
      return out;
    };
    const queue: Array<{ from: number; blocks: Block[] | string; check: Promise<unknown> }> = [];
    let next = 1;
    const topUp = (): void => {
      while (queue.length <= CHECK_AHEAD && next <= tip.height) {
        const blocks = readBatch(next);
        const check =
          pool && typeof blocks !== "string"
            ? pool.verifyAll(blockSignatureItems(blocks, replay!.genesisHash))
            : Promise.resolve();
        queue.push({ from: next, blocks, check });
        next += REPLAY_BATCH;
      }
    };
    topUp();
    while (queue.length > 0) {
      const { from, blocks, check } = queue.shift()!;
      await check;
      if (typeof blocks === "string") return fail(blocks);
      topUp();
      const r = replay.processBlocks(blocks.map((block) => ({ block })));
      const bad = r.results.findIndex((x) => x.status !== "connected");
      if (bad >= 0)
        return fail(`block at height ${from + bad} did not connect on replay (${r.results[bad]!.status})`);
      if (r.error !== undefined) {
        const e = r.error;
        const why = e instanceof BlockError ? `${e.code}: ${e.message}` : (e as Error).message;
        return fail(`block at height ${from + r.results.length} is invalid on replay: ${why}`);
      }
    }
    if (!replay.tip.hash.equals(tipHash)) return fail("replayed tip differs from the stored tip");
    const stored = store.getStats();
    const recount = store.computeStats();
    const expected = replay.storage.getStats();
    if (
      !recount.hash.equals(stored.hash) ||
      recount.count !== stored.count ||
      recount.total !== stored.total
    ) {
      return fail(
        `stored UTXO stats (count ${stored.count}) do not match the stored UTXO set (count ${recount.count}, hash ${recount.hash.toString("hex")})`,
      );
    }
    if (
      !expected.hash.equals(stored.hash) ||
      expected.count !== stored.count ||
      expected.total !== stored.total
    ) {
      return fail(
        `stored UTXO set (count ${stored.count}, hash ${stored.hash.toString("hex")}) differs from replay (count ${expected.count}, hash ${expected.hash.toString("hex")})`,
      );
    }
    if (!registryRoot(store.getRegistry()).equals(store.getRegistryRoot()))
      return fail("stored registry does not match its root");
    if (!store.getRegistryRoot().equals(replay.storage.getRegistryRoot()))
      return fail("stored masternode registry differs from replay");
    const slashed = store.slashedKeys();
    const replayed = replay.storage.slashedKeys();
    const show = (m: Map<string, number>): string =>
      [...m].map(([k, h]) => `${k.slice(0, 16)}@${h}`).join(", ") || "none";
    if (slashed.size !== replayed.size || [...slashed].some(([k, h]) => replayed.get(k) !== h))
      return fail(`stored slashed keys (${show(slashed)}) differ from replay (${show(replayed)})`);
    // Every certificate was re-checked as its block replayed; the final block they give must be
    // on the stored main chain (the store's own final block may be higher: votes seen live).
    const finalized = replay.finality.finalized;
    const atHeight = store.getHashAtHeight(replay.finality.finalizedHeight);
    if (!atHeight || !atHeight.equals(finalized.hash))
      return fail(
        `the certified block at height ${replay.finality.finalizedHeight} is not on the stored main chain`,
      );
    return {
      ok: true,
      height: tip.height,
      tip: tipHash.toString("hex"),
      utxos: stored.count,
      finalized: replay.finality.finalizedHeight,
    };
  } finally {
    await pool?.close();
    if (replay) await replay.close();
    await store.close();
    rmSync(scratch, { recursive: true, force: true });
  }
}
