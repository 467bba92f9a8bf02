import { join } from "node:path";
import type { NetworkSection } from "../config/schema.js";
import { parseHostPort } from "../config/hostPort.js";
import { HANDSHAKE_TIMEOUT_MS, HELLO_TIMEOUT_MS } from "./constants.js";

export interface BackoffPolicy {
  /** Delay before the first retry. */
  baseMs: number;
  /** The delay doubles per failure up to this; permanent targets retry at this pace forever. */
  maxMs: number;
  /** Failures after which an ordinary address is given up (permanent targets never are). */
  maxAttempts: number;
}

/** Everything PeerManager needs, as plain data. Most values come from config [network]. */
export interface PeerManagerOptions {
  /** Where to accept connections ({host, port}; port 0 = any free port), or null not to listen. */
  listen: { host: string; port: number } | null;
  /** "host:port" peers should dial, when it differs from the listen address (NAT). */
  externalAddress?: string;
  /** "host:port" of peers dialled at start and retried forever. */
  bootstrapPeers: string[];
  /** IPs (port optional) or 64-hex node ids: never banned, privileged slots and backoff. */
  whitelist: string[];
  /** IPs (port optional) or 64-hex node ids: permanently banned. */
  blacklist: string[];
  maxPeers: number;
  maxInbound: number;
  maxOutbound: number;
  reservedMasternodeSlots: number;
  maxConnectionsPerIp: number;
  connectRatePerMinute: number;
  pingIntervalMs: number;
  /** JSON file for the address book, or null to keep it in memory. */
  addressBookFile: string | null;
  /** JSON file for bans; undefined = "banlist.json" next to the address book; null = memory only. */
  banListFile?: string | null;
  dialTimeoutMs: number;
  /** Period of the GetPeers sent to one random peer. */
  discoveryIntervalMs: number;
  handshakeTimeoutMs: number;
  /** The remote's Hello must be complete this soon after a connection opens. */
  helloTimeoutMs: number;
  /** Inbound connections allowed to be mid-handshake at once. */
  maxHandshaking: number;
  /** Of those, at most this many from one IP (whitelisted IPs aside). */
  maxHandshakingPerIp: number;
  /** … and from one narrow netgroup (/24, /48) and one wide netgroup (/16, /32); see netgroup.ts. */
  maxHandshakingPerNetgroup: number;
  /** Ready ordinary inbound peers from one narrow netgroup; the wide netgroup gets twice this. */
  maxInboundPerNetgroup: number;
  /** Outbound peers from the address book in one wide netgroup (permanent targets aside). */
  maxOutboundPerNetgroup: number;
  /**
   * The floor k of links to distinct registered masternodes: while fewer are connected, a
   * masternode is never refused for want of a slot (the limits stretch to let it in), and no
   * masternode link is ever evicted. docs/PROTOCOL.md "Masternode link floor".
   */
  masternodeLinkFloor: number;
  /**
   * Whether registered masternodes' addresses also fill ordinary outbound slots (a masternode:
   * true), or are dialled only up to the link floor (a full node: false). Every full node filling
   * its slots with masternodes would ask more of their inbound slots than they have.
   */
  masternodesFillOutbound: boolean;
  /** Period of the dial loop. */
  dialIntervalMs: number;
  /** New dials the loop starts per tick. */
  maxDialsPerTick: number;
  /** Backoff for masternodes and whitelisted peers. */
  masternodeBackoff: BackoffPolicy;
  /** Backoff for everyone else. */
  ordinaryBackoff: BackoffPolicy;
  /** Each delay is multiplied by a factor drawn uniformly from [1 − jitter, 1 + jitter]. */
  backoffJitter: number;
  /** A connection that lasted this long counts as a success: its drop restarts the backoff. */
  stableConnectionMs: number;
  addressBookCapacity: number;
  /** How often the ban list (and a due address book) is written when it changed. */
  saveIntervalMs: number;
  /** The address book, which changes with every address heard, is written at most this often. */
  addressBookSaveIntervalMs: number;
  /** Newly learned addresses are gathered this long before they are relayed in one Peers. */
  relayDelayMs: number;
  /** A flood score total within banScoreWindowMs that bans an IP (for floodBanMs). */
  banScoreThreshold: number;
  banScoreWindowMs: number;
  /** 1st, 2nd, … proof ban lengths; later ones last as long as the last entry. */
  banEscalationMs: number[];
  /** Length of a flood ban (never escalates). */
  floodBanMs: number;
  /** Length of a manual ban when none is given. */
  manualBanMs: number;
  banListCapacity: number;
}

