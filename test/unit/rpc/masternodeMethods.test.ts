// masternodelist and masternodestatus through a real RpcServer on 127.0.0.1:0, over a real
// chain whose genesis registers three masternodes.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { KeyPair } from "../../../src/crypto/ed25519.js";
import { createMemoryLogger } from "../../../src/logging/index.js";
import { MasternodeLiveness } from "../../../src/masternode/liveness.js";
import { BlockProducer } from "../../../src/masternode/producer.js";
import { RpcClient } from "../../../src/rpc/client.js";
import { registerMasternodeMethods, type MasternodeMethodDeps } from "../../../src/rpc/masternodeMethods.js";
import { RpcServer } from "../../../src/rpc/server.js";
import { SystemClock } from "../../../src/util/clock.js";
import { CryptoRandom } from "../../../src/util/random.js";
import { join } from "node:path";
import { nullLogger } from "../../../src/logging/index.js";
import { Mempool } from "../../../src/mempool/mempool.js";
import { RpcCallError } from "../../../src/rpc/client.js";
import { Wallet } from "../../../src/wallet/wallet.js";
import { ChainHarness, tempDir, testGenesis, testKeys } from "../../helpers/chainFixture.js";
import { heartbeat, opKey, TEST_OPTS } from "../masternode/helpers.js";

const USER = "mn";
const PASSWORD = "rpc-test";

interface Rpc {
  server: RpcServer;
  client: RpcClient;
}

async function serve(deps: MasternodeMethodDeps): Promise<Rpc> {
  const server = new RpcServer(
    { host: "127.0.0.1", port: 0, auth: { kind: "userpass", user: USER, password: PASSWORD } },
    { logger: createMemoryLogger({ level: "info" }), clock: new SystemClock(), random: new CryptoRandom() },
  );
  registerMasternodeMethods(server, deps);
  const addr = await server.start();
  const client = new RpcClient({ url: `http://${addr.host}:${addr.port}/`, user: USER, password: PASSWORD });
  return { server, client };
}

