/**
 * Who the finality relay sends votes to (docs/PROTOCOL.md, "Finality relay"): the real
 * FinalityRelay over a real chain, with recording peers. Votes travel between masternodes only;
 * a full node passes nothing on; a masternode that finalises a block sends each full-node peer
 * the block's certificate in one message; and a full node takes finality from that certificate
 * alone.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { signVote, type Checkpoint, type FinalityVote } from "../../../src/consensus/finality.js";
import type { KeyPair } from "../../../src/crypto/ed25519.js";
import { nullLogger } from "../../../src/logging/index.js";
import { inventoryKey } from "../../../src/p2p/inventory.js";
import { MsgType, type FinalityVotesMsg, type Message } from "../../../src/p2p/messages.js";
import type { Peer } from "../../../src/p2p/peer.js";
import { blockHash, type Block } from "../../../src/primitives/block.js";
import { FinalityRelay } from "../../../src/relay/finalityRelay.js";
import { ChainHarness, testGenesis, testKeys } from "../../helpers/chainFixture.js";
import { extend } from "../../helpers/chainBuild.js";

const mns = testKeys("finality-relay", 4);
const genesis = testGenesis({ masternodes: mns });

interface FakePeer {
  addr: string;
  operatorPubkey: Buffer | null;
  sent: Message[];
  knownIds: Set<number>;
}

function fakePeer(addr: string, operator: KeyPair | null): FakePeer & Peer {
  const p = {
    addr,
    operatorPubkey: operator?.publicKey ?? null,
    sent: [] as Message[],
    knownIds: new Set<number>(),
    knows: (id: Buffer | number) => p.knownIds.has(typeof id === "number" ? id : inventoryKey(id)),
    markKnown: (id: Buffer | number) => void p.knownIds.add(typeof id === "number" ? id : inventoryKey(id)),
    send: (m: Message) => void p.sent.push(m),
  };
  return p as unknown as FakePeer & Peer;
}

/** Votes a peer received, over every FinalityVotes message it was sent. */
const votesSentTo = (p: FakePeer): FinalityVote[] =>
  p.sent.filter((m): m is FinalityVotesMsg => m.type === MsgType.FinalityVotes).flatMap((m) => m.votes);

function bed(isMasternode: boolean): {
  h: ChainHarness;
  relay: FinalityRelay;
  main: Block[];
  mnA: FakePeer & Peer;
  mnB: FakePeer & Peer;
  full: FakePeer & Peer;
} {
  const h = new ChainHarness(genesis, mns);
  const main = extend(h, 3);
  const mnA = fakePeer("mn-a", mns[1]!);
  const mnB = fakePeer("mn-b", mns[2]!);
  const full = fakePeer("full", null);
  const peers = [mnA, mnB, full];
  const relay = new FinalityRelay({
    chain: h.chain,
    clock: h.clock,
    logger: nullLogger,
    isMasternode,
    network: {
      peers: () => peers,
      misbehaving: () => undefined,
      broadcast: (msg, filter) => {
        let n = 0;
        for (const p of peers) {
          if (!filter(p)) continue;
          p.send(msg);
          n++;
        }
        return n;
      },
    },
  });
  relay.start();
  return { h, relay, main, mnA, mnB, full };
}

/** Both links of block `b`, signed by `keys`: J -> (B, 2h), then (B, 2h) -> (B, 2h + 1). */
function linksOn(h: ChainHarness, b: Block, keys: readonly KeyPair[]): [FinalityVote[], FinalityVote[]] {
  const hash = blockHash(b.header);
  const first: Checkpoint = { epoch: 2 * b.header.height, hash };
  const source = h.chain.finality.tracker.justifiedAncestor(hash);
  return [
    keys.map((k) => signVote(k, h.chain.genesisHash, source, first)),
    keys.map((k) => signVote(k, h.chain.genesisHash, first, { epoch: first.epoch + 1, hash })),
  ];
}

const votes = (list: FinalityVote[]): FinalityVotesMsg => ({ type: MsgType.FinalityVotes, votes: list });

describe("finality relay: votes between masternodes, certificates to full nodes", () => {
  it("a masternode passes a new vote on to its other masternode peers only", () => {
    const { h, relay, main, mnA, mnB, full } = bed(true);
    const [first] = linksOn(h, main[2]!, [mns[3]!]);
    relay.onVotes(mnA, votes(first));
    h.clock.advance(1_000);
    assert.equal(votesSentTo(mnB).length, 1, "the other masternode peer gets the vote");
    assert.equal(votesSentTo(mnA).length, 0, "never back to its sender");
    assert.equal(votesSentTo(full).length, 0, "a full-node peer gets no single votes");
    relay.stop();
  });

  it("a full node counts the votes it gets and passes none on", () => {
    const { h, relay, main, mnA, mnB, full } = bed(false);
    const [first] = linksOn(h, main[2]!, [mns[3]!]);
    relay.onVotes(mnA, votes(first));
    h.clock.advance(1_000);
    assert.equal(relay.counts.counted, 1);
    assert.equal(votesSentTo(mnB).length + votesSentTo(full).length + votesSentTo(mnA).length, 0);
    relay.stop();
  });

  it("a masternode that finalises a block sends each full-node peer its certificate, once", () => {
    const { h, relay, main, mnA, mnB, full } = bed(true);
    const b = main[2]!;
    const [first, second] = linksOn(h, b, mns.slice(0, 3));
    relay.onVotes(mnA, votes(first));
    relay.onVotes(mnA, votes(second));
    assert.equal(h.chain.finality.finalizedHeight, 3, "three of four votes make block 3 final");
    h.clock.advance(1_000);
    const toFull = full.sent.filter((m) => m.type === MsgType.FinalityVotes) as FinalityVotesMsg[];
    assert.equal(toFull.length, 1, "one message for the final block");
    assert.deepEqual(
      toFull[0]!.votes.map((v) => v.target.epoch),
      [7, 7, 7],
      "the certificate: the second link's votes",
    );
    assert.equal(relay.counts.certificatesSent, 1);
    // Masternode peers got the votes one by one (the flood), not an extra certificate message.
    assert.equal(votesSentTo(mnB).length, 6);
    relay.stop();
  });

  it("a full node takes finality from the certificate alone, and sends nothing", () => {
    const { h, relay, main, mnA, mnB, full } = bed(false);
    const b = main[2]!;
    const [, second] = linksOn(h, b, mns.slice(0, 3));
    relay.onVotes(mnA, votes(second));
    assert.equal(h.chain.finality.finalizedHeight, 3);
    assert.ok(h.chain.finality.finalized.hash.equals(blockHash(b.header)));
    h.clock.advance(1_000);
    assert.equal(votesSentTo(mnB).length + votesSentTo(full).length, 0);
    assert.equal(relay.counts.certificatesSent, 0);
    relay.stop();
  });
});
