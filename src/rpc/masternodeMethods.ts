import { formatAmount } from "../primitives/amount.js";
import { COIN } from "../primitives/constants.js";
import { outpointKey, txSize, txid as txidOf, type OutPoint, type Tx } from "../primitives/tx.js";
import { decodeAddress, pubkeyHash, type NetworkName } from "../crypto/address.js";
import type { KeyPair } from "../crypto/ed25519.js";
import { findByOperator, type MasternodeEntry, type Registry } from "../consensus/registry.js";
import { isServiceAddress, makeRegisterTx } from "../consensus/registryTx.js";
import { TIER_COLLATERAL, TIER_NAMES, Tier, tierFromName, tierName } from "../consensus/tier.js";
import type { MasternodeLiveness } from "../masternode/liveness.js";
import type { BlockProducer, ProducerState } from "../masternode/producer.js";
import { isUnspecifiedHost } from "../p2p/addressBook.js";
import type { Wallet } from "../wallet/wallet.js";
import {
  RPC_INVALID_PARAMETER,
  RPC_MISC_ERROR,
  RPC_TYPE_ERROR,
  RPC_WALLET_INSUFFICIENT_FUNDS,
  RpcError,
} from "./errors.js";
import type { RpcServer } from "./server.js";
import { showValue } from "./params.js";
import { decodeAddressParam } from "./txMethods.js";
import { sendRpcError } from "./sendErrors.js";

/**
 * What registermasternode and spendcollateral need besides the chain: the node's wallet (it owns
 * the collateral and pays the fee) and the transaction relay (so the transaction reaches peers).
 */
export interface MasternodeRegistrationDeps {
  wallet: Wallet;
  /** TxRelay.submitLocal: admits to the mempool and announces to every peer. */
  relay: { submitLocal(tx: Tx): { txid: Buffer; fee: bigint } };
  /** The mempool, for a registration of this operator already waiting there. */
  mempool: { operatorClaimedBy(operatorPubkey: Buffer): Buffer | undefined };
  /** Where peers reach this node ("host:port": external_address, else the bound listen address). */
  serviceAddress: () => string | null;
  /** [masternode] reward_address; "" pays the operator key's address (which the wallet can spend). */
  rewardAddress: string;
}

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
  /** Wallet and relay for registermasternode and spendcollateral; without them those methods are not registered. */
  registration?: MasternodeRegistrationDeps;
}

/**
 * When the collateral's key holds no other coin, the wallet first pays it this much from its other
 * coins, so the registration has an input signed by the owner (rule R7) without touching the
 * collateral (R5). The registration spends it and returns the change to the owner's address.
 */
export const REGISTRATION_FUNDING = COIN / 100n;

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
  if (deps.registration) registerRegistrationMethods(rpc, deps, deps.registration);
}

/**
 * registermasternode and spendcollateral. Errors (JSON-RPC code: when):
 * - -1 (misc): this node has no operator key ([masternode] enabled = false).
 * - -3 (type): the tier is not a string.
 * - -4 (wallet): the wallet key file cannot be written (a change key is made at first use).
 * - -5 (address): an address argument is not a valid address of this network.
 * - -6 (insufficient funds): registermasternode finds no spendable output of exactly the tier's
 *   collateral (send exactly that amount to an address of this wallet first), or too little
 *   besides it for the fee.
 * - -8 (parameter): unknown tier; a service address that is not host:port (or no usable default);
 *   the operator key already registered, or a registration of it already in the mempool; spendcollateral finds no (or more than one, unnamed)
 *   collateral owned by this wallet, or the collateral cannot be spent now (unconfirmed, or
 *   already spent by a mempool transaction).
 * - -26 (rejected): the mempool refused the transaction, e.g. CONFLICT when a registration of this
 *   operator key or collateral is already waiting, or REGISTRY_EMPTY when spending the collateral
 *   of the last masternode. `data` carries {code, rule}.
 */
