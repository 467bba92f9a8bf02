/**
 * The config.toml that `timed init` writes: every key, each with a comment saying what it
 * does, and its default commented in (`# max_peers = 125`), so an operator sees everything
 * the node accepts and edits by uncommenting. Rendering the template and loading it back
 * gives exactly `defaultConfig` (a unit test holds this).
 */
import { stringify } from "smol-toml";
import type { NetworkName } from "../crypto/address.js";
import { checkConsistency, dropUndefined, mergeConfig, validateFragment } from "./config.js";
import { fileDefaults, NETWORK_DEFAULTS } from "./defaults.js";
import { LOG_FORMATS, LOG_LEVELS } from "../logging/levels.js";
import {
  MASTERNODE_TIERS,
  MAX_SYNC_BATCH_SIZE_CAP,
  NETWORK_NAMES,
  SECTION_NAMES,
  SECTION_SCHEMAS,
  type ConfigOverrides,
  type NodeConfig,
  type SectionName,
} from "./schema.js";

type KeyDocs = { [S in SectionName]: { [K in keyof NodeConfig[S]]-?: string } };

const SECTION_DOCS: Record<SectionName, string> = {
  node: "This node.",
  network: "Peer-to-peer networking. Addresses are HOST:PORT; IPv6 goes in brackets, as [::1]:24000.",
  rpc: "The JSON-RPC server, which also serves GET /metrics.",
  masternode: "Masternode operation.",
  consensus: "Block production.",
  sync: "Keeping up with the network: the sync coordinator and block download.",
  logging: "Logging.",
};

const KEY_DOCS: KeyDocs = {
  node: {
    network: `Which network this data directory belongs to (${NETWORK_NAMES.join(", ")}). It picks every default below.`,
    data_dir:
      "Where the chain, keys and this node's state live. A relative path is taken from this file's directory.",
    name: "A label for this node in logs and the dashboard. Unset by default.",
    blocknotify:
      'Run this command for every block that becomes the tip, as bitcoind\'s blocknotify: a list, the program then its arguments, run without a shell; "%s" in an argument becomes the block hash. At most 4 run at once, each killed after 10 s. Unset by default.',
    finalizednotify: 'The same, for every block that becomes final ("%s" is its hash). Unset by default.',
  },
  network: {
    listen_address:
      "Where to accept peer connections. 0.0.0.0 listens on every interface; port 0 picks any free port.",
    external_address:
      "The address other nodes should dial to reach this one, when it differs from listen_address (NAT, port forwarding). Unset by default.",
    bootstrap_peers: "Peers (HOST:PORT) to dial at start; the rest are found through discovery.",
    whitelisted_peers:
      "Trusted peers: IP addresses (a port may be given) or 64-hex-digit node ids. Whitelisted masternodes are preferred during sync; their blocks are still fully validated.",
    blacklisted_peers: "Peers never to connect to or accept: IP addresses or 64-hex-digit node ids.",
    max_peers: "Most peer connections in total.",
    max_inbound: "Most connections other nodes open to this one.",
    max_outbound: "Most connections this node opens to others.",
    reserved_masternode_slots:
      "Inbound slots kept free for masternodes, so ordinary peers cannot crowd them out. At most max_inbound.",
    max_connections_per_ip: "Most connections from one IP address.",
    ping_interval:
      "Seconds between pings to each peer (fractions allowed). Pings carry the height and tip, and measure latency.",
    connect_rate_per_minute: "Most new connections accepted from one IP address per 60 seconds.",
    plaintext_transport:
      "Devnet only: run peer sessions without encryption (for debugging and benchmarks). Both ends must agree; an encrypted node refuses a plaintext one. Refused on testnet and mainnet.",
  },
  rpc: {
    enabled: "Serve JSON-RPC and metrics.",
    listen_address:
      "Where to serve JSON-RPC. Keep it on 127.0.0.1 unless you know who can reach it; port 0 picks any free port.",
    user: "HTTP Basic user name, used instead of the cookie file (DATADIR/.cookie). Set together with password. Unset by default.",
    password: "HTTP Basic password, set together with user. Unset by default.",
  },
  masternode: {
    enabled: "Run as a masternode: prove the operator key to peers and produce blocks when scheduled.",
    operator_key_file: "The operator key file. A relative path is taken from data_dir.",
    tier: `The masternode tier (${MASTERNODE_TIERS.join(", ")}).`,
    reward_address: 'Where block rewards go. "" means the address of the operator key.',
    heartbeat_interval:
      "Seconds between this masternode's signed heartbeats (fractions allowed). Every node counts a masternode as active while its last heartbeat is at most 5 intervals old: 300 s with the 60 s default, the original's offline mark.",
    announce_interval:
      "Seconds between the announcements (service address and node id) a masternode re-sends to each peer; it also sends one on every new connection. At least 30, so peers never see more than their limit of 3 per minute.",
  },
  consensus: {
    min_masternodes:
      "A masternode produces blocks only while it sees at least this many active masternodes (itself included).",
    block_time_seconds: "Seconds between blocks (millisecond precision). Must equal the genesis block time.",
  },
  sync: {
    enable_coordinator:
      "Run the sync coordinator, which compares our height with our peers' and starts a sync when we fall behind.",
    coordinator_interval:
      "Seconds between the coordinator's periodic checks (it also runs whenever a peer reports a higher height).",
    max_sync_batch_size: `Most blocks asked of one peer in one request, 1 to ${MAX_SYNC_BATCH_SIZE_CAP}.`,
    sync_threshold: "Sync when the network is more than this many blocks ahead of us.",
    peer_sync_timeout:
      "Seconds a whole sync may run before it stops (a new one may start at the next check).",
    masternode_sync_timeout:
      "Seconds a whole sync may run when it syncs from masternodes (more slack, as in the seeds).",
  },
  logging: {
    level: `Least severe level logged: ${LOG_LEVELS.join(", ")}.`,
    format: `${LOG_FORMATS.join(" or ")}: pretty is for people at a terminal, json is one object per line for machines.`,
  },
};

