/**
 * The shape of config.toml. Field names are the TOML key names, in snake_case, so that a key
 * in the file, in an error message and in code is spelled the same way.
 *
 * Every field schema carries a `.describe()` text saying what it expects, which the error
 * formatter (config.ts) quotes as "expected <description>, got <value>".
 */
import { z } from "zod";
import type { NetworkName } from "../crypto/address.js";
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from "../logging/levels.js";
import {
  checkHostPort,
  checkPeerFilter,
  HOST_PORT_EXPECTED,
  LISTEN_ADDRESS_EXPECTED,
  PEER_FILTER_EXPECTED,
} from "./hostPort.js";

export type { NetworkName } from "../crypto/address.js";

/** Largest body batch a peer may ask for or be sent (the seeds' 500-block batches). */
export const MAX_SYNC_BATCH_SIZE_CAP = 500;

export const NETWORK_NAMES = ["mainnet", "testnet", "devnet"] as const satisfies readonly NetworkName[];

/** Tiers as in the original (collateral 0 / 1,000 / 10,000 / 100,000 TIME). */
export const MASTERNODE_TIERS = ["free", "bronze", "silver", "gold"] as const;
export type MasternodeTier = (typeof MASTERNODE_TIERS)[number];

export interface NodeSection {
  network: NetworkName;
  /** Absolute after loading. */
  data_dir: string;
  /** A label for logs and the dashboard; unset by default. */
  name?: string;
  /** Run for every new tip: program and arguments, no shell; "%s" becomes the block hash. */
  blocknotify?: string[];
  /** Run for every block that becomes final, likewise. */
  finalizednotify?: string[];
}

export interface NetworkSection {
  /** P2P listen address, HOST:PORT; port 0 = any free port. */
  listen_address: string;
  /** The HOST:PORT peers should dial to reach us, if it differs from listen_address. */
  external_address?: string;
  /** HOST:PORT of peers to dial at start. */
  bootstrap_peers: string[];
  /** IPs (port optional) or 64-hex node ids. */
  whitelisted_peers: string[];
  /** IPs (port optional) or 64-hex node ids. */
  blacklisted_peers: string[];
  max_peers: number;
  max_inbound: number;
  max_outbound: number;
  reserved_masternode_slots: number;
  max_connections_per_ip: number;
  /** Seconds between pings; may be fractional. */
  ping_interval: number;
  /** New inbound connections accepted per IP per 60 s. */
  connect_rate_per_minute: number;
  /** Run P2P sessions unencrypted (devnet only; both ends must agree). */
  plaintext_transport: boolean;
}

export interface RpcSection {
  enabled: boolean;
  listen_address: string;
  /** With `password`, HTTP Basic credentials used instead of the cookie file. */
  user?: string;
  password?: string;
}

export interface MasternodeSection {
  enabled: boolean;
  /** Absolute after loading (a relative path in the file resolves against data_dir). */
  operator_key_file: string;
  tier: MasternodeTier;
  /** "" = derive the address from the operator key. */
  reward_address: string;
  /**
   * Seconds between heartbeats; may be fractional. A masternode counts as active while its last
   * heartbeat is at most 5 intervals old (300 s on mainnet, as in the original).
   */
  heartbeat_interval: number;
  /** Seconds between re-sent announcements to each peer; at least 30 (the receiver allows 3/min). */
  announce_interval: number;
}

export interface ConsensusSection {
  min_masternodes: number;
  block_time_seconds: number;
}

export interface SyncSection {
  enable_coordinator: boolean;
  /** Seconds between the coordinator's periodic checks. */
  coordinator_interval: number;
  max_sync_batch_size: number;
  /** Blocks behind the network before a sync starts. */
  sync_threshold: number;
  /** Seconds. */
  peer_sync_timeout: number;
  /** Seconds. */
  masternode_sync_timeout: number;
}

export interface LoggingSection {
  level: LogLevel;
  format: LogFormat;
}

export interface NodeConfig {
  node: NodeSection;
  network: NetworkSection;
  rpc: RpcSection;
  masternode: MasternodeSection;
  consensus: ConsensusSection;
  sync: SyncSection;
  logging: LoggingSection;
}

export type SectionName = keyof NodeConfig;

/** Values that beat the file's, typically from command-line flags. Undefined values are ignored. */
export type ConfigOverrides = { [S in keyof NodeConfig]?: Partial<NodeConfig[S]> };

// --- field schemas -------------------------------------------------------------------------

const oneOf = (values: readonly string[]) => `one of ${values.join(", ")}`;

const bool = () => z.boolean().describe("true or false");
const count = () => z.int().min(0).describe("an integer >= 0");
const positiveInt = () => z.int().min(1).describe("a positive integer");
const seconds = () => z.number().positive().describe("a number of seconds > 0");

const hostPort = (allowPortZero: boolean) =>
  z
    .string()
    .superRefine((s, ctx) => {
      const r = checkHostPort(s, { allowPortZero });
      if (!r.ok) ctx.addIssue({ code: "custom", message: r.problem });
    })
    .describe(allowPortZero ? LISTEN_ADDRESS_EXPECTED : HOST_PORT_EXPECTED);

const peerFilter = () =>
  z
    .string()
    .superRefine((s, ctx) => {
      const problem = checkPeerFilter(s);
      if (problem !== undefined) ctx.addIssue({ code: "custom", message: problem });
    })
    .describe(PEER_FILTER_EXPECTED);

const list = <T extends z.ZodType>(element: T, what: string) =>
  z.array(element).describe(`a list of ${what}, as ["a", "b"]`);

