import type { ChainReader } from "../chain/chainReader.js";
import { describeEquivocation, encodeEquivocation } from "../consensus/evidence.js";
import type { RpcServer } from "./server.js";

export interface EvidenceMethodDeps {
  chain: Pick<ChainReader, "listEvidence">;
}

/** `listevidence`: the equivocation evidence this node holds, and whether it is on chain. */
export function registerEvidenceMethods(rpc: RpcServer, deps: EvidenceMethodDeps): void {
  rpc.register("listevidence", {
    description:
      "Lists the equivocation evidence this node holds: the producer that signed two blocks for one (height, round), both block hashes, when it was first seen, and the height of the main-chain block that put it on chain (null while pending).",
    params: [],
    result: "[{producer, height, round, hashes, seen, minedheight, evidence}]",
    examples: ["time-cli listevidence"],
    handler: () =>
      deps.chain.listEvidence().map(({ evidence, seenAt, slashedAt }) => {
        const d = describeEquivocation(evidence);
        return {
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
  });
}