/** Shown, commented, for keys that have no default. */
function examples(network: NetworkName): Partial<Record<string, unknown>> {
  return {
    "node.name": "my-node",
    "node.blocknotify": ["/usr/local/bin/on-block", "%s"],
    "node.finalizednotify": ["/usr/local/bin/on-final", "%s"],
    "network.external_address": `203.0.113.7:${NETWORK_DEFAULTS[network].p2pPort}`,
    "rpc.user": "operator",
    "rpc.password": "change-me",
  };
}

const WIDTH = 98;

/**
 * config.toml with every key present: defaults commented in, a comment per key, and the
 * values in `set` written uncommented. [node].network is always written uncommented, since it
 * says which network the data directory belongs to. `set` is validated like a config file.
 */
export function renderConfigTemplate(
  network: NetworkName,
  dataDir: string,
  set: ConfigOverrides = {},
): string {
  const source = "the values to write into config.toml";
  const fragment = validateFragment(dropUndefined(set), source);
  const defaults = fileDefaults(network, dataDir);
  checkConsistency(mergeConfig(defaults, fragment), source);
  const given = fragment as Record<string, Record<string, unknown> | undefined>;
  const example = examples(network);

  const lines: string[] = [
    `# TIME Coin node configuration (${network}).`,
    "#",
    "# Every key is listed with its default, commented out. To change one, uncomment it and edit the",
    "# value. A key this node does not know is an error, so typos do not go unnoticed.",
    "# Command-line flags (--listen, --rpc, --connect, --log-level, --log-format) override this file.",
  ];
  for (const section of SECTION_NAMES) {
    lines.push("", ...comment(SECTION_DOCS[section]), `[${section}]`);
    const docs = KEY_DOCS[section] as Record<string, string>;
    const sectionDefaults = defaults[section] as unknown as Record<string, unknown>;
    for (const key of Object.keys(SECTION_SCHEMAS[section].shape)) {
      lines.push(...comment(docs[key] ?? ""));
      const setValue = given[section]?.[key];
      if (section === "node" && key === "network") {
        lines.push(`network = ${tomlValue(setValue ?? network)}`);
      } else if (setValue !== undefined) {
        lines.push(`${key} = ${tomlValue(setValue)}`);
      } else {
        const value = sectionDefaults[key] ?? example[`${section}.${key}`];
        lines.push(`# ${key} = ${tomlValue(value)}`);
      }
    }
  }
  return lines.join("\n") + "\n";
}

function tomlValue(v: unknown): string {
  return stringify({ v }).trim().replace(/^v = /, "");
}

/** Word-wraps `text` into `# ` comment lines. */
function comment(text: string): string[] {
  const out: string[] = [];
  let line = "#";
  for (const word of text.split(/\s+/).filter((w) => w.length > 0)) {
    if (line.length + 1 + word.length > WIDTH && line !== "#") {
      out.push(line);
      line = "#";
    }
    line += ` ${word}`;
  }
  out.push(line);
  return out;
}
