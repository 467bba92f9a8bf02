/**
 * What TimeNode.open refuses before it touches the data directory's chain: a config and a
 * genesis that do not belong together. Each refusal is one line naming both sides.
 */
import type { NodeConfig } from "../config/schema.js";
import type { GenesisSpec } from "../consensus/genesis.js";

/** A data directory or config the node cannot start with (the CLI prints its message alone). */
export class NodeStartError extends Error {}

export function checkConfigMatchesGenesis(config: NodeConfig, genesis: GenesisSpec): void {
  if (genesis.network !== config.node.network) {
    throw new NodeStartError(
      `data directory ${config.node.data_dir} belongs to ${genesis.network} (its genesis.json), but the config says network = "${config.node.network}"`,
    );
  }
  const wantBlockMs = Math.round(config.consensus.block_time_seconds * 1000);
  if (wantBlockMs !== genesis.blockTimeMs) {
    throw new NodeStartError(
      `[consensus].block_time_seconds = ${config.consensus.block_time_seconds} does not match the genesis block time of ${genesis.blockTimeMs / 1000} s`,
    );
  }
}
