import type { ChainReader } from "../chain/chainReader.js";
import { PROTOCOL_VERSION, USER_AGENT } from "../p2p/constants.js";
import { PeerManagerError, type PeerManager } from "../p2p/peerManager.js";
import {
  RPC_CLIENT_INVALID_IP_OR_SUBNET,
  RPC_CLIENT_NODE_NOT_ADDED,
  RPC_INVALID_PARAMETER,
  RpcError,
} from "./errors.js";
import type { RpcServer } from "./server.js";

export interface NetMethodDeps {
  chain: ChainReader;
  peers: PeerManager;
  nodeId: Buffer;
  /** The median peer clock offset and whether it is over the warning threshold (p2p/clockOffset.ts). */
  clock?: { offsetMs(): number | null; check(): boolean };
}

function asRpcError(e: unknown): never {
  if (e instanceof PeerManagerError) {
    switch (e.code) {
      case "INVALID_ADDRESS":
        throw new RpcError(RPC_CLIENT_INVALID_IP_OR_SUBNET, e.message);
      case "NOT_ADDED":
        throw new RpcError(RPC_CLIENT_NODE_NOT_ADDED, e.message);
      case "ALREADY_ADDED":
      case "WHITELISTED":
      case "NETWORK_DISABLED":
      case "NOT_STARTED":
        throw new RpcError(RPC_INVALID_PARAMETER, e.message);
    }
  }
  throw e;
}

