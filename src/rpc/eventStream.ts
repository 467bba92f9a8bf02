/**
 * The node's event stream (docs/OPERATIONS.md, "Event stream"): `GET /events` on the RPC
 * listener, as server-sent events, under the RPC's authentication (and the dashboard's own mount
 * under its session). Each event is `id: N`, `event: TYPE`, `data: JSON` (one line), blank line.
 * Types: block, reorg, finalized, tx, peer, ban, masternode, sync.
 *
 * Chain, mempool and peer events are pushed as they happen; bans, masternode liveness and the
 * sync state are sampled once a second and their changes pushed. Every client has a bounded
 * buffer: a client that reads too slowly to keep it under the cap is dropped, and the drop counted.
 * The number of clients is capped too.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Chain } from "../chain/chain.js";
import type { Mempool } from "../mempool/mempool.js";
import type { PeerManager } from "../p2p/peerManager.js";
import { goodbyeReasonName } from "../p2p/messages.js";
import type { Clock, TimerHandle } from "../util/clock.js";

/** Clients at once; a further one is refused with 503. */
export const MAX_EVENT_CLIENTS = 32;
/** Bytes an event client may have queued (unread) before it is dropped. */
export const MAX_CLIENT_BUFFER_BYTES = 1 << 20;
/** How often bans, masternode liveness and the sync state are sampled. */
export const EVENT_SAMPLE_MS = 1_000;
/** A comment line this often keeps idle connections (and proxies) open. */
export const EVENT_KEEPALIVE_MS = 15_000;

export type NodeEventType = "block" | "reorg" | "finalized" | "tx" | "peer" | "ban" | "masternode" | "sync";

/** What the stream reads; plain references it never changes. */
export interface EventSources {
  chain: Pick<Chain, "events" | "getRegistry">;
  mempool: Pick<Mempool, "events">;
  peers: Pick<PeerManager, "events" | "listBanned">;
  liveness: { isActive(pubkey: Buffer): boolean };
  sync: { status(): { syncing: boolean; height: number; target: number | null; lead: string | null } };
  clock: Clock;
}

interface Client {
  res: ServerResponse;
  queued: number;
}

export class EventStream {
  private readonly clients = new Set<Client>();
  private readonly unsubscribe: Array<() => void> = [];
  private sampler: TimerHandle | null = null;
  private keepalive: TimerHandle | null = null;
  private seq = 0;
  /** Clients dropped because their buffer passed MAX_CLIENT_BUFFER_BYTES. */
  dropped = 0;
  /** Events written, per type. */
  readonly sent: Record<NodeEventType, number> = {
    block: 0,
    reorg: 0,
    finalized: 0,
    tx: 0,
    peer: 0,
    ban: 0,
    masternode: 0,
    sync: 0,
  };
  // The last sample of each polled source.
  private bans = new Set<string>();
  private active = new Map<string, boolean>();
  private syncing = false;
  private lastProgressHeight = -1;

  constructor(private readonly src: EventSources) {}

  get clientCount(): number {
    return this.clients.size;
  }

  start(): void {
    const { chain, mempool, peers, clock } = this.src;
    this.unsubscribe.push(
      chain.events.on("blockConnected", ({ block, entry }) =>
        this.publish("block", {
          hash: entry.hash.toString("hex"),
          height: entry.height,
          time: Math.floor(entry.timestamp / 1000),
          round: entry.round,
          producer: entry.producer.toString("hex"),
          txs: block.txs.length,
        }),
      ),
      chain.events.on("reorg", (r) =>
        this.publish("reorg", {
          depth: r.depth,
          fork: { height: r.fork.height, hash: r.fork.hash.toString("hex") },
          oldtip: { height: r.oldTip.height, hash: r.oldTip.hash.toString("hex") },
          newtip: { height: r.newTip.height, hash: r.newTip.hash.toString("hex") },
        }),
      ),
      chain.events.on("finalized", ({ checkpoint }) =>
        this.publish("finalized", {
          height: Math.floor(checkpoint.epoch / 2),
          hash: checkpoint.hash.toString("hex"),
        }),
      ),
      mempool.events.on("txAdded", (e) =>
        this.publish("tx", { txid: e.txid.toString("hex"), fee: e.fee.toString(), kind: e.tx.kind }),
      ),
      peers.events.on("peerReady", (p) =>
        this.publish("peer", {
          action: "connect",
          addr: p.addr,
          nodeid: p.nodeIdHex,
          direction: p.direction,
          masternode: p.operatorPubkey !== null,
        }),
      ),
      peers.events.on("peerClosed", (e) =>
        this.publish("peer", {
          action: "disconnect",
          addr: e.peer.addr,
          nodeid: e.peer.nodeIdHex,
          reason: goodbyeReasonName(e.reason),
          byus: e.byUs,
        }),
      ),
    );
    // The first sample sets the baseline: what exists at start is not news.
    this.sample(false);
    this.sampler = clock.setInterval(() => this.sample(true), EVENT_SAMPLE_MS);
    this.keepalive = clock.setInterval(() => this.writeAll(": keepalive\n\n"), EVENT_KEEPALIVE_MS);
  }

