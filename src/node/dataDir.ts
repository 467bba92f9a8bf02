import { join } from "node:path";

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
