import { join } from "node:path";
import type { RpcAuth } from "../rpc/server.js";

/**
 * Data directory layout:
 *   config.toml    configuration (every key, defaults commented in)
 *   node.key       ed25519 node identity (mode 0600)
 *   operator.key   masternode operator key (mode 0600), masternodes only
 *   genesis.json   the genesis this directory belongs to
 *   chain/         LMDB chain database
 *   .cookie        RPC credentials while the node runs (mode 0600)
 *   node.lock      held while a node runs, so two nodes never share a directory
 */
export function dataDirPaths(dir: string) {
  return {
    dir,
    config: join(dir, "config.toml"),
    nodeKey: join(dir, "node.key"),
    operatorKey: join(dir, "operator.key"),
    genesis: join(dir, "genesis.json"),
    chain: join(dir, "chain"),
    cookie: join(dir, ".cookie"),
    lock: join(dir, "node.lock"),
  };
}

/**
 * The RPC auth a node runs with: the configured user and password when both are set, else the
 * cookie in the data directory. The RPC server and the dashboard's data endpoint both take this
 * one result (TimeNode.rpcAuth), so they cannot drift apart.
 */
export function rpcAuthFromConfig(config: {
  node: { data_dir: string };
  rpc: { user?: string | undefined; password?: string | undefined };
}): RpcAuth {
  const { user, password } = config.rpc;
  return user !== undefined && password !== undefined
    ? { kind: "userpass", user, password }
    : { kind: "cookie", cookieFile: dataDirPaths(config.node.data_dir).cookie };
}
