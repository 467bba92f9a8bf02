// Who gets a slot: netgroup limits on inbound peers and handshakes, outbound diversity, the
// masternode link floor and eviction. Connections come from any address (public ones included)
// through an in-memory listener, each driven by a real Peer on the other end of a pipe.
import assert from "node:assert/strict";
import { test } from "node:test";
import { KeyPair } from "../../../src/crypto/ed25519.js";
import { nullLogger } from "../../../src/logging/index.js";
import { GoodbyeReason } from "../../../src/p2p/messages.js";
import type { PeerManagerOptions } from "../../../src/p2p/options.js";
import { Peer } from "../../../src/p2p/peer.js";
import { PeerManager } from "../../../src/p2p/peerManager.js";
import type { Connection, Transport } from "../../../src/p2p/transport.js";
import { SystemClock } from "../../../src/util/clock.js";
import { CryptoRandom } from "../../../src/util/random.js";
import { FAST, makeLocal, waitFor } from "./harness.js";
import { pipe } from "./memoryPipe.js";

/** A transport whose listener the test feeds by hand, and whose dials hang until the test ends. */
class HandFedTransport implements Transport {
  onConnection: ((c: Connection) => void) | null = null;
  readonly dialled: string[] = [];
  listen(host: string, port: number, onConnection: (c: Connection) => void) {
    this.onConnection = onConnection;
    return Promise.resolve({ host, port: port || 24200, close: () => Promise.resolve() });
  }
  dial(host: string, port: number): Promise<Connection> {
    this.dialled.push(`${host}:${port}`);
    return new Promise<Connection>(() => undefined);
  }
}

interface Client {
  peer: Peer;
  closedWith: GoodbyeReason | null;
}

async function manager(
  opts: Partial<PeerManagerOptions>,
  registered: KeyPair[] = [],
): Promise<{ pm: PeerManager; transport: HandFedTransport }> {
  const transport = new HandFedTransport();
  const pm = new PeerManager(
    { ...FAST, listen: { host: "198.18.0.1", port: 24200 }, ...opts },
    {
      clock: new SystemClock(),
      random: new CryptoRandom(),
      logger: nullLogger,
      transport,
      local: makeLocal(KeyPair.generate()),
      isRegisteredMasternode: (pk) => registered.some((k) => k.publicKey.equals(pk)),
      registeredMasternodeCount: () => registered.length,
    },
  );
  await pm.start();
  return { pm, transport };
}

/** A client at `ip` connecting to the manager; it completes the handshake unless `silent`. */
function connectFrom(
  t: HandFedTransport,
  ip: string,
  o: { operatorKey?: KeyPair; silent?: boolean } = {},
): Client {
  const [server, client] = pipe("198.18.0.1", ip);
  const peer = new Peer(
    client,
    makeLocal(KeyPair.generate(), o.operatorKey ?? null),
    { direction: "outbound", pingIntervalMs: 60_000, rateLimits: {} },
    { clock: new SystemClock(), random: new CryptoRandom(), logger: nullLogger },
  );
  const c: Client = { peer, closedWith: null };
  peer.events.on("closed", (e) => (c.closedWith ??= e.reason));
  t.onConnection!(server);
  if (!o.silent) peer.start();
  return c;
}

const settled = (c: Client): boolean => c.peer.state !== "handshaking";

test("inbound netgroups: at most 2 ordinary peers per /24 and 4 per /16; local ranges, masternodes exempt", async () => {
  const op = KeyPair.generate();
  const { pm, transport } = await manager({ maxInboundPerNetgroup: 2 }, [op]);
  try {
    const a = ["203.0.113.1", "203.0.113.2", "203.0.113.3"].map((ip) => connectFrom(transport, ip));
    await waitFor(() => a.every(settled), "first /24 settled");
    assert.deepEqual(
      a.map((c) => c.peer.state),
      ["ready", "ready", "closed"],
    );
    assert.equal(a[2]!.closedWith, GoodbyeReason.TOO_MANY_FROM_NETGROUP);
    const b = ["203.0.114.1", "203.0.114.2", "203.0.115.1"].map((ip) => connectFrom(transport, ip));
    await waitFor(() => b.every(settled), "same /16 settled");
    assert.deepEqual(
      b.map((c) => c.peer.state),
      ["ready", "ready", "closed"],
      "the /16 holds 4 at most",
    );
    const other = connectFrom(transport, "198.51.100.7");
    const mn = connectFrom(transport, "203.0.113.9", { operatorKey: op });
    const locals = ["10.1.2.3", "10.1.2.4", "10.1.2.5"].map((ip) => connectFrom(transport, ip));
    await waitFor(() => [other, mn, ...locals].every(settled), "the rest settled");
    assert.equal(other.peer.state, "ready", "another /16 is not held back");
    assert.equal(mn.peer.state, "ready", "a registered masternode is exempt");
    assert.ok(
      locals.every((c) => c.peer.state === "ready"),
      "private addresses are not grouped",
    );
  } finally {
    await pm.stop();
  }
});

