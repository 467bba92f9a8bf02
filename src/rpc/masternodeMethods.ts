import type { NetworkName } from "../crypto/address.js";
import type { KeyPair } from "../crypto/ed25519.js";
import type { Registry } from "../consensus/registry.js";
import type { MasternodeLiveness } from "../masternode/liveness.js";
import type { BlockProducer, ProducerState } from "../masternode/producer.js";
import type { RpcServer } from "./server.js";

export interface MasternodeMethodDeps {
  /** The chain (only its registry and network are read). */
  chain: { getRegistry(): Registry; params: { network: NetworkName } };
  liveness: MasternodeLiveness;
  /** The block producer when this node runs a masternode, else null. */
  producer: BlockProducer | null;
  operatorKey: KeyPair | null;
  minMasternodes: number;
  /** The peer manager, for how many connected peers proved a registered masternode key. */
  network: { peerInfo(): ReadonlyArray<{ masternode: boolean }> } | null;
}

/** masternodestatus `status`: what the producer is doing, in the operator's words. */
export type MasternodeStatusName =
  "producing" | "waiting" | "not-registered" | "disabled" | "not a masternode";

function statusName(s: ProducerState): MasternodeStatusName {
  switch (s.state) {
    case "ready":
      return "producing";
    case "waiting":
      return "waiting";
    case "not-registered":
      return "not-registered";
    case "disabled":
      return "disabled";
  }
}

/** The masternode methods (INTERFACE.md): masternodelist and masternodestatus. */
export function registerMasternodeMethods(rpc: RpcServer, deps: MasternodeMethodDeps): void {
  const { chain, liveness } = deps;
  rpc.register("masternodelist", {
    description:
      "Lists every masternode in the chain's registry with this node's view of its liveness: status is active while a heartbeat was seen within the liveness window (5 heartbeat intervals), lastseen is when (epoch seconds, this node's clock), witnesses counts attestations of its latest heartbeat.",
    params: [],
    result:
      "[{pubkey, address, tier, status: active|inactive, lastseen, witnesses, height, seq, nodeid, rewardaddress, registeredheight}]",
    examples: ["time-cli masternodelist"],
    handler: () => liveness.list(chain.params.network),
  });
  rpc.register("masternodestatus", {
    description:
      'This node as a masternode: its operator key, registration, and whether it produces blocks or waits, and why (for example "waiting: 2/3 active masternodes").',
    params: [],
    result:
      "{status: producing|waiting|not-registered|disabled|not a masternode, reason, operator, registered, tier, address, activemasternodes, minmasternodes, blocksproduced, ...}",
    examples: ["time-cli masternodestatus"],
    handler: () => {
      const key = deps.operatorKey;
      if (!key) {
        return {
          status: "not a masternode" satisfies MasternodeStatusName,
          reason: "this node runs without [masternode] enabled = true",
          activemasternodes: liveness.activeCount(),
          minmasternodes: deps.minMasternodes,
        };
      }
      const network = chain.params.network;
      const row = liveness.rowFor(key.publicKey, network);
      const producerState: ProducerState = deps.producer?.status ?? {
        state: "disabled",
        reason: "the block producer is not running",
      };
      // The registry is read now; the producer's state may be up to one tick older.
      const status: MasternodeStatusName = row ? statusName(producerState) : "not-registered";
      const reason = row
        ? producerState.reason
        : producerState.state === "not-registered"
          ? producerState.reason
          : "operator key is not in the masternode registry";
      return {
        status,
        reason,
        operator: key.publicKey.toString("hex"),
        registered: row !== undefined,
        tier: row?.tier ?? null,
        address: row?.address ?? null,
        rewardaddress: row?.rewardaddress ?? null,
        registeredheight: row?.registeredheight ?? null,
        active: row?.status === "active",
        lastheartbeat: row?.lastseen ?? null,
        witnesses: row?.witnesses ?? 0,
        activemasternodes: liveness.activeCount(),
        registeredmasternodes: chain.getRegistry().length,
        minmasternodes: deps.minMasternodes,
        masternodepeers: deps.network ? deps.network.peerInfo().filter((p) => p.masternode).length : null,
        blocksproduced: deps.producer?.blocksProduced ?? 0,
      };
    },
  });
}