describe("masternode RPC", () => {
  const keys = testKeys("mn-rpc", 3);
  const [me, b, c] = keys as [KeyPair, KeyPair, KeyPair];
  let h: ChainHarness;
  let liveness: MasternodeLiveness;
  const servers: RpcServer[] = [];

  before(() => {
    h = new ChainHarness(testGenesis({ masternodes: keys }), keys);
    liveness = new MasternodeLiveness(TEST_OPTS, {
      clock: h.clock,
      logger: createMemoryLogger({ level: "info" }),
      registry: () => h.chain.getRegistry(),
      selfOperator: me.publicKey,
    });
  });

  after(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await h.close();
  });

  function producerFor(key: KeyPair): BlockProducer {
    return new BlockProducer(
      { minMasternodes: 3, operatorKey: key },
      {
        chain: h.chain,
        clock: h.clock,
        logger: createMemoryLogger({ level: "info" }),
        activeMasternodes: () => liveness.activeCount(),
      },
    );
  }

  it("a masternode that sees 2 of 3 says it waits, and why; then produces once it sees 3", async () => {
    const producer = producerFor(me);
    const rpc = await serve({
      chain: h.chain,
      liveness,
      producer,
      operatorKey: me,
      minMasternodes: 3,
      network: { peerInfo: () => [{ masternode: true }, { masternode: false }] },
    });
    servers.push(rpc.server);
    liveness.recordOwnHeartbeat(heartbeat(me, h.clock));
    liveness.onHeartbeat(heartbeat(b, h.clock));
    producer.tick();

    const status = await rpc.client.call<Record<string, unknown>>("masternodestatus");
    assert.equal(status.status, "waiting");
    assert.equal(status.reason, "waiting: 2/3 active masternodes");
    assert.equal(status.operator, me.publicKey.toString("hex"));
    assert.equal(status.registered, true);
    assert.equal(status.tier, "free");
    assert.equal(status.address, h.producerEntry(me.publicKey)!.address);
    assert.equal(status.active, true);
    assert.equal(status.activemasternodes, 2);
    assert.equal(status.minmasternodes, 3);
    assert.equal(status.registeredmasternodes, 3);
    assert.equal(status.blocksproduced, 0);
    assert.equal(status.masternodepeers, 1);
    assert.equal(status.lastheartbeat, Math.floor(h.clock.now() / 1000));
    assert.equal(typeof status.rewardaddress, "string");

    const list = await rpc.client.call<Array<Record<string, unknown>>>("masternodelist");
    assert.equal(list.length, 3);
    const byKey = new Map(list.map((r) => [r.pubkey, r]));
    for (const k of keys) {
      const row = byKey.get(k.publicKey.toString("hex"));
      assert.ok(row, "every registered masternode is listed");
      for (const field of ["pubkey", "address", "tier", "status", "lastseen", "witnesses", "rewardaddress"]) {
        assert.ok(field in row, `masternodelist row has ${field}`);
      }
    }
    assert.equal(byKey.get(me.publicKey.toString("hex"))?.status, "active");
    assert.equal(byKey.get(b.publicKey.toString("hex"))?.status, "active");
    assert.equal(byKey.get(c.publicKey.toString("hex"))?.status, "inactive");
    assert.equal(byKey.get(c.publicKey.toString("hex"))?.lastseen, null);

    // The third masternode shows up: the producer is no longer held back.
    liveness.onHeartbeat(heartbeat(c, h.clock));
    producer.tick();
    const now = await rpc.client.call<Record<string, unknown>>("masternodestatus");
    assert.equal(now.status, "producing");
    assert.equal(now.activemasternodes, 3);
    assert.doesNotMatch(String(now.reason), /^waiting: /);
  });

  it("a node that is not a masternode says so plainly", async () => {
    const rpc = await serve({
      chain: h.chain,
      liveness,
      producer: null,
      operatorKey: null,
      minMasternodes: 3,
      network: null,
    });
    servers.push(rpc.server);
    const status = await rpc.client.call<Record<string, unknown>>("masternodestatus");
    assert.equal(status.status, "not a masternode");
    const list = await rpc.client.call<unknown[]>("masternodelist");
    assert.equal(list.length, 3, "the list does not depend on being a masternode");
  });

  it("a masternode whose key is not registered reports not-registered", async () => {
    const stranger = opKey("mn-rpc-stranger", 0);
    const producer = producerFor(stranger);
    producer.tick();
    const rpc = await serve({
      chain: h.chain,
      liveness,
      producer,
      operatorKey: stranger,
      minMasternodes: 3,
      network: null,
    });
    servers.push(rpc.server);
    const status = await rpc.client.call<Record<string, unknown>>("masternodestatus");
    assert.equal(status.status, "not-registered");
    assert.equal(status.registered, false);
    assert.equal(status.tier, null);
    assert.match(String(status.reason), /not in the masternode registry/);
    assert.equal(status.masternodepeers, null);
  });

  it("registermasternode and spendcollateral refuse what they cannot do, with their documented codes", async () => {
    const { dir, cleanup } = tempDir("mn-rpc-wallet-");
    const mempool = new Mempool({}, { chain: h.chain, clock: h.clock, logger: nullLogger });
    const wallet = new Wallet(
      { file: join(dir, "wallet.json"), network: "devnet" },
      { chain: h.chain, mempool, clock: h.clock, random: new CryptoRandom(), logger: nullLogger },
    );
    wallet.start();
    try {
      const stranger = opKey("mn-rpc-newcomer", 0);
      const registration = (serviceAddress: string | null): MasternodeMethodDeps["registration"] => ({
        wallet,
        mempool,
        relay: { submitLocal: (tx) => mempool.accept(tx) },
        serviceAddress: () => serviceAddress,
        rewardAddress: "",
      });
      const base = { chain: h.chain, liveness, producer: null, minMasternodes: 3, network: null };
      const none = await serve({ ...base, operatorKey: null, registration: registration("127.0.9.1:24200") });
      const mine = await serve({ ...base, operatorKey: me, registration: registration("127.0.9.1:24200") });
      const fresh = await serve({
        ...base,
        operatorKey: stranger,
        registration: registration("0.0.0.0:24200"),
      });
      servers.push(none.server, mine.server, fresh.server);
      const code = async (c: RpcClient, method: string, params: unknown[]): Promise<[number, string]> => {
        try {
          await c.call(method, params);
        } catch (e) {
          assert.ok(e instanceof RpcCallError, String(e));
          return [e.code, e.message];
        }
        return assert.fail(`${method} succeeded`);
      };
      const [c1, m1] = await code(none.client, "registermasternode", ["bronze"]);
      assert.equal(c1, -1);
      assert.match(m1, /not a masternode/);
      const [c2, m2] = await code(mine.client, "registermasternode", ["bronze"]);
      assert.equal(c2, -8);
      assert.match(m2, /already registered/);
      assert.equal((await code(fresh.client, "registermasternode", ["diamond"]))[0], -8, "unknown tier");
      assert.equal((await code(fresh.client, "registermasternode", [1]))[0], -3, "a tier is a name");
      // The Free tier is the genesis's alone: refused before anything else is looked at.
      for (const c of [fresh.client, mine.client]) {
        const [c3, m3] = await code(c, "registermasternode", ["free", "127.0.9.9:24200"]);
        assert.equal(c3, -8);
        assert.match(m3, /genesis masternodes only/);
        assert.match(m3, /MN_FREE_TIER/);
      }
      const [c4, m4] = await code(fresh.client, "registermasternode", ["bronze"]);
      assert.equal(c4, -8);
      assert.match(m4, /not dialable/);
      assert.equal((await code(fresh.client, "registermasternode", ["bronze", "nohost"]))[0], -8);
      assert.equal(
        (await code(fresh.client, "registermasternode", ["bronze", "127.0.9.9:24200", "TIME1xyz"]))[0],
        -5,
      );
      const [c7, m7] = await code(fresh.client, "registermasternode", ["gold", "127.0.9.9:24200"]);
      assert.equal(c7, -6);
      assert.match(m7, /exactly 100000\.00000000 TIME/);
      const [c9, m9] = await code(mine.client, "spendcollateral", [wallet.getNewAddress()]);
      assert.equal(c9, -8);
      assert.match(m9, /owns the collateral of no registered masternode/);
      assert.equal((await code(mine.client, "spendcollateral", ["TIME0nonsense"]))[0], -5);
    } finally {
      wallet.stop();
      cleanup();
    }
  });
});
