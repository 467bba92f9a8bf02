/**
 * Gossip of vote evidence (docs/PROTOCOL.md, "VoteEvidence"): the real EvidenceRelay over a real
 * chain, with a recording network. A proof that arrives through the wire codec is kept and passed
 * on to every other peer; a fake one is proof against its sender (scored 100) and kept nowhere;
 * a new peer is sent what is not yet on chain; and evidence the tracker finds here is gossiped.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { signVote, type Checkpoint } from "../../../src/consensus/finality.js";
import { makeVoteOffence } from "../../../src/consensus/voteEvidence.js";
import { createMemoryLogger } from "../../../src/logging/index.js";
import { decodeMessage, encodeMessage, MsgType, type Message } from "../../../src/p2p/messages.js";
import type { Peer } from "../../../src/p2p/peer.js";
import { blockHash, type Block } from "../../../src/primitives/block.js";
import { EvidenceRelay } from "../../../src/relay/evidenceRelay.js";
import { ChainHarness, harnessesClosedAfter, testGenesis, testKeys } from "../../helpers/chainFixture.js";
import { extend } from "../../helpers/chainBuild.js";

const mns = testKeys("vote-relay-mn", 4);
const genesis = testGenesis({ masternodes: mns });
const offender = mns[2]!;

const harness = harnessesClosedAfter(genesis, mns);

interface FakePeer {
  addr: string;
  sent: Message[];
  seen: Set<string>;
}

function fakePeer(addr: string): FakePeer & Peer {
  const p = {
    addr,
    sent: [] as Message[],
    seen: new Set<string>(),
    knows: (id: Buffer) => p.seen.has(id.toString("hex")),
    markKnown: (id: Buffer) => void p.seen.add(id.toString("hex")),
    send: (m: Message) => void p.sent.push(m),
  };
  return p as unknown as FakePeer & Peer;
}

function bed(): {
  h: ChainHarness;
  relay: EvidenceRelay;
  peers: Array<FakePeer & Peer>;
  penalties: Array<{ peer: string; score: number }>;
  main: Block[];
  side: Block[];
} {
  const h = harness();
  const main = extend(h, 3);
  const side = extend(h, 1, { parent: main[1]!, round: 1 });
  const peers = ["a", "b", "c"].map(fakePeer);
  const penalties: Array<{ peer: string; score: number }> = [];
  const relay = new EvidenceRelay({
    chain: h.chain,
    logger: createMemoryLogger(),
    network: {
      broadcast: (msg, filter) => {
        let n = 0;
        for (const p of peers) {
          if (filter && !filter(p)) continue;
          p.send(msg);
          n++;
        }
        return n;
      },
      misbehaving: (peer, score) => void penalties.push({ peer: peer.addr, score }),
    },
  });
  relay.start();
  return { h, relay, peers, penalties, main, side };
}

const first = (b: Block): Checkpoint => ({ epoch: 2 * b.header.height, hash: blockHash(b.header) });

/** A message as it arrives: encoded and decoded by the wire codec. */
function overTheWire(m: Message): Message {
  return decodeMessage(m.type, encodeMessage(m));
}

describe("vote evidence gossip", () => {
  it("a proof from a peer is kept and passed on to the others, once", () => {
    const { h, relay, peers, penalties, main, side } = bed();
    const g = h.chain.genesisHash;
    const src = h.chain.finality.tracker.justifiedAncestor(blockHash(main[2]!.header));
    const o = makeVoteOffence(
      signVote(offender, g, src, first(main[2]!)),
      signVote(offender, g, src, first(side[0]!)),
    );
    const msg = overTheWire({ type: MsgType.VoteEvidence, a: o.a, b: o.b });
    assert.equal(msg.type, MsgType.VoteEvidence);
    relay.onVoteEvidence(peers[0]!, msg as Extract<Message, { type: MsgType.VoteEvidence }>);
    assert.equal(h.chain.listVoteEvidence().length, 1);
    assert.deepEqual(penalties, []);
    assert.equal(peers[0]!.sent.length, 0, "not back to its sender");
    assert.deepEqual(
      peers.slice(1).map((p) => p.sent.map((m) => m.type)),
      [[MsgType.VoteEvidence], [MsgType.VoteEvidence]],
    );
    // The same proof again changes nothing and goes nowhere.
    relay.onVoteEvidence(peers[1]!, msg as Extract<Message, { type: MsgType.VoteEvidence }>);
    assert.equal(peers[2]!.sent.length, 1);
    // A new peer gets what is pending.
    const late = fakePeer("late");
    relay.onPeerReady(late);
    assert.deepEqual(
      late.sent.map((m) => m.type),
      [MsgType.VoteEvidence],
    );
  });

  it("a fake proof is scored against its sender and kept nowhere", () => {
    const { h, relay, peers, penalties, main, side } = bed();
    const g = h.chain.genesisHash;
    const src = h.chain.finality.tracker.justifiedAncestor(blockHash(main[2]!.header));
    const v1 = signVote(offender, g, src, first(main[2]!));
    // Another chain's signature: not this chain's vote, so no proof here.
    const foreign = signVote(offender, Buffer.alloc(32, 7), src, first(side[0]!));
    const o = makeVoteOffence(v1, foreign);
    relay.onVoteEvidence(peers[0]!, { type: MsgType.VoteEvidence, a: o.a, b: o.b });
    // Two votes that break no rule.
    const next = signVote(offender, g, first(main[2]!), { ...first(main[2]!), epoch: 7 });
    const n = makeVoteOffence(v1, next);
    relay.onVoteEvidence(peers[1]!, { type: MsgType.VoteEvidence, a: n.a, b: n.b });
    assert.deepEqual(penalties, [
      { peer: "a", score: 100 },
      { peer: "b", score: 100 },
    ]);
    assert.equal(h.chain.listVoteEvidence().length, 0);
    assert.ok(peers.every((p) => p.sent.length === 0));
  });

  it("an offence the tracker finds here is kept and gossiped", () => {
    const { h, peers, main, side } = bed();
    const g = h.chain.genesisHash;
    const src = h.chain.finality.tracker.justifiedAncestor(blockHash(main[2]!.header));
    h.chain.finality.addVote(signVote(offender, g, src, first(main[2]!)));
    h.chain.finality.addVote(signVote(offender, g, src, first(side[0]!)));
    assert.equal(h.chain.listVoteEvidence().length, 1);
    assert.ok(peers.every((p) => p.sent.length === 1 && p.sent[0]!.type === MsgType.VoteEvidence));
  });
});
