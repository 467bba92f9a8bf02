import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MemoryNetwork } from "../../../src/p2p/memoryTransport.js";
import type { Connection } from "../../../src/p2p/transport.js";
import { ManualClock } from "../../../src/util/clock.js";
import { SeededRandom } from "../../../src/util/random.js";

/** Lets every queued microtask run (deliveries are microtasks, never the wall clock). */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

async function pair(
  net: MemoryNetwork,
  a = "10.0.0.1",
  b = "10.0.0.2",
): Promise<{ client: Connection; server: Connection; got: { client: Buffer[]; server: Buffer[] } }> {
  let server: Connection | null = null;
  await net.transport(b).listen(b, 24200, (c) => (server = c));
  const client = await net.transport(a).dial(b, 24200, { timeoutMs: 1_000 });
  await settle();
  assert.ok(server);
  const got = { client: [] as Buffer[], server: [] as Buffer[] };
  client.onData((d) => got.client.push(d));
  (server as Connection).onData((d) => got.server.push(d));
  return { client, server: server as Connection, got };
}

describe("MemoryTransport: the contract of TCP, in memory, on the injected clock", () => {
  it("connects by host:port, names both ends, and delivers bytes in order, never re-entrantly", async () => {
    const net = new MemoryNetwork(new ManualClock());
    const { client, server, got } = await pair(net);
    assert.equal(client.remoteHost, "10.0.0.2");
    assert.equal(client.remotePort, 24200);
    assert.equal(server.remoteHost, "10.0.0.1");
    assert.equal(server.remotePort, client.localPort);
    assert.ok(client.write(Buffer.from("one")));
    assert.ok(client.write(Buffer.from("two")));
    assert.deepEqual(got.server, [], "nothing arrives inside write()");
    await settle();
    assert.equal(Buffer.concat(got.server).toString(), "onetwo");
    server.write(Buffer.from("back"));
    await settle();
    assert.equal(Buffer.concat(got.client).toString(), "back");
    assert.equal(net.connectionCount, 2);
  });

  it("refuses a dial to a port nobody listens on; a second listener on one port is refused", async () => {
    const net = new MemoryNetwork(new ManualClock());
    const t = net.transport("10.0.0.1");
    await assert.rejects(t.dial("10.0.0.9", 1, { timeoutMs: 1_000 }), /ECONNREFUSED 10\.0\.0\.9:1/);
    const l = await t.listen("10.0.0.1", 0, () => undefined);
    assert.ok(l.port >= 40_000);
    await assert.rejects(
      t.listen("10.0.0.1", l.port, () => undefined),
      /EADDRINUSE/,
    );
    await l.close();
    await t.listen("10.0.0.1", l.port, () => undefined);
  });

  it("a link that is down holds bytes and lets dials time out on the clock; healed, it delivers the burst", async () => {
    const clock = new ManualClock();
    const net = new MemoryNetwork(clock);
    const { client, got } = await pair(net);
    net.partition([["10.0.0.1"], ["10.0.0.2"]]);
    for (let i = 0; i < 5; i++) client.write(Buffer.from([i]));
    await settle();
    clock.advance(60_000);
    await settle();
    assert.deepEqual(got.server, [], "held while the link is down");
    assert.equal(client.pendingBytes, 5);
    // A new dial across the dead link times out after its timeout, on the clock.
    let failed: unknown = null;
    const dial = net
      .transport("10.0.0.1")
      .dial("10.0.0.2", 24200, { timeoutMs: 3_000 })
      .catch((e: unknown) => (failed = e));
    await settle();
    clock.advance(2_999);
    await settle();
    assert.equal(failed, null);
    clock.advance(1);
    await dial;
    assert.match(String(failed), /timed out after 3000 ms/);
    net.heal();
    await settle();
    assert.deepEqual([...Buffer.concat(got.server)], [0, 1, 2, 3, 4], "the whole burst at once, in order");
    assert.equal(client.pendingBytes, 0);
  });

  it("pause holds what arrives; resume delivers it", async () => {
    const net = new MemoryNetwork(new ManualClock());
    const { client, server, got } = await pair(net);
    server.pause();
    client.write(Buffer.from("x"));
    await settle();
    assert.deepEqual(got.server, []);
    server.resume();
    await settle();
    assert.equal(Buffer.concat(got.server).toString(), "x");
  });

  it("backpressure: write() returns false above the high-water mark, onDrain once it is read; past the cap, destroyed", async () => {
    const net = new MemoryNetwork(new ManualClock(), { highWaterBytes: 10, maxBufferedBytes: 30 });
    const { client, server } = await pair(net);
    server.pause();
    let drained = 0;
    client.onDrain(() => drained++);
    assert.equal(client.write(Buffer.alloc(6)), true);
    assert.equal(client.write(Buffer.alloc(6)), false, "12 bytes in flight > 10");
    server.resume();
    await settle();
    assert.equal(drained, 1);
    server.pause();
    const closes: Array<Error | undefined> = [];
    client.onClose((e) => closes.push(e));
    server.onClose((e) => closes.push(e));
    for (let i = 0; i < 5; i++) client.write(Buffer.alloc(10));
    await settle();
    assert.equal(closes.length, 2, "both ends closed once the cap was passed");
    assert.match(String(closes[0]), /buffer over 30 bytes/);
    assert.equal(client.write(Buffer.alloc(1)), false);
    assert.equal(net.connectionCount, 0);
  });

  it("end() flushes, then closes both ends; destroy() closes both at once; onClose fires once", async () => {
    const clock = new ManualClock();
    const net = new MemoryNetwork(clock);
    const a = await pair(net);
    let closedA = 0;
    let closedB = 0;
    a.client.onClose(() => closedA++);
    a.server.onClose(() => closedB++);
    a.client.write(Buffer.from("last words"));
    a.client.end();
    await settle();
    assert.equal(Buffer.concat(a.got.server).toString(), "last words");
    assert.deepEqual([closedA, closedB], [1, 1]);
    a.client.destroy();
    await settle();
    assert.deepEqual([closedA, closedB], [1, 1]);
    // Over a dead link end() cannot flush: it gives up after 2 s, as TCP does.
    const b = await pair(net, "10.0.0.3", "10.0.0.4");
    let closed = 0;
    b.server.onClose(() => closed++);
    net.setLinkDown("10.0.0.3", "10.0.0.4", true);
    b.client.write(Buffer.from("lost"));
    b.client.end();
    await settle();
    assert.equal(closed, 0);
    clock.advance(2_000);
    await settle();
    assert.equal(closed, 1);
    assert.equal(net.connectionCount, 0);
  });

  it("a close is reported after end() or destroy() returns, as a socket's 'close' is", async () => {
    const net = new MemoryNetwork(new ManualClock());
    const { client, server } = await pair(net);
    const order: string[] = [];
    client.onClose(() => order.push("client closed"));
    server.onClose(() => order.push("server closed"));
    client.destroy();
    order.push("destroy returned");
    assert.equal(client.write(Buffer.from("x")), false, "no write after destroy");
    await settle();
    assert.deepEqual(order, ["destroy returned", "client closed", "server closed"]);
    // A callback added after the close was reported still hears of it, later too.
    let late = false;
    client.onClose(() => (late = true));
    assert.equal(late, false);
    await settle();
    assert.equal(late, true);
  });

  it("latency goes through the clock", async () => {
    const clock = new ManualClock();
    const net = new MemoryNetwork(clock, { latencyMs: 50 });
    const { client, got } = await pair(net);
    client.write(Buffer.from("hi"));
    await settle();
    assert.deepEqual(got.server, []);
    assert.equal(client.pendingBytes, 2);
    clock.advance(50);
    await settle();
    assert.equal(Buffer.concat(got.server).toString(), "hi");
  });
});

