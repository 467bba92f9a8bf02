// Shared pieces of the sync unit tests: long chains built fast, an in-process peer that answers
// like BlockServer from a real Chain, and a SyncFns fake over several such peers.
import { encodeBlock, type Block } from "../../../src/primitives/block.js";
import type { Chain } from "../../../src/chain/chain.js";
import { BlockError } from "../../../src/primitives/errors.js";
import { ZERO_HASH } from "../../../src/crypto/hash.js";
import { createMemoryLogger, type MemoryLogger } from "../../../src/logging/index.js";
import { MsgType, type Message } from "../../../src/p2p/messages.js";
import type { Peer } from "../../../src/p2p/peer.js";
import { BlockServer } from "../../../src/relay/blockServer.js";
import { SyncError } from "../../../src/sync/errors.js";
import type { SyncFns } from "../../../src/sync/interface.js";
import type { BlockHeader } from "../../../src/primitives/block.js";

export { extend } from "../../helpers/chainBuild.js";

/** How a fake peer misbehaves (default: honest). */
export interface PeerBehaviour {
  /** Never answers: rejects with TIMEOUT. */
  silent?: boolean;
  /** Answers GetBlocks with NotFound. */
  notFound?: boolean;
  /** GetBlocks times out (headers and hashes are answered). */
  blocksTimeout?: boolean;
  /** Rejects GetBlocks with PEER_CLOSED (disconnected mid-batch). */
  closeOnBlocks?: boolean;
  /** Replaces the raw blocks it serves (garbage, tampered copies). */
  tamperBlocks?: (raws: Buffer[]) => Buffer[];
  /** Replaces its headers answers. */
  tamperHeaders?: (headers: BlockHeader[]) => BlockHeader[];
  /** Replaces its hashes answers. */
  tamperHashes?: (hashes: Buffer[]) => Buffer[];
  /** Never answers GetHashes, and never times out either (headers and blocks are answered). */
  hashesHang?: boolean;
  /** GetBlocks answers only once this settles (a download that makes no progress meanwhile). */
  blocksGate?: Promise<void>;
}

/** An in-process peer answering from a real Chain exactly as BlockServer does. */
export class FakePeer {
  readonly calls: Array<{ kind: "headers" | "blocks" | "hashes"; arg: number | Buffer[] | number[] }> = [];
  constructor(
    readonly id: string,
    public chain: Chain,
    public behaviour: PeerBehaviour = {},
  ) {}

  /** Sends `msg` through the real BlockServer and returns its answer. */
  private serve(msg: Message): Message {
    let answer: Message | null = null;
    const peer = { send: (m: Message) => void (answer = m), markKnown: () => undefined } as unknown as Peer;
    if (!new BlockServer(this.chain).handle(peer, msg) || answer === null)
      throw new Error("BlockServer did not answer");
    return answer;
  }

  getHeaders(locator: Buffer[], max: number): BlockHeader[] {
    this.calls.push({ kind: "headers", arg: locator.length });
    if (this.behaviour.silent) throw new SyncError("TIMEOUT", `${this.id} timed out`);
    const a = this.serve({ type: MsgType.GetHeaders, reqId: 1, locator, stopHash: ZERO_HASH, max });
    if (a.type !== MsgType.Headers) throw new Error("expected Headers");
    return this.behaviour.tamperHeaders ? this.behaviour.tamperHeaders(a.headers) : a.headers;
  }

  getBlocks(hashes: Buffer[]): Buffer[] {
    this.calls.push({ kind: "blocks", arg: hashes });
    if (this.behaviour.silent) throw new SyncError("TIMEOUT", `${this.id} timed out`);
    if (this.behaviour.blocksTimeout) throw new SyncError("TIMEOUT", `${this.id} timed out`);
    if (this.behaviour.closeOnBlocks) throw new SyncError("PEER_CLOSED", `${this.id} closed`);
    if (this.behaviour.notFound) throw new SyncError("NOT_FOUND", `${this.id} has none`);
    const a = this.serve({ type: MsgType.GetBlocks, reqId: 1, hashes });
    if (a.type === MsgType.NotFound) throw new SyncError("NOT_FOUND", a.message);
    if (a.type !== MsgType.Blocks) throw new Error("expected Blocks");
    return this.behaviour.tamperBlocks ? this.behaviour.tamperBlocks(a.blocks) : a.blocks;
  }

  getHashes(heights: number[]): Buffer[] {
    this.calls.push({ kind: "hashes", arg: heights });
    if (this.behaviour.silent) throw new SyncError("TIMEOUT", `${this.id} timed out`);
    const a = this.serve({ type: MsgType.GetHashes, reqId: 1, heights });
    if (a.type !== MsgType.Hashes) throw new Error("expected Hashes");
    return this.behaviour.tamperHashes ? this.behaviour.tamperHashes(a.hashes) : a.hashes;
  }

  count(kind: "headers" | "blocks" | "hashes"): number {
    return this.calls.filter((c) => c.kind === kind).length;
  }
}

/** SyncFns over fake peers (by id) and a real chain; records penalties. */
export function fakeFns(
  chain: Chain,
  peers: FakePeer[],
): SyncFns & { penalties: Array<{ id: string; score: number; reason: string }> } {
  const byId = (id: string): FakePeer => {
    const p = peers.find((x) => x.id === id);
    if (!p) throw new SyncError("PEER_CLOSED", `no peer ${id}`);
    return p;
  };
  const penalties: Array<{ id: string; score: number; reason: string }> = [];
  return {
    penalties,
    getHeaders: (id, locator, max) => later(() => byId(id).getHeaders(locator, max)),
    getBlocks: async (id, hashes) => {
      await peers.find((x) => x.id === id)?.behaviour.blocksGate;
      return later(() => byId(id).getBlocks(hashes));
    },
    getHashes: (id, heights) =>
      peers.find((x) => x.id === id)?.behaviour.hashesHang
        ? new Promise<Buffer[]>(() => undefined)
        : later(() => byId(id).getHashes(heights)),
    reportPeer: (id, score, reason) => void penalties.push({ id, score, reason }),
    processChainSegment: (items, stopAfter) => chain.processBlocks(items, stopAfter),
  };
}