// A name goes into logs and the dashboard: keep it one printable line.
const label = () =>
  z
    .string()
    .regex(/^[\x20-\x7e]{1,64}$/)
    .describe("1 to 64 printable ASCII characters");

// --- section schemas -----------------------------------------------------------------------

/** A command as program and arguments, run without a shell; "%s" in an argument is the hash. */
const command = () =>
  z
    .array(z.string().min(1).max(4_096))
    .min(1)
    .max(64)
    .describe('a command as a list: the program, then its arguments, as ["/path/to/script", "%s"]');

export const NodeSectionSchema = z.strictObject({
  network: z.enum(NETWORK_NAMES).describe(oneOf(NETWORK_NAMES)),
  data_dir: z.string().min(1).describe("a directory path"),
  name: label().optional(),
  blocknotify: command().optional(),
  finalizednotify: command().optional(),
});

export const NetworkSectionSchema = z.strictObject({
  listen_address: hostPort(true),
  external_address: hostPort(false).optional(),
  bootstrap_peers: list(hostPort(false), "HOST:PORT strings"),
  whitelisted_peers: list(peerFilter(), "IP addresses or node ids"),
  blacklisted_peers: list(peerFilter(), "IP addresses or node ids"),
  max_peers: count(),
  max_inbound: count(),
  max_outbound: count(),
  reserved_masternode_slots: count(),
  max_connections_per_ip: count(),
  ping_interval: seconds(),
  connect_rate_per_minute: positiveInt(),
  plaintext_transport: bool(),
});

export const RpcSectionSchema = z.strictObject({
  enabled: bool(),
  listen_address: hostPort(true),
  // HTTP Basic splits "user:password" at the first colon, so a user name cannot hold one.
  user: z
    .string()
    .regex(/^[^:\r\n]+$/)
    .describe("a non-empty string without ':'")
    .optional(),
  password: z.string().min(1).describe("a non-empty string").optional(),
});

export const MasternodeSectionSchema = z.strictObject({
  enabled: bool(),
  operator_key_file: z.string().min(1).describe("a file path (relative paths are under data_dir)"),
  tier: z.enum(MASTERNODE_TIERS).describe(oneOf(MASTERNODE_TIERS)),
  // Checked against the network's address prefix once the network is known (config.ts).
  reward_address: z.string().describe('a TIME address, or "" to derive it from the operator key'),
  heartbeat_interval: z.number().min(0.1).max(3_600).describe("a number of seconds from 0.1 to 3600"),
  // With the announcement sent on connect, one every 30 s or slower never exceeds the
  // receiver's limit of 3 per minute (p2p/rateLimits.ts).
  announce_interval: z.number().min(30).max(86_400).describe("a number of seconds from 30 to 86400"),
});

export const ConsensusSectionSchema = z.strictObject({
  min_masternodes: positiveInt(),
  // Whole seconds: block timestamps and the producer schedule count in seconds.
  // Block times are kept in milliseconds, so fractions down to 0.1 s are fine (fast test devnets).
  block_time_seconds: z
    .number()
    .min(0.1)
    .max(86_400)
    .refine(
      (v) => Number.isInteger(Math.round(v * 1000)) && Math.abs(v * 1000 - Math.round(v * 1000)) < 1e-6,
      {
        message: "at most millisecond precision",
      },
    )
    .describe("a number of seconds from 0.1 to 86400 (millisecond precision)"),
});

export const SyncSectionSchema = z.strictObject({
  enable_coordinator: bool(),
  coordinator_interval: seconds(),
  max_sync_batch_size: z
    .int()
    .min(1)
    .max(MAX_SYNC_BATCH_SIZE_CAP)
    .describe(`an integer from 1 to ${MAX_SYNC_BATCH_SIZE_CAP} (the protocol cap)`),
  sync_threshold: count(),
  peer_sync_timeout: seconds(),
  masternode_sync_timeout: seconds(),
});

export const LoggingSectionSchema = z.strictObject({
  level: z.enum(LOG_LEVELS).describe(oneOf(LOG_LEVELS)),
  format: z.enum(LOG_FORMATS).describe(oneOf(LOG_FORMATS)),
});

/** Section schemas in the order the template writes them. */
export const SECTION_SCHEMAS = {
  node: NodeSectionSchema,
  network: NetworkSectionSchema,
  rpc: RpcSectionSchema,
  masternode: MasternodeSectionSchema,
  consensus: ConsensusSectionSchema,
  sync: SyncSectionSchema,
  logging: LoggingSectionSchema,
} as const;

export const SECTION_NAMES = Object.keys(SECTION_SCHEMAS) as SectionName[];

/** A complete configuration. */
export const NodeConfigSchema = z.strictObject(SECTION_SCHEMAS);

/** What a file (or a set of overrides) may hold: any subset of the keys, and no others. */
export const ConfigFragmentSchema = z
  .strictObject({
    node: NodeSectionSchema.partial(),
    network: NetworkSectionSchema.partial(),
    rpc: RpcSectionSchema.partial(),
    masternode: MasternodeSectionSchema.partial(),
    consensus: ConsensusSectionSchema.partial(),
    sync: SyncSectionSchema.partial(),
    logging: LoggingSectionSchema.partial(),
  })
  .partial();

// Compile-time check that the schemas and the interfaces above describe the same thing.
type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const _schemaMatchesInterface: Equals<z.output<typeof NodeConfigSchema>, NodeConfig> = true;
void _schemaMatchesInterface;
