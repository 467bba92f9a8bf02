/**
 * Chain tips and manual recovery, with bitcoind's names and meanings (docs/OPERATIONS.md,
 * "Chain tips and recovery"): getchaintips lists every branch end the store holds;
 * invalidateblock marks a block and its descendants invalid by the operator's decision and moves
 * the tip off them; reconsiderblock clears that and lets fork choice decide again. Neither ever
 * crosses a final block: a final block cannot be invalidated, and fork choice never leaves the
 * final block's branch. Chain runs each change in one write transaction (Chain.invalidateBlock).
 */
import { BlockError } from "../primitives/errors.js";
import { CodedError } from "../util/codedError.js";
import type { BlockIndex, ChainStore } from "./chainStore.js";
import type { ChainLogger, ProcessResult } from "./chainTypes.js";
import { isBetterTip } from "./forkOrder.js";

/** bitcoind's statuses. This node never stores a header without its block: no "headers-only". */
export type TipStatus = "active" | "valid-fork" | "valid-headers" | "headers-only" | "invalid";

export interface ChainTip {
  height: number;
  hash: string;
  /** Blocks from the tip down to the main chain (0 for the active tip). */
  branchlen: number;
  status: TipStatus;
}

export type ChainTipErrorCode = "NOT_FOUND" | "GENESIS" | "FINAL" | "NOT_APPLIED";

export class ChainTipError extends CodedError<ChainTipErrorCode> {}

/** What the tip tools need of the chain. */
export interface TipsView {
  store: ChainStore;
  tip(): BlockIndex;
  finalizedHeight(): number;
  holdsFinal(e: BlockIndex): boolean;
  /** Invalid by a rule or by the operator. */
  isInvalid(hash: Buffer): boolean;
}

/** The main-chain block at `entry`'s height is `entry` itself. */
export function isOnMain(store: ChainStore, entry: BlockIndex): boolean {
  const h = store.getHashAtHeight(entry.height);
  return h !== undefined && h.equals(entry.hash);
}

/** Stored side blocks that no other side block builds on. */
function sideTips(store: ChainStore): Array<{ entry: BlockIndex; connected: boolean }> {
  const all = new Map<string, { entry: BlockIndex; connected: boolean }>();
  const parents = new Set<string>();
  for (const s of store.iterateSide()) {
    const e = store.getIndex(s.hash);
    if (!e) continue;
    all.set(e.hash.toString("hex"), { entry: e, connected: s.connected });
    parents.add(e.prevHash.toString("hex"));
  }
  return [...all.entries()].filter(([hex]) => !parents.has(hex)).map(([, v]) => v);
}

/** getchaintips: the active tip first, then every side tip, highest first. */
export function listTips(v: TipsView): ChainTip[] {
  const { store } = v;
  const tip = v.tip();
  const out: ChainTip[] = [
    { height: tip.height, hash: tip.hash.toString("hex"), branchlen: 0, status: "active" },
  ];
  const connected = new Map<string, boolean>();
  for (const s of store.iterateSide()) connected.set(s.hash.toString("hex"), s.connected);
  const forks: ChainTip[] = [];
  for (const { entry } of sideTips(store)) {
    let status: TipStatus = "valid-fork";
    let len = 0;
    let e: BlockIndex | undefined = entry;
    // Down the side branch to the main chain; bounded by the side blocks stored.
    while (e && !isOnMain(store, e)) {
      len++;
      const hex = e.hash.toString("hex");
      if (v.isInvalid(e.hash)) status = "invalid";
      else if (status !== "invalid" && connected.get(hex) !== true) status = "valid-headers";
      e = store.getIndex(e.prevHash);
    }
    forks.push({ height: entry.height, hash: entry.hash.toString("hex"), branchlen: len, status });
  }
  forks.sort((a, b) => b.height - a.height || (a.hash < b.hash ? -1 : 1));
  return [...out, ...forks];
}

/** Every stored block that `entry` is an ancestor of (main and side), `entry` included. */
export function descendantsOf(store: ChainStore, entry: BlockIndex): Buffer[] {
  const out: Buffer[] = [entry.hash];
  const onMain = isOnMain(store, entry);
  if (onMain) {
    for (let h = entry.height + 1; ; h++) {
      const hash = store.getHashAtHeight(h);
      if (!hash) break;
      out.push(hash);
    }
  }
  // Side blocks above it whose branch passes through it.
  for (const s of store.iterateSide()) {
    if (s.height <= entry.height) continue;
    let e = store.getIndex(s.hash);
    while (e && e.height > entry.height) e = store.getIndex(e.prevHash);
    if (e && e.hash.equals(entry.hash)) out.push(s.hash);
  }
  return out;
}

