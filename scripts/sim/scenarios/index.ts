/** Every scenario, by name. Each lives in its own file, documented there. */
import type { Scenario } from "../scenario.js";
import { steady } from "./steady.js";

export const SCENARIOS: Record<string, Scenario> = Object.fromEntries([steady].map((s) => [s.name, s]));
