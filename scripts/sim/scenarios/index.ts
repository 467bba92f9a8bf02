/** Every scenario, by name. Each lives in its own file, documented there. */
import type { Scenario } from "../scenario.js";
import { byzantine } from "./byzantine.js";
import { churn } from "./churn.js";
import { finalityAttack } from "./finalityAttack.js";
import { grind } from "./grind.js";
import { lyingPeers } from "./lyingPeers.js";
import { mixed } from "./mixed.js";
import { partition, partition3 } from "./partition.js";
import { rollingCrash } from "./rollingCrash.js";
import { steady } from "./steady.js";
import { sybil } from "./sybil.js";

export const SCENARIOS: Record<string, Scenario> = Object.fromEntries(
  [
    steady,
    partition,
    partition3,
    rollingCrash,
    churn,
    lyingPeers,
    byzantine,
    grind,
    sybil,
    mixed,
    finalityAttack,
  ].map((s) => [s.name, s]),
);
