/**
 * What dishonest nodes do in the simulator. A lying peer runs the production node behind a
 * transport that rewrites what it sends; a Byzantine masternode is a production node whose
 * producer the scenario stops (withholding) or whose blocks the scenario doubles (equivocation).
 * Nodes given one of these are marked dishonest: the invariants speak for the others.
 */
import { buildBlock } from "../../src/consensus/blockBuilder.js";
import { FRAME_HEADER_SIZE } from "../../src/p2p/constants.js";
import { encodeFrame } from "../../src/p2p/frame.js";
import { decodeMessage, encodeMessage, MsgType, type Message } from "../../src/p2p/messages.js";
import type { Connection, Transport } from "../../src/p2p/transport.js";
import type { Block } from "../../src/primitives/block.js";
import { BlockError } from "../../src/primitives/errors.js";
import type { SimNode, Simulator } from "./simulator.js";

/**
 * heights: claims a tip 1,000 blocks higher than its own, in its hello and every tip it
 * announces; hashes: announces tips under hashes nobody has; stall: never answers a request
 * for blocks, headers or hashes (the requests time out).
 */
export type LieKind = "heights" | "hashes" | "stall";

const ANSWERS = new Set<number>([MsgType.Blocks, MsgType.Headers, MsgType.Hashes, MsgType.NotFound]);

function rewrite(kind: LieKind, msg: Message, sim: Simulator): Message | null {
  if (kind === "stall") return ANSWERS.has(msg.type) ? null : msg;
  if (msg.type === MsgType.Hello) {
    return kind === "heights"
      ? { ...msg, height: msg.height + 1_000 }
      : { ...msg, tipHash: sim.random.bytes(32) };
  }
  if (msg.type === MsgType.NewTip) {
    return kind === "heights"
      ? { ...msg, height: msg.height + 1_000 }
      : { ...msg, hash: sim.random.bytes(32) };
  }
  return msg;
}

/** A transport whose connections rewrite each frame written (every write is one whole frame). */
export function lyingTransport(inner: Transport, kind: LieKind, sim: Simulator): Transport {
  const wrap = (c: Connection): Connection =>
    new Proxy(c, {
      get(target, prop, receiver) {
        if (prop !== "write") return Reflect.get(target, prop, receiver) as unknown;
        return (chunk: Buffer): boolean => {
          if (chunk.length < FRAME_HEADER_SIZE) return target.write(chunk);
          const type = chunk.readUInt16LE(4);
          let msg: Message;
          try {
            msg = decodeMessage(type, chunk.subarray(FRAME_HEADER_SIZE));
          } catch {
            return target.write(chunk);
          }
          const out = rewrite(kind, msg, sim);
          if (out === null) return true;
          if (out === msg) return target.write(chunk);
          return target.write(encodeFrame(chunk.subarray(0, 4), type, encodeMessage(out)));
        };
      },
    });
  return {
    listen: (h, p, on) => inner.listen(h, p, (c) => on(wrap(c))),
    dial: async (h, p, o) => wrap(await inner.dial(h, p, o)),
  };
}

/** Makes `n` lie from its next start on. */
export function makeLiar(n: SimNode, kind: LieKind): void {
  n.honest = false;
  n.wrapTransport = (t) => lyingTransport(t, kind, n.sim);
}

/** A masternode that never produces: it stays online and heartbeats, but its slots go empty. */
export function makeWithholder(n: SimNode): void {
  n.honest = false;
  n.n.producer?.stop();
  n.sim.record(`withhold ${n.index}`);
}

/**
 * A masternode that signs two blocks for each of its slots: whenever it produces one, a twin
 * (same parent and round, timestamp 1 ms later) reaches a third of the honest nodes first, as if
 * it had sent the twin to them. Honest nodes must find the pair, gossip the evidence, mine it,
 * and drop the key from the registry. Returns the number of twins made so far.
 */
export function makeEquivocator(n: SimNode): { twins: () => number } {
  n.honest = false;
  const sim = n.sim;
  const key = n.operatorKey;
  if (!key) throw new Error(`${n.name} is not a masternode`);
  let twins = 0;
  n.n.chain.events.on("blockConnected", ({ block, entry }) => {
    if (!block.header.producer.equals(key.publicKey) || !n.running) return;
    const chain = n.n.chain;
    const parent = chain.getIndex(block.header.prevHash);
    const registry = parent && chain.registryAfter(parent);
    if (!parent || !registry) return;
    let twin: Block;
    try {
      twin = buildBlock({
        parentHash: parent.hash,
        parentHeight: parent.height,
        registry,
        producer: key,
        round: entry.round,
        timestamp: block.header.timestamp + 1,
        txs: [],
        fees: 0n,
        eraProofInput: chain.finality.eraProofInputForChild(parent),
      });
    } catch {
      return;
    }
    twins++;
    sim.record(`equivocate ${n.index} ${entry.height}`);
    const targets = sim.honestRunning().filter(() => sim.random.int(3) === 0);
    for (const h of targets) {
      try {
        h.n.chain.processBlock(twin);
      } catch {
        // A node that already moved on refuses it as a stale side block: the race it would lose.
      }
    }
  });
  return { twins: () => twins };
}

/**
 * Hands `block` straight to node `h`'s chain, as if a peer had sent it: the outcome is the
 * processing status, or the rule a refusal named (any other error is a bug and is thrown).
 */
export function handIn(h: SimNode, block: Block): string {
  try {
    return h.n.chain.processBlock(block).status;
  } catch (e) {
    if (!(e instanceof BlockError)) throw e;
    return e.code;
  }
}
