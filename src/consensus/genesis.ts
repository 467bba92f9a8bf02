import { readFileSync } from "node:fs";
import { Writer } from "../codec/index.js";
import { addressFromPubkey, decodeAddress, pubkeyHash, type NetworkName } from "../crypto/address.js";
import { PUBKEY_LEN } from "../crypto/ed25519.js";
import { ZERO_HASH } from "../crypto/hash.js";
import { MAX_SERVICE_ADDRESS_LEN, registryRoot, sortRegistry, type MasternodeEntry } from "./registry.js";
import { TIER_NAMES, tierFromName, tierName } from "./tier.js";
import { formatAmount, parseAmount } from "../primitives/amount.js";
import { blockHash, blockMerkleRoot, type Block } from "../primitives/block.js";
import { HEADER_VERSION, MAX_MONEY, MAX_TX_PAYLOAD, TX_VERSION } from "../primitives/constants.js";
import { isNetworkName } from "../primitives/params.js";
import { TxKind, type Tx, type TxOut } from "../primitives/tx.js";

/** The genesis file (JSON). Its content is committed to by the genesis block hash. */
export interface GenesisSpec {
  network: NetworkName;
  /** Milliseconds since the Unix epoch. */
  timestamp: number;
  blockTimeMs: number;
  masternodes: GenesisMasternode[];
  allocations: GenesisAllocation[];
  message: string;
}

export interface GenesisMasternode {
  /** 64 hex chars. */
  operatorPubkey: string;
  /** "host:port". */
  address: string;
  tier: string;
  /** Optional reward address; defaults to the address of the operator key. */
  rewardAddress?: string;
}

export interface GenesisAllocation {
  address: string;
  /** TIME as a decimal string. */
  amount: string;
}

export class GenesisError extends Error {}

const MAX_GENESIS_MASTERNODES = 1_000;
const MAX_GENESIS_ALLOCATIONS = 10_000;

/** Validates an untrusted JSON value as a GenesisSpec, with an error naming the bad field. */
export function parseGenesisSpec(json: unknown, source = "genesis"): GenesisSpec {
  const fail = (msg: string): never => {
    throw new GenesisError(`${source}: ${msg}`);
  };
  if (typeof json !== "object" || json === null || Array.isArray(json)) fail("must be a JSON object");
  const o = json as Record<string, unknown>;
  const known = new Set(["network", "timestamp", "blockTimeMs", "masternodes", "allocations", "message"]);
  for (const k of Object.keys(o)) if (!known.has(k)) fail(`unknown field "${k}"`);
  if (!isNetworkName(o.network)) fail(`"network" must be one of mainnet, testnet, devnet`);
  const network = o.network as NetworkName;
  if (!Number.isSafeInteger(o.timestamp) || (o.timestamp as number) < 0)
    fail(`"timestamp" must be ms since epoch`);
  if (
    !Number.isSafeInteger(o.blockTimeMs) ||
    (o.blockTimeMs as number) < 100 ||
    (o.blockTimeMs as number) > 86_400_000
  ) {
    fail(`"blockTimeMs" must be an integer between 100 and 86400000`);
  }
  if (!Array.isArray(o.masternodes) || o.masternodes.length === 0)
    fail(`"masternodes" must be a non-empty array`);
  const mns = o.masternodes as unknown[];
  if (mns.length > MAX_GENESIS_MASTERNODES) fail(`too many masternodes (max ${MAX_GENESIS_MASTERNODES})`);
  const seen = new Set<string>();
  const masternodes: GenesisMasternode[] = mns.map((m, i) => {
    const where = `masternodes[${i}]`;
    if (typeof m !== "object" || m === null) fail(`${where} must be an object`);
    const e = m as Record<string, unknown>;
    if (typeof e.operatorPubkey !== "string" || !/^[0-9a-f]{64}$/.test(e.operatorPubkey)) {
      fail(`${where}.operatorPubkey must be 64 lowercase hex characters`);
    }
    if (seen.has(e.operatorPubkey as string)) fail(`${where}.operatorPubkey is listed twice`);
    seen.add(e.operatorPubkey as string);
    if (
      typeof e.address !== "string" ||
      !/^.+:\d{1,5}$/.test(e.address) ||
      e.address.length > MAX_SERVICE_ADDRESS_LEN
    ) {
      fail(`${where}.address must be "host:port"`);
    }
    if (typeof e.tier !== "string" || !(TIER_NAMES as readonly string[]).includes(e.tier)) {
      fail(`${where}.tier must be one of ${TIER_NAMES.join(", ")}`);
    }
    const out: GenesisMasternode = {
      operatorPubkey: e.operatorPubkey as string,
      address: e.address as string,
      tier: e.tier as string,
    };
    if (e.rewardAddress !== undefined) {
      if (typeof e.rewardAddress !== "string") fail(`${where}.rewardAddress must be a string`);
      try {
        decodeAddress(e.rewardAddress as string, network);
      } catch (err) {
        fail(`${where}.rewardAddress: ${(err as Error).message}`);
      }
      out.rewardAddress = e.rewardAddress as string;
    }
    return out;
  });
  const allocsRaw = o.allocations === undefined ? [] : o.allocations;
  if (!Array.isArray(allocsRaw)) fail(`"allocations" must be an array`);
  if ((allocsRaw as unknown[]).length > MAX_GENESIS_ALLOCATIONS) fail(`too many allocations`);
  let allocated = 0n;
  const allocations = (allocsRaw as unknown[]).map((a, i) => {
    const where = `allocations[${i}]`;
    if (typeof a !== "object" || a === null) fail(`${where} must be an object`);
    const e = a as Record<string, unknown>;
    if (typeof e.address !== "string") fail(`${where}.address must be a string`);
    try {
      decodeAddress(e.address as string, network);
    } catch (err) {
      fail(`${where}.address: ${(err as Error).message}`);
    }
    if (typeof e.amount !== "string") fail(`${where}.amount must be a decimal string`);
    let units = 0n;
    try {
      units = parseAmount(e.amount as string);
    } catch (err) {
      fail(`${where}.amount: ${(err as Error).message}`);
    }
    if (units <= 0n) fail(`${where}.amount must be positive`);
    allocated += units;
    if (allocated > MAX_MONEY) fail(`allocations add up to more than the maximum supply (at ${where})`);
    return { address: e.address as string, amount: e.amount as string };
  });
  const message = o.message === undefined ? "" : o.message;
  if (typeof message !== "string" || message.length > 1000)
    fail(`"message" must be a string of at most 1000 chars`);
  return {
    network,
    timestamp: o.timestamp as number,
    blockTimeMs: o.blockTimeMs as number,
    masternodes,
    allocations,
    message: message as string,
  };
}

