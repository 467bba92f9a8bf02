import { mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, existsSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { genesisHash, genesisToJson, makeGenesisSpec, type GenesisSpec } from "../consensus/genesis.js";
import { NETWORKS } from "../primitives/params.js";
import { loadConfig } from "../config/index.js";
import { KeyPair } from "../crypto/ed25519.js";
import { createLogger } from "../logging/index.js";
import { SystemClock } from "../util/clock.js";
import { CryptoRandom } from "../util/random.js";
import { dataDirPaths } from "./dataDir.js";
import { TimeNode } from "./node.js";
import { initDataDir } from "./init.js";
import { dashboardFor, devnetNodeView } from "../dashboard/nodeDeps.js";

export interface DevnetOptions {
  nodes: number;
  dir?: string | undefined;
  blockTime: number;
  fullNodes: number;
  /** Seconds between status lines. */
  statusEvery?: number;
}

export interface DevnetNodeInfo {
  name: string;
  datadir: string;
  p2p: string;
  rpc: string;
  nodeId: string;
  masternode: boolean;
  operatorPubkey: string | null;
}

/** Devnet node i listens on its own loopback address 127.0.1.i (INTERFACE.md). */
export function devnetHost(i: number): string {
  return `127.0.1.${i}`;
}

/**
 * Builds a devnet directory (genesis.json, devnet.json and one data directory per node, as
 * `timed devnet` documents) without starting anything. `timed devnet` starts the nodes in its
 * own process; the scale benchmark starts each as its own `timed start` process.
 */
export function prepareDevnet(o: DevnetOptions): {
  dir: string;
  genesis: GenesisSpec;
  infos: DevnetNodeInfo[];
} {
  if (!Number.isInteger(o.nodes) || o.nodes < 1 || o.nodes > 200)
    throw new Error("--nodes must be an integer from 1 to 200");
  if (!Number.isInteger(o.fullNodes) || o.fullNodes < 0 || o.fullNodes > 200)
    throw new Error("--full-nodes must be an integer from 0 to 200");
  if (!Number.isFinite(o.blockTime) || o.blockTime < 0.1)
    throw new Error("--block-time must be at least 0.1 seconds");
  const clock = new SystemClock();
  const tempRoot = o.dir === undefined;
  const dir = tempRoot ? mkdtempSync(join(tmpdir(), "timed-devnet-")) : resolve(o.dir!);
  if (!tempRoot && existsSync(dir) && readdirSync(dir).length > 0)
    throw new Error(`refusing to reuse non-empty devnet directory ${dir}`);
  mkdirSync(dir, { recursive: true });
  const total = o.nodes + o.fullNodes;
  const port = NETWORKS.devnet.p2pPort;
  const rpcPort = NETWORKS.devnet.rpcPort;
  const operators = Array.from({ length: o.nodes }, () => KeyPair.generate());
  const genesis = makeGenesisSpec({
    network: "devnet",
    timestamp: clock.now(),
    blockTimeMs: Math.round(o.blockTime * 1000),
    masternodes: operators.map((k, i) => ({
      operatorPubkey: k.publicKey,
      address: `${devnetHost(i + 1)}:${port}`,
    })),
  });
  writeFileSync(join(dir, "genesis.json"), genesisToJson(genesis));
  const infos: DevnetNodeInfo[] = [];
  for (let i = 1; i <= total; i++) {
    const masternode = i <= o.nodes;
    const r = initDataDir({
      dir: join(dir, `node-${i}`),
      network: "devnet",
      masternode,
      genesis,
      ...(masternode ? { operatorKey: operators[i - 1]! } : {}),
      now: clock.now(),
      set: {
        node: { name: `node-${i}` },
        network: {
          listen_address: `${devnetHost(i)}:${port}`,
          bootstrap_peers: i === 1 ? [] : [`${devnetHost(1)}:${port}`],
        },
        rpc: { listen_address: `${devnetHost(i)}:${rpcPort}` },
        consensus: { min_masternodes: Math.min(3, o.nodes) },
      },
    });
    infos.push({
      name: `node-${i}`,
      datadir: r.dir,
      p2p: `${devnetHost(i)}:${port}`,
      rpc: `http://${devnetHost(i)}:${rpcPort}/`,
      nodeId: r.nodeId,
      masternode,
      operatorPubkey: r.operatorPubkey,
    });
  }
  writeFileSync(
    join(dir, "devnet.json"),
    JSON.stringify({ genesis: genesisHash(genesis).toString("hex"), nodes: infos }, null, 2) + "\n",
  );
  return { dir, genesis, infos };
}

/** `timed devnet`: builds the devnet directory, starts every node, prints status until Ctrl-C. */
export async function runDevnet(o: DevnetOptions): Promise<number> {
  const clock = new SystemClock();
  const tempRoot = o.dir === undefined;
  const { dir, genesis, infos } = prepareDevnet(o);
  const nodes: TimeNode[] = [];
  const say = (s: string): void => void process.stdout.write(s + "\n");
  try {
    for (const info of infos) {
      const config = loadConfig({ file: dataDirPaths(info.datadir).config, dataDir: info.datadir });
      // Each node logs JSON to its own file; the console shows the devnet status lines.
      const logger = createLogger({
        level: "info",
        format: "json",
        name: info.name,
        destination: openSync(join(info.datadir, "node.log"), "a"),
      });
      const node = TimeNode.open({ config, genesis }, { clock, random: new CryptoRandom(), logger });
      await node.start();
      nodes.push(node);
    }
  } catch (e) {
    for (const n of nodes) await n.stop();
    throw e;
  }
  say(
    `devnet in ${dir} (genesis ${genesisHash(genesis).toString("hex").slice(0, 16)}…, block time ${o.blockTime} s)`,
  );
  for (const info of infos)
    say(
      `  ${info.name}  p2p ${info.p2p}  rpc ${info.rpc}  (cookie ${join(info.datadir, ".cookie")})${info.masternode ? "  masternode" : ""}`,
    );
  // A node's `stop` RPC stops that node only (as `timed start` does for its one node); the
  // status line then shows it as stopped. When every node has stopped, the devnet ends.
  const stopped = new Set<number>();
  let allStopped: () => void = () => undefined;
  const stopOne = async (i: number, why: string): Promise<void> => {
    if (stopped.has(i)) return;
    stopped.add(i);
    if (i === 0) dashboard?.stop();
    try {
      await nodes[i]!.stop();
      say(`${infos[i]!.name} stopped (${why})`);
    } catch (e) {
      say(`${infos[i]!.name} failed to stop: ${(e as Error).message}`);
    }
    if (stopped.size === nodes.length) allStopped();
  };
  nodes.forEach((n, i) => n.events.on("stopRequested", () => void stopOne(i, "stop RPC")));
  // node-1's dashboard also shows every devnet node side by side (the running ones).
  const dashboard = dashboardFor(nodes[0]!, { clock, random: new CryptoRandom() });
  dashboard?.setDevnetNodes(() =>
    nodes.flatMap((n, i) => (stopped.has(i) ? [] : [devnetNodeView(infos[i]!.name, n)])),
  );
  if (dashboard)
    say(
      `Dashboard ${dashboard.loginUrl()} (one-click link: works once, for 10 minutes; \`time-cli dashboardurl\` makes a new one)`,
    );
  say("Ctrl-C stops every node.");
  const every = (o.statusEvery ?? 3) * 1000;
  const timer = clock.setInterval(() => {
    const parts = nodes.map((n, i) =>
      stopped.has(i)
        ? `${infos[i]!.name} stopped`
        : `${infos[i]!.name} h=${n.chain.height} ${n.chain.tip.hash.toString("hex").slice(0, 8)} final=${n.chain.finality.finalizedHeight} peers=${n.peers.connectionCounts().total} mn=${n.liveness.activeCount()}/${n.chain.getRegistry().length}`,
    );
    say(`${new Date(clock.now()).toISOString().slice(11, 19)}  ${parts.join("  |  ")}`);
  }, every);
  await new Promise<void>((res) => {
    allStopped = res;
    process.once("SIGINT", () => res());
    process.once("SIGTERM", () => res());
  });
  timer.cancel();
  if (!stopped.has(0)) dashboard?.stop();
  say("stopping devnet…");
  for (let i = 0; i < nodes.length; i++) if (!stopped.has(i)) await nodes[i]!.stop();
  if (tempRoot) rmSync(dir, { recursive: true, force: true });
  return 0;
}
