/**
 * Masternode devnets for the end-to-end tests: real TimeNodes in this process (NodeHandle from
 * nodes.ts: own data directory with real LMDB, own loopback IP, JSON-RPC with the cookie), built
 * the way `timed devnet` builds them: one genesis listing the masternodes, node 0 the only
 * bootstrap peer, min_masternodes and short heartbeat, ping and block intervals in config.toml.
 *
 * Also here: a raw peer that serves crafted blocks (NewTip, then GetBlocks/GetHeaders answers),
 * block crafting for the invalid-block tests, and a production probe that records, for every
 * block a producer makes, how many active masternodes it saw when it decided to.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  blockHash,
  blockMerkleRoot,
  blockSigMessage,
  encodeBlock,
  type Block,
} from "../../../src/primitives/block.js";
import { buildBlock } from "../../../src/consensus/blockBuilder.js";
import {
  genesisHash,
  genesisToJson,
  makeGenesisSpec,
  type GenesisSpec,
} from "../../../src/consensus/genesis.js";
import type { Tx } from "../../../src/primitives/tx.js";
import { findByOperator } from "../../../src/consensus/registry.js";
import { currentRound, scheduledProducer, slotStart } from "../../../src/consensus/schedule.js";
import { KeyPair } from "../../../src/crypto/ed25519.js";
import { MasternodeLiveness } from "../../../src/masternode/liveness.js";
import { BlockProducer } from "../../../src/masternode/producer.js";
import { MsgType } from "../../../src/p2p/messages.js";
import {
  DEVNET,
  freePort,
  initTestNode,
  NodeHandle,
  sleep,
  startAllOrCleanup,
  stopAllAndRemove,
  waitFor,
} from "./nodes.js";
import { RawPeer } from "./rawPeer.js";

export interface MnNodeSpec {
  /** Loopback IP the node listens on, e.g. "127.0.70.1". */
  host: string;
  /** Runs a masternode (has an operator key). Default true. */
  masternode?: boolean;
  /** Listed in the genesis (only for masternodes). Default true; false = registers later on chain. */
  inGenesis?: boolean;
}

export interface MnDevnetOptions {
  /** Temp-dir prefix. */
  name: string;
  nodes: MnNodeSpec[];
  /** Block time in seconds (default 1). */
  blockTime?: number;
  /** [masternode] heartbeat_interval in seconds (default 0.5; the liveness window is 5 of these). */
  heartbeatInterval?: number;
  /** [network] ping_interval in seconds (default 0.2). */
  pingInterval?: number;
  /** [consensus] min_masternodes (default 3). */
  minMasternodes?: number;
  /** Start every node at once (default true). */
  start?: boolean;
}

/** A devnet of masternodes (and optionally full nodes); call cleanup() from `after`. */
export class MnDevnet {
  private constructor(
    readonly dir: string,
    readonly genesis: GenesisSpec,
    readonly nodes: NodeHandle[],
    readonly heartbeatIntervalMs: number,
  ) {}

  get genesisHash(): Buffer {
    return genesisHash(this.genesis);
  }

  node(i: number): NodeHandle {
    const n = this.nodes[i];
    if (!n) throw new Error(`no node ${i}`);
    return n;
  }

  /** The nodes that are running now. */
  running(): NodeHandle[] {
    return this.nodes.filter((n) => n.running);
  }

  /** The node whose operator key is `pubkey`. */
  byOperator(pubkey: Buffer): NodeHandle | undefined {
    return this.nodes.find((n) => n.operatorKey?.publicKey.equals(pubkey));
  }

