import assert from "node:assert/strict";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import fc from "fast-check";
import { createMemoryLogger, nullLogger } from "../../../src/logging/index.js";
import { AddressBook, parseDialable, parseIpAddress } from "../../../src/p2p/addressBook.js";
import { ManualClock } from "../../../src/util/clock.js";

const ID = "ab".repeat(32);

function book(capacity = 5_000, file: string | null = null, clock = new ManualClock()): AddressBook {
  return new AddressBook({ capacity, file }, { clock, logger: nullLogger });
}

test("address book: accepts IP literals with a port, rejects everything else", () => {
  const good = [
    "127.0.0.1:24000",
    "10.1.2.3:1",
    "8.8.8.8:65535",
    "[::1]:24000",
    "[2001:db8::1]:9",
    "[::FFFF:10.0.0.1]:5",
  ];
  for (const a of good) assert.ok(parseDialable(a), a);
  assert.equal(parseDialable("[::ffff:10.0.0.1]:5")?.key, "10.0.0.1:5", "IPv4-mapped becomes IPv4");
  assert.equal(parseDialable("[2001:DB8::1]:9")?.key, "[2001:db8::1]:9");
  const bad = [
    "",
    "127.0.0.1",
    "127.0.0.1:0",
    "127.0.0.1:65536",
    "127.0.0.1:-1",
    "localhost:24000",
    "example.com:24000",
    "0.0.0.0:24000",
    "[::]:24000",
    "224.0.0.1:24000",
    "239.1.2.3:1",
    "255.255.255.255:1",
    "[ff02::1]:1",
    "::1:24000",
    "[fe80::1%eth0]:1",
    "01.2.3.4:5",
    "1.2.3.4:5 ",
    "1.2.3.4:5:6",
    "x".repeat(300),
  ];
  for (const a of bad) assert.equal(parseDialable(a), null, JSON.stringify(a));
  // Unspecified hosts parse (an inbound Hello may carry one) but are not dialable.
  assert.ok(parseIpAddress("0.0.0.0:24000"));

  const b = book();
  assert.ok(b.add({ address: "127.0.3.1:24000", nodeId: ID, source: "peers" }));
  assert.equal(b.add({ address: "0.0.0.0:24000", source: "peers" }), null);
  assert.equal(b.add({ address: "nonsense", source: "peers" }), null);
  assert.equal(b.size, 1);
  assert.equal(b.get("127.0.3.1:24000")?.nodeId, ID);
});

test("address book: never throws on arbitrary input", () => {
  const b = book(50);
  fc.assert(
    fc.property(fc.string({ maxLength: 80 }), fc.integer(), fc.double(), (address, services, lastSeen) => {
      b.add({ address, services, lastSeen, source: "peers" });
      assert.ok(b.size <= 50);
    }),
    { numRuns: 2_000 },
  );
});

test("address book: a first-hand node id is not overwritten second-hand; timestamps are clamped", () => {
  const clock = new ManualClock(1_000_000);
  const b = book(10, null, clock);
  b.add({ address: "127.0.3.2:1", nodeId: ID, source: "handshake" });
  b.add({ address: "127.0.3.2:1", nodeId: "cd".repeat(32), source: "peers", lastSeen: 9e15 });
  const e = b.get("127.0.3.2:1")!;
  assert.equal(e.nodeId, ID);
  assert.equal(e.lastSeen, clock.now(), "a future lastSeen is clamped to now");
  b.add({ address: "127.0.3.3:1", nodeId: Buffer.alloc(32), source: "peers" });
  assert.equal(b.get("127.0.3.3:1")?.nodeId, "", "an all-zero id means unknown");
});

test("address book: bounded; evicts most failures first, then the oldest", () => {
  const clock = new ManualClock(1_000_000);
  const b = book(5, null, clock);
  for (let i = 1; i <= 5; i++) {
    clock.advance(1_000);
    b.add({ address: `10.0.0.${i}:1`, source: "peers" });
  }
  b.markAttempt("10.0.0.4:1", 3, 0);
  clock.advance(1_000);
  b.add({ address: "10.0.0.6:1", source: "peers" });
  assert.equal(b.size, 5);
  assert.ok(!b.has("10.0.0.4:1"), "the entry with failures went first");
  clock.advance(1_000);
  b.add({ address: "10.0.0.7:1", source: "peers" });
  assert.ok(!b.has("10.0.0.1:1"), "then the oldest");
  // A stale newcomer does not push out fresher entries.
  assert.equal(b.add({ address: "10.0.0.8:1", source: "peers", lastSeen: 1 }), null);
  for (let i = 0; i < 1_000; i++) b.add({ address: `10.1.${i >> 8}.${i & 255}:2`, source: "peers" });
  assert.equal(b.size, 5);
  assert.deepEqual(b.good(10, 3).map((e) => e.address).length, 5);
});

test("address book: saved atomically, reloaded, and a corrupt file starts empty", async () => {
  const dir = await mkdtemp(join(tmpdir(), "addrbook-"));
  try {
    const file = join(dir, "peers.json");
    const clock = new ManualClock(5_000_000);
    const a = book(100, file, clock);
    a.add({ address: "127.0.3.4:24000", nodeId: ID, services: 3, source: "handshake" });
    a.add({ address: "[::1]:24001", source: "peers" });
    a.markAttempt("127.0.3.4:24000", 2, 123);
    a.markConnected("127.0.3.4:24000", { nodeId: ID, services: 3, masternode: true });
    assert.equal(a.get("127.0.3.4:24000")?.failures, 2, "a handshake alone does not clear failures");
    a.resetFailures("127.0.3.4:24000");
    assert.equal(a.get("127.0.3.4:24000")?.failures, 0);
    assert.ok(a.dirty);
    await a.save();
    assert.ok(!a.dirty);
    assert.deepEqual((await readdir(dir)).sort(), ["peers.json"], "no temporary file left behind");

    const b = book(100, file, clock);
    await b.load();
    assert.equal(b.size, 2);
    const e = b.get("127.0.3.4:24000")!;
    assert.equal(e.nodeId, ID);
    assert.equal(e.services, 3);
    assert.equal(e.masternode, true);
    assert.equal(e.lastSuccess, clock.now());

    // Invalid entries in the file are dropped, valid ones kept.
    await writeFile(
      file,
      JSON.stringify({
        version: 1,
        entries: [
          { address: "0.0.0.0:1" },
          { address: "host.example:1" },
          null,
          7,
          { address: "127.0.3.5:2", failures: -4, services: "x", lastSeen: 1e20 },
        ],
      }),
    );
    const c = book(100, file, clock);
    await c.load();
    assert.equal(c.size, 1);
    assert.equal(c.get("127.0.3.5:2")?.failures, 0);
    assert.equal(c.get("127.0.3.5:2")?.lastSeen, clock.now());

    // A corrupt file: warn, start empty, never throw.
    await writeFile(file, "\u0000\u0001 not json {");
    const logger = createMemoryLogger();
    const d = new AddressBook({ capacity: 100, file }, { clock, logger });
    await d.load();
    assert.equal(d.size, 0);
    assert.ok(logger.records.some((r) => r.level === "warn" && /corrupt/.test(r.msg)));

    // A file bigger than the book loads only up to capacity.
    const many = Array.from({ length: 50 }, (_, i) => ({ address: `10.2.0.${i + 1}:1` }));
    await writeFile(file, JSON.stringify({ version: 1, entries: many }));
    const f = book(10, file, clock);
    await f.load();
    assert.equal(f.size, 10);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