/**
 * The best tip fork choice may take among `start` and every stored side block whose branch
 * (down to the main chain) holds no invalid block and holds the final block.
 */
export function bestValidTip(v: TipsView, start: BlockIndex): BlockIndex {
  const { store } = v;
  let best = start;
  const ok = new Map<string, boolean>();
  const usable = (e: BlockIndex): boolean => {
    const hex = e.hash.toString("hex");
    const known = ok.get(hex);
    if (known !== undefined) return known;
    let good = !v.isInvalid(e.hash);
    if (good && !isOnMain(store, e)) {
      const parent = store.getIndex(e.prevHash);
      good = parent !== undefined && usable(parent);
    }
    ok.set(hex, good);
    return good;
  };
  // Lowest first, so each parent's verdict is known before its children's (no deep recursion).
  const side = [...store.iterateSide()].sort((a, b) => a.height - b.height);
  for (const s of side) {
    const e = store.getIndex(s.hash);
    if (!e || !usable(e) || !v.holdsFinal(e)) continue;
    if (isBetterTip(e, best)) best = e;
  }
  return best;
}

/** Throws unless `hash` names a stored block; returns its index entry. */
export function storedEntry(store: ChainStore, hash: Buffer): BlockIndex {
  const e = store.getIndex(hash);
  if (!e) throw new ChainTipError("NOT_FOUND", `block not found: ${hash.toString("hex")}`);
  return e;
}

/** What invalidateblock and reconsiderblock need of the chain beyond TipsView. */
export interface RecoveryHost extends TipsView {
  logger: ChainLogger | undefined;
  reorgTo(target: BlockIndex): ProcessResult;
  /** Drops a remembered rule failure (the chain's known-invalid cache). */
  forgetInvalid(hex: string): void;
  /** Runs `fn` in one write transaction; the chain's events wait for its commit. */
  asOneChange<T>(fn: () => T): T;
}

/**
 * invalidateblock: marks a stored block and its stored descendants invalid by the operator's
 * decision and, if it is on the main chain, moves the tip to the best branch without it, in one
 * write transaction (or changes nothing). A final block, or one below it, cannot be invalidated.
 */
export function invalidateBlock(h: RecoveryHost, hash: Buffer): { tip: BlockIndex; marked: number } {
  const { store } = h;
  const e = storedEntry(store, hash);
  if (e.height === 0) throw new ChainTipError("GENESIS", "the genesis block cannot be invalidated");
  const onMain = isOnMain(store, e);
  const final = h.finalizedHeight();
  if (onMain && e.height <= final)
    throw new ChainTipError(
      "FINAL",
      `block ${hash.toString("hex")} at height ${e.height} is final (final height ${final}): a final block cannot be invalidated`,
    );
  const marked = descendantsOf(store, e);
  return h.asOneChange(() => {
    for (const x of marked) store.setManualInvalid(x, true);
    if (onMain) {
      const r = h.reorgTo(bestValidTip(h, store.getIndex(e.prevHash)!));
      if (r.status === "reorg-refused")
        throw new ChainTipError(
          "NOT_APPLIED",
          `moving the tip off it was refused (${r.reason ?? "refused"}, ${r.depth} blocks deep); nothing changed`,
        );
    }
    h.logger?.warn("Block invalidated by the operator", {
      hash: hash.toString("hex"),
      height: e.height,
      marked: marked.length,
    });
    return { tip: h.tip(), marked: marked.length };
  });
}

/**
 * reconsiderblock: clears every invalid mark (the operator's, and remembered rule failures) on a
 * stored block, its descendants and its side-branch ancestors, then lets fork choice take the
 * best branch again, in one write transaction. A branch that fails a rule is marked again.
 */
export function reconsiderBlock(h: RecoveryHost, hash: Buffer): { tip: BlockIndex; cleared: number } {
  const { store } = h;
  const e = storedEntry(store, hash);
  const clear = descendantsOf(store, e);
  for (let a = store.getIndex(e.prevHash); a && !isOnMain(store, a); a = store.getIndex(a.prevHash))
    clear.push(a.hash);
  return h.asOneChange(() => {
    for (const x of clear) {
      store.setManualInvalid(x, false);
      h.forgetInvalid(x.toString("hex"));
    }
    const best = bestValidTip(h, h.tip());
    if (!best.hash.equals(h.tip().hash)) {
      try {
        h.reorgTo(best);
      } catch (err) {
        if (!(err instanceof BlockError)) throw err;
        h.logger?.warn("A reconsidered branch failed a rule again", { code: err.code });
      }
    }
    return { tip: h.tip(), cleared: clear.length };
  });
}
