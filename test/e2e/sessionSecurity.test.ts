/**
 * Attacks on the P2P session, against real nodes (TimeNode, real LMDB, real TCP on loopback).
 *
 * The impersonation: an attacker M opens a connection to the victim V claiming to be the
 * masternode X, which V whitelists by node id. M dials X itself, claiming to be V, with V's
 * challenge, and relays X's Auth back to V. Under protocol version 1 the Auth signed only the
 * challenge and the two node ids, so V accepted M as X: a masternode, whitelisted, with M's fake
 * height, and V closed its real link to X as a duplicate. Under version 2 every signature covers
 * the transcript hash of one connection (both Hellos, so both ephemeral keys), so:
 * - the relayed Auth is refused (bad_signature) and M is never listed;
 * - V's real link to X stays up, the same connection;
 * - M gains no masternode or whitelist privilege, and its fake height is never seen.
 * A relay that splices the two connections byte for byte fares no better: the transcripts (and so
 * the keys) differ, and each side drops the other's first record (bad_record).
 *
 * Then the record layer: a tampered, a replayed and a reordered record each close the link with
 * bad_record, which is counted and bans no one (anyone on the path can break a record).
 *
 * This file uses 127.0.130.0/24.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { parse, stringify } from "smol-toml";
import { readFileSync, writeFileSync } from "node:fs";
import { KeyPair } from "../../src/crypto/ed25519.js";
import { SERVICE_BLOCKS, SERVICE_MASTERNODE } from "../../src/p2p/constants.js";
import { encodeMessage, MsgType, type AuthMsg } from "../../src/p2p/messages.js";
import type { Peer } from "../../src/p2p/peer.js";
import { dataDirPaths } from "../../src/node/dataDir.js";
import { cleanupAll, Devnet, DEVNET, waitFor, type NodeHandle } from "./helpers/nodes.js";
import { destroyAllRawPeers, RawPeer } from "./helpers/rawPeer.js";

const M_IP = "127.0.130.66";

void describe("P2P session security (real nodes)", () => {
  let net: Devnet | undefined;
  let v: NodeHandle;
  let x: NodeHandle;
  let realLink: Peer;
  const sockets: Socket[] = [];

  before(async () => {
    net = await Devnet.create({
      name: "session",
      nodes: [{ host: "127.0.130.1" }, { host: "127.0.130.2", masternode: true }],
      phantomAddress: "127.0.130.250:1",
      start: false,
    });
    v = net.node(0);
    x = net.node(1);
    // V whitelists X by node id and dials it.
    const file = dataDirPaths(v.dir).config;
    const cfg = parse(readFileSync(file, "utf8")) as { network: Record<string, unknown> };
    cfg.network.whitelisted_peers = [x.nodeId];
    cfg.network.bootstrap_peers = [x.p2p];
    writeFileSync(file, stringify(cfg));
    await x.start();
    await v.start();
    await waitFor("V linked to X", () => v.n.peers.getPeer(x.nodeId)?.state === "ready", {
      timeoutMs: 10_000,
      detail: () => net!.describe(),
    });
    realLink = v.n.peers.getPeer(x.nodeId)!;
    const info = (await v.peerInfo()).find((p) => p.nodeid === x.nodeId);
    assert.ok(info?.masternode && info.whitelisted, "X is a whitelisted masternode to V");
  });

  after(async () => {
    destroyAllRawPeers();
    for (const s of sockets) s.destroy();
    await cleanupAll(net);
  });

  const rawTo = (n: NodeHandle, key?: KeyPair): Promise<RawPeer> =>
    RawPeer.connect({
      target: n.p2p,
      localHost: M_IP,
      magic: DEVNET.magic,
      network: "devnet",
      genesisHash: net!.genesisHash,
      answerPings: true,
      ...(key ? { key } : {}),
    });

  /** V still has its one real link to X, and nothing from M's address. */
  const realLinkIntact = async (what: string): Promise<void> => {
    assert.equal(v.n.peers.getPeer(x.nodeId), realLink, `${what}: V's link to X is the same connection`);
    assert.equal(realLink.state, "ready", `${what}: and it is up`);
    const infos = await v.peerInfo();
    assert.deepEqual(
      infos.map((p) => [p.nodeid, p.addr.split(":")[0]]),
      [[x.nodeId, x.host]],
      `${what}: V lists only X, at X's own address`,
    );
    assert.ok(!infos.some((p) => p.height === 5_000), `${what}: M's fake height is never seen`);
  };

  it("impersonation: X's Auth relayed by M to V is refused, the real link stays, M gains nothing", async () => {
    const before = v.disconnects("bad_signature");
    const mv = await rawTo(v);
    const mx = await rawTo(x);
    const vHello = await mv.waitHello();
    await mx.waitHello();
    // M to X: "I am V", with V's challenge, so that X signs what V will check.
    mx.sendHello({ nodeId: vHello.nodeId, challenge: vHello.challenge });
    await mx.waitFor(() => mx.received(MsgType.Auth).length > 0 || mx.closed, "X's Auth to M");
    const xAuth = mx.received(MsgType.Auth)[0] as AuthMsg | undefined;
    assert.ok(xAuth, `X sent M its Auth (${mx.goodbyeReason ?? "open"})`);
    assert.ok(xAuth.operator, "X's Auth carries its masternode proof");
    // M to V: "I am X", a masternode at height 5,000, then X's Auth, sealed in M's session with V.
    mv.sendHello({
      nodeId: Buffer.from(x.nodeId, "hex"),
      height: 5_000,
      services: SERVICE_BLOCKS | SERVICE_MASTERNODE,
    });
    mv.send(xAuth);
    assert.equal(await mv.waitClosed(), "bad_signature", "V refuses the relayed Auth");
    assert.equal(v.disconnects("bad_signature"), before + 1);
    assert.equal(mv.received(MsgType.Ping).length, 0, "V never treated M as a peer");
    await realLinkIntact("after the relayed Auth");
    assert.equal(v.n.peers.banManager.isBanned(M_IP), false);
    mx.destroy();
  });

  it("impersonation by splicing: M pipes a connection to V into one to X; each side drops the other's first record", async () => {
    const before = v.disconnects("bad_record");
    const xBefore = x.disconnects("bad_record");
    const dial = (n: NodeHandle): Promise<Socket> =>
      new Promise((resolve, reject) => {
        const s = connect({ host: n.host, port: n.port, localAddress: M_IP });
        sockets.push(s);
        s.once("connect", () => resolve(s));
        s.once("error", reject);
      });
    const [sv, sx] = await Promise.all([dial(v), dial(x)]);
    for (const s of [sv, sx]) s.on("error", () => undefined);
    sv.pipe(sx);
    sx.pipe(sv);
    await waitFor(
      "V and X both drop the spliced connection as bad_record",
      () => v.disconnects("bad_record") > before && x.disconnects("bad_record") > xBefore,
      { timeoutMs: 5_000, detail: () => `${v.describe()}\n${x.describe()}` },
    );
    await realLinkIntact("after the splice");
    assert.equal(v.n.peers.banManager.score(M_IP), 0, "a record that fails is nobody's proof");
  });

  it("a tampered record closes the link with bad_record, counted, and bans no one", async () => {
    const before = v.disconnects("bad_record");
    const p = await rawTo(v, KeyPair.generate());
    await p.handshake();
    const ping = {
      type: MsgType.Ping,
      nonce: 1,
      height: 0,
      tipHash: net!.genesisHash,
      timestamp: Date.now(),
    } as const;
    const record = Buffer.from(p.frameBytes(ping.type, encodeMessage(ping)));
    record[12] = record[12]! ^ 0x80; // one ciphertext bit
    p.write(record);
    assert.equal(await p.waitClosed(), "bad_record");
    assert.equal(v.disconnects("bad_record"), before + 1);
    assert.equal(v.n.peers.banManager.score(M_IP), 0);
    assert.equal(v.n.peers.banManager.isBanned(M_IP), false);
    await realLinkIntact("after the tampered record");
  });

  it("a replayed record, and two records out of order, each close the link with bad_record", async () => {
    const ping = (nonce: number) =>
      ({ type: MsgType.Ping, nonce, height: 0, tipHash: net!.genesisHash, timestamp: Date.now() }) as const;
    // Replay: the same record twice. The first is answered; the copy fails (its nonce is used).
    const before = v.disconnects("bad_record");
    const r = await rawTo(v, KeyPair.generate());
    await r.handshake();
    const first = r.frameBytes(MsgType.Ping, encodeMessage(ping(7)));
    r.write(first);
    await r.waitFor(
      () => r.received(MsgType.Pong).some((m) => m.type === MsgType.Pong && m.nonce === 7),
      "a Pong to the original",
    );
    r.write(first);
    assert.equal(await r.waitClosed(), "bad_record", "the replay is refused");
    assert.equal(r.received(MsgType.Pong).filter((m) => m.type === MsgType.Pong && m.nonce === 7).length, 1);
    // Reorder: records 1 and 2 written as 2, 1.
    const o = await rawTo(v, KeyPair.generate());
    await o.handshake();
    const one = o.frameBytes(MsgType.Ping, encodeMessage(ping(8)));
    const two = o.frameBytes(MsgType.Ping, encodeMessage(ping(9)));
    o.write(two);
    o.write(one);
    assert.equal(await o.waitClosed(), "bad_record", "the reordered records are refused");
    assert.ok(
      !o.received(MsgType.Pong).some((m) => m.type === MsgType.Pong && (m.nonce === 8 || m.nonce === 9)),
    );
    assert.equal(v.disconnects("bad_record"), before + 2);
    assert.equal(v.n.peers.banManager.score(M_IP), 0);
    await realLinkIntact("after the replay and the reorder");
  });
});