describe("MemoryTransport: the link model (latency, jitter, loss, bandwidth)", () => {
  const model = { latencyMs: 40, jitterMs: 30, loss: 0.2, bandwidthBytesPerS: 0 };

  it("jitter and loss never reorder one connection's bytes, and every byte arrives", async () => {
    const clock = new ManualClock(0);
    const net = new MemoryNetwork(clock, { link: () => model, random: new SeededRandom(5) });
    const { client, got } = await pair(net);
    const sent: string[] = [];
    for (let i = 0; i < 200; i++) {
      sent.push(`<${i}>`);
      client.write(Buffer.from(`<${i}>`));
      clock.advance(1);
      await settle();
    }
    for (let i = 0; i < 200 && Buffer.concat(got.server).length < sent.join("").length; i++) {
      clock.advance(100);
      await settle();
    }
    assert.equal(Buffer.concat(got.server).toString(), sent.join(""));
  });

  it("arrival is no earlier than the latency, and loss costs a retransmission timeout", () => {
    const clock = new ManualClock(0);
    const lossy = { latencyMs: 50, jitterMs: 0, loss: 1, bandwidthBytesPerS: 0 };
    const clean = { ...lossy, loss: 0 };
    let which = clean;
    const net = new MemoryNetwork(clock, { link: () => which, random: new SeededRandom(1) });
    assert.equal(net.deliveryTime("a", "b", 10, 0), 50);
    which = lossy;
    // Always lost: resent after 200, 400, … ms, up to the model's cap of 6 retransmissions.
    assert.equal(net.deliveryTime("a", "b", 10, 0), 50 + 200 + 400 + 800 + 1_600 + 3_200 + 6_400);
    assert.equal(net.deliveryTime("a", "b", 10, 99_999), 99_999, "never before the previous write");
  });

  it("bandwidth is shared by the link's connections and queues a burst", () => {
    const clock = new ManualClock(0);
    const slow = { latencyMs: 10, jitterMs: 0, loss: 0, bandwidthBytesPerS: 1_000 };
    const net = new MemoryNetwork(clock, { link: () => slow, random: new SeededRandom(1) });
    assert.equal(net.deliveryTime("a", "b", 500, 0), 510);
    assert.equal(net.deliveryTime("a", "b", 500, 0), 1_010, "the second write waits for the first");
    assert.equal(net.deliveryTime("b", "a", 500, 0), 510, "the other direction is free");
  });

  it("two connections on one link may overtake each other (TCP orders only within one)", async () => {
    const clock = new ManualClock(0);
    const rnd = new SeededRandom(11);
    const net = new MemoryNetwork(clock, {
      link: () => ({ latencyMs: 5, jitterMs: 100, loss: 0, bandwidthBytesPerS: 0 }),
      random: rnd,
    });
    const one = await pair(net, "10.0.0.1", "10.0.0.2");
    let server2: Connection | null = null;
    await net.transport("10.0.0.2").listen("10.0.0.2", 24300, (c) => (server2 = c));
    const client2 = await net.transport("10.0.0.1").dial("10.0.0.2", 24300, { timeoutMs: 1_000 });
    await settle();
    const arrivals: string[] = [];
    one.server.onData(() => arrivals.push("one"));
    (server2 as unknown as Connection).onData(() => arrivals.push("two"));
    let overtaken = false;
    for (let i = 0; i < 50 && !overtaken; i++) {
      arrivals.length = 0;
      one.client.write(Buffer.from("x"));
      client2.write(Buffer.from("y"));
      clock.advance(200);
      await settle();
      overtaken = arrivals[0] === "two";
    }
    assert.ok(overtaken, "in 50 tries the second connection's write never arrived first");
  });

  it("dropHost resets every connection of a crashed host and closes its listeners", async () => {
    const net = new MemoryNetwork(new ManualClock());
    const { client } = await pair(net);
    let closed = false;
    client.onClose(() => (closed = true));
    net.dropHost("10.0.0.2");
    await settle();
    assert.ok(closed);
    await assert.rejects(
      net.transport("10.0.0.1").dial("10.0.0.2", 24200, { timeoutMs: 1_000 }),
      /ECONNREFUSED/,
    );
  });
});