test("handshake slots: at most 4 per netgroup are held by connections that have not finished their handshake", async () => {
  const { pm, transport } = await manager({ maxHandshakingPerNetgroup: 4, maxHandshakingPerIp: 2 });
  try {
    const silent = ["203.0.113.10", "203.0.113.11", "203.0.113.12", "203.0.113.13", "203.0.113.14"].map(
      (ip) => connectFrom(transport, ip, { silent: true }),
    );
    await waitFor(() => (pm.disconnects.get("too_many_peers") ?? 0) >= 1, "the fifth turned away");
    assert.equal(pm.handshakingCount, 4);
    assert.ok(
      silent.slice(0, 4).every((c) => !c.peer.hello),
      "four hold their slots",
    );
    // The fifth silent connection was turned away at once (the client never started, so it saw
    // only the Goodbye); a legitimate client from elsewhere is served.
    const ok = connectFrom(transport, "198.51.100.20");
    await waitFor(() => settled(ok), "served");
    assert.equal(ok.peer.state, "ready");
  } finally {
    await pm.stop();
  }
});

test("masternode link floor: below it a masternode gets in over full slots; above it one evicts the newest ordinary inbound peer; an ordinary newcomer is refused", async () => {
  const ops = [KeyPair.generate(), KeyPair.generate(), KeyPair.generate()];
  const { pm, transport } = await manager(
    { maxInbound: 2, reservedMasternodeSlots: 0, masternodeLinkFloor: 1 },
    ops,
  );
  try {
    assert.equal(pm.masternodeLinkFloor(), 1);
    const o1 = connectFrom(transport, "10.0.0.1");
    await waitFor(() => settled(o1), "o1");
    const o2 = connectFrom(transport, "10.0.0.2");
    await waitFor(() => settled(o2), "o2");
    assert.equal(pm.connectionCounts().inbound, 2, "inbound full of ordinary peers");
    const mn1 = connectFrom(transport, "10.0.0.11", { operatorKey: ops[0]! });
    await waitFor(() => settled(mn1), "mn1");
    assert.equal(mn1.peer.state, "ready", "below the floor the limits stretch for a masternode");
    assert.equal(pm.connectionCounts().inbound, 3);
    assert.equal(pm.masternodeLinks(), 1);
    const mn2 = connectFrom(transport, "10.0.0.12", { operatorKey: ops[1]! });
    await waitFor(() => settled(mn2) && o2.peer.state === "closed", "mn2 in, o2 out");
    assert.equal(mn2.peer.state, "ready");
    assert.equal(o2.closedWith, GoodbyeReason.EVICTED, "the newest ordinary peer made room");
    assert.equal(o1.peer.state, "ready");
    const o3 = connectFrom(transport, "10.0.0.3");
    await waitFor(() => settled(o3), "o3");
    assert.equal(o3.closedWith, GoodbyeReason.TOO_MANY_PEERS, "an ordinary peer never evicts anyone");
    assert.equal(mn1.peer.state, "ready", "masternodes are never evicted");
    assert.equal(pm.masternodeLinks(), 2);
  } finally {
    await pm.stop();
  }
});

test("outbound diversity: at most 2 address-book dials per /16 at once; permanent targets exempt", async () => {
  const { pm, transport } = await manager({ maxOutboundPerNetgroup: 2, maxDialsPerTick: 8, maxOutbound: 25 });
  try {
    for (let i = 1; i <= 6; i++) pm.addressBook.add({ address: `203.0.113.${i}:24200`, source: "peers" });
    for (let i = 1; i <= 2; i++) pm.addressBook.add({ address: `198.51.100.${i}:24200`, source: "peers" });
    pm.setMasternodeAddresses(["203.0.114.1:24200", "203.0.114.2:24200", "203.0.114.3:24200"]);
    await waitFor(() => transport.dialled.length >= 7, "dials started", 3_000);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(
      transport.dialled.filter((a) => a.startsWith("203.0.113.")).length,
      2,
      "two per /16 from the address book",
    );
    assert.equal(
      transport.dialled.filter((a) => a.startsWith("203.0.114.")).length,
      3,
      "masternode targets are exempt, and do not count",
    );
    assert.equal(transport.dialled.filter((a) => a.startsWith("198.51.100.")).length, 2);
  } finally {
    await pm.stop();
  }
});