export const defaultPeerManagerOptions: PeerManagerOptions = {
  listen: null,
  bootstrapPeers: [],
  whitelist: [],
  blacklist: [],
  // 125 connections, 100 inbound, 25 outbound, 50 inbound slots kept for masternodes,
  // 3 connections per IP and 10 new connections per IP per minute: the original's limits.
  maxPeers: 125,
  maxInbound: 100,
  maxOutbound: 25,
  reservedMasternodeSlots: 50,
  maxConnectionsPerIp: 3,
  connectRatePerMinute: 10,
  // 30 s pings as in the original (mainnet and testnet; devnets pass a shorter one).
  pingIntervalMs: 30_000,
  addressBookFile: null,
  // 5 s: a TCP connect on any working network takes well under a second; a dead address
  // should not hold an outbound slot longer than this.
  dialTimeoutMs: 5_000,
  // 60 s: the seeds wanted discovery "within 60 seconds"; one GetPeers a minute to one peer is
  // far inside the receiver's limit of 5 per minute.
  discoveryIntervalMs: 60_000,
  // 10 s, the Peer's default: a handshake is two round trips and two signatures.
  handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS,
  // 3 s for a Hello of a few hundred bytes, sent the moment the connection opens.
  helloTimeoutMs: HELLO_TIMEOUT_MS,
  // 32: a handshake finishes in milliseconds; more than this at once is a flood, and each
  // pending one holds a socket.
  maxHandshaking: 32,
  // 2 per IP and 4 per netgroup: an honest host has one handshake in flight (two behind a NAT),
  // so 17 addresses in one /24 hold at most 4 of the 32 slots, not all of them.
  maxHandshakingPerIp: 2,
  maxHandshakingPerNetgroup: 4,
  // 4 ordinary inbound peers per /24 and 8 per /16: one rented block cannot take the 50 ordinary
  // inbound slots. Masternodes and whitelisted peers are exempt; local ranges are not grouped.
  maxInboundPerNetgroup: 4,
  // 2 outbound address-book peers per /16, so our view of the network does not come from one
  // provider. Bootstrap peers, addnode and masternodes are exempt.
  maxOutboundPerNetgroup: 2,
  // 8 (or every other registered masternode when fewer) for a masternode: at least 4, and
  // enough that a third of them lying or silent still leaves a majority of honest ones.
  masternodeLinkFloor: 8,
  masternodesFillOutbound: true,
  // About once a second, as the dial loop is specified; reconnects are paced by the backoff.
  dialIntervalMs: 1_000,
  // 8 new dials per second at most, so a book full of dead addresses is worked through steadily
  // rather than in one burst of sockets.
  maxDialsPerTick: 8,
  // The original's reconnect policy: 2 s doubling to 60 s and 50 tries for masternodes,
  // 5 s doubling to 300 s and 10 tries for others.
  masternodeBackoff: { baseMs: 2_000, maxMs: 60_000, maxAttempts: 50 },
  ordinaryBackoff: { baseMs: 5_000, maxMs: 300_000, maxAttempts: 10 },
  // ±20%, so nodes that lost a peer together do not all redial it in the same instant.
  backoffJitter: 0.2,
  // 60 s (two mainnet ping intervals): a link that lived this long was a real connection, and a
  // drop after it starts over at the base delay; shorter links keep escalating.
  stableConnectionMs: 60_000,
  // 5,000 addresses: enough for any network this size, bounded against address floods.
  addressBookCapacity: 5_000,
  // 5 s: a crash loses at most a few seconds of bans; they change rarely, so writes stay rare.
  saveIntervalMs: 5_000,
  // 5 min: the book changes with every address gossiped, and writing it whole every 5 s cost a
  // busy node a megabyte per write; a crash loses at most 5 minutes of addresses, which gossip
  // brings back, and a stop saves it.
  addressBookSaveIntervalMs: 300_000,
  // 100 ms: joins that happen together are relayed in one Peers message, which keeps relays
  // inside the receiver's limit of 10 Peers per minute.
  relayDelayMs: 100,
  // 100 flood points within an hour ban: ten requests over their limits (10 each).
  banScoreThreshold: 100,
  banScoreWindowMs: 60 * 60 * 1000,
  // Proof bans 10 min, then 1 h, then 24 h (never permanent: addresses change hands).
  banEscalationMs: [10 * 60 * 1000, 60 * 60 * 1000, 24 * 60 * 60 * 1000],
  // Flood bans 5 min, the original's first step, and never longer.
  floodBanMs: 5 * 60 * 1000,
  // 24 h for `setban add` without a time, as in Bitcoin.
  manualBanMs: 24 * 60 * 60 * 1000,
  // 10,000 bans at most: the table is attacker-driven, so it is bounded.
  banListCapacity: 10_000,
};

