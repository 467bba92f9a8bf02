import { Counter, Gauge, Histogram, collectDefaultMetrics, type Registry } from "prom-client";
import type { ChainReader } from "../chain/chainReader.js";
import { TxKind } from "../primitives/tx.js";
import { scheduledProducer } from "../consensus/schedule.js";
import type { MasternodeLiveness } from "../masternode/liveness.js";
import type { Mempool } from "../mempool/mempool.js";
import { goodbyeReasonName } from "../p2p/messages.js";
import type { PeerManager } from "../p2p/peerManager.js";
import { registerFinalityMetrics, type FinalityMetricsSources } from "./finalityMetrics.js";

/** What NodeMetrics reads. Plain references; it never changes any of them. */
export interface NodeMetricsSources {
  chain: ChainReader;
  peers: PeerManager;
  liveness: MasternodeLiveness;
  mempool: Mempool;
  /** This node's operator key, for blocks produced and missed; null for a full node. */
  operatorKey: Buffer | null;
  /** The chain's finality, the finality relay and the offence tally (finalityMetrics.ts). */
  finality: Omit<FinalityMetricsSources, "chain">;
}

/**
 * The operator metrics beyond the sync ones (issue 7): chain, finality, peers, disconnects and
 * bans, masternodes, production, mempool, RPC latency, and Node's own event-loop lag and heap.
 *
 * Gauges are read at scrape time (`collect`), so the hot paths pay nothing. Label sets are
 * bounded: directions and classes are fixed, disconnect reasons are the Goodbye codes, ban reasons
 * are the misbehaviour kinds, and RPC methods are only the registered ones.
 */
export class NodeMetrics {
  readonly rpcRequestDuration: Histogram<"method" | "result">;
  readonly blocksProduced: Counter;
  readonly blocksMissed: Counter;
  private readonly evidence: Counter<"state">;
  private readonly disconnects: Counter<"reason">;
  private readonly bans: Counter<"reason">;
  private readonly lastBans = new Map<string, number>();
  private readonly unsubscribe: Array<() => void> = [];

