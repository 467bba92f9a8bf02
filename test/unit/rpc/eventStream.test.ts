/**
 * EventStream's bounds and sampling, with in-memory HTTP stand-ins and a manual clock: a client
 * that stops reading is dropped once its unread bytes pass 1 MiB (and counted), fast clients are
 * untouched; the number of clients is capped (503); sampled sources (bans, masternode liveness,
 * the sync state) report changes only, never what existed at start.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { IncomingMessage, ServerResponse } from "node:http";
import {
  EVENT_SAMPLE_MS,
  EventStream,
  MAX_CLIENT_BUFFER_BYTES,
  MAX_EVENT_CLIENTS,
  type EventSources,
} from "../../../src/rpc/eventStream.js";
import { TypedEmitter } from "../../../src/util/typedEmitter.js";
import { ManualClock } from "../../../src/util/clock.js";
import type { ChainEvents } from "../../../src/chain/chainReader.js";
import type { MempoolEvents } from "../../../src/mempool/types.js";
import type { PeerManagerEvents } from "../../../src/p2p/interface.js";
import type { BanEntry } from "../../../src/p2p/banManager.js";

/** A response that keeps what is written; `reading` false: nothing leaves its buffer. */
class FakeRes {
  status = 0;
  text = "";
  writableLength = 0;
  destroyed = false;
  ended = false;
  reading = true;
  writeHead(status: number): this {
    this.status = status;
    return this;
  }
  flushHeaders(): void {}
  write(s: string): boolean {
    this.text += s;
    if (!this.reading) this.writableLength += Buffer.byteLength(s);
    return this.reading;
  }
  end(s?: string): void {
    if (s) this.text += s;
    this.ended = true;
  }
  destroy(): void {
    this.destroyed = true;
  }
  on(): this {
    return this;
  }
}

const fakeReq = { on: () => undefined } as unknown as IncomingMessage;

function bed(): {
  stream: EventStream;
  chain: TypedEmitter<ChainEvents>;
  bans: BanEntry[];
  active: Set<string>;
  sync: { syncing: boolean; height: number; target: number | null; lead: string | null };
  clock: ManualClock;
  connect: () => FakeRes;
} {
  const chain = new TypedEmitter<ChainEvents>();
  const bans: BanEntry[] = [];
  const active = new Set<string>();
  const sync = { syncing: false, height: 5, target: null as number | null, lead: null as string | null };
  const clock = new ManualClock(1_000_000);
  const registry = ["aa", "bb"].map((k) => ({ operatorPubkey: Buffer.from(k.repeat(32), "hex") }));
  const src = {
    chain: { events: chain, getRegistry: () => registry },
    mempool: { events: new TypedEmitter<MempoolEvents>() },
    peers: { events: new TypedEmitter<PeerManagerEvents>(), listBanned: () => bans },
    liveness: { isActive: (k: Buffer) => active.has(k.toString("hex")) },
    sync: { status: () => sync },
    clock,
  } as unknown as EventSources;
  const stream = new EventStream(src);
  const connect = (): FakeRes => {
    const res = new FakeRes();
    stream.handle(fakeReq, res as unknown as ServerResponse);
    return res;
  };
  return { stream, chain, bans, active, sync, clock, connect };
}

const finalizedEvent = (height: number): ChainEvents["finalized"] =>
  ({
    checkpoint: { epoch: 2 * height, hash: Buffer.alloc(32, height) },
    certificate: {},
  }) as ChainEvents["finalized"];

describe("event stream", () => {
  it("a client that stops reading is dropped past 1 MiB unread, and counted; a reading one is not", () => {
    const { stream, chain, connect } = bed();
    stream.start();
    const fast = connect();
    const slow = connect();
    slow.reading = false;
    chain.emit("finalized", finalizedEvent(7));
    assert.match(fast.text, /^id: 1\nevent: finalized\ndata: \{"height":7,"hash":"0707/m);
    let n = 0;
    while (!slow.destroyed && n < 100_000) chain.emit("finalized", finalizedEvent(8 + (n++ % 100)));
    assert.ok(slow.destroyed, "the slow client is dropped");
    assert.ok(n * 100 > MAX_CLIENT_BUFFER_BYTES / 2, "only once its buffer was large");
    assert.equal(stream.dropped, 1);
    assert.equal(stream.clientCount, 1);
    assert.ok(!fast.destroyed);
    stream.stop();
    assert.ok(fast.ended, "stop ends the remaining streams");
  });

  it("at most MAX_EVENT_CLIENTS clients; one more is refused with 503", () => {
    const { stream, connect } = bed();
    stream.start();
    for (let i = 0; i < MAX_EVENT_CLIENTS; i++) assert.equal(connect().status, 200);
    const extra = connect();
    assert.equal(extra.status, 503);
    assert.match(extra.text, /too many event clients/);
    stream.stop();
  });

  it("sampled sources report changes only: a new ban, a masternode going active, a sync start, progress and end", () => {
    const { stream, bans, active, sync, clock, connect } = bed();
    bans.push({
      subject: "10.0.0.1",
      createdAt: 1,
      until: null,
      reason: "old",
      source: "manual",
    } as BanEntry);
    active.add("aa".repeat(32));
    stream.start();
    const res = connect();
    clock.advance(EVENT_SAMPLE_MS);
    assert.doesNotMatch(res.text, /event: (ban|masternode|sync)/, "what existed at start is not news");
    bans.push({
      subject: "10.0.0.2",
      createdAt: 2,
      until: 5,
      reason: "INVALID_DATA",
      source: "proof",
    } as unknown as BanEntry);
    active.add("bb".repeat(32));
    active.delete("aa".repeat(32));
    Object.assign(sync, { syncing: true, height: 5, target: 50, lead: "1.2.3.4:24200" });
    clock.advance(EVENT_SAMPLE_MS);
    sync.height = 20;
    clock.advance(EVENT_SAMPLE_MS);
    Object.assign(sync, { syncing: false, height: 50 });
    clock.advance(EVENT_SAMPLE_MS);
    const events = [...res.text.matchAll(/^event: (\w+)\ndata: (.*)$/gm)].map((m) => [
      m[1],
      JSON.parse(m[2]!),
    ]);
    assert.deepEqual(events, [
      ["ban", { subject: "10.0.0.2", until: 5, reason: "INVALID_DATA", source: "proof" }],
      ["masternode", { operator: "aa".repeat(32), state: "inactive" }],
      ["masternode", { operator: "bb".repeat(32), state: "active" }],
      ["sync", { state: "start", height: 5, target: 50, lead: "1.2.3.4:24200" }],
      ["sync", { state: "progress", height: 20, target: 50, lead: "1.2.3.4:24200" }],
      ["sync", { state: "done", height: 50, target: 50, lead: "1.2.3.4:24200" }],
    ]);
    stream.stop();
  });
});
