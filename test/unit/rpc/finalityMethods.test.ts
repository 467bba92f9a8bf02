/**
 * Finality for operators, on a real chain (LMDB in a temporary folder) whose three genesis
 * masternodes vote through a real FinalityRelay (as a peer's FinalityVotes): getblockchaininfo,
 * getblock and getfinalitystatus through a real RpcServer on 127.0.0.1:0, the finality metrics
 * on a prom-client registry, the offence tally, and the dashboard's final height.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Registry } from "prom-client";
import {
  certificateError,
  signVote,
  type Certificate,
  type Checkpoint,
  type FinalityVote,
} from "../../../src/consensus/finality.js";
import type { KeyPair } from "../../../src/crypto/ed25519.js";
import { dashboardDepsFor, type DashboardNodeParts } from "../../../src/dashboard/nodeDeps.js";
import { createMemoryLogger, nullLogger } from "../../../src/logging/index.js";
import { registerFinalityMetrics } from "../../../src/metrics/finalityMetrics.js";
import { MsgType } from "../../../src/p2p/messages.js";
import type { Peer } from "../../../src/p2p/peer.js";
import { blockHash, type Block } from "../../../src/primitives/block.js";
import { FinalityRelay } from "../../../src/relay/finalityRelay.js";
import { registerChainMethods } from "../../../src/rpc/chainMethods.js";
import { RpcClient } from "../../../src/rpc/client.js";
import { finalityStatus, registerFinalityMethods } from "../../../src/rpc/finalityMethods.js";
import { RpcServer } from "../../../src/rpc/server.js";
import { SystemClock } from "../../../src/util/clock.js";
import { CryptoRandom } from "../../../src/util/random.js";
import { ChainHarness, testGenesis, testKeys } from "../../helpers/chainFixture.js";
import { extend } from "../../helpers/chainBuild.js";
import { ERA_BLOCKS, registryVoters } from "../../../src/consensus/committee.js";

const USER = "fin";
const PASSWORD = "rpc-test";
const HEX64 = /^[0-9a-f]{64}$/;
const mns = testKeys("finality-rpc", 3) as [KeyPair, KeyPair, KeyPair];
const genesis = testGenesis({ masternodes: mns });

interface CheckpointJson {
  epoch: number;
  hash: string;
}
interface CertificateJson {
  era: number;
  source: CheckpointJson;
  target: CheckpointJson;
  votes: Array<{ voter: string; signature: string }>;
}
interface BlockJson {
  hash: string;
  height: number;
  finalized: boolean;
  certificate: CertificateJson | null;
}
interface ChainInfo {
  blocks: number;
  genesishash: string;
  finalizedheight: number;
  finalizedhash: string;
}
interface FinalityStatus {
  finalized: { height: number; hash: string; epoch: number };
  justified: { height: number; hash: string; epoch: number };
  era: {
    number: number;
    anchorheight: number;
    endheight: number;
    voters: { count: number; weight: number; sampled: boolean } | null;
  };
  tip: number;
  lag: number;
  certificatevotes: number;
  votes: Record<string, number>;
  pendingvotes: number;
  offences: { count: number; recent: Array<{ offence: string; voter: string; time: number }> };
  voter: { lock: { maxsource: number; maxtarget: number }; signed: number } | null;
}

const hexOf = (b: Block): string => blockHash(b.header).toString("hex");

function certificateFromJson(c: CertificateJson): Certificate {
  const cp = (x: CheckpointJson): Checkpoint => ({ epoch: x.epoch, hash: Buffer.from(x.hash, "hex") });
  return {
    era: c.era,
    source: cp(c.source),
    target: cp(c.target),
    votes: c.votes.map((v) => ({
      voter: Buffer.from(v.voter, "hex"),
      signature: Buffer.from(v.signature, "hex"),
    })),
  };
}

describe("finality for operators (RPC, metrics, dashboard) on a chain with a final block", () => {
  let h: ChainHarness;
  let main: Block[];
  let relay: FinalityRelay;
  let server: RpcServer;
  let rpc: RpcClient;
  /** A peer as the relay sees it: it only marks what the peer knows. */
  const peer = { addr: "127.0.0.2:1", markKnown: () => undefined } as unknown as Peer;
  const voterView = { currentLock: { era: 0, maxSource: 6, maxTarget: 7 }, signed: 2 };

  /** The votes arrive from a peer, in one FinalityVotes message. */
  const fromPeer = (votes: FinalityVote[]): void =>
    relay.onVotes(peer, { type: MsgType.FinalityVotes, votes });

  /** Both rounds of votes on block `b` from `keys`: J -> (B, 2h), then (B, 2h) -> (B, 2h + 1). */
  function votesOn(b: Block, keys: readonly KeyPair[]): void {
    const hash = blockHash(b.header);
    const first: Checkpoint = { epoch: 2 * b.header.height, hash };
    const source = h.chain.finality.tracker.justifiedAncestor(hash);
    fromPeer(keys.map((k) => signVote(k, h.chain.genesisHash, source, first)));
    fromPeer(keys.map((k) => signVote(k, h.chain.genesisHash, first, { epoch: first.epoch + 1, hash })));
  }

  before(async () => {
    h = new ChainHarness(genesis, mns);
    main = extend(h, 5);
    relay = new FinalityRelay({
      chain: h.chain,
      network: { peers: () => [], misbehaving: () => undefined, broadcast: () => 0 },
      clock: h.clock,
      logger: nullLogger,
      isMasternode: false,
    });
    server = new RpcServer(
      { host: "127.0.0.1", port: 0, auth: { kind: "userpass", user: USER, password: PASSWORD } },
      { logger: createMemoryLogger({ level: "info" }), clock: new SystemClock(), random: new CryptoRandom() },
    );
    registerChainMethods(server, {
      chain: h.chain,
      finality: h.chain.finality,
      uptime: () => 0,
      requestStop: () => undefined,
    });
    registerFinalityMethods(server, {
      chain: h.chain,
      finality: h.chain.finality,
      relay,
      voter: voterView,
      offencesSeen: () => relay.offencesTotal,
    });
    const addr = await server.start();
    rpc = new RpcClient({ url: `http://${addr.host}:${addr.port}/`, user: USER, password: PASSWORD });
  });

  after(async () => {
    relay.stop();
    await server.stop();
    await h.close();
  });

  it("before any vote only the genesis is final, with no certificate", async () => {
    const g = h.chain.genesisHash.toString("hex");
    const info = await rpc.call<ChainInfo>("getblockchaininfo");
    assert.equal(info.finalizedheight, 0);
    assert.equal(info.finalizedhash, g);
    const [b0, b1] = await Promise.all([
      rpc.call<BlockJson>("getblock", [0]),
      rpc.call<BlockJson>("getblock", [1]),
    ]);
    assert.deepEqual([b0.finalized, b0.certificate], [true, null]);
    assert.deepEqual([b1.finalized, b1.certificate], [false, null]);
    const s = await rpc.call<FinalityStatus>("getfinalitystatus");
    assert.deepEqual(s.finalized, { height: 0, hash: g, epoch: 1 });
    assert.deepEqual(s.justified, { height: 0, hash: g, epoch: 1 });
    // Era 0, drawn at the genesis: its 3 masternodes vote whole (Free tier, weight 100 each).
    assert.deepEqual(s.era, {
      number: 0,
      anchorheight: 0,
      endheight: ERA_BLOCKS,
      voters: { count: 3, weight: 300, sampled: false },
    });
    assert.equal(s.tip, 5);
    assert.equal(s.lag, 5);
    assert.equal(s.certificatevotes, 0);
    assert.deepEqual(s.votes, {
      counted: 0,
      duplicate: 0,
      pending: 0,
      stale: 0,
      invalid: 0,
      unusable: 0,
      "not-voter": 0,
      sent: 0,
      certificatessent: 0,
    });
    assert.deepEqual(s.offences, { count: 0, recent: [] });
    assert.deepEqual(s.voter, { lock: { era: 0, maxsource: 6, maxtarget: 7 }, signed: 2 });
  });

  it("votes from a peer make block 3 final: getblockchaininfo, getblock and getfinalitystatus say so", async () => {
    votesOn(main[2]!, mns);
    assert.equal(h.chain.finality.finalizedHeight, 3, "the votes made block 3 final");
    const b3 = hexOf(main[2]!);

    const info = await rpc.call<ChainInfo>("getblockchaininfo");
    assert.equal(info.finalizedheight, 3);
    assert.equal(info.finalizedhash, b3);
    assert.equal(info.blocks, 5);

    const [final, byHash, verbose, below, above, genesisBlock] = await Promise.all([
      rpc.call<BlockJson>("getblock", [3]),
      rpc.call<BlockJson>("getblock", [b3]),
      rpc.call<BlockJson>("getblock", [3, 2]),
      rpc.call<BlockJson>("getblock", [2]),
      rpc.call<BlockJson>("getblock", [4]),
      rpc.call<BlockJson>("getblock", [0]),
    ]);
    // The last final block carries the certificate that made it final.
    for (const b of [final, byHash, verbose]) {
      assert.equal(b.finalized, true);
      assert.ok(b.certificate, "the last final block has its certificate");
      assert.deepEqual(b.certificate.source, { epoch: 6, hash: b3 });
      assert.deepEqual(b.certificate.target, { epoch: 7, hash: b3 });
    }
    const cert = final.certificate!;
    assert.deepEqual(
      cert.votes.map((v) => v.voter).sort(),
      mns.map((k) => k.publicKey.toString("hex")).sort(),
    );
    for (const v of cert.votes) assert.match(v.signature, /^[0-9a-f]{128}$/);
    // The JSON is the certificate itself: decoded, it verifies against block 3's registry.
    const registry = h.chain.registryAfter(h.chain.getIndex(blockHash(main[2]!.header))!)!;
    assert.equal(
      certificateError(h.chain.genesisHash, certificateFromJson(cert), registryVoters(registry)),
      null,
    );
    // Its ancestors are final too, without a certificate of their own; the block above is not.
    assert.deepEqual([below.finalized, below.certificate], [true, null]);
    assert.deepEqual([genesisBlock.finalized, genesisBlock.certificate], [true, null]);
    assert.deepEqual([above.finalized, above.certificate], [false, null]);

    const s = await rpc.call<FinalityStatus>("getfinalitystatus");
    assert.deepEqual(s.finalized, { height: 3, hash: b3, epoch: 6 });
    assert.deepEqual(s.justified, { height: 3, hash: b3, epoch: 7 });
    assert.equal(s.tip, 5);
    assert.equal(s.lag, 2);
    assert.equal(s.certificatevotes, 3);
    assert.equal(s.votes.counted, 6, "two rounds of three votes");
    assert.equal(s.pendingvotes, 0);
    assert.deepEqual(s.offences, { count: 0, recent: [] });
  });

  it("a double vote is an offence: counted and listed, and the vote for an unknown block is pending", async () => {
    const b3 = blockHash(main[2]!.header);
    const b4 = blockHash(main[3]!.header);
    const source: Checkpoint = { epoch: 7, hash: b3 };
    const good = signVote(mns[0], h.chain.genesisHash, source, { epoch: 8, hash: b4 });
    const twin = signVote(mns[0], h.chain.genesisHash, source, { epoch: 8, hash: Buffer.alloc(32, 0xab) });
    fromPeer([good, twin]);
    const s = await rpc.call<FinalityStatus>("getfinalitystatus");
    assert.equal(s.offences.count, 1);
    assert.equal(s.offences.recent.length, 1);
    const o = s.offences.recent[0]!;
    assert.equal(o.offence, "double");
    assert.equal(o.voter, mns[0].publicKey.toString("hex"));
    assert.ok(Number.isInteger(o.time) && o.time > 1_600_000_000, `epoch seconds (${o.time})`);
    assert.equal(s.votes.counted, 7);
    assert.equal(s.votes.pending, 1, "its target block is unknown");
    assert.equal(s.pendingvotes, 1);
    // Asking again does not count the same offence twice.
    assert.equal((await rpc.call<FinalityStatus>("getfinalitystatus")).offences.count, 1);
  });

  it("getfinalitystatus takes no parameters; a full node's voter is null", async () => {
    await assert.rejects(rpc.call("getfinalitystatus", [1]), (e: Error & { code?: number }) => {
      assert.equal(e.code, -32602);
      assert.match(e.message, /too many parameters: getfinalitystatus takes 0/);
      return true;
    });
    const s = finalityStatus({
      chain: h.chain,
      finality: h.chain.finality,
      relay,
      voter: null,
      offencesSeen: () => relay.offencesTotal,
    });
    assert.equal(s.voter, null);
    const help = await rpc.call<string>("help", ["getfinalitystatus"]);
    assert.match(help, /^getfinalitystatus\n/);
  });

  it("the metrics: final height, lag, votes by result and offences, as counters that follow the relay", async () => {
    const registry = new Registry();
    registerFinalityMetrics(registry, {
      chain: h.chain,
      finality: h.chain.finality,
      relay,
    });
    const value = (text: string, series: string): number => {
      const esc = series.replace(/[{}"]/g, (c) => `\\${c}`);
      const m = new RegExp(`^${esc} (\\S+)$`, "m").exec(text);
      assert.ok(m, `${series} in:\n${text}`);
      return Number(m[1]);
    };
    let text = await registry.metrics();
    for (const [name, type] of [
      ["chain_finalized_height", "gauge"],
      ["finality_lag_blocks", "gauge"],
      ["finality_votes_total", "counter"],
      ["finality_offences_total", "counter"],
    ])
      assert.match(text, new RegExp(`^# TYPE ${name} ${type}$`, "m"));
    assert.equal(value(text, "chain_finalized_height"), 3);
    assert.equal(value(text, "finality_lag_blocks"), 2);
    assert.equal(value(text, 'finality_votes_total{result="counted"}'), 7);
    assert.equal(value(text, 'finality_votes_total{result="pending"}'), 1);
    for (const r of ["duplicate", "stale", "invalid", "unusable", "not-voter"])
      assert.equal(value(text, `finality_votes_total{result="${r}"}`), 0, r);
    assert.equal(value(text, "finality_offences_total"), 1);

    // Block 4 becomes final (mns[0] voted its first round already): the next scrape follows.
    const b4 = blockHash(main[3]!.header);
    const first: Checkpoint = { epoch: 8, hash: b4 };
    const source: Checkpoint = { epoch: 7, hash: blockHash(main[2]!.header) };
    fromPeer(mns.slice(1).map((k) => signVote(k, h.chain.genesisHash, source, first)));
    fromPeer(mns.map((k) => signVote(k, h.chain.genesisHash, first, { epoch: 9, hash: b4 })));
    assert.equal(h.chain.finality.finalizedHeight, 4);
    text = await registry.metrics();
    assert.equal(value(text, "chain_finalized_height"), 4);
    assert.equal(value(text, "finality_lag_blocks"), 1);
    assert.equal(value(text, 'finality_votes_total{result="counted"}'), 12);
    // A scrape with nothing new adds nothing.
    text = await registry.metrics();
    assert.equal(value(text, 'finality_votes_total{result="counted"}'), 12);
    assert.equal(value(text, "finality_offences_total"), 1);
  });

  it("the dashboard reports the final height and hash beside the tip", () => {
    const parts = (withFinality: boolean): DashboardNodeParts => ({
      chain: withFinality
        ? h.chain
        : {
            tip: h.chain.tip,
            params: h.chain.params,
            getHashAtHeight: (n) => h.chain.getHashAtHeight(n),
            getIndex: (x) => h.chain.getIndex(x),
            getRegistry: () => h.chain.getRegistry(),
          },
      peers: { peerInfo: () => [], connectionCounts: () => ({ inbound: 0, outbound: 0, total: 0 }) },
      liveness: { list: () => [], activeCount: () => 3 },
      producer: null,
      nodeKey: { publicKey: mns[0].publicKey },
      config: { node: { data_dir: "/nonexistent" }, consensus: { min_masternodes: 3 }, rpc: {} },
    });
    const status = dashboardDepsFor(parts(true)).status();
    assert.equal(status.height, 5);
    assert.equal(status.finalHeight, 4);
    assert.equal(status.finalHash, hexOf(main[3]!));
    assert.match(status.finalHash ?? "", HEX64);
    const without = dashboardDepsFor(parts(false)).status();
    assert.equal(without.finalHeight, null);
    assert.equal(without.finalHash, null);
  });
});