  constructor(
    registry: Registry,
    private readonly src: NodeMetricsSources,
  ) {
    const registers = [registry];
    // nodejs_eventloop_lag_seconds, nodejs_heap_size_used_bytes, process_* …
    collectDefaultMetrics({ register: registry });
    // These three defaults are gauges named *_total, which Prometheus conventions (and
    // `promtool check metrics`) reserve for counters; the handle and request counts are not needed.
    for (const name of [
      "nodejs_active_handles_total",
      "nodejs_active_requests_total",
      "nodejs_active_resources_total",
    ]) {
      registry.removeSingleMetric(name);
    }
    const { chain, peers, liveness, mempool } = src;
    new Gauge({
      name: "chain_height",
      help: "Height of the best chain's tip",
      registers,
      collect() {
        this.set(chain.height);
      },
    });
    new Gauge({
      name: "chain_tip_timestamp_seconds",
      help: "Timestamp of the tip block (seconds since the epoch)",
      registers,
      collect() {
        this.set(chain.tip.timestamp / 1000);
      },
    });
    registerFinalityMetrics(registry, { chain, ...src.finality });
    new Gauge({
      name: "chain_utxos",
      help: "Unspent outputs in the UTXO set",
      registers,
      collect() {
        this.set(chain.storage.getStats().count);
      },
    });
    new Gauge<"direction" | "class">({
      name: "p2p_peers",
      help: "Connected peers by direction and class (masternode = proved a registered operator key)",
      labelNames: ["direction", "class"],
      registers,
      collect() {
        const counts = new Map<string, number>();
        for (const d of ["inbound", "outbound"])
          for (const c of ["masternode", "regular"]) counts.set(`${d}|${c}`, 0);
        for (const p of peers.peerInfo()) {
          const k = `${p.inbound ? "inbound" : "outbound"}|${p.masternode ? "masternode" : "regular"}`;
          counts.set(k, (counts.get(k) ?? 0) + 1);
        }
        for (const [k, v] of counts) {
          const [direction, klass] = k.split("|") as [string, string];
          this.set({ direction, class: klass }, v);
        }
      },
    });
    new Gauge({
      name: "p2p_isolated",
      help: "1 while the node is cut off from every peer, else 0",
      registers,
      collect() {
        this.set(peers.isolation().isolated ? 1 : 0);
      },
    });
    new Gauge({
      name: "p2p_masternode_links",
      help: "Connected peers that proved a registered masternode's operator key",
      registers,
      collect() {
        this.set(peers.masternodeLinks());
      },
    });
    this.disconnects = new Counter({
      name: "p2p_disconnects_total",
      help: "Peer disconnections by reason (the Goodbye reason; see docs/OPERATIONS.md)",
      labelNames: ["reason"],
      registers,
    });
    this.unsubscribe.push(
      peers.events.on("peerClosed", (e) => this.disconnects.inc({ reason: goodbyeReasonName(e.reason) })),
    );
    const lastBans = this.lastBans;
    this.bans = new Counter({
      name: "p2p_bans_total",
      help: "Bans by reason (the offence kind: MALFORMED_FRAME, UNDECODABLE, PROTOCOL_VIOLATION, INVALID_DATA, REQUEST_FLOOD; or manual)",
      labelNames: ["reason"],
      registers,
      // The manager keeps running totals per reason; they become counter increments when this
      // counter itself is read, so a scrape shows every ban made before it. (Done in another
      // metric's collect, they showed one scrape late.)
      collect() {
        for (const [reason, total] of peers.bans) {
          const delta = total - (lastBans.get(reason) ?? 0);
          if (delta > 0) this.inc({ reason }, delta);
          lastBans.set(reason, total);
        }
      },
    });
    new Gauge({
      name: "p2p_banned",
      help: "Addresses and node ids currently banned",
      registers,
      collect() {
        this.set(peers.listBanned().length);
      },
    });
    new Gauge({
      name: "masternodes_active",
      help: "Registered masternodes with a heartbeat inside the liveness window (this node included)",
      registers,
      collect() {
        this.set(liveness.activeCount());
      },
    });
    new Gauge({
      name: "masternodes_registered",
      help: "Masternodes in the chain's registry at the tip",
      registers,
      collect() {
        this.set(chain.getRegistry().length);
      },
    });
    this.blocksProduced = new Counter({
      name: "blocks_produced_total",
      help: "Blocks this masternode produced that joined the main chain",
      registers,
    });
    this.blocksMissed = new Counter({
      name: "blocks_missed_total",
      help: "Slots this masternode was scheduled for that a fallback round filled instead",
      registers,
    });
    new Gauge({
      name: "mempool_transactions",
      help: "Transactions in the mempool",
      registers,
      collect() {
        this.set(mempool.size);
      },
    });
    new Gauge({
      name: "mempool_bytes",
      help: "Bytes of transactions in the mempool",
      registers,
      collect() {
        this.set(mempool.bytes);
      },
    });
    this.rpcRequestDuration = new Histogram({
      name: "rpc_request_duration_seconds",
      help: "JSON-RPC call latency by method and result (ok or error)",
      labelNames: ["method", "result"],
      buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers,
    });
    this.evidence = new Counter({
      name: "evidence_total",
      help: "Evidence against producers (two blocks for one slot) and finality voters (two votes that break a rule): state=seen when first recorded (found here or received), state=mined when a connected block carries it",
      labelNames: ["state"],
      registers,
    });
    this.evidence.inc({ state: "seen" }, 0);
    this.evidence.inc({ state: "mined" }, 0);
    this.unsubscribe.push(
      chain.events.on("blockConnected", ({ block, entry }) => {
        this.onBlock(entry.height, block.header.round, block.header.prevHash, block.header.producer);
        const mined = block.txs.filter(
          (t) => t.kind === TxKind.Evidence || t.kind === TxKind.VoteEvidence,
        ).length;
        if (mined > 0) this.evidence.inc({ state: "mined" }, mined);
      }),
      chain.events.on("evidence", () => this.evidence.inc({ state: "seen" })),
      chain.events.on("voteEvidence", () => this.evidence.inc({ state: "seen" })),
    );
  }

  /** Produced: our key made it. Missed: a fallback round filled a slot whose earlier round was ours. */
  private onBlock(height: number, round: number, prevHash: Buffer, producer: Buffer): void {
    const me = this.src.operatorKey;
    if (!me) return;
    if (producer.equals(me)) this.blocksProduced.inc();
    if (round === 0) return;
    const parent = this.src.chain.getIndex(prevHash);
    const registry = parent ? this.src.chain.registryAfter(parent) : undefined;
    if (!parent || !registry) return;
    const schedule = this.src.chain.scheduleForChild(parent);
    // At most one entry per registered masternode is ever checked (rounds wrap the registry).
    for (let r = 0; r < Math.min(round, registry.length); r++) {
      if (scheduledProducer(schedule, height, r, registry)?.operatorPubkey.equals(me)) {
        this.blocksMissed.inc();
        break;
      }
    }
  }

  stop(): void {
    for (const off of this.unsubscribe) off();
    this.unsubscribe.length = 0;
  }
}
