/**
 * The campaign plan: the devnet's data directories (one genesis, N masternodes, addresses inside
 * the namespaces) and the options. run.ts writes it; the controller, inside the monitor
 * namespace, reads it.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { genesisHash, genesisToJson, makeGenesisSpec } from "../../src/consensus/genesis.js";
import { KeyPair } from "../../src/crypto/ed25519.js";
import { initDataDir } from "../../src/node/init.js";
import { SystemClock } from "../../src/util/clock.js";
import { mgmtHost, nsNode, p2pHost, P2P_PORT, RPC_PORT, type Topology } from "./netns.js";
import type { ChaosOptions } from "./options.js";

/** 2 s blocks, as the devnet default. */
const BLOCK_TIME_MS = 2_000;
const MIN_MASTERNODES = 3;

export interface PlanNode {
  index: number;
  name: string;
  ns: string;
  datadir: string;
  /** stdout + stderr of every start of this node (JSON log lines). */
  logFile: string;
  p2p: string;
  rpcUrl: string;
  nodeId: string;
  operatorPubkey: string;
}

export interface Plan {
  prefix: string;
  dir: string;
  genesis: string;
  options: ChaosOptions;
  nodes: PlanNode[];
}

export function buildPlan(t: Topology, dir: string, options: ChaosOptions): Plan {
  const clock = new SystemClock();
  const operators = Array.from({ length: t.nodes }, () => KeyPair.generate());
  const genesis = makeGenesisSpec({
    network: "devnet",
    timestamp: clock.now(),
    blockTimeMs: BLOCK_TIME_MS,
    masternodes: operators.map((k, i) => ({
      operatorPubkey: k.publicKey,
      address: `${p2pHost(i + 1)}:${P2P_PORT}`,
    })),
  });
  writeFileSync(join(dir, "genesis.json"), genesisToJson(genesis));
  const nodes: PlanNode[] = [];
  for (let i = 1; i <= t.nodes; i++) {
    const datadir = join(dir, `node-${i}`);
    const r = initDataDir({
      dir: datadir,
      network: "devnet",
      masternode: true,
      genesis,
      operatorKey: operators[i - 1]!,
      now: clock.now(),
      set: {
        node: { name: `node-${i}` },
        network: {
          listen_address: `${p2pHost(i)}:${P2P_PORT}`,
          bootstrap_peers: i === 1 ? [] : [`${p2pHost(1)}:${P2P_PORT}`],
        },
        rpc: { listen_address: `${mgmtHost(i)}:${RPC_PORT}` },
        consensus: { min_masternodes: MIN_MASTERNODES },
        logging: { format: "json" },
      },
    });
    nodes.push({
      index: i,
      name: `node-${i}`,
      ns: nsNode(t, i),
      datadir: r.dir,
      logFile: join(dir, `node-${i}.log`),
      p2p: `${p2pHost(i)}:${P2P_PORT}`,
      rpcUrl: `http://${mgmtHost(i)}:${RPC_PORT}/`,
      nodeId: r.nodeId,
      operatorPubkey: r.operatorPubkey ?? "",
    });
  }
  return { prefix: t.prefix, dir, genesis: genesisHash(genesis).toString("hex"), options, nodes };
}

export function writePlan(plan: Plan): string {
  const file = join(plan.dir, "plan.json");
  writeFileSync(file, JSON.stringify(plan, null, 2) + "\n");
  return file;
}

export function readPlan(file: string): Plan {
  return JSON.parse(readFileSync(file, "utf8")) as Plan;
}