  stop(): void {
    for (const u of this.unsubscribe.splice(0)) u();
    this.sampler?.cancel();
    this.keepalive?.cancel();
    this.sampler = this.keepalive = null;
    for (const c of this.clients) c.res.end();
    this.clients.clear();
  }

  /** The HTTP handler: `GET /events` (mounted behind the listener's authentication). */
  handle = (req: IncomingMessage, res: ServerResponse): void => {
    if (this.clients.size >= MAX_EVENT_CLIENTS) {
      res.writeHead(503, { "Content-Type": "text/plain" });
      res.end(`too many event clients (at most ${MAX_EVENT_CLIENTS})\n`);
      return;
    }
    res.writeHead(200, {
      "Content-Type": "text/event-stream",
      "Cache-Control": "no-cache",
      Connection: "keep-alive",
      "X-Accel-Buffering": "no",
    });
    res.flushHeaders();
    const client: Client = { res, queued: 0 };
    this.clients.add(client);
    res.on("drain", () => (client.queued = res.writableLength));
    const gone = (): void => void this.clients.delete(client);
    req.on("close", gone);
    res.on("close", gone);
    res.write(": TIME Coin node events\n\n");
  };

  private publish(type: NodeEventType, data: Record<string, unknown>): void {
    if (this.clients.size === 0) return;
    this.sent[type]++;
    this.writeAll(`id: ${++this.seq}\nevent: ${type}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  private writeAll(text: string): void {
    for (const c of this.clients) {
      c.res.write(text);
      c.queued = c.res.writableLength;
      if (c.queued > MAX_CLIENT_BUFFER_BYTES) {
        // Too slow to keep up: dropped, never allowed to grow the node's memory.
        this.dropped++;
        this.clients.delete(c);
        c.res.destroy();
      }
    }
  }

  /** Bans, masternode liveness and the sync state: their changes since the last sample. */
  private sample(emit: boolean): void {
    const { peers, chain, liveness, sync } = this.src;
    const bans = new Set<string>();
    for (const b of peers.listBanned()) {
      const key = `${b.subject}|${b.createdAt}`;
      bans.add(key);
      if (emit && !this.bans.has(key))
        this.publish("ban", { subject: b.subject, until: b.until, reason: b.reason, source: b.source });
    }
    this.bans = bans;
    const active = new Map<string, boolean>();
    for (const e of chain.getRegistry()) {
      const key = e.operatorPubkey.toString("hex");
      const now = liveness.isActive(e.operatorPubkey);
      active.set(key, now);
      const was = this.active.get(key);
      if (emit && was !== undefined && was !== now)
        this.publish("masternode", { operator: key, state: now ? "active" : "inactive" });
    }
    this.active = active;
    const s = sync.status();
    if (s.syncing !== this.syncing) {
      if (emit)
        this.publish("sync", {
          state: s.syncing ? "start" : "done",
          height: s.height,
          target: s.target,
          lead: s.lead,
        });
      this.syncing = s.syncing;
      this.lastProgressHeight = s.height;
    } else if (s.syncing && s.height !== this.lastProgressHeight) {
      if (emit) this.publish("sync", { state: "progress", height: s.height, target: s.target, lead: s.lead });
      this.lastProgressHeight = s.height;
    }
  }
}

export type { ServerResponse };
