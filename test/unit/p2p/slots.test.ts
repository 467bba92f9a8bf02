// Who gets a slot: netgroup limits on inbound peers and handshakes, outbound diversity, the
// masternode link floor and eviction. Connections come from any address (public ones included)
// over the virtual network, each driven by a real Peer on the dialling end.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { KeyPair } from "../../../src/crypto/ed25519.js";
import { nullLogger } from "../../../src/logging/index.js";
import { GoodbyeReason } from "../../../src/p2p/messages.js";
import type { PeerManagerOptions } from "../../../src/p2p/options.js";
import { Peer } from "../../../src/p2p/peer.js";
import type { PeerManager } from "../../../src/p2p/peerManager.js";
import { CountingTransport, FAST, makeLocal, testKey, VirtualNet } from "./harness.js";

/** The manager under test listens here. */
const HOST = "198.18.0.1";

interface Client {
  peer: Peer;
  closedWith: GoodbyeReason | null;
}

interface Rig {
  v: VirtualNet;
  pm: PeerManager;
  /** Every dial the manager made. */
  transport: CountingTransport;
  /** Clients made so far (each gets its own key). */
  clients: number;
}

async function manager(
  seed: number,
  opts: Partial<PeerManagerOptions>,
  registered: KeyPair[] = [],
): Promise<Rig> {
  const v = new VirtualNet(seed);
  let transport!: CountingTransport;
  const node = await v.startNode(HOST, opts, {
    isRegisteredMasternode: (pk) => registered.some((k) => k.publicKey.equals(pk)),
    registeredMasternodeCount: () => registered.length,
    transport: (inner) => (transport = new CountingTransport(inner, v.clock)),
  });
  return { v, pm: node.pm, transport, clients: 0 };
}

/** A client at `ip` connecting to the manager; it completes the handshake unless `silent`. */
async function connectFrom(
  rig: Rig,
  ip: string,
  o: { operatorKey?: KeyPair; silent?: boolean } = {},
): Promise<Client> {
  const conn = await rig.v.dial(ip, `${HOST}:24200`);
  const peer = new Peer(
    conn,
    makeLocal(testKey(`slots/client-${rig.clients++}`), o.operatorKey ?? null),
    { direction: "outbound", pingIntervalMs: 60_000, rateLimits: {} },
    { clock: rig.v.clock, random: rig.v.random(), logger: nullLogger },
  );
  const c: Client = { peer, closedWith: null };
  peer.events.on("closed", (e) => (c.closedWith ??= e.reason));
  if (!o.silent) peer.start();
  return c;
}

/** Clients from every one of `ips` at once. */
function connectAll(rig: Rig, ips: string[], o: { silent?: boolean } = {}): Promise<Client[]> {
  return Promise.all(ips.map((ip) => connectFrom(rig, ip, o)));
}

const settled = (c: Client): boolean => c.peer.state !== "handshaking";