  static async create(opts: MnDevnetOptions): Promise<MnDevnet> {
    const dir = mkdtempSync(join(tmpdir(), `timed-mn-${opts.name}-`));
    try {
      const blockTime = opts.blockTime ?? 1;
      const hb = opts.heartbeatInterval ?? 0.5;
      const ports = await Promise.all(opts.nodes.map((s) => freePort(s.host)));
      const addr = (i: number): string => `${opts.nodes[i]!.host}:${ports[i]!}`;
      const keys = opts.nodes.map((s) => ((s.masternode ?? true) ? KeyPair.generate() : null));
      const genesis = makeGenesisSpec({
        network: "devnet",
        timestamp: Date.now(),
        blockTimeMs: Math.round(blockTime * 1000),
        masternodes: keys.flatMap((k, i) =>
          k && (opts.nodes[i]!.inGenesis ?? true) ? [{ operatorPubkey: k.publicKey, address: addr(i) }] : [],
        ),
      });
      writeFileSync(join(dir, "genesis.json"), genesisToJson(genesis));
      const handles: NodeHandle[] = [];
      for (let i = 0; i < opts.nodes.length; i++) {
        handles.push(
          initTestNode({
            root: dir,
            index: i,
            host: opts.nodes[i]!.host,
            port: ports[i]!,
            genesis,
            operatorKey: keys[i] ?? null,
            set: {
              network: {
                // As `timed devnet`: node 0 is the only bootstrap peer; the rest is discovery.
                bootstrap_peers: i === 0 ? [] : [addr(0)],
                ping_interval: opts.pingInterval ?? 0.2,
              },
              masternode: { heartbeat_interval: hb },
              consensus: { min_masternodes: opts.minMasternodes ?? 3 },
              sync: { coordinator_interval: 1 },
            },
          }),
        );
      }
      const net = new MnDevnet(dir, genesis, handles, Math.round(hb * 1000));
      if (opts.start ?? true) await startAllOrCleanup(handles, () => net.cleanup());
      return net;
    } catch (e) {
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }

  /** Stops every running node and removes the directory; throws if a node failed to stop. */
  cleanup(): Promise<void> {
    return stopAllAndRemove(this.nodes, this.dir);
  }

  /** One line per node: height, tip, peers, active masternodes as it sees them, producer state. */
  describe(): string {
    return this.nodes
      .map((h) => {
        if (!h.node) return `${h.name}: stopped`;
        const n = h.node;
        return `${h.name} h=${n.chain.height} tip=${n.chain.tip.hash.toString("hex").slice(0, 12)} peers=${n.peers.peers().length} active=${n.liveness.activeCount()}/${n.chain.getRegistry().length} producer="${n.producer?.status.reason ?? "-"}"`;
      })
      .join("\n");
  }

  /** Waits until every running node has the same tip at height ≥ minHeight; returns that tip. */
  async waitAgree(
    minHeight: number,
    timeoutMs = 15_000,
    what = "all nodes to agree",
  ): Promise<{ hash: string; height: number }> {
    let tip = { hash: "", height: -1 };
    await waitFor(
      `${what} on one tip at height >= ${minHeight}`,
      () => {
        const nodes = this.running();
        const hashes = new Set(nodes.map((h) => h.n.chain.tip.hash.toString("hex")));
        const n0 = nodes[0]!.n.chain.tip;
        tip = { hash: n0.hash.toString("hex"), height: n0.height };
        return hashes.size === 1 && n0.height >= minHeight;
      },
      { timeoutMs: timeoutMs, detail: () => this.describe() },
    );
    return tip;
  }

  /** Waits until every running node has a full mesh: a ready peer for each other running node. */
  async waitMesh(timeoutMs = 15_000): Promise<void> {
    await waitFor(
      "a full mesh between the running nodes",
      () => {
        const nodes = this.running();
        return nodes.every((h) => {
          const ids = new Set(h.peerIds());
          return nodes.every((o) => o === h || ids.has(o.nodeId));
        });
      },
      { timeoutMs: timeoutMs, detail: () => this.describe(), stepMs: 5 },
    );
  }
}

/** masternodelist rows as the RPC returns them. */
export interface MnRow {
  pubkey: string;
  address: string;
  tier: string;
  status: "active" | "inactive";
  lastseen: number | null;
  seq: number | null;
}

export function masternodeList(h: NodeHandle): Promise<MnRow[]> {
  return h.rpc.call<MnRow[]>("masternodelist");
}

// --- the production probe -------------------------------------------------------------------

export interface ProductionRecord {
  producer: BlockProducer;
  /** Height of the block it made. */
  height: number;
  /** Active masternodes it saw when it decided to produce (the value its check used). */
  active: number;
  at: number;
}

/**
 * Records every block any BlockProducer in this process makes, with the activeCount() value its
 * min_masternodes check used in that same (synchronous) tick. It wraps the prototypes, so it
 * sees producers created later (restarted nodes) and blocks made inside node.start(); behaviour
 * is unchanged. Call restore() when done.
 */
export function probeProduction(): { records: ProductionRecord[]; restore: () => void } {
  const records: ProductionRecord[] = [];
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called with an explicit `this` below
  const activeCount = MasternodeLiveness.prototype.activeCount;
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called with an explicit `this` below
  const tick = BlockProducer.prototype.tick;
  let capturing = false;
  let seen: number | undefined;
  MasternodeLiveness.prototype.activeCount = function (this: MasternodeLiveness): number {
    const n = activeCount.call(this);
    if (capturing && seen === undefined) seen = n;
    return n;
  };
  BlockProducer.prototype.tick = function (this: BlockProducer): void {
    const before = this.blocksProduced;
    capturing = true;
    seen = undefined;
    try {
      tick.call(this);
    } finally {
      capturing = false;
    }
    if (this.blocksProduced > before) {
      const s = this.status;
      const height = s.state === "ready" ? s.nextHeight - 1 : -1;
      records.push({ producer: this, height, active: seen ?? -1, at: Date.now() });
    }
  };
  return {
    records,
    restore: () => {
      MasternodeLiveness.prototype.activeCount = activeCount;
      BlockProducer.prototype.tick = tick;
    },
  };
}

// --- crafted blocks and the raw peer that serves them ------------------------------------

export type BadBlockKind = "wrong-producer" | "bad-signature" | "wrong-split" | "future-slot";

/** The rule each crafted block must be rejected by. */
export const EXPECTED_CODE: Record<BadBlockKind, string> = {
  "wrong-producer": "WRONG_PRODUCER",
  "bad-signature": "BAD_PRODUCER_SIGNATURE",
  "wrong-split": "BAD_COINBASE_SPLIT",
  "future-slot": "TIME_TOO_FAR_IN_FUTURE",
};

/**
 * A block on `parentHash` (default: `node`'s tip) that breaks exactly one rule; every other rule
 * it can be checked by holds (it is signed, stamped inside its round's slot and not ahead of the
 * clock, unless that is the broken rule). `keyOf` gives the operator key of a registered
 * masternode (the test holds them all).
 * - wrong-split: round 0 at its slot start (the coinbase is only checked on a tip child, so
 *   offer it while the parent is the tip and before that slot has begun: see the test);
 * - wrong-producer, bad-signature: the round open now, stamped now;
 * - future-slot: 10 rounds after the one open now, stamped at that slot's start (far beyond the
 *   allowed drift), by the masternode scheduled for it.
 */
export function craftBadBlock(
  node: NodeHandle,
  kind: BadBlockKind,
  keyOf: (pubkey: Buffer) => KeyPair | undefined,
  parentHash: Buffer = node.n.chain.tip.hash,
): Block {
  const chain = node.n.chain;
  const parent = chain.getIndex(parentHash);
  const registry = parent ? chain.registryAfter(parent) : undefined;
  if (!parent || !registry) throw new Error(`craftBadBlock: ${node.name} lacks the parent or its registry`);
  const open = Math.max(0, currentRound(chain.params, parent.timestamp, Date.now()));
  const round = kind === "wrong-split" ? 0 : kind === "future-slot" ? open + 10 : open;
  const slot = slotStart(chain.params, parent.timestamp, round);
  const timestamp = kind === "wrong-split" || kind === "future-slot" ? slot : Math.max(Date.now(), slot);
  const scheduled = scheduledProducer(chain.scheduleForChild(parent), parent.height + 1, round, registry)!;
  let producerKey = keyOf(scheduled.operatorPubkey);
  if (kind === "wrong-producer") {
    const other = registry.find((e) => !e.operatorPubkey.equals(scheduled.operatorPubkey))!;
    producerKey = keyOf(other.operatorPubkey);
  }
  if (!producerKey || !findByOperator(registry, producerKey.publicKey)) {
    throw new Error("craftBadBlock: no key for a registered producer");
  }
  const block = buildBlock({
    parentHash: parent.hash,
    parentHeight: parent.height,
    registry,
    producer: producerKey,
    round,
    timestamp,
    txs: [],
    fees: 0n,
    eraProofInput: chain.finality.eraProofInputForChild(parent),
  });
  if (kind === "bad-signature") {
    const sig = Buffer.from(block.header.signature);
    sig[10] = sig[10]! ^ 0x01;
    block.header.signature = sig;
  } else if (kind === "wrong-split") {
    // Same total, one unit moved from one masternode's share to another's: only the split is wrong.
    const cb = block.txs[0]!;
    if (cb.outputs.length < 2) throw new Error("craftBadBlock: a split needs two outputs");
    const outputs = cb.outputs.map((o) => ({ ...o }));
    outputs[0]!.amount -= 1n;
    outputs[1]!.amount += 1n;
    const coinbase: Tx = { ...cb, outputs };
    block.txs = [coinbase, ...block.txs.slice(1)];
    block.header.merkleRoot = blockMerkleRoot(block.txs);
    block.header.signature = producerKey.sign(blockSigMessage(blockHash(block.header)));
  }
  return block;
}

/**
 * A raw test peer (own loopback IP) that completes a handshake and serves the blocks it offers:
 * it announces each with NewTip and answers GetBlocks with them; GetHeaders gets an empty
 * answer, so a node that tries to catch up from it stops at once.
 */
export class BlockServingPeer {
  private readonly blocks = new Map<string, Buffer>();
  private handled = 0;
  private readonly timer: NodeJS.Timeout;

