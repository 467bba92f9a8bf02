// Recovery on virtual time: the redial backoff starts over when connectivity comes back, and a
// node cut off from every peer says so.
import assert from "node:assert/strict";
import { test } from "node:test";
import { KeyPair } from "../../../src/crypto/ed25519.js";
import { createMemoryLogger } from "../../../src/logging/index.js";
import { Peer } from "../../../src/p2p/peer.js";
import { PeerManager } from "../../../src/p2p/peerManager.js";
import type { Connection, Transport } from "../../../src/p2p/transport.js";
import { ManualClock } from "../../../src/util/clock.js";
import { SeededRandom } from "../../../src/util/random.js";
import { makeLocal } from "./harness.js";
import { pipe } from "./memoryPipe.js";

/** Dials fail (a partition) and are recorded with their time; the listener is fed by hand. */
class PartitionedTransport implements Transport {
  onConnection: ((c: Connection) => void) | null = null;
  readonly dials: Array<{ key: string; at: number }> = [];
  constructor(private readonly clock: ManualClock) {}
  listen(host: string, port: number, onConnection: (c: Connection) => void) {
    this.onConnection = onConnection;
    return Promise.resolve({ host, port, close: () => Promise.resolve() });
  }
  dial(host: string, port: number): Promise<Connection> {
    this.dials.push({ key: `${host}:${port}`, at: this.clock.now() });
    return Promise.reject(new Error("no route to host"));
  }
  dialsOf(key: string): number[] {
    return this.dials.filter((d) => d.key === key).map((d) => d.at);
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

async function run(clock: ManualClock, ms: number): Promise<void> {
  for (let t = 0; t < ms; t += 250) {
    clock.advance(Math.min(250, ms - t));
    await settle();
  }
}

const B = "10.9.0.2:24200";
const C = "10.9.0.3:24200";

function make(clock: ManualClock) {
  const transport = new PartitionedTransport(clock);
  const logger = createMemoryLogger({ level: "info" });
  const pm = new PeerManager(
    {
      listen: { host: "10.9.0.1", port: 24200 },
      bootstrapPeers: [B, C],
      pingIntervalMs: 2_000,
      dialIntervalMs: 1_000,
    },
    { clock, random: new SeededRandom(11), logger, transport, local: makeLocal(KeyPair.generate()) },
  );
  return { pm, transport, logger };
}

test("backoff reset: an inbound contact after a quiet spell redials every target at once", async () => {
  const clock = new ManualClock();
  const { pm, transport } = make(clock);
  await pm.start();
  try {
    // Alone for a minute: B and C fail over and over, and their backoff grows (5 s doubling).
    await run(clock, 60_000);
    const before = transport.dialsOf(C);
    assert.ok(before.length >= 3 && before.length <= 5, `C dialled ${before.length} times in a minute`);
    const gap = before[before.length - 1]! - before[before.length - 2]!;
    assert.ok(gap >= 15_000, `the backoff had grown (${gap} ms)`);
    // The partition heals: B dials us. That is contact after a quiet spell.
    const [server, client] = pipe("10.9.0.1", "10.9.0.2");
    const b = new Peer(
      client,
      makeLocal(KeyPair.generate()),
      { direction: "outbound", pingIntervalMs: 2_000, rateLimits: {} },
      { clock, random: new SeededRandom(12), logger: createMemoryLogger() },
    );
    transport.onConnection!(server);
    b.start();
    const healedAt = clock.now();
    await run(clock, 1_500);
    assert.equal(pm.peers().length, 1, "B is connected");
    const after = transport.dialsOf(C).filter((t) => t >= healedAt);
    assert.ok(after.length >= 1, "C is redialled at once, not after its backoff");
    assert.ok(after[0]! - healedAt <= 1_100, `redialled ${after[0]! - healedAt} ms after the contact`);
  } finally {
    await pm.stop();
  }
});

test("backoff reset: contacts on a healthy network (no quiet spell) leave a dead address's backoff alone", async () => {
  const clock = new ManualClock();
  const { pm, transport } = make(clock);
  await pm.start();
  try {
    await run(clock, 60_000);
    // Inbound contacts every second: the network is fine, C is simply dead.
    const clients: Peer[] = [];
    const since = clock.now();
    for (let i = 0; i < 30; i++) {
      const [server, client] = pipe("10.9.0.1", `10.9.1.${i + 1}`);
      const p = new Peer(
        client,
        makeLocal(KeyPair.generate()),
        { direction: "outbound", pingIntervalMs: 2_000, rateLimits: {} },
        { clock, random: new SeededRandom(100 + i), logger: createMemoryLogger() },
      );
      transport.onConnection!(server);
      p.start();
      clients.push(p);
      await run(clock, 1_000);
    }
    const redials = transport.dialsOf(C).filter((t) => t >= since);
    // The first contact ended the quiet minute (one reset); after that the backoff (20 s, 40 s) holds.
    assert.ok(redials.length <= 3, `C dialled ${redials.length} times in 30 s of steady contacts`);
  } finally {
    await pm.stop();
  }
});

test("isolation: a node without peers says so in its status and logs, and says when it is back", async () => {
  const clock = new ManualClock();
  const { pm, transport, logger } = make(clock);
  await pm.start();
  try {
    assert.equal(pm.isolation().isolated, true, "no peer yet");
    await run(clock, 10_000);
    assert.ok(
      logger.records.some((r) => r.level === "warn" && r.msg === "Cut off from every peer"),
      "warned",
    );
    const [server, client] = pipe("10.9.0.1", "10.9.0.2");
    const b = new Peer(
      client,
      makeLocal(KeyPair.generate()),
      { direction: "outbound", pingIntervalMs: 2_000, rateLimits: {} },
      { clock, random: new SeededRandom(13), logger: createMemoryLogger() },
    );
    transport.onConnection!(server);
    b.start();
    await run(clock, 500);
    assert.deepEqual(pm.isolation(), { isolated: false, since: null });
    assert.ok(logger.records.some((r) => r.msg === "Connected again after being cut off from every peer"));
    b.close(14, "bye");
    await run(clock, 500);
    assert.equal(pm.isolation().isolated, true, "cut off again");
  } finally {
    await pm.stop();
  }
});
