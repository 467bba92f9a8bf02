/**
 * Handshakes between real nodes (TimeNode, real LMDB, real TCP on loopback IPs), and the
 * refusals: wrong magic, wrong network, wrong genesis, wrong version, bad signature, and a
 * connection to self. Each refusal is checked three ways: the Goodbye reason the other side
 * receives, the node's reason counter (PeerManager.disconnects), and that no peer was added.
 *
 * This file uses 127.0.5.0/24.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { NETWORKS } from "../../src/primitives/params.js";
import { PROTOCOL_VERSION } from "../../src/p2p/constants.js";
import { MsgType } from "../../src/p2p/messages.js";
import { cleanupAll, Devnet, DEVNET, waitFor, type NodeHandle } from "./helpers/nodes.js";
import { destroyAllRawPeers, RawPeer } from "./helpers/rawPeer.js";

void describe("P2P handshakes (real nodes)", () => {
  let net: Devnet | undefined;
  let other: Devnet | undefined;
  let plain: Devnet | undefined;
  let a: NodeHandle;
  let b: NodeHandle;

  before(async () => {
    // A and B share a genesis; B has A as its bootstrap peer.
    net = await Devnet.create({
      name: "handshake",
      nodes: [{ host: "127.0.5.1" }, { host: "127.0.5.2", bootstrap: [0] }],
      phantomAddress: "127.0.5.250:1",
    });
    a = net.node(0);
    b = net.node(1);
  });

  after(async () => {
    destroyAllRawPeers();
    await cleanupAll(net, other, plain);
  });

  /** A raw test peer dialling A from `ip`. */
  const raw = (ip: string, extra: Partial<Parameters<typeof RawPeer.connect>[0]> = {}): Promise<RawPeer> =>
    RawPeer.connect({
      target: a.p2p,
      localHost: ip,
      magic: DEVNET.magic,
      network: "devnet",
      genesisHash: net!.genesisHash,
      ...extra,
    });

  /** A still has exactly one peer, B. */
  const onlyB = async (): Promise<void> => {
    assert.equal(await a.connectionCount(), 1, net!.describe());
    assert.deepEqual(
      (await a.peerInfo()).map((p) => p.nodeid),
      [b.nodeId],
    );
  };

  it("succeeds: both sides list each other, with the right inbound flags, on one connection", async () => {
    await waitFor(
      "A and B connected",
      async () => (await a.connectionCount()) === 1 && (await b.connectionCount()) === 1,
      { timeoutMs: 10_000, detail: () => net!.describe() },
    );
    const [pa] = await a.peerInfo();
    const [pb] = await b.peerInfo();
    assert.ok(pa && pb);
    // A sees B inbound (B dialled its bootstrap peer); B sees A outbound.
    assert.equal(pa.nodeid, b.nodeId);
    assert.equal(pa.inbound, true);
    assert.equal(pb.nodeid, a.nodeId);
    assert.equal(pb.inbound, false);
    // The same TCP connection seen from both ends, B's side bound to B's own IP.
    assert.equal(pb.addr, a.p2p);
    assert.equal(pa.addr, pb.addrlocal);
    assert.equal(pb.addr, pa.addrlocal);
    assert.match(pa.addr, /^127\.0\.5\.2:\d+$/);
    // A learned B's listen address from its Hello.
    assert.equal(pa.listenaddr, b.p2p);
    for (const p of [pa, pb]) {
      assert.equal(p.version, PROTOCOL_VERSION);
      assert.equal(p.transport, "chacha20-poly1305");
      assert.equal(p.masternode, false);
      assert.equal(p.height, 0);
      assert.equal(p.tiphash, net!.genesisHash.toString("hex"));
    }
    const infoA = await a.rpc.call<Record<string, unknown>>("getnetworkinfo");
    assert.equal(infoA.connections, 1);
    assert.equal(infoA.connections_in, 1);
    assert.equal(infoA.localaddress, a.p2p);
    const infoB = await b.rpc.call<Record<string, unknown>>("getnetworkinfo");
    assert.equal(infoB.connections_out, 1);
  });

  it("fails on a wrong magic (a peer speaking testnet frames): Goodbye wrong_magic", async () => {
    const before = a.disconnects("wrong_magic");
    const p = await raw("127.0.5.10");
    await p.waitHello();
    // A correct Hello, framed with the testnet magic.
    p.sendHello({}, NETWORKS.testnet.magic);
    assert.equal(await p.waitClosed(), "wrong_magic", `goodbye: ${JSON.stringify(p.goodbye)}`);
    await waitFor("A counted wrong_magic", () => a.disconnects("wrong_magic") === before + 1, {
      timeoutMs: 5_000,
      detail: () => a.describe(),
    });
    await onlyB();
  });

  it("fails on a wrong network name in Hello: Goodbye wrong_network", async () => {
    const before = a.disconnects("wrong_network");
    const p = await raw("127.0.5.11");
    p.sendHello({ network: "testnet" });
    assert.equal(await p.waitClosed(), "wrong_network");
    assert.equal(a.disconnects("wrong_network"), before + 1);
    await onlyB();
  });

  it("fails on a wrong genesis: a real node of another devnet is refused with wrong_genesis on both sides", async () => {
    other = await Devnet.create({
      name: "handshake-other",
      nodes: [{ host: "127.0.5.3" }],
      phantomAddress: "127.0.5.251:1",
    });
    const c = other.node(0);
    assert.notEqual(other.genesisHash.toString("hex"), net!.genesisHash.toString("hex"));
    const aBefore = a.disconnects("wrong_genesis");
    await c.rpc.call("addnode", [a.p2p, "onetry"]);
    await waitFor(
      "wrong_genesis counted by both nodes",
      () => a.disconnects("wrong_genesis") > aBefore && c.disconnects("wrong_genesis") > 0,
      { timeoutMs: 5_000, detail: () => `${a.describe()}\n${c.describe()}` },
    );
    assert.equal(await c.connectionCount(), 0);
    await onlyB();
    // The same refusal as a test peer sees it.
    const p = await raw("127.0.5.12", { genesisHash: other.genesisHash });
    p.sendHello();
    assert.equal(await p.waitClosed(), "wrong_genesis");
    await onlyB();
  });

  it("fails on an unsupported version (Hello version 0): Goodbye unsupported_version", async () => {
    const before = a.disconnects("unsupported_version");
    const p = await raw("127.0.5.13");
    p.sendHello({ version: 0 });
    assert.equal(await p.waitClosed(), "unsupported_version");
    assert.equal(a.disconnects("unsupported_version"), before + 1);
    assert.ok(p.remoteHello, "A sent its Hello first");
    assert.equal(p.received(MsgType.Auth).length, 0, "A did not authenticate to a peer it refused");
    await onlyB();
  });

  it("refuses a version-1 peer (a Hello without an ephemeral key) with a plaintext unsupported_version", async () => {
    const before = a.disconnects("unsupported_version");
    const p = await raw("127.0.5.15");
    p.sendHello({ version: 1, ephemeralKey: null, transport: 0 });
    // The reason is readable: no session key exists for a peer refused at this point.
    assert.equal(await p.waitClosed(), "unsupported_version");
    assert.match(p.goodbye?.message ?? "", /protocol version 1 < 3/);
    assert.equal(p.decodeError, null, "the Goodbye was a plaintext frame");
    assert.equal(a.disconnects("unsupported_version"), before + 1);
    assert.equal(p.received(MsgType.Auth).length, 0);
    await onlyB();
  });

  it("refuses a version-2 peer (finality votes without eras) before any vote is exchanged", async () => {
    const before = a.disconnects("unsupported_version");
    const p = await raw("127.0.5.17");
    p.sendHello({ version: 2 });
    assert.equal(await p.waitClosed(), "unsupported_version");
    assert.match(p.goodbye?.message ?? "", /protocol version 2 < 3/);
    assert.equal(a.disconnects("unsupported_version"), before + 1);
    assert.equal(p.received(MsgType.Auth).length, 0);
    await onlyB();
  });

  it("refuses a peer that offers a plaintext session (no downgrade): Goodbye transport_mismatch", async () => {
    const before = a.disconnects("transport_mismatch");
    const p = await raw("127.0.5.16", { plaintext: true });
    p.sendHello();
    assert.equal(await p.waitClosed(), "transport_mismatch");
    assert.match(p.goodbye?.message ?? "", /plaintext transport, this node requires encrypted/);
    assert.equal(a.disconnects("transport_mismatch"), before + 1);
    assert.equal(p.received(MsgType.Auth).length, 0, "no Auth to a peer that would read it in plaintext");
    assert.equal(
      a.n.peers.banManager.score("127.0.5.16"),
      0,
      "a mismatch is configuration, not misbehaviour",
    );
    await onlyB();
  });

  it("plaintext_transport: two devnet nodes that both set it connect in plaintext; a mixed pair refuses each other, unscored", async () => {
    plain = await Devnet.create({
      name: "handshake-plain",
      nodes: [
        { host: "127.0.5.20", network: { plaintext_transport: true } },
        { host: "127.0.5.21", bootstrap: [0], network: { plaintext_transport: true } },
      ],
      phantomAddress: "127.0.5.252:1",
    });
    const [p0, p1] = [plain.node(0), plain.node(1)];
    await waitFor("the plaintext pair connected", async () => (await p1.connectionCount()) === 1, {
      timeoutMs: 10_000,
      detail: () => plain!.describe(),
    });
    assert.deepEqual(
      (await p0.peerInfo()).map((p) => [p.nodeid, p.transport]),
      [[p1.nodeId, "plaintext"]],
    );
    // A (encrypted, and of another devnet) dials P0 (plaintext): the transport is checked before
    // the genesis, in plaintext, so both sides see transport_mismatch.
    const before = p0.disconnects("transport_mismatch");
    await a.rpc.call("addnode", [p0.p2p, "onetry"]);
    await waitFor(
      "both sides counted transport_mismatch",
      () => p0.disconnects("transport_mismatch") > before && a.disconnects("transport_mismatch") > 0,
      { timeoutMs: 5_000, detail: () => `${a.describe()}\n${p0.describe()}` },
    );
    assert.equal(a.n.peers.banManager.score("127.0.5.20"), 0);
    assert.equal(p0.n.peers.banManager.score("127.0.5.1"), 0);
    await onlyB();
  });

  it("fails on a bad signature (Auth with a corrupted signature): Goodbye bad_signature", async () => {
    const before = a.disconnects("bad_signature");
    const p = await raw("127.0.5.14");
    p.sendHello();
    await p.waitHello();
    p.sendAuth({ corrupt: true });
    assert.equal(await p.waitClosed(), "bad_signature");
    assert.equal(a.disconnects("bad_signature"), before + 1);
    // A's own Auth over our challenge was valid: only our side was wrong.
    assert.equal(p.remoteAuthOk, true);
    assert.equal(p.received(MsgType.Ping).length, 0, "A never treated it as a peer");
    await onlyB();
    // The same peer, signing correctly from the same IP, is accepted: the refusal was the signature.
    const good = await raw("127.0.5.14");
    await good.handshake();
    await waitFor("A lists the honest test peer", async () => (await a.connectionCount()) === 2);
    good.destroy();
    await waitFor("A drops the closed test peer", async () => (await a.connectionCount()) === 1);
  });

  it("fails on a connection to self (addnode own address): self_connection, and no peer", async () => {
    const before = a.disconnects("self_connection");
    await a.rpc.call("addnode", [a.p2p, "onetry"]);
    await waitFor("A counted self_connection", () => a.disconnects("self_connection") > before, {
      timeoutMs: 5_000,
      detail: () => a.describe(),
    });
    await waitFor("no handshake left", () => a.n.peers.handshakingCount === 0, { timeoutMs: 5_000 });
    await onlyB();
    assert.ok(!a.peerIds().includes(a.nodeId));
  });
});