function registerRegistrationMethods(
  rpc: RpcServer,
  deps: MasternodeMethodDeps,
  reg: MasternodeRegistrationDeps,
): void {
  const { chain } = deps;
  const { wallet } = reg;
  const network = chain.params.network;

  rpc.register("registermasternode", {
    description:
      "Registers this node's operator key as a masternode through a Register transaction. The wallet " +
      "is the owner: for a tier with collateral (bronze 1,000, silver 10,000, gold 100,000 TIME) it " +
      "uses an unspent output of exactly that amount as the collateral (not spent: locked, and " +
      "spending it later deregisters), and signs with that output's key; the fee comes from other " +
      "wallet coins, with change back to the owner's address. The operator key signs its consent. " +
      "The transaction is relayed to peers; the masternode is registered once it is in a block. " +
      "Errors: -1 not a masternode, -5 bad reward address, -6 no output of exactly the collateral " +
      "(send exactly that amount to one of the wallet's addresses, see getnewaddress) or too little " +
      "for the fee, -8 bad tier (free is for genesis masternodes only) or address, already registered or a registration already in the mempool, -26 refused by the mempool.",
    params: [
      { name: "tier", type: "any", description: `one of ${TIER_NAMES.join(", ")}` },
      {
        name: "address",
        type: "string",
        optional: true,
        description:
          "host:port where peers reach this masternode (default: [network] external_address, else the listen address)",
      },
      {
        name: "rewardaddress",
        type: "address",
        optional: true,
        description:
          "address paid its reward share (default: [masternode] reward_address, else the operator key's address)",
      },
    ],
    result: '"txid" (string) of the Register transaction',
    examples: ["time-cli registermasternode bronze", "time-cli registermasternode silver 203.0.113.7:24000"],
    handler: (p) => {
      const operatorKey = deps.operatorKey;
      if (!operatorKey) {
        throw new RpcError(
          RPC_MISC_ERROR,
          "this node is not a masternode: set [masternode] enabled = true with an operator key file",
        );
      }
      if (typeof p.tier !== "string") {
        throw new RpcError(
          RPC_TYPE_ERROR,
          `tier must be one of ${TIER_NAMES.join(", ")}, got ${showValue(p.tier)}`,
        );
      }
      let tier: Tier;
      try {
        tier = tierFromName(p.tier);
      } catch (e) {
        throw new RpcError(RPC_INVALID_PARAMETER, e instanceof Error ? e.message : String(e));
      }
      if (TIER_COLLATERAL[tier] === 0n) {
        throw new RpcError(
          RPC_INVALID_PARAMETER,
          `the ${tierName(tier)} tier is for genesis masternodes only: a registration on chain must post collateral ` +
            `(MN_FREE_TIER); use bronze (1,000 TIME), silver (10,000) or gold (100,000)`,
        );
      }
      const existing = findByOperator(chain.getRegistry(), operatorKey.publicKey);
      if (existing) {
        throw new RpcError(
          RPC_INVALID_PARAMETER,
          `operator key ${operatorKey.publicKey.toString("hex")} is already registered (tier ${tierName(existing.tier)}, since height ${existing.registeredHeight})`,
        );
      }
      const pending = reg.mempool.operatorClaimedBy(operatorKey.publicKey);
      if (pending) {
        throw new RpcError(
          RPC_INVALID_PARAMETER,
          `a registry transaction of operator key ${operatorKey.publicKey.toString("hex")} is already waiting in the mempool: ${pending.toString("hex")}`,
        );
      }
      const address = serviceAddressParam(p.address as string | undefined, reg.serviceAddress());
      const rewardAddress =
        p.rewardaddress !== undefined
          ? decodeAddressParam(p.rewardaddress as string, network)
          : reg.rewardAddress !== ""
            ? decodeAddressParam(reg.rewardAddress, network)
            : pubkeyHash(operatorKey.publicKey);
      try {
        const coins = wallet.listUnspent(1).filter((c) => c.spendable);
        const want = TIER_COLLATERAL[tier];
        const collateral = coins.find((c) => c.amount === want);
        if (!collateral) {
          throw new RpcError(
            RPC_WALLET_INSUFFICIENT_FUNDS,
            `no spendable output of exactly ${formatAmount(want)} TIME (the ${tierName(tier)} collateral) in the wallet: ` +
              `send exactly ${formatAmount(want)} TIME to one of its addresses (getnewaddress) in one payment, wait for a confirmation, then retry`,
          );
        }
        const build = (ownerKey: KeyPair, input: Funds, fee: bigint): Tx =>
          makeRegisterTx({
            ownerKey,
            operatorKey,
            address,
            tier,
            rewardAddress,
            collateral: collateral.outpoint,
            inputs: [input.outpoint],
            outputs: [{ amount: input.amount - fee, address: pubkeyHash(ownerKey.publicKey) }],
          });
        // One input, one output and this payload, whatever the coin: the fee is known up front.
        const probe = build(operatorKey, { outpoint: { txid: Buffer.alloc(32), index: 0 }, amount: 0n }, 0n);
        const fee = wallet.feeRate * BigInt(txSize(probe));
        const enough = (c: Funds): boolean => c.amount >= fee + wallet.dustThreshold;

        // The owner signs with an input of its own (R7); the collateral itself is never spent (R5).
        const ownerKey = wallet.keyForAddress(decodeAddress(collateral.address, network));
        let input: Funds | undefined = coins
          .filter(
            (o) =>
              o.address === collateral.address &&
              outpointKey(o.outpoint) !== outpointKey(collateral.outpoint),
          )
          .sort(byAmountDesc)
          .find(enough);
        if (!input) {
          // The collateral's key holds nothing else: pay it a little from the other coins first.
          const sent = wallet.createAndSend(collateral.address, REGISTRATION_FUNDING, {
            exclude: [collateral.outpoint],
          });
          input = { outpoint: { txid: sent.txid, index: 0 }, amount: REGISTRATION_FUNDING };
        }
        if (!ownerKey) throw new Error("registermasternode: a wallet coin without its key");
        const tx = build(ownerKey, input, fee);
        // A funding transaction (logged by the wallet) is this one's parent in the mempool; both
        // are relayed, parent first.
        reg.relay.submitLocal(tx);
        return txidOf(tx).toString("hex");
      } catch (e) {
        throw sendRpcError(e);
      }
    },
  });

  rpc.register("spendcollateral", {
    description:
      "Deliberately spends the collateral of a masternode owned by this wallet (whose outputs are " +
      "otherwise locked against coin selection), paying it, less the fee, to an address. Once the " +
      "transaction is in a block the masternode leaves the registry (spending the collateral " +
      "deregisters). Without operator: this node's own masternode, else the only one the wallet owns. " +
      "Errors: -5 bad address, -8 no such collateral in this wallet (or several: name the operator) or " +
      "not spendable now, -26 refused by the mempool (REGISTRY_EMPTY for the last masternode).",
    params: [
      { name: "address", type: "address", description: "where the collateral goes" },
      {
        name: "operator",
        type: "hash",
        optional: true,
        description: "operator public key (64 hex) of the masternode whose collateral to spend",
      },
    ],
    result: '"txid" (string)',
    examples: ["time-cli spendcollateral TIME0..."],
    handler: (p) => {
      const to = p.address as string;
      decodeAddressParam(to, network);
      const owned = chain
        .getRegistry()
        .filter(
          (e): e is MasternodeEntry & { collateral: OutPoint; ownerPubkey: Buffer } =>
            e.collateral !== null &&
            e.ownerPubkey !== null &&
            wallet.keyForAddress(pubkeyHash(e.ownerPubkey)) !== undefined,
        );
      let entry: (typeof owned)[number] | undefined;
      if (p.operator !== undefined) {
        const op = Buffer.from(p.operator as string, "hex");
        entry = owned.find((e) => e.operatorPubkey.equals(op));
        if (!entry) {
          throw new RpcError(
            RPC_INVALID_PARAMETER,
            `no registered masternode with operator ${op.toString("hex")} has its collateral in this wallet`,
          );
        }
      } else {
        const me = deps.operatorKey?.publicKey;
        entry = me ? owned.find((e) => e.operatorPubkey.equals(me)) : undefined;
        if (!entry && owned.length === 1) entry = owned[0];
        if (!entry) {
          throw new RpcError(
            RPC_INVALID_PARAMETER,
            owned.length === 0
              ? "this wallet owns the collateral of no registered masternode"
              : `this wallet owns the collateral of ${owned.length} masternodes: name the operator key`,
          );
        }
      }
      try {
        return wallet.sweep([entry.collateral], to).txid.toString("hex");
      } catch (e) {
        throw sendRpcError(e);
      }
    },
  });
}

/** A coin to spend: an outpoint and its amount. */
interface Funds {
  outpoint: OutPoint;
  amount: bigint;
}

function byAmountDesc(a: Funds, b: Funds): number {
  return a.amount > b.amount ? -1 : a.amount < b.amount ? 1 : 0;
}

/** The service address to register: the argument, else the node's own; host:port and dialable. */
function serviceAddressParam(given: string | undefined, own: string | null): string {
  const address = given ?? own;
  if (address === undefined || address === null || address === "") {
    throw new RpcError(
      RPC_INVALID_PARAMETER,
      "this node has no service address yet: pass the host:port peers reach it at",
    );
  }
  if (!isServiceAddress(address)) {
    throw new RpcError(RPC_INVALID_PARAMETER, `service address ${JSON.stringify(address)} is not host:port`);
  }
  const host = address.slice(0, address.lastIndexOf(":")).replace(/^\[|\]$/g, "");
  if (isUnspecifiedHost(host)) {
    throw new RpcError(
      RPC_INVALID_PARAMETER,
      `service address ${address} is not dialable: ${given === undefined ? "set [network] external_address or " : ""}pass the host:port peers reach this node at`,
    );
  }
  return address;
}
