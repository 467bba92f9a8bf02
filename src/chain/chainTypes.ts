/**
 * The plain types around Chain: what processBlock returns, the options Chain.open takes, and the
 * logger it writes to. Kept apart so Chain's collaborators (side branches, schedules, evidence)
 * can name them without importing chain.ts, which re-exports them.
 */
import type { Equivocation } from "../consensus/evidence.js";
import type { BlockIndex } from "./chainStore.js";

export type ProcessResult =
  | { status: "connected"; hash: Buffer; height: number }
  | { status: "reorged"; hash: Buffer; height: number; depth: number; fork: BlockIndex }
  | { status: "side"; hash: Buffer; height: number }
  | { status: "duplicate"; hash: Buffer }
  /**
   * The block cannot be validated yet: its parent is unknown (`reason` absent or
   * "unknown-parent"), or the parent is stored but the registry after it is not
   * ("unknown-parent-state"; every block stored by this version has its snapshot, so only an
   * older or damaged store can give it). Nothing is stored and the sender is not blamed.
   */
  | {
      status: "orphan";
      hash: Buffer;
      prevHash: Buffer;
      reason?: "unknown-parent" | "unknown-parent-state";
    }
  | { status: "reorg-refused"; hash: Buffer; depth: number; reason?: "too-deep" | "below-final" }
  /**
   * Valid, but its branch cannot win (it forks below tip − max_reorg_depth, or has too little
   * work): not stored. Not the sender's fault: an honest late block looks the same.
   */
  | { status: "side-refused"; hash: Buffer; height: number; reason: SideRefusal }
  /**
   * Valid, but its producer already has another stored block for this (height, round): kept as
   * evidence only (the body is not stored), unless it extends the best chain.
   */
  | { status: "equivocation"; hash: Buffer; height: number; evidence: Equivocation };

/** Why a side block is not stored: it forks below the final block, too deep, or is too light. */
export type SideRefusal = "too-deep" | "too-light" | "below-final";

/** Plain-data options for Chain.open. */
export interface ChainOptions {
  /**
   * Overrides the reorg policy's maxDepth (NetworkParams.reorg). For tests and
   * simulations that exercise the limit with short chains; production nodes leave it unset.
   */
  maxReorgDepth?: number;
  /**
   * Durable commits (default true): each write transaction returns once it is on disk. false is
   * only for the benchmark that measures what durability costs; a node never sets it.
   */
  durable?: boolean;
}

export interface ChainLogger {
  info(msg: string, ctx?: Record<string, unknown>): void;
  warn(msg: string, ctx?: Record<string, unknown>, err?: unknown): void;
  error?(msg: string, ctx?: Record<string, unknown>, err?: unknown): void;
}
