/**
 * `getrewardreport [operator] [blocks]` (docs/OPERATIONS.md, "Reward audit"): over the last N
 * main-chain blocks, what each masternode was paid (its share of the block reward by tier
 * weight, plus the remainder and the fees in blocks it produced), and every block where it held
 * the round-0 slot but another round produced. Read from the blocks themselves and the registry
 * and schedule each was validated against, so it is what the chain says, not an estimate.
 */
import type { Chain } from "../chain/chain.js";
import { findByOperator, type MasternodeEntry } from "../consensus/registry.js";
import { scheduledProducer } from "../consensus/schedule.js";
import { TIER_WEIGHT } from "../consensus/tier.js";
import { encodeAddress } from "../crypto/address.js";
import { formatAmount } from "../primitives/amount.js";
import { BLOCK_REWARD } from "../primitives/constants.js";
import { RPC_INVALID_ADDRESS_OR_KEY, RpcError } from "./errors.js";
import type { RpcServer } from "./server.js";

export const DEFAULT_REPORT_BLOCKS = 100;
export const MAX_REPORT_BLOCKS = 10_000;

interface Row {
  entry: MasternodeEntry;
  paid: bigint;
  payments: Array<{ height: number; amount: bigint; produced: boolean }>;
  produced: number;
  missed: Array<{ height: number; round: number; producer: string }>;
}

export interface RewardReportDeps {
  chain: Pick<
    Chain,
    "tip" | "getHashAtHeight" | "getIndex" | "getBlock" | "registryAfter" | "scheduleForChild" | "params"
  >;
}

/** The report over the last `blocks` main-chain blocks, for one operator or for all. */
export function rewardReport(
  deps: RewardReportDeps,
  operator: Buffer | null,
  blocks: number,
): Record<string, unknown> {
  const { chain } = deps;
  const tip = chain.tip.height;
  const from = Math.max(1, tip - blocks + 1);
  const rows = new Map<string, Row>();
  const rowOf = (e: MasternodeEntry): Row => {
    const k = e.operatorPubkey.toString("hex");
    let r = rows.get(k);
    if (!r) rows.set(k, (r = { entry: e, paid: 0n, payments: [], produced: 0, missed: [] }));
    return r;
  };
  for (let h = from; h <= tip; h++) {
    const entry = chain.getIndex(chain.getHashAtHeight(h)!)!;
    const parent = chain.getIndex(entry.prevHash)!;
    const registry = chain.registryAfter(parent);
    const block = chain.getBlock(entry.hash);
    if (!registry || !block) continue;
    let coinbase = 0n;
    for (const o of block.txs[0]!.outputs) coinbase += o.amount;
    const fees = coinbase - BLOCK_REWARD;
    let total = 0n;
    for (const e of registry) total += TIER_WEIGHT[e.tier];
    const shares = registry.map((e) => (total === 0n ? 0n : (BLOCK_REWARD * TIER_WEIGHT[e.tier]) / total));
    const remainder = BLOCK_REWARD - shares.reduce((a, b) => a + b, 0n);
    registry.forEach((e, i) => {
      if (operator && !e.operatorPubkey.equals(operator)) return;
      const produced = e.operatorPubkey.equals(entry.producer);
      const amount = shares[i]! + (produced ? remainder + fees : 0n);
      const r = rowOf(e);
      r.paid += amount;
      if (produced) r.produced++;
      if (operator) r.payments.push({ height: h, amount, produced });
    });
    if (entry.round > 0) {
      const slot = scheduledProducer(chain.scheduleForChild(parent), h, 0, registry);
      if (
        slot &&
        (!operator || slot.operatorPubkey.equals(operator)) &&
        findByOperator(registry, slot.operatorPubkey)
      )
        rowOf(slot).missed.push({ height: h, round: entry.round, producer: entry.producer.toString("hex") });
    }
  }
  const network = chain.params.network;
  return {
    from,
    to: tip,
    blocks: Math.max(0, tip - from + 1),
    masternodes: [...rows.values()].map((r) => ({
      operator: r.entry.operatorPubkey.toString("hex"),
      rewardaddress: encodeAddress(r.entry.rewardAddress, network),
      tier: r.entry.tier,
      paid: formatAmount(r.paid),
      produced: r.produced,
      missed: r.missed,
      ...(operator
        ? {
            payments: r.payments.map((p) => ({
              height: p.height,
              amount: formatAmount(p.amount),
              produced: p.produced,
            })),
          }
        : {}),
    })),
  };
}

export function registerRewardReport(rpc: RpcServer, deps: RewardReportDeps): void {
  rpc.register("getrewardreport", {
    description:
      "Over the last `blocks` main-chain blocks (default 100, at most 10,000): per masternode, what it was paid (its share of every block reward by tier weight, plus the remainder and fees of the blocks it produced), how many blocks it produced, and every block where it held the round-0 slot but another round produced (missed). With an operator key, only that masternode, with every payment listed.",
    params: [
      {
        name: "operator",
        type: "string",
        optional: true,
        description: "an operator public key (64 hex); all when omitted or empty",
      },
      {
        name: "blocks",
        type: "integer",
        optional: true,
        min: 1,
        max: MAX_REPORT_BLOCKS,
        description: "how many blocks back from the tip",
      },
    ],
    result:
      "{from, to, blocks, masternodes: [{operator, rewardaddress, tier, paid, produced, missed: [{height, round, producer}], payments?}]}",
    examples: ["time-cli getrewardreport", "time-cli getrewardreport 3f2a…e1 1000"],
    handler: (p) => {
      const op = (p.operator as string | undefined) ?? "";
      let operator: Buffer | null = null;
      if (op !== "") {
        if (!/^[0-9a-fA-F]{64}$/.test(op))
          throw new RpcError(
            RPC_INVALID_ADDRESS_OR_KEY,
            `operator must be a 64-hex operator public key, got ${JSON.stringify(op.slice(0, 70))}`,
          );
        operator = Buffer.from(op, "hex");
      }
      return rewardReport(deps, operator, (p.blocks as number | undefined) ?? DEFAULT_REPORT_BLOCKS);
    },
  });
}
