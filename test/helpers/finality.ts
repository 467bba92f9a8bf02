import type { Block } from "../../src/primitives/block.js";
import { blockHash } from "../../src/primitives/block.js";
import { signVote, type Checkpoint } from "../../src/consensus/finality.js";
import type { KeyPair } from "../../src/crypto/ed25519.js";
import type { ChainHarness } from "./chainFixture.js";

/**
 * `voters` vote block `b` final on the harness's chain, as honest voters do: the first link
 * (the highest justified ancestor -> (B, 2h)), then the second ((B, 2h) -> (B, 2h + 1)).
 */
export function finaliseBlock(h: ChainHarness, b: Block, voters: readonly KeyPair[]): void {
  const hash = blockHash(b.header);
  const first: Checkpoint = { epoch: 2 * b.header.height, hash };
  const second: Checkpoint = { epoch: first.epoch + 1, hash };
  const tracker = h.chain.finality.tracker;
  const source = tracker.justifiedAncestor(hash);
  const g = h.chain.genesisHash;
  for (const k of voters) h.chain.finality.addVote(signVote(k, g, source, first, tracker.era));
  for (const k of voters) h.chain.finality.addVote(signVote(k, g, first, second, tracker.era));
}
