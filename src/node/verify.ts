import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { blockHash } from "../primitives/block.js";
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
export async function verifyChain(chainDir: string, genesis: GenesisSpec): Promise<VerifyResult> {
  const store = ChainStore.open(chainDir, genesis.network, genesisHash(genesis));
  const scratch = mkdtempSync(join(tmpdir(), "timed-verify-"));
  let replay: Chain | null = null;
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
    for (let h = 1; h <= tip.height; h++) {
      const hash = store.getHashAtHeight(h);
      if (!hash) return fail(`no main-chain block recorded at height ${h}`);
      const block = store.getBlock(hash);
      if (!block) return fail(`block ${hash.toString("hex")} at height ${h} is missing`);
      if (!blockHash(block.header).equals(hash))
        return fail(`block stored under ${hash.toString("hex")} has another hash`);
      try {
        const r = replay.processBlock(block);
        if (r.status !== "connected")
          return fail(`block at height ${h} did not connect on replay (${r.status})`);
      } catch (e) {
        const why = e instanceof BlockError ? `${e.code}: ${e.message}` : (e as Error).message;
        return fail(`block at height ${h} is invalid on replay: ${why}`);
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
    if (replay) await replay.close();
    await store.close();
    rmSync(scratch, { recursive: true, force: true });
  }
}
