/**
 * Registration through transactions on a running devnet, with real nodes (TimeNode in this
 * process, real LMDB, real TCP on their own loopback IPs; 1 s blocks, 0.5 s heartbeats): three
 * genesis masternodes and a fourth node with masternode.enabled and its own operator key, not in
 * the genesis. A genesis masternode pays it 1,000 TIME (and 1 TIME for fees) from its mature
 * rewards; `registermasternode bronze` registers it with that output as collateral; it appears
 * in every node's masternodelist, joins the schedule and produces a block; the wallet keeps the
 * collateral out of ordinary sends; `spendcollateral` spends it and it leaves the registry on
 * every node.
 *
 * This file uses 127.0.74.0/24.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { formatAmount, parseAmount } from "../../src/primitives/amount.js";
import { COIN } from "../../src/primitives/constants.js";
import { findByOperator } from "../../src/consensus/registry.js";
import { Tier } from "../../src/consensus/tier.js";
import { RpcCallError } from "../../src/rpc/client.js";
import { trapEscapes, type NodeHandle } from "./helpers/nodes.js";
import { masternodeList, MnDevnet, waitFor } from "./helpers/masternodes.js";

interface UnspentJson {
  txid: string;
  vout: number;
  address: string;
  amount: string;
  confirmations: number;
  locked: boolean;
  spendable: boolean;
}

async function rpcError(p: Promise<unknown>): Promise<RpcCallError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof RpcCallError, `expected an RPC error, got ${String(e)}`);
    return e;
  }
  assert.fail("expected an RPC error");
}

const balance = async (h: NodeHandle): Promise<bigint> => parseAmount(await h.rpc.call<string>("getbalance"));

void describe("masternode registration through transactions (real nodes)", () => {
  let net: MnDevnet;
  const escapes = trapEscapes();

  before(async () => {
    net = await MnDevnet.create({
      name: "register",
      nodes: [
        { host: "127.0.74.1" },
        { host: "127.0.74.2" },
        { host: "127.0.74.3" },
        { host: "127.0.74.4", inGenesis: false },
      ],
      blockTime: 1,
      heartbeatInterval: 0.5,
      minMasternodes: 3,
    });
  });

  after(async () => {
    escapes.release();
    await net?.cleanup();
    assert.deepEqual(escapes.errors, [], "nothing escaped to the process");
  });

  it("a new node registers with Bronze collateral, joins the schedule, produces a block, and leaves when its collateral is spent", async () => {
    const funder = net.node(0);
    const mn = net.node(3);
    const op = mn.operatorKey!.publicKey;
    const opHex = op.toString("hex");
    const registered = (h: NodeHandle): boolean => findByOperator(h.n.chain.getRegistry(), op) !== undefined;

    // Not registered yet: it runs, but waits for a registration; its wallet holds nothing.
    const before = await mn.rpc.call<{ status: string; registered: boolean }>("masternodestatus");
    assert.equal(before.status, "not-registered");
    const noCollateral = await rpcError(mn.rpc.call("registermasternode", ["bronze"]));
    assert.equal(noCollateral.code, -6);
    assert.match(noCollateral.message, /exactly 1000\.00000000 TIME/);
    assert.match(noCollateral.message, /getnewaddress/);
    assert.equal((await rpcError(mn.rpc.call("registermasternode", ["platinum"]))).code, -8);
    const again = await rpcError(funder.rpc.call("registermasternode", ["bronze"]));
    assert.equal(again.code, -8);
    assert.match(again.message, /already registered/);
    // No Sybils for free: a Free registration on chain is refused, with the rule named.
    const freeTier = await rpcError(mn.rpc.call("registermasternode", ["free"]));
    assert.equal(freeTier.code, -8);
    assert.match(freeTier.message, /MN_FREE_TIER/);

    // A genesis masternode's rewards (a third of 100 TIME a block) mature after 5 blocks. Both
    // payments come from mature coins (change is unconfirmed until the next block), so wait for
    // 1,001 TIME plus a coin's worth of change.
    await waitFor(
      "1,040 TIME of mature rewards on node 0",
      async () => (await balance(funder)) >= parseAmount("1040"),
      { timeoutMs: 90_000, detail: () => net.describe(), stepMs: 200 },
    );
    const collateralAddr = await mn.rpc.call<string>("getnewaddress");
    const feeAddr = await mn.rpc.call<string>("getnewaddress");
    const payCollateral = await funder.rpc.call<string>("sendtoaddress", [collateralAddr, "1000"]);
    await funder.rpc.call<string>("sendtoaddress", [feeAddr, "1"]);
    await waitFor(
      "both payments confirmed in the new node's wallet",
      async () => (await mn.rpc.call<UnspentJson[]>("listunspent")).length >= 2,
      { timeoutMs: 20_000, detail: () => net.describe(), stepMs: 100 },
    );
    const coins = await mn.rpc.call<UnspentJson[]>("listunspent");
    const collateral = coins.find((c) => c.amount === "1000.00000000")!;
    assert.equal(collateral.txid, payCollateral);
    assert.equal(collateral.locked, false);

    // Register: Bronze, the 1,000 TIME output as collateral; relayed to every node and mined.
    const t0 = Date.now();
    const regTxid = await mn.rpc.call<string>("registermasternode", ["bronze"]);
    assert.match(regTxid, /^[0-9a-f]{64}$/);
    // The collateral's key held nothing else to sign with, so the wallet first paid it 0.01 TIME
    // from the fee coin; the registration spends that (owner's signature) and not the collateral.
    const regTx = await mn.rpc.call<{
      kind: string;
      vin: Array<{ txid: string; vout: number }>;
      vout: Array<{ address: string }>;
    }>("getrawtransaction", [regTxid, true]);
    assert.equal(regTx.kind, "masternoderegister");
    assert.equal(regTx.vin.length, 1);
    const funding = await mn.rpc.call<{
      vin: Array<{ txid: string }>;
      vout: Array<{ value: string; address: string }>;
    }>("getrawtransaction", [regTx.vin[0]!.txid, true]);
    assert.deepEqual(funding.vout[regTx.vin[0]!.vout], {
      n: 0,
      value: "0.01000000",
      address: collateralAddr,
    });
    assert.ok(!regTx.vin.some((i) => i.txid === collateral.txid && i.vout === collateral.vout));
    assert.deepEqual(
      regTx.vout.map((o) => o.address),
      [collateralAddr],
      "change back to the owner",
    );
    // Asking again while it waits (or once it is in): refused, naming why.
    const twice = await rpcError(mn.rpc.call("registermasternode", ["bronze"]));
    assert.equal(twice.code, -8);
    assert.match(twice.message, /already (waiting in the mempool|registered)/);
    await waitFor("the registration on every node's chain", () => net.running().every(registered), {
      timeoutMs: 20_000,
      detail: () => net.describe(),
    });
    const minedMs = Date.now() - t0;
    const entry = findByOperator(funder.n.chain.getRegistry(), op)!;
    assert.equal(entry.tier, Tier.Bronze);
    assert.equal(
      `${entry.collateral!.txid.toString("hex")}:${entry.collateral!.index}`,
      `${collateral.txid}:${collateral.vout}`,
    );
    assert.equal(entry.address, mn.p2p);
    for (const h of net.running()) {
      const tx = await h.rpc.call<{ blockhash?: string }>("getrawtransaction", [regTxid, true]);
      assert.ok(tx.blockhash, `${h.name} has the registration in a block`);
    }
    const dup = await rpcError(mn.rpc.call("registermasternode", ["bronze"]));
    assert.equal(dup.code, -8);

    // Every node lists it, Bronze and (once its heartbeats arrive) active.
    await waitFor(
      "every node to list the new masternode as active bronze",
      async () => {
        const lists = await Promise.all(net.running().map((h) => masternodeList(h)));
        return lists.every(
          (l) =>
            l.length === 4 &&
            l.some((r) => r.pubkey === opHex && r.tier === "bronze" && r.status === "active"),
        );
      },
      { timeoutMs: 10_000, detail: () => net.describe() },
    );

    // The collateral is locked: listed as not spendable, and an ordinary send cannot take it.
    const locked = (await mn.rpc.call<UnspentJson[]>("listunspent")).find(
      (c) => c.txid === collateral.txid && c.vout === collateral.vout,
    )!;
    assert.equal(locked.locked, true);
    assert.equal(locked.spendable, false);
    const free = await balance(mn);
    assert.ok(free < parseAmount("1000"), `the balance ${formatAmount(free)} leaves the collateral out`);
    // One TIME more than the free coins: the collateral would cover it, but it is not for spending.
    const funderAddr = await funder.rpc.call<string>("getnewaddress");
    const tooMuch = await rpcError(mn.rpc.call("sendtoaddress", [funderAddr, formatAmount(free + COIN)]));
    assert.equal(tooMuch.code, -6, tooMuch.message);
    assert.match(tooMuch.message, /insufficient funds/);

    // It joins the schedule: a block whose producer is its operator key.
    const fromHeight = funder.n.chain.height;
    let produced = -1;
    await waitFor(
      "a block produced by the new masternode",
      () => {
        const chain = funder.n.chain;
        for (let h = fromHeight; h <= chain.height; h++) {
          const hash = chain.getHashAtHeight(h);
          const idx = hash ? chain.getIndex(hash) : undefined;
          if (idx?.producer.equals(op)) {
            produced = h;
            return true;
          }
        }
        return false;
      },
      { timeoutMs: 40_000, detail: () => net.describe() },
    );
    const status = await mn.rpc.call<{
      status: string;
      registered: boolean;
      tier: string;
      blocksproduced: number;
    }>("masternodestatus");
    assert.equal(status.registered, true);
    assert.equal(status.tier, "bronze");
    assert.ok(status.blocksproduced >= 1);
    await net.waitAgree(produced, 10_000);
    const producedMs = Date.now() - t0;

    // Spending the collateral deregisters it, on every node.
    const to = await mn.rpc.call<string>("getnewaddress");
    const spendTxid = await mn.rpc.call<string>("spendcollateral", [to]);
    assert.match(spendTxid, /^[0-9a-f]{64}$/);
    await waitFor(
      "the masternode to leave every node's registry",
      () => net.running().every((h) => !registered(h)),
      { timeoutMs: 20_000, detail: () => net.describe() },
    );
    console.log(
      `registration: on every chain ${minedMs} ms after registermasternode; produced height ${produced} ` +
        `${producedMs} ms after; left every registry ${Date.now() - t0} ms after`,
    );
    for (const h of net.running()) {
      const list = await masternodeList(h);
      assert.equal(list.length, 3, h.name);
      assert.ok(!list.some((r) => r.pubkey === opHex), h.name);
    }
    const after = await mn.rpc.call<{ status: string; registered: boolean }>("masternodestatus");
    assert.equal(after.registered, false);
    assert.equal(after.status, "not-registered");
    // The coin is back in the wallet, free: 1,000 TIME less the fee, at the chosen address.
    await waitFor(
      "the spent collateral's output in the wallet",
      async () => (await mn.rpc.call<UnspentJson[]>("listunspent")).some((c) => c.txid === spendTxid),
      { timeoutMs: 10_000 },
    );
    const back = (await mn.rpc.call<UnspentJson[]>("listunspent")).find((c) => c.txid === spendTxid)!;
    assert.equal(back.address, to);
    assert.equal(back.locked, false);
    assert.ok(parseAmount(back.amount) > parseAmount("999.99"));
    const nothing = await rpcError(mn.rpc.call("spendcollateral", [to]));
    assert.equal(nothing.code, -8);
    await net.waitAgree(funder.n.chain.height, 10_000);
  });
});
