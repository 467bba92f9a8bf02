import { buildBlock } from "../consensus/blockBuilder.js";
import type { Chain } from "../chain/chain.js";
import { MAX_BLOCK_SIZE, MAX_BLOCK_TXS } from "../primitives/constants.js";
import { BlockError } from "../primitives/errors.js";
import { txSize, type Tx } from "../primitives/tx.js";
import type { KeyPair } from "../crypto/ed25519.js";
import { findByOperator } from "../consensus/registry.js";
import { currentRound, scheduledProducer, slotStart } from "../consensus/schedule.js";
import type { Logger } from "../logging/index.js";
import type { Clock, TimerHandle } from "../util/clock.js";

export type ProducerState =
  | { state: "disabled"; reason: string }
  | { state: "not-registered"; reason: string }
  | { state: "waiting"; reason: string; active: number; required: number }
  | { state: "ready"; reason: string; nextHeight: number; nextRound: number | null };

export interface ProducerOptions {
  minMasternodes: number;
  operatorKey: KeyPair;
}

export interface ProducerModules {
  chain: Chain;
  clock: Clock;
  logger: Logger;
  /** How many active masternodes this node sees, itself included. */
  activeMasternodes: () => number;
  /** Transactions to include, chosen by fee rate and fitting the block; empty until the mempool exists. */
  selectTransactions?: (maxBytes: number, maxTxs: number) => { txs: Tx[]; fees: bigint };
  /**
   * Consensus transactions for the next block: a Finality certificate and Evidence against
   * producers still registered; default none.
   */
  selectEvidence?: () => Tx[];
  onProduced?: (hash: Buffer, height: number, round: number) => void;
  /**
   * A better branch the sync is fetching (validated headers that beat our tip): no block is
   * built on a tip about to be replaced. Default: never.
   */
  productionHold?: () => { hash: Buffer; height: number } | null;
  /** Our own block was rejected: the transactions it carried are dropped so the next try is clean. */
  onBlockRejected?: (txs: Tx[]) => void;
}

/** Never wake less often than this, so a new tip or a new round is noticed promptly. */
const MAX_TICK_MS = 500;

/**
 * Produces a block when the schedule names this masternode for the round that is open now, and
 * only while at least `minMasternodes` masternodes are active. It never produces ahead of the
 * slot: the timestamp is the current time, which is at or after the slot start of that round.
 */
export class BlockProducer {
  private timer: TimerHandle | null = null;
  private lastState: ProducerState = { state: "disabled", reason: "not started" };
  private lastLoggedReason = "";
  private produced = 0;

  constructor(
    private readonly opts: ProducerOptions,
    private readonly modules: ProducerModules,
  ) {}

  get blocksProduced(): number {
    return this.produced;
  }

  get status(): ProducerState {
    return this.lastState;
  }

  start(): void {
    if (this.timer) return;
    const every = Math.max(50, Math.min(MAX_TICK_MS, Math.floor(this.modules.chain.params.blockTimeMs / 4)));
    this.timer = this.modules.clock.setInterval(() => this.tick(), every);
    this.tick();
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = null;
    this.lastState = { state: "disabled", reason: "stopped" };
  }

  /** One scheduling decision; public so tests on a ManualClock can drive it. */
  tick(): void {
    const { chain, clock, logger } = this.modules;
    const tip = chain.tip;
    const registry = chain.getRegistry();
    const me = findByOperator(registry, this.opts.operatorKey.publicKey);
    if (!me) {
      this.setState({ state: "not-registered", reason: "operator key is not in the masternode registry" });
      return;
    }
    const active = this.modules.activeMasternodes();
    if (active < this.opts.minMasternodes) {
      this.setState({
        state: "waiting",
        reason: `waiting: ${active}/${this.opts.minMasternodes} active masternodes`,
        active,
        required: this.opts.minMasternodes,
      });
      return;
    }
    const now = clock.now();
    const height = tip.height + 1;
    const round = currentRound(chain.params, tip.timestamp, now);
    if (round < 0) {
      this.setState({
        state: "ready",
        reason: "waiting for the next slot",
        nextHeight: height,
        nextRound: null,
      });
      return;
    }
    const scheduled = scheduledProducer(chain.scheduleForChild(tip), height, round, registry);
    if (!scheduled || !scheduled.operatorPubkey.equals(me.operatorPubkey)) {
      this.setState({
        state: "ready",
        reason: `height ${height} round ${round} belongs to another masternode`,
        nextHeight: height,
        nextRound: round,
      });
      return;
    }
    // Never sign a second block for one slot: after a reorg back below this height the schedule
    // names us again, and a second header for (height, round) would be equivocation evidence.
    const signed = chain.storage.getSlot(me.operatorPubkey, height, round);
    if (signed) {
      this.setState({
        state: "ready",
        reason: `already signed block ${signed.toString("hex").slice(0, 16)} for height ${height} round ${round}`,
        nextHeight: height,
        nextRound: round + 1,
      });
      return;
    }
    const hold = this.modules.productionHold?.();
    if (hold) {
      this.setState({
        state: "ready",
        reason: `holding: the sync is fetching a better branch (height ${hold.height}, ${hold.hash.toString("hex").slice(0, 16)})`,
        nextHeight: height,
        nextRound: round,
      });
      return;
    }
    const timestamp = Math.max(now, slotStart(chain.params, tip.timestamp, round));
    const evidence = this.modules.selectEvidence?.() ?? [];
    // Leave room for the header, a coinbase paying every registered masternode, and the
    // consensus transactions.
    let consensusBytes = 0;
    for (const tx of evidence) consensusBytes += txSize(tx);
    const room = MAX_BLOCK_SIZE - 1_024 - 28 * registry.length - consensusBytes;
    const picked = this.modules.selectTransactions?.(room, MAX_BLOCK_TXS - 1 - evidence.length) ?? {
      txs: [],
      fees: 0n,
    };
    const block = buildBlock({
      parentHash: tip.hash,
      parentHeight: tip.height,
      registry,
      producer: this.opts.operatorKey,
      round,
      timestamp,
      txs: [...evidence, ...picked.txs],
      fees: picked.fees,
      eraProofInput: chain.finality.eraProofInputForChild(tip),
    });
    try {
      const r = chain.processBlock(block);
      if (r.status === "connected") {
        this.produced++;
        logger.info("Produced block", { height, round, hash: r.hash.toString("hex"), txs: block.txs.length });
        this.modules.onProduced?.(r.hash, height, round);
      }
      this.setState({
        state: "ready",
        reason: `produced height ${height}`,
        nextHeight: height + 1,
        nextRound: null,
      });
    } catch (e) {
      logger.error(
        "Own block was rejected",
        { height, round, code: e instanceof BlockError ? e.code : undefined },
        e,
      );
      if (picked.txs.length > 0) this.modules.onBlockRejected?.(picked.txs);
    }
  }

  private setState(s: ProducerState): void {
    this.lastState = s;
    if ((s.state === "waiting" || s.state === "not-registered") && s.reason !== this.lastLoggedReason) {
      this.modules.logger.warn("Not producing", { reason: s.reason });
    }
    this.lastLoggedReason = s.state === "waiting" || s.state === "not-registered" ? s.reason : "";
  }
}
