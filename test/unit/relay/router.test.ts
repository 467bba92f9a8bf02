import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MsgType, isRouted, type Message, type RoutedType } from "../../../src/p2p/messages.js";
import type { Peer } from "../../../src/p2p/peer.js";
import { rateLimitsFor, type LimitedType, type RateLimit } from "../../../src/p2p/rateLimits.js";
import { makeRouter, type Routes } from "../../../src/relay/router.js";

const peer = { addr: "127.0.0.1:1" } as unknown as Peer;

/** Every routed type, read from the enum so a new one shows up here too. */
const ROUTED = (Object.values(MsgType).filter((v) => typeof v === "number") as MsgType[]).filter((t) =>
  isRouted({ type: t } as Message),
) as RoutedType[];

function recordingRoutes(seen: Array<[string, MsgType]>): Routes {
  const table = Object.fromEntries(
    ROUTED.map((t) => [t, (_p: Peer, m: Message) => seen.push([MsgType[t]!, m.type])]),
  );
  return table as unknown as Routes;
}

describe("router", () => {
  it("routes each application type to its own handler, and nothing else", () => {
    assert.deepEqual(ROUTED.map((t) => MsgType[t]).sort(), [
      "Attestation",
      "Evidence",
      "FinalityVotes",
      "GetBlocks",
      "GetHashes",
      "GetHeaders",
      "GetLiveness",
      "GetMnList",
      "GetTxs",
      "Heartbeat",
      "LivenessBatch",
      "LivenessInv",
      "MnAnnounce",
      "NewTip",
      "TxInv",
      "VoteEvidence",
    ]);
    const seen: Array<[string, MsgType]> = [];
    const unrouted: string[] = [];
    const route = makeRouter(recordingRoutes(seen), {
      onHandlerError: () => assert.fail("no handler throws here"),
      onUnrouted: (_p, type) => unrouted.push(type),
    });
    for (const t of ROUTED) route(peer, { type: t } as Message);
    assert.deepEqual(
      seen,
      ROUTED.map((t) => [MsgType[t], t]),
    );
    // Types the layers below handle never belong to the router: it says so and drops them.
    route(peer, { type: MsgType.Ping } as Message);
    route(peer, { type: MsgType.Blocks } as Message);
    assert.deepEqual(unrouted, ["Ping", "Blocks"]);
  });

  it("a handler that throws is reported with its type; the next message is routed as usual", () => {
    const errors: string[] = [];
    const seen: Array<[string, MsgType]> = [];
    const routes = { ...recordingRoutes(seen), [MsgType.TxInv]: () => assert.fail("boom") };
    const route = makeRouter(routes, {
      onHandlerError: (_p, type, e) => errors.push(`${type}: ${(e as Error).message}`),
      onUnrouted: () => assert.fail("all routed"),
    });
    route(peer, { type: MsgType.TxInv, txids: [] });
    route(peer, { type: MsgType.GetMnList, reqId: 1 });
    assert.deepEqual(errors, ["TxInv: boom"]);
    assert.deepEqual(seen, [["GetMnList", MsgType.GetMnList]]);
  });

  it("a routed type without a route, or a limited type without a limit, does not compile", () => {
    const full = recordingRoutes([]);
    const { [MsgType.Evidence]: _dropped, ...withoutEvidence } = full;
    // @ts-expect-error the table misses the Evidence route
    const partial: Routes = withoutEvidence;
    assert.equal(Object.keys(partial).length, ROUTED.length - 1);
    const limits = rateLimitsFor(2_000);
    const { [MsgType.NewTip]: _newTip, ...withoutNewTip } = limits;
    // @ts-expect-error the table misses NewTip's limit
    const missing: Record<LimitedType, RateLimit> = withoutNewTip;
    assert.equal(missing[MsgType.NewTip], undefined);
  });
});
