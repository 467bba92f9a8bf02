import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { genesisToJson, makeGenesisSpec, readGenesisFile, type GenesisSpec } from "../consensus/genesis.js";
import { NETWORKS, type NetworkName } from "../primitives/params.js";
import { renderConfigTemplate, type ConfigOverrides } from "../config/index.js";
import { KeyPair } from "../crypto/ed25519.js";
import { writeKeyFile } from "../crypto/keyFile.js";
import { dataDirPaths } from "./dataDir.js";

/** `timed init` refused: the message is one operator-facing line. */
export class InitError extends Error {}

function ensureFreshDir(dir: string): void {
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    throw new InitError(`refusing to overwrite existing data directory ${dir}`);
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
}

export interface InitResult {
  dir: string;
  nodeId: string;
  operatorPubkey: string | null;
  genesis: GenesisSpec;
}

/** `timed init`: keys, config.toml and genesis.json in a fresh data directory. */
export function initDataDir(opts: {
  dir: string;
  network: NetworkName;
  masternode: boolean;
  genesisFile?: string;
  genesis?: GenesisSpec;
  set?: ConfigOverrides;
  operatorKey?: KeyPair;
  /** The node identity (default: a new random key). Simulations pass seeded keys. */
  nodeKey?: KeyPair;
  now: number;
}): InitResult {
  const dir = resolve(opts.dir);
  // Refuse an existing data directory before anything else, so that is the error an operator sees.
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    throw new InitError(`refusing to overwrite existing data directory ${dir}`);
  }
  let genesis = opts.genesis ?? (opts.genesisFile ? readGenesisFile(opts.genesisFile) : undefined);
  if (genesis && genesis.network !== opts.network) {
    throw new InitError(`genesis is for ${genesis.network}, not ${opts.network}`);
  }
  const operatorKey = opts.masternode ? (opts.operatorKey ?? KeyPair.generate()) : null;
  const set: ConfigOverrides = { ...(opts.set ?? {}) };
  if (!genesis) {
    if (opts.network !== "devnet" || !operatorKey) {
      throw new InitError(
        opts.network === "devnet"
          ? "a devnet full node needs --genesis FILE (or use --masternode to start a one-masternode devnet)"
          : `there is no built-in ${opts.network} genesis yet; pass --genesis FILE`,
      );
    }
    // One-masternode devnet: its own genesis listing this operator key, and min_masternodes = 1.
    const p = NETWORKS.devnet;
    genesis = makeGenesisSpec({
      network: "devnet",
      timestamp: opts.now,
      blockTimeMs: p.defaultBlockTimeMs,
      masternodes: [{ operatorPubkey: operatorKey.publicKey, address: `127.0.0.1:${p.p2pPort}` }],
    });
    set.consensus = { ...set.consensus, min_masternodes: 1 };
  }
  set.consensus = { ...set.consensus, block_time_seconds: genesis.blockTimeMs / 1000 };
  if (operatorKey) set.masternode = { ...set.masternode, enabled: true };
  const template = renderConfigTemplate(opts.network, dir, set);
  ensureFreshDir(dir);
  const paths = dataDirPaths(dir);
  const nodeKey = opts.nodeKey ?? KeyPair.generate();
  writeKeyFile(paths.nodeKey, nodeKey);
  if (operatorKey) writeKeyFile(paths.operatorKey, operatorKey);
  writeFileSync(paths.genesis, genesisToJson(genesis), { mode: 0o644 });
  writeFileSync(paths.config, template, { mode: 0o600 });
  return {
    dir,
    nodeId: nodeKey.publicKey.toString("hex"),
    operatorPubkey: operatorKey ? operatorKey.publicKey.toString("hex") : null,
    genesis,
  };
}