export function readGenesisFile(path: string): GenesisSpec {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new GenesisError(
      `cannot read genesis file ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new GenesisError(`genesis file ${path} is not valid JSON: ${(e as Error).message}`);
  }
  return parseGenesisSpec(json, `genesis file ${path}`);
}

export function genesisRegistry(spec: GenesisSpec): MasternodeEntry[] {
  return sortRegistry(
    spec.masternodes.map((m) => {
      const pub = Buffer.from(m.operatorPubkey, "hex");
      return {
        operatorPubkey: pub,
        address: m.address,
        tier: tierFromName(m.tier),
        rewardAddress: m.rewardAddress ? decodeAddress(m.rewardAddress, spec.network) : pubkeyHash(pub),
        collateral: null,
        ownerPubkey: null,
        registeredHeight: 0,
      };
    }),
  );
}

/** Canonical binary form of the spec; it is the genesis coinbase payload, so the hash commits to it. */
function encodeSpec(spec: GenesisSpec, registry: readonly MasternodeEntry[]): Buffer {
  const w = new Writer(1024);
  w.string(spec.network, 16).u64n(spec.timestamp).u32(spec.blockTimeMs).string(spec.message, 4000);
  w.array(registry, MAX_GENESIS_MASTERNODES, (w, e) => {
    w.fixed(e.operatorPubkey, PUBKEY_LEN)
      .string(e.address, MAX_SERVICE_ADDRESS_LEN)
      .u8(e.tier)
      .fixed(e.rewardAddress, 20);
  });
  const out = w.toBuffer();
  if (out.length > MAX_TX_PAYLOAD) throw new GenesisError("genesis description is too large");
  return out;
}

/** Builds the genesis block deterministically from the spec. It has no producer and no signature. */
export function buildGenesisBlock(spec: GenesisSpec): Block {
  const registry = genesisRegistry(spec);
  const outputs: TxOut[] = spec.allocations.map((a) => ({
    amount: parseAmount(a.amount),
    address: decodeAddress(a.address, spec.network),
  }));
  const coinbase: Tx = {
    version: TX_VERSION,
    kind: TxKind.Coinbase,
    inputs: [],
    outputs,
    payload: encodeSpec(spec, registry),
  };
  const txs = [coinbase];
  return {
    header: {
      version: HEADER_VERSION,
      height: 0,
      prevHash: ZERO_HASH,
      merkleRoot: blockMerkleRoot(txs),
      mnRoot: registryRoot(registry),
      timestamp: spec.timestamp,
      round: 0,
      producer: Buffer.alloc(PUBKEY_LEN),
      signature: Buffer.alloc(64),
    },
    txs,
  };
}

export function genesisHash(spec: GenesisSpec): Buffer {
  return blockHash(buildGenesisBlock(spec).header);
}

/** Serialises a spec to the JSON file format (stable key order). */
export function genesisToJson(spec: GenesisSpec): string {
  return JSON.stringify(spec, null, 2) + "\n";
}

/** Builds a spec for a list of masternodes; used by `timed genesis` and the devnet. */
export function makeGenesisSpec(opts: {
  network: NetworkName;
  timestamp: number;
  blockTimeMs: number;
  masternodes: Array<{ operatorPubkey: Buffer; address: string; tier?: string; rewardAddress?: string }>;
  allocations?: Array<{ address: string; amount: bigint }>;
  message?: string;
}): GenesisSpec {
  return parseGenesisSpec({
    network: opts.network,
    timestamp: opts.timestamp,
    blockTimeMs: opts.blockTimeMs,
    masternodes: opts.masternodes.map((m) => ({
      operatorPubkey: m.operatorPubkey.toString("hex"),
      address: m.address,
      tier: m.tier ?? tierName(0),
      ...(m.rewardAddress ? { rewardAddress: m.rewardAddress } : {}),
    })),
    allocations: (opts.allocations ?? []).map((a) => ({
      address: a.address,
      amount: formatAmount(a.amount),
    })),
    message: opts.message ?? `TIME Coin ${opts.network} genesis`,
  });
}

export { addressFromPubkey };