/** Runs `f` as an asynchronous answer: a throw becomes a rejection, like a network reply. */
export function later<T>(f: () => T): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    setImmediate(() => {
      try {
        resolve(f());
      } catch (e) {
        reject(e as Error);
      }
    });
  });
}

export function memLogger(): MemoryLogger {
  return createMemoryLogger({ level: "debug" });
}

/** A block whose first transfer's signature is flipped: same hash, BAD_TX_SIGNATURE when applied. */
export function tamperTxSignature(raw: Buffer, decode: (b: Buffer) => Block): Buffer {
  const b = decode(raw);
  const tx = b.txs[1];
  if (!tx) throw new Error("block has no transfer to tamper with");
  tx.inputs[0]!.signature = Buffer.from(tx.inputs[0]!.signature);
  tx.inputs[0]!.signature[0] = tx.inputs[0]!.signature[0]! ^ 1;
  return encodeBlock(b);
}

export { BlockError };

// --- a coordinator over fake peers -------------------------------------------------------

import { Metrics } from "../../../src/metrics/metrics.js";
import { SyncCoordinator } from "../../../src/sync/syncCoordinator.js";
import type { SyncCoordinatorOptions } from "../../../src/sync/options.js";
import { PeerStateView } from "../../../src/sync/peerStateView.js";
import type { GenesisSpec } from "../../../src/consensus/genesis.js";
import type { KeyPair } from "../../../src/crypto/ed25519.js";
import { ChainHarness as Harness } from "../../helpers/chainFixture.js";

export interface BedPeer {
  id: string;
  /** The chain it serves (default: the bed's source chain). */
  chain?: Chain;
  behaviour?: PeerBehaviour;
  /** Reported height (default: its chain's height). */
  height?: number;
  /** Reported tip (default: its chain's tip). */
  tipHash?: Buffer;
  masternode?: boolean;
  whitelisted?: boolean;
  rttMs?: number;
}

/** A local chain (real, LMDB) with a coordinator whose peers are FakePeers; one ManualClock. */
export class SyncBed {
  readonly local: Harness;
  readonly view: PeerStateView;
  readonly metrics = new Metrics();
  readonly logger = memLogger();
  readonly peers: FakePeer[] = [];
  readonly fns: ReturnType<typeof fakeFns>;
  coordinator: SyncCoordinator;

  constructor(
    genesis: GenesisSpec,
    keys: KeyPair[],
    /** The clock must be past every block's timestamp (blocks from the future are refused). */
    now: number,
    private readonly opts: Partial<SyncCoordinatorOptions> = {},
  ) {
    this.local = new Harness(genesis, keys);
    this.local.clock.set(now);
    this.view = new PeerStateView({}, { clock: this.local.clock });
    this.fns = fakeFns(this.local.chain, this.peers);
    this.coordinator = this.makeCoordinator(opts);
  }

  /** What the coordinator's callerWaiting answers (an RPC caller waiting for the thread). */
  callerWaiting = false;

  makeCoordinator(opts: Partial<SyncCoordinatorOptions> = this.opts): SyncCoordinator {
    this.coordinator = new SyncCoordinator(
      { coordinatorIntervalMs: 1_000_000, syncThreshold: 5, maxSyncBatchSize: 100, ...opts },
      {
        chain: this.local.chain,
        view: this.view,
        clock: this.local.clock,
        logger: this.logger,
        metrics: this.metrics,
        fns: this.fns,
        callerWaiting: () => this.callerWaiting,
      },
    );
    return this.coordinator;
  }

  get chain(): Chain {
    return this.local.chain;
  }

  addPeer(p: BedPeer, source: Chain): FakePeer {
    const chain = p.chain ?? source;
    const fp = new FakePeer(p.id, chain, p.behaviour ?? {});
    this.peers.push(fp);
    this.view.update(p.id, {
      addr: `fake:${p.id}`,
      connected: true,
      height: p.height ?? chain.height,
      tipHash: p.tipHash ?? chain.tip.hash,
      masternode: p.masternode ?? false,
      whitelisted: p.whitelisted ?? false,
      rttMs: p.rttMs ?? 10,
    });
    return fp;
  }

  /** Imports raw blocks into the local chain (as if synced earlier). */
  importBlocks(blocks: Block[]): void {
    for (let i = 0; i < blocks.length; i += 500) {
      const r = this.local.chain.processBlocks(blocks.slice(i, i + 500).map((block) => ({ block })));
      if (r.error) throw r.error as Error;
    }
  }

  logged(fragment: string): boolean {
    return this.logger.records.some((r) => r.msg.includes(fragment));
  }

  /** A counter's or gauge's value summed over labels; for a histogram, its observation count. */
  async metric(name: string): Promise<number> {
    const values = (await this.metrics.registry.getSingleMetric(name)?.get())?.values ?? [];
    let sum = 0;
    for (const v of values) {
      const n = (v as { metricName?: string }).metricName;
      if (n === undefined || n === `${name}_count`) sum += v.value;
    }
    return sum;
  }

  async close(): Promise<void> {
    this.coordinator.stop();
    await this.local.close();
  }
}
