import type { ChainReader } from "../chain/chainReader.js";
import { describeEquivocation, encodeEquivocation } from "../consensus/evidence.js";
import { describeVoteOffence, encodeVoteOffence } from "../consensus/voteEvidence.js";
import type { RpcServer } from "./server.js";

export interface EvidenceMethodDeps {
  chain: Pick<ChainReader, "listEvidence" | "listVoteEvidence">;
}

/** `listevidence`: the equivocation evidence this node holds, and whether it is on chain. */
export function registerEvidenceMethods(rpc: RpcServer, deps: EvidenceMethodDeps): void {
  rpc.register("listevidence", {
    description:
      "Lists the evidence this node holds. kind=blocks: a producer that signed two blocks for one (height, round), with both block hashes. kind=votes: a finality voter that signed two votes breaking a rule (offence double or surround), with both links. For each, when it was first seen and the height of the main-chain block that put it on chain (null while pending).",
    params: [],
    result:
      "[{kind: 'blocks', producer, height, round, hashes, seen, state, minedheight, evidence} | {kind: 'votes', voter, offence, links, seen, state, minedheight, evidence}]",
    examples: ["time-cli listevidence"],
    handler: () => [
      ...deps.chain.listEvidence().map(({ evidence, seenAt, slashedAt }) => {
        const d = describeEquivocation(evidence);
        return {
          kind: "blocks",
          producer: d.producer,
          height: d.height,
          round: d.round,
          hashes: d.hashes,
          seen: Math.floor(seenAt / 1000),
          state: slashedAt === null ? "pending" : "mined",
          minedheight: slashedAt,
          evidence: encodeEquivocation(evidence).toString("hex"),
        };
      }),
      ...deps.chain.listVoteEvidence().map(({ evidence, seenAt, slashedAt }) => ({
        kind: "votes",
        ...describeVoteOffence(evidence),
        seen: Math.floor(seenAt / 1000),
        state: slashedAt === null ? "pending" : "mined",
        minedheight: slashedAt,
        evidence: encodeVoteOffence(evidence).toString("hex"),
      })),
    ],
  });
}
