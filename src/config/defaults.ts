import type { NetworkName } from "../crypto/address.js";
import { MAX_SYNC_BATCH_SIZE_CAP, type NodeConfig } from "./schema.js";
import { resolveInDataDir } from "./paths.js";
import { resolve } from "node:path";

/** What differs between networks. */
export interface NetworkDefaults {
  p2pPort: number;
  rpcPort: number;
  /** Devnets stay on loopback unless told otherwise; real networks listen on every interface. */
  p2pHost: string;
  blockTimeSeconds: number;
  coordinatorIntervalSeconds: number;
  pingIntervalSeconds: number;
  /** [masternode] heartbeat_interval: the liveness window is 5 of these. */
  heartbeatIntervalSeconds: number;
  /** [masternode] announce_interval. */
  announceIntervalSeconds: number;
}

// Ports as in the original (mainnet 24000/24001, testnet 24100/24101); devnet takes the next
// hundred (INTERFACE.md). 600 s blocks as in the original; the devnet runs 2 s blocks, so its
// sync coordinator and pings run faster too, or a node would sit out many blocks between checks.
// Heartbeats every 60 s as in the original (so a masternode goes inactive after 5 × 60 = 300 s of
// silence, the original's offline mark); a devnet heartbeats every second so liveness settles in
// seconds. Announcements are re-sent every 600 s (30 s on a devnet, the shortest allowed).
export const NETWORK_DEFAULTS: Readonly<Record<NetworkName, Readonly<NetworkDefaults>>> = {
  mainnet: {
    p2pPort: 24000,
    rpcPort: 24001,
    p2pHost: "0.0.0.0",
    blockTimeSeconds: 600,
    coordinatorIntervalSeconds: 30,
    pingIntervalSeconds: 30,
    heartbeatIntervalSeconds: 60,
    announceIntervalSeconds: 600,
  },
  testnet: {
    p2pPort: 24100,
    rpcPort: 24101,
    p2pHost: "0.0.0.0",
    blockTimeSeconds: 600,
    coordinatorIntervalSeconds: 30,
    pingIntervalSeconds: 30,
    heartbeatIntervalSeconds: 60,
    announceIntervalSeconds: 600,
  },
  devnet: {
    p2pPort: 24200,
    rpcPort: 24201,
    p2pHost: "127.0.0.1",
    blockTimeSeconds: 2,
    coordinatorIntervalSeconds: 5,
    pingIntervalSeconds: 2,
    heartbeatIntervalSeconds: 1,
    announceIntervalSeconds: 30,
  },
};

/**
 * The defaults as a config file would state them: `operator_key_file` is still relative to
 * `data_dir`. The template writes these; `defaultConfig` resolves them.
 */
export function fileDefaults(network: NetworkName, dataDir: string): NodeConfig {
  const n = NETWORK_DEFAULTS[network];
  return {
    node: { network, data_dir: resolve(dataDir) },
    network: {
      listen_address: `${n.p2pHost}:${n.p2pPort}`,
      bootstrap_peers: [],
      whitelisted_peers: [],
      blacklisted_peers: [],
      // Connection limits as in the original: 125 in total, 100 inbound and 25 outbound,
      // 50 inbound slots kept for masternodes, 3 connections per IP, 10 new ones per minute.
      max_peers: 125,
      max_inbound: 100,
      max_outbound: 25,
      reserved_masternode_slots: 50,
      max_connections_per_ip: 3,
      ping_interval: n.pingIntervalSeconds,
      connect_rate_per_minute: 10,
      // Sessions are encrypted and bound to both ends' keys; only a devnet may turn that off.
      plaintext_transport: false,
    },
    // RPC listens only on loopback unless the config says otherwise (INTERFACE.md).
    rpc: { enabled: true, listen_address: `127.0.0.1:${n.rpcPort}` },
    masternode: {
      enabled: false,
      operator_key_file: "operator.key",
      tier: "free",
      reward_address: "",
      heartbeat_interval: n.heartbeatIntervalSeconds,
      announce_interval: n.announceIntervalSeconds,
    },
    // Production needs 3 active masternodes (DESIGN.md, consensus constraint 5).
    consensus: { min_masternodes: 3, block_time_seconds: n.blockTimeSeconds },
    // The seeds' [sync] values, which the original silently ignored.
    sync: {
      enable_coordinator: true,
      coordinator_interval: n.coordinatorIntervalSeconds,
      max_sync_batch_size: MAX_SYNC_BATCH_SIZE_CAP,
      sync_threshold: 5,
      peer_sync_timeout: 120,
      masternode_sync_timeout: 300,
    },
    logging: { level: "info", format: "pretty" },
  };
}

/** Makes the paths in a config absolute: data_dir against the cwd, the key file against data_dir. */
export function resolvePaths(cfg: NodeConfig): NodeConfig {
  const dataDir = resolve(cfg.node.data_dir);
  return {
    ...cfg,
    node: { ...cfg.node, data_dir: dataDir },
    masternode: {
      ...cfg.masternode,
      operator_key_file: resolveInDataDir(dataDir, cfg.masternode.operator_key_file),
    },
  };
}

/** The configuration a node on `network` gets with no config file and no flags. */
export function defaultConfig(network: NetworkName, dataDir: string): NodeConfig {
  return resolvePaths(fileDefaults(network, dataDir));
}