/**
 * The masternode redial backoff on a network pinging every `pingMs`: 2 s doubling to
 * min(60 s, max(5 s, 5 pings)). Mainnet and testnet keep the original's 60 s ceiling; a devnet
 * with 2 s pings retries a lost masternode at least every 10 s, so a healed partition does not
 * wait a minute of 2 s blocks for the next dial. Connectivity coming back resets it anyway.
 */
export function masternodeBackoffFor(pingMs: number): BackoffPolicy {
  const base = defaultPeerManagerOptions.masternodeBackoff;
  return { ...base, maxMs: Math.min(base.maxMs, Math.max(5_000, 5 * pingMs)) };
}

/** File names in the data directory. */
export const ADDRESS_BOOK_FILE = "peers.json";
export const BAN_LIST_FILE = "banlist.json";

/**
 * Options from config [network]. The address book and ban list go in `dataDir` (null keeps them
 * in memory). `overrides` wins over both.
 */
export function peerManagerOptionsFromConfig(
  network: NetworkSection,
  dataDir: string | null,
  overrides: Partial<PeerManagerOptions> = {},
): PeerManagerOptions {
  const listen = parseHostPort(network.listen_address, { allowPortZero: true });
  const pingMs = Math.max(1, Math.round(network.ping_interval * 1000));
  return {
    ...defaultPeerManagerOptions,
    listen: { host: listen.host, port: listen.port },
    ...(network.external_address !== undefined ? { externalAddress: network.external_address } : {}),
    bootstrapPeers: [...network.bootstrap_peers],
    whitelist: [...network.whitelisted_peers],
    blacklist: [...network.blacklisted_peers],
    maxPeers: network.max_peers,
    maxInbound: network.max_inbound,
    maxOutbound: network.max_outbound,
    reservedMasternodeSlots: network.reserved_masternode_slots,
    maxConnectionsPerIp: network.max_connections_per_ip,
    connectRatePerMinute: network.connect_rate_per_minute,
    pingIntervalMs: pingMs,
    masternodeBackoff: masternodeBackoffFor(pingMs),
    addressBookFile: dataDir === null ? null : join(dataDir, ADDRESS_BOOK_FILE),
    banListFile: dataDir === null ? null : join(dataDir, BAN_LIST_FILE),
    ...overrides,
  };
}

/**
 * A full node's masternode link floor. Two links to masternodes keep a full node fed with blocks
 * if one masternode is down, and leave room: 100 masternodes' ordinary inbound slots (50 each by
 * default) can serve 2,500 full nodes at two links each, where a floor of 8 would need 6,400 of
 * them for 800 full nodes and keep the rest redialling refused masternodes for ever.
 */
export const FULL_NODE_MASTERNODE_LINK_FLOOR = 2;