test("inbound netgroups: at most 2 ordinary peers per /24 and 4 per /16; local ranges, masternodes exempt", async () => {
  const op = testKey("slots/netgroup-operator");
  const rig = await manager(501, { maxInboundPerNetgroup: 2 }, [op]);
  const { v, pm } = rig;
  try {
    const a = await connectAll(rig, ["203.0.113.1", "203.0.113.2", "203.0.113.3"]);
    await v.until(() => a.every(settled), "first /24 settled");
    assert.deepEqual(
      a.map((c) => c.peer.state),
      ["ready", "ready", "closed"],
      "the /24 holds 2 at most",
    );
    assert.equal(a[2]!.closedWith, GoodbyeReason.TOO_MANY_FROM_NETGROUP, "refused for its netgroup");
    const b = await connectAll(rig, ["203.0.114.1", "203.0.114.2", "203.0.115.1"]);
    await v.until(() => b.every(settled), "same /16 settled");
    assert.deepEqual(
      b.map((c) => c.peer.state),
      ["ready", "ready", "closed"],
      "the /16 holds 4 at most",
    );
    const other = await connectFrom(rig, "198.51.100.7");
    const mn = await connectFrom(rig, "203.0.113.9", { operatorKey: op });
    const locals = await connectAll(rig, ["10.1.2.3", "10.1.2.4", "10.1.2.5"]);
    await v.until(() => [other, mn, ...locals].every(settled), "the rest settled");
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
  const rig = await manager(502, { maxHandshakingPerNetgroup: 4, maxHandshakingPerIp: 2 });
  const { v, pm } = rig;
  try {
    const silent = await connectAll(
      rig,
      ["203.0.113.10", "203.0.113.11", "203.0.113.12", "203.0.113.13", "203.0.113.14"],
      { silent: true },
    );
    await v.until(() => (pm.disconnects.get("too_many_peers") ?? 0) >= 1, "the fifth turned away");
    assert.equal(pm.handshakingCount, 4, "four in the handshake");
    assert.ok(
      silent.slice(0, 4).every((c) => !c.peer.hello),
      "four hold their slots",
    );
    // The fifth silent connection was turned away at once (the client never started, so it saw
    // only the Goodbye); a legitimate client from elsewhere is served.
    const ok = await connectFrom(rig, "198.51.100.20");
    await v.until(() => settled(ok), "served");
    assert.equal(ok.peer.state, "ready", "a client from another netgroup completes its handshake");
  } finally {
    await pm.stop();
  }
});

test("masternode link floor: below it a masternode gets in over full slots; above it one evicts the newest ordinary inbound peer; an ordinary newcomer is refused", async () => {
  const ops = [0, 1, 2].map((i) => testKey(`slots/floor-operator-${i}`));
  const rig = await manager(503, { maxInbound: 2, reservedMasternodeSlots: 0, masternodeLinkFloor: 1 }, ops);
  const { v, pm } = rig;
  try {
    assert.equal(pm.masternodeLinkFloor(), 1, "the floor is 1");
    const o1 = await connectFrom(rig, "10.0.0.1");
    await v.until(() => settled(o1), "o1");
    const o2 = await connectFrom(rig, "10.0.0.2");
    await v.until(() => settled(o2), "o2");
    assert.equal(pm.connectionCounts().inbound, 2, "inbound full of ordinary peers");
    const mn1 = await connectFrom(rig, "10.0.0.11", { operatorKey: ops[0]! });
    await v.until(() => settled(mn1), "mn1");
    assert.equal(mn1.peer.state, "ready", "below the floor the limits stretch for a masternode");
    assert.equal(pm.connectionCounts().inbound, 3, "three inbound over two slots");
    assert.equal(pm.masternodeLinks(), 1, "one masternode link");
    const mn2 = await connectFrom(rig, "10.0.0.12", { operatorKey: ops[1]! });
    await v.until(() => settled(mn2) && o2.peer.state === "closed", "mn2 in, o2 out");
    assert.equal(mn2.peer.state, "ready", "mn2 is in");
    assert.equal(o2.closedWith, GoodbyeReason.EVICTED, "the newest ordinary peer made room");
    assert.equal(o1.peer.state, "ready", "the older ordinary peer stays");
    const o3 = await connectFrom(rig, "10.0.0.3");
    await v.until(() => settled(o3), "o3");
    assert.equal(o3.closedWith, GoodbyeReason.TOO_MANY_PEERS, "an ordinary peer never evicts anyone");
    assert.equal(mn1.peer.state, "ready", "masternodes are never evicted");
    assert.equal(pm.masternodeLinks(), 2, "two masternode links");
  } finally {
    await pm.stop();
  }
});

test("outbound diversity: at most 2 address-book dials per /16 at once; permanent targets exempt", async () => {
  // Every target is behind a dead link: a dial is never answered, and times out only after 60 s.
  const rig = await manager(504, {
    maxOutboundPerNetgroup: 2,
    maxDialsPerTick: 8,
    maxOutbound: 25,
    dialTimeoutMs: 60_000,
  });
  const { v, pm, transport } = rig;
  try {
    const book = [1, 2, 3, 4, 5, 6].map((i) => `203.0.113.${i}`).concat(["198.51.100.1", "198.51.100.2"]);
    const masternodes = ["203.0.114.1", "203.0.114.2", "203.0.114.3"];
    for (const ip of [...book, ...masternodes]) v.net.setLinkDown(HOST, ip, true);
    for (const ip of book) pm.addressBook.add({ address: `${ip}:24200`, source: "peers" });
    pm.setMasternodeAddresses(masternodes.map((ip) => `${ip}:24200`));
    await v.until(() => transport.dialled().length >= 7, "dials started", 3_000);
    // 10 dial intervals (100 ms), all inside the 60 s dial timeout: ten chances to go over.
    await v.advance(10 * FAST.dialIntervalMs);
    const dialled = transport.dialled();
    assert.equal(
      dialled.filter((a) => a.startsWith("203.0.113.")).length,
      2,
      "two per /16 from the address book",
    );
    assert.equal(
      dialled.filter((a) => a.startsWith("203.0.114.")).length,
      3,
      "masternode targets are exempt, and do not count",
    );
    assert.equal(dialled.filter((a) => a.startsWith("198.51.100.")).length, 2, "another /16 gets its two");
  } finally {
    await pm.stop();
  }
});

test("masternode targets are dialled in random order: nodes sharing one registry do not all dial the same few", async () => {
  // In registry order, every node dialled the same first masternodes, filled their ordinary
  // inbound slots and was refused in a herd.
  const masternodes = Array.from({ length: 20 }, (_, i) => `203.0.115.${i + 1}:24200`);
  const firstDials = new Set<string>();
  for (let seed = 601; seed < 607; seed++) {
    const rig = await manager(seed, {
      masternodesFillOutbound: true,
      maxOutbound: 2,
      maxDialsPerTick: 2,
      dialTimeoutMs: 60_000,
    });
    try {
      for (const a of masternodes) rig.v.net.setLinkDown(HOST, a.split(":")[0]!, true);
      rig.pm.setMasternodeAddresses(masternodes);
      await rig.v.until(() => rig.transport.dialled().length >= 2, "two masternode dials", 3_000);
      for (const a of rig.transport.dialled().slice(0, 2)) firstDials.add(a);
    } finally {
      await rig.pm.stop();
    }
  }
  // Six nodes, two dials each: in registry order that is 2 addresses; at random, nearly 12.
  assert.ok(firstDials.size >= 6, `first dials went to only ${firstDials.size} masternodes`);
});
