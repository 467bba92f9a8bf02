import { existsSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { Command, CommanderError, Option } from "commander";
import {
  genesisToJson,
  makeGenesisSpec,
  readGenesisFile,
  genesisHash,
  GenesisError,
  type GenesisSpec,
} from "../consensus/genesis.js";
import { isNetworkName, NETWORKS, type NetworkName } from "../primitives/params.js";
import { ConfigError, loadConfig, type ConfigOverrides, type NodeConfig } from "../config/index.js";
import { KeyFileError } from "../crypto/keyFile.js";
import { TIER_NAMES } from "../consensus/tier.js";
import { createLogger, type LogLevel } from "../logging/index.js";
import { dataDirPaths } from "../node/dataDir.js";
import { InitError, initDataDir } from "../node/init.js";
import { runDevnet } from "../node/devnet.js";
import { NodeStartError, TimeNode } from "../node/node.js";
import { LockError } from "../node/lockFile.js";
import { StoreError } from "../chain/chainStore.js";
import { RpcServerError } from "../rpc/server.js";
import { verifyChain } from "../node/verify.js";
import { SystemClock } from "../util/clock.js";
import { CryptoRandom } from "../util/random.js";
import { dashboardFor } from "../dashboard/nodeDeps.js";

/** An expected failure: printed as one line, no stack trace. */
export class CliError extends Error {}

const out = (s: string): void => void process.stdout.write(s + "\n");

function parseNetwork(v: string): NetworkName {
  if (!isNetworkName(v)) throw new CliError(`--network must be one of mainnet, testnet, devnet (got "${v}")`);
  return v;
}

function loadGenesisOf(dir: string): GenesisSpec {
  const paths = dataDirPaths(dir);
  if (!existsSync(paths.genesis)) {
    throw new CliError(
      `${dir} is not an initialised data directory (no genesis.json); run \`timed init\` first`,
    );
  }
  return readGenesisFile(paths.genesis);
}

function loadNodeConfig(dir: string, file: string | undefined, overrides: ConfigOverrides): NodeConfig {
  if (!existsSync(dir)) {
    throw new CliError(
      `data directory ${dir} does not exist; create it with \`timed init --datadir ${dir} --network NET\``,
    );
  }
  const cfgFile = file ?? dataDirPaths(dir).config;
  if (!existsSync(cfgFile)) {
    throw new CliError(
      file === undefined
        ? `${dir} is not an initialised data directory (no config.toml); run \`timed init\` first`
        : `config file ${cfgFile} does not exist`,
    );
  }
  return loadConfig({ file: cfgFile, dataDir: dir, overrides });
}

interface StartFlags {
  datadir: string;
  config?: string;
  listen?: string;
  rpc?: string;
  connect?: string[];
  logLevel?: string;
  logFormat?: string;
}

async function cmdStart(f: StartFlags): Promise<number> {
  const dir = resolve(f.datadir);
  // --datadir wins over [node].data_dir: the genesis, chain, keys and lock all live there.
  const overrides: ConfigOverrides = { node: { data_dir: dir } };
  if (f.listen) overrides.network = { ...overrides.network, listen_address: f.listen };
  if (f.connect?.length) overrides.network = { ...overrides.network, bootstrap_peers: f.connect };
  if (f.rpc) overrides.rpc = { listen_address: f.rpc };
  if (f.logLevel || f.logFormat) {
    overrides.logging = {
      ...(f.logLevel ? { level: f.logLevel as LogLevel } : {}),
      ...(f.logFormat ? { format: f.logFormat as "pretty" | "json" } : {}),
    };
  }
  const config = loadNodeConfig(dir, f.config, overrides);
  const genesis = loadGenesisOf(dir);
  const clock = new SystemClock();
  const random = new CryptoRandom();
  const logger = createLogger({
    level: config.logging.level,
    format: config.logging.format,
    name: config.node.name,
  });
  const node = TimeNode.open({ config, genesis }, { clock, random, logger });
  // Listen for signals before starting, so a SIGTERM during start still shuts down cleanly.
  const stopped = new Promise<void>((resolveStop) => {
    const stop = (why: string): void => {
      logger.info("Shutting down", { reason: why });
      resolveStop();
    };
    process.once("SIGINT", () => stop("SIGINT"));
    process.once("SIGTERM", () => stop("SIGTERM"));
    node.events.on("stopRequested", () => stop("stop RPC"));
  });
  try {
    await node.start();
  } catch (e) {
    // E.g. the RPC port is taken: close the chain and release the lock before reporting it.
    await node.stop();
    throw e;
  }
  if (node.rpcUrl) out(`RPC ${node.rpcUrl} (cookie: ${dataDirPaths(dir).cookie})`);
  const dashboard = dashboardFor(node, { clock, random, logger });
  if (dashboard) {
    out(
      `Dashboard ${dashboard.loginUrl()} (one-click link: works once, for 10 minutes; \`time-cli dashboardurl\` makes a new one)`,
    );
  }
  await stopped;
  dashboard?.stop();
  await node.stop();
  logger.flush();
  return 0;
}

function parseMasternodeArg(s: string): { operatorPubkey: Buffer; address: string; tier: string } {
  const m = /^([0-9a-fA-F]{64})@(.+):(\d{1,5})(?::([a-z]+))?$/.exec(s);
  if (!m)
    throw new CliError(`--masternode must be PUBKEY@HOST:PORT[:TIER] with a 64-hex pubkey (got "${s}")`);
  const tier = m[4] ?? "free";
  if (!(TIER_NAMES as readonly string[]).includes(tier)) {
    throw new CliError(`--masternode tier must be one of ${TIER_NAMES.join(", ")} (got "${tier}")`);
  }
  return { operatorPubkey: Buffer.from(m[1]!.toLowerCase(), "hex"), address: `${m[2]}:${m[3]}`, tier };
}

export function buildProgram(setExit: (code: number) => void): Command {
  const program = new Command("timed")
    .description("TIME Coin node daemon")
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  program
    .command("init")
    .description("create a data directory: config.toml, node.key, and operator.key for a masternode")
    .requiredOption("--datadir <dir>", "data directory to create")
    .requiredOption("--network <net>", "mainnet, testnet or devnet")
    .option("--masternode", "also create an operator key and enable masternode mode")
    .option("--genesis <file>", "adopt this genesis file")
    .action((o: { datadir: string; network: string; masternode?: boolean; genesis?: string }) => {
      const r = initDataDir({
        dir: o.datadir,
        network: parseNetwork(o.network),
        masternode: o.masternode === true,
        ...(o.genesis ? { genesisFile: o.genesis } : {}),
        now: new SystemClock().now(),
      });
      out(`initialised ${r.dir} (${r.genesis.network}, genesis ${genesisHash(r.genesis).toString("hex")})`);
      out(`node id: ${r.nodeId}`);
      if (r.operatorPubkey) out(`operator pubkey: ${r.operatorPubkey}`);
    });

  program
    .command("genesis")
    .description("write a genesis file listing masternodes")
    .requiredOption("--network <net>", "mainnet, testnet or devnet")
    .requiredOption("--out <file>", "where to write the genesis JSON")
    .requiredOption("--masternode <spec...>", "PUBKEY@HOST:PORT[:TIER], repeatable")
    .option("--block-time <seconds>", "block interval in seconds (default: the network's)")
    .option("--timestamp <ms>", "genesis timestamp in ms since the epoch (default: now)")
    .action(
      (o: { network: string; out: string; masternode: string[]; blockTime?: string; timestamp?: string }) => {
        const network = parseNetwork(o.network);
        const bt =
          o.blockTime === undefined ? NETWORKS[network].defaultBlockTimeMs / 1000 : Number(o.blockTime);
        if (!Number.isFinite(bt) || bt <= 0)
          throw new CliError(`--block-time must be a positive number of seconds`);
        const ts = o.timestamp === undefined ? new SystemClock().now() : Number(o.timestamp);
        if (!Number.isSafeInteger(ts) || ts < 0)
          throw new CliError(`--timestamp must be milliseconds since the epoch`);
        const spec = makeGenesisSpec({
          network,
          timestamp: ts,
          blockTimeMs: Math.round(bt * 1000),
          masternodes: o.masternode.map(parseMasternodeArg),
        });
        if (existsSync(o.out)) throw new CliError(`refusing to overwrite ${o.out}`);
        writeFileSync(o.out, genesisToJson(spec));
        out(
          `wrote ${o.out} (genesis ${genesisHash(spec).toString("hex")}, ${spec.masternodes.length} masternodes)`,
        );
      },
    );

  program
    .command("start")
    .description("run the node in the foreground until SIGINT or SIGTERM")
    .requiredOption("--datadir <dir>", "data directory")
    .option("--config <file>", "config file (default: DATADIR/config.toml)")
    .option("--listen <host:port>", "P2P listen address")
    .option("--rpc <host:port>", "RPC listen address")
    .option("--connect <host:port...>", "peer to connect to, repeatable")
    .addOption(
      new Option("--log-level <level>", "log level").choices([
        "trace",
        "debug",
        "info",
        "warn",
        "error",
        "fatal",
        "silent",
      ]),
    )
    .addOption(new Option("--log-format <format>", "log format").choices(["pretty", "json"]))
    .action(async (o: StartFlags) => setExit(await cmdStart(o)));

  program
    .command("verify")
    .description("re-validate the stored chain from genesis and check the UTXO set and registry")
    .requiredOption("--datadir <dir>", "data directory")
    .action(async (o: { datadir: string }) => {
      const dir = resolve(o.datadir);
      const genesis = loadGenesisOf(dir);
      const chainDir = dataDirPaths(dir).chain;
      if (!existsSync(chainDir)) {
        throw new CliError(
          `${dir} has no chain database yet (the node has never been started); nothing to verify`,
        );
      }
      const r = await verifyChain(chainDir, genesis);
      if (r.ok) {
        out(`ok: height ${r.height} tip ${r.tip} utxos ${r.utxos} finalized ${r.finalized ?? 0}`);
        setExit(0);
      } else {
        process.stderr.write(`timed verify: INCONSISTENT at height ${r.height}: ${r.problem}\n`);
        setExit(1);
      }
    });

  program
    .command("devnet")
    .description("run a local devnet of masternodes on loopback until Ctrl-C")
    .option("--nodes <n>", "number of masternodes", "4")
    .option("--dir <dir>", "directory for the devnet (default: a fresh temporary directory)")
    .option("--block-time <seconds>", "block interval in seconds", "2")
    .option("--full-nodes <k>", "extra non-masternode nodes", "0")
    .action(async (o: { nodes: string; dir?: string; blockTime: string; fullNodes: string }) => {
      setExit(
        await runDevnet({
          nodes: Number(o.nodes),
          dir: o.dir,
          blockTime: Number(o.blockTime),
          fullNodes: Number(o.fullNodes),
        }),
      );
    });
  return program;
}

/** Entry point used by bin/timed.js; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  // `timed start | head`, or a log collector restarting, closes stdout: that must not kill a node.
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code !== "EPIPE") throw e;
  });
  let code = 0;
  const program = buildProgram((c) => (code = c));
  try {
    await program.parseAsync(argv);
    return code;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    if (
      e instanceof CliError ||
      e instanceof InitError ||
      e instanceof ConfigError ||
      e instanceof GenesisError ||
      e instanceof StoreError ||
      e instanceof LockError ||
      e instanceof NodeStartError ||
      e instanceof KeyFileError ||
      e instanceof RpcServerError
    ) {
      process.stderr.write(`timed: ${(e as Error).message}\n`);
      return 1;
    }
    throw e;
  }
}
