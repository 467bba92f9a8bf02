// Shared helpers for the masternode liveness tests: registries, keys and signed evidence.
import { pubkeyHash } from "../../../src/crypto/address.js";
import { KeyPair } from "../../../src/crypto/ed25519.js";
import { sha256 } from "../../../src/crypto/hash.js";
import { sortRegistry, type MasternodeEntry, type Registry } from "../../../src/consensus/registry.js";
import { Tier } from "../../../src/consensus/tier.js";
import { createMemoryLogger } from "../../../src/logging/index.js";
import { MasternodeLiveness, type LivenessOptions } from "../../../src/masternode/liveness.js";
import { signHeartbeat } from "../../../src/masternode/livenessMessages.js";
import type { Heartbeat, Message } from "../../../src/p2p/messages.js";
import { inventoryKey } from "../../../src/p2p/inventory.js";
import { ManualClock, type Clock } from "../../../src/util/clock.js";

/** Deterministic operator keys. */
export function opKey(tag: string, i: number): KeyPair {
  return KeyPair.fromSeed(sha256(Buffer.from(`operator/${tag}/${i}`)));
}

export function opKeys(tag: string, n: number): KeyPair[] {
  return Array.from({ length: n }, (_, i) => opKey(tag, i));
}

export function entryFor(key: KeyPair, i: number, tier: Tier = Tier.Free): MasternodeEntry {
  return {
    operatorPubkey: key.publicKey,
    address: `127.0.1.${i + 1}:24200`,
    tier,
    rewardAddress: pubkeyHash(key.publicKey),
    collateral: null,
    ownerPubkey: null,
    registeredHeight: i,
  };
}

/** A registry (sorted by operator key, as the chain keeps it) of these keys. */
export function registryOf(keys: KeyPair[]): Registry {
  return sortRegistry(keys.map((k, i) => entryFor(k, i, (i % 4) as Tier)));
}

/** Window 5 s, drift 2 s, announcements usable for 90 s: the devnet's figures. */
export const TEST_OPTS: LivenessOptions = {
  windowMs: 5_000,
  maxClockDriftMs: 2_000,
  announceMaxAgeMs: 90_000,
};

export interface LivenessRig {
  clock: ManualClock;
  liveness: MasternodeLiveness;
  /** Replace the registry the liveness view reads. */
  setRegistry(r: Registry): void;
}

export function livenessRig(
  keys: KeyPair[],
  self: KeyPair | null = null,
  opts: LivenessOptions = TEST_OPTS,
  clock: ManualClock = new ManualClock(),
): LivenessRig {
  let registry = registryOf(keys);
  const liveness = new MasternodeLiveness(opts, {
    clock,
    logger: createMemoryLogger({ level: "debug" }),
    registry: () => registry,
    selfOperator: self?.publicKey ?? null,
  });
  return { clock, liveness, setRegistry: (r) => (registry = r) };
}

const TIP = sha256(Buffer.from("tip"));

/** A heartbeat signed by `key` at the clock's time (or `over.timestamp`), seq = timestamp by default. */
export function heartbeat(key: KeyPair, clock: Clock, over: Partial<Heartbeat> = {}): Heartbeat {
  const timestamp = over.timestamp ?? clock.now();
  return signHeartbeat(key, {
    seq: over.seq ?? timestamp,
    timestamp,
    height: over.height ?? 7,
    tipHash: over.tipHash ?? TIP,
  });
}

/** A stand-in for a ready Peer: records what is sent to it, and what it is known to have. */
export interface FakePeer {
  addr: string;
  nodeId: Buffer;
  nodeIdHex: string;
  operatorPubkey: Buffer | null;
  state: "ready" | "closed";
  sent: Message[];
  /** Requests made of it (GetMnList, …), which it never answers. */
  requested: Message[];
  known: Set<number>;
  send(m: Message): void;
  markKnown(h: Buffer | number): void;
  knows(h: Buffer | number): boolean;
  request(make: (reqId: number) => Message): Promise<never>;
}

export function fakePeer(i: number, operator: KeyPair | null = null): FakePeer {
  const nodeId = KeyPair.fromSeed(Buffer.alloc(32, 100 + i)).publicKey;
  return {
    addr: `127.0.5.${i}:1`,
    nodeId,
    nodeIdHex: nodeId.toString("hex"),
    operatorPubkey: operator?.publicKey ?? null,
    state: "ready",
    sent: [],
    requested: [],
    known: new Set(),
    send(m) {
      this.sent.push(m);
    },
    // Keyed as the real Peer keys its inventory (callers may pass the key itself).
    markKnown(h) {
      this.known.add(typeof h === "number" ? h : inventoryKey(h));
    },
    knows(h) {
      return this.known.has(typeof h === "number" ? h : inventoryKey(h));
    },
    request(make) {
      this.requested.push(make(this.requested.length + 1));
      return Promise.reject(new Error("fake peers serve no lists"));
    },
  };
}