  private constructor(readonly raw: RawPeer) {
    this.timer = setInterval(() => this.serve(), 2);
    this.timer.unref();
  }

  static async connect(target: NodeHandle, localHost: string, genesis: Buffer): Promise<BlockServingPeer> {
    const raw = await RawPeer.connect({
      target: target.p2p,
      localHost,
      magic: DEVNET.magic,
      network: "devnet",
      genesisHash: genesis,
      answerPings: true,
    });
    await raw.handshake();
    return new BlockServingPeer(raw);
  }

  get ip(): string {
    return this.raw.opts.localHost;
  }

  /** Announces the block; the node fetches it from us. Returns its hash. */
  offer(block: Block): Buffer {
    const hash = blockHash(block.header);
    this.blocks.set(hash.toString("hex"), encodeBlock(block));
    this.raw.send({ type: MsgType.NewTip, height: block.header.height, hash, header: block.header });
    return hash;
  }

  private serve(): void {
    const msgs = this.raw.messages;
    for (; this.handled < msgs.length; this.handled++) {
      const m = msgs[this.handled]!;
      if (m.type === MsgType.GetBlocks) {
        const blocks = m.hashes.flatMap((h) => {
          const b = this.blocks.get(h.toString("hex"));
          return b ? [b] : [];
        });
        this.raw.send({ type: MsgType.Blocks, reqId: m.reqId, blocks });
      } else if (m.type === MsgType.GetHeaders) {
        this.raw.send({ type: MsgType.Headers, reqId: m.reqId, headers: [] });
      }
    }
  }

  close(): void {
    clearInterval(this.timer);
    this.raw.destroy();
  }
}

/** Waits for `node`'s tip to change from what it is now; returns the new tip's height. */
export async function nextTip(h: NodeHandle, timeoutMs = 10_000): Promise<number> {
  const start = h.n.chain.tip.hash;
  await waitFor(`a new tip on ${h.name}`, () => !h.n.chain.tip.hash.equals(start), {
    timeoutMs: timeoutMs,
    detail: () => h.describe(),
    stepMs: 2,
  });
  return h.n.chain.height;
}

export { sleep, waitFor };