/** The network methods (INTERFACE.md), with bitcoind's names and habits. */
export function registerNetMethods(rpc: RpcServer, deps: NetMethodDeps): void {
  const { peers } = deps;
  rpc.register("getnetworkinfo", {
    description: "Returns this node's network state: id, protocol version, connections and listen address.",
    params: [],
    result: "{nodeid, protocolversion, connections, localaddress, ...}",
    handler: () => {
      const c = peers.connectionCounts();
      const iso = peers.isolation();
      return {
        nodeid: deps.nodeId.toString("hex"),
        version: PROTOCOL_VERSION,
        protocolversion: PROTOCOL_VERSION,
        subversion: USER_AGENT,
        network: deps.chain.params.network,
        connections: c.total,
        connections_in: c.inbound,
        connections_out: c.outbound,
        localaddress: peers.localAddress,
        networkactive: peers.networkActive,
        // Cut off from every peer, and since when (seconds since the epoch).
        isolated: iso.isolated,
        isolatedsince: iso.since === null ? null : Math.floor(iso.since / 1000),
        masternodelinks: peers.masternodeLinks(),
        masternodelinkfloor: peers.masternodeLinkFloor(),
        // The median of the peers' clocks minus ours, in seconds (0 with no peer), as bitcoind's;
        // and whether it is over a third of the allowed drift.
        timeoffset: Number(((deps.clock?.offsetMs() ?? 0) / 1000).toFixed(3)),
        timeoffsetwarning: deps.clock?.check() ?? false,
      };
    },
  });
  rpc.register("getconnectioncount", {
    description: "Returns the number of connected peers (handshake complete).",
    params: [],
    result: "n (integer)",
    handler: () => peers.connectionCounts().total,
  });
  rpc.register("getpeerinfo", {
    description:
      "Returns one object per connected peer: nodeid, addr, inbound, masternode (proved a registered operator key), whitelisted, height, tiphash, pingtime (seconds), conntime (epoch seconds), and more.",
    params: [],
    result: "[{nodeid, addr, inbound, masternode, whitelisted, height, tiphash, pingtime, conntime, ...}]",
    handler: () => peers.peerInfo(),
  });
  rpc.register("addnode", {
    description: "add: connect to a peer and keep reconnecting; remove: stop that; onetry: connect once now.",
    params: [
      { name: "addr", type: "string", description: "peer address HOST:PORT" },
      {
        name: "command",
        type: "string",
        enum: ["add", "remove", "onetry"],
        description: "add, remove or onetry",
      },
    ],
    result: "null",
    examples: ["time-cli addnode 127.0.1.2:24200 add"],
    handler: (p) => {
      try {
        peers.addNode(p.addr as string, p.command as "add" | "remove" | "onetry");
      } catch (e) {
        asRpcError(e);
      }
      return null;
    },
  });
  rpc.register("disconnectnode", {
    description: "Disconnects a peer by its address (HOST:PORT) or node id (64 hex).",
    params: [{ name: "address_or_nodeid", type: "string", description: "peer address or node id" }],
    result: "null",
    handler: (p) => {
      if (!peers.disconnect(p.address_or_nodeid as string)) {
        throw new RpcError(
          RPC_CLIENT_NODE_NOT_ADDED,
          `no connected peer matches ${String(p.address_or_nodeid)}`,
        );
      }
      return null;
    },
  });
  rpc.register("setban", {
    description:
      "add: ban an IP (or node id) for `seconds` (default 24 h); remove: lift its ban. Banning disconnects it.",
    params: [
      { name: "subject", type: "string", description: "IP address or 64-hex node id" },
      { name: "command", type: "string", enum: ["add", "remove"], description: "add or remove" },
      {
        name: "seconds",
        type: "integer",
        optional: true,
        min: 1,
        description: "ban length in seconds (default 86400)",
      },
    ],
    result: "null",
    examples: ["time-cli setban 127.0.1.3 add 600"],
    handler: (p) => {
      let ok: boolean;
      try {
        ok = peers.setBan(
          p.subject as string,
          p.command as "add" | "remove",
          p.seconds as number | undefined,
        );
      } catch (e) {
        asRpcError(e);
      }
      if (!ok) throw new RpcError(RPC_CLIENT_INVALID_IP_OR_SUBNET, `${String(p.subject)} is not banned`);
      return null;
    },
  });
  rpc.register("listbanned", {
    description:
      "Lists banned IPs and node ids: since when, until when (null = permanent), why, where the ban came from (proof, flood, manual, config), the proof itself, and the offender's node id when known.",
    params: [],
    handler: () =>
      peers.listBanned().map((b) => ({
        address: b.subject,
        ban_created: Math.floor(b.createdAt / 1000),
        banned_until: b.until === null ? null : Math.floor(b.until / 1000),
        reason: b.reason,
        source: b.source,
        evidence: b.evidence,
        nodeid: b.nodeId,
      })),
  });
  rpc.register("clearbanned", {
    description: "Lifts every ban except those from the config blacklist.",
    params: [],
    result: "n (integer): how many bans were lifted",
    handler: () => peers.clearBanned(),
  });
  rpc.register("setnetworkactive", {
    description: "false: disconnect every peer and stop networking; true: resume.",
    params: [{ name: "state", type: "boolean", description: "true or false" }],
    result: "state (boolean)",
    handler: (p) => {
      peers.setNetworkActive(p.state as boolean);
      return peers.networkActive;
    },
  });
  rpc.register("getwhitelist", {
    description:
      "Lists whitelisted IPs and node ids (never banned; preferred for sync; still fully validated).",
    params: [],
    handler: () => peers.getWhitelist(),
  });
  rpc.register("addwhitelist", {
    description: "Whitelists an IP or node id (and lifts any ban on it).",
    params: [{ name: "entry", type: "string", description: "IP address or 64-hex node id" }],
    result: "true if it was added, false if it was already there",
    handler: (p) => {
      try {
        return peers.addWhitelist(p.entry as string);
      } catch (e) {
        asRpcError(e);
      }
    },
  });
  rpc.register("removewhitelist", {
    description: "Removes an IP or node id from the whitelist.",
    params: [{ name: "entry", type: "string", description: "IP address or 64-hex node id" }],
    result: "true if it was removed, false if it was not there",
    handler: (p) => {
      try {
        return peers.removeWhitelist(p.entry as string);
      } catch (e) {
        asRpcError(e);
      }
    },
  });
}
