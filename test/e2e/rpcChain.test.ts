/**
 * The step-1 JSON-RPC methods end to end: a real `timed start` (one-masternode devnet, 1 s
 * blocks) queried through the real `time-cli` binary, plus raw HTTP for authentication.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:http";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { blockHash, decodeBlock } from "../../src/primitives/block.js";
import { txid } from "../../src/primitives/tx.js";
import {
  killAllChildren,
  makeFastDevnet,
  makeTempDir,
  removeDir,
  rpcClient,
  runCli,
  startNode,
  waitFor,
  type FastDevnet,
  type NodeProcess,
  type RunResult,
} from "./helpers/proc.js";

const HEX64 = /^[0-9a-f]{64}$/;

interface BlockJson {
  hash: string;
  height: number;
  previousblockhash: string | null;
  time: number;
  producer: string | null;
  tx: unknown[];
}

/** Raw HTTP POST, so authentication is tested below the client. */
function rawPost(url: string, body: string, auth?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { "Content-Type": "application/json" };
    if (auth !== undefined) headers.Authorization = `Basic ${Buffer.from(auth).toString("base64")}`;
    const req = request(url, { method: "POST", headers, agent: false, timeout: 10_000 }, (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (s: string) => (text += s));
      res.once("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
      res.once("error", reject);
    });
    req.once("timeout", () => req.destroy(new Error(`no answer from ${url} within 10 s`)));
    req.once("error", reject);
    req.end(body);
  });
}

void describe("JSON-RPC chain methods through time-cli", () => {
  let root = "";
  let dev: FastDevnet;
  let node: NodeProcess;
  let url = "";
  let cookieFile = "";

  /** time-cli --datadir D --rpc URL ARGS... */
  const cli = (...args: string[]): Promise<RunResult> =>
    runCli(["--datadir", dev.dir, "--rpc", url, ...args]);

  /** A successful call's output: JSON when it parses (objects, numbers), else the text itself. */
  const ok = async <T>(...args: string[]): Promise<T> => {
    const r = await cli(...args);
    assert.equal(r.code, 0, `time-cli ${args.join(" ")} failed:\n${r.stderr}`);
    assert.equal(r.stderr, "");
    const text = r.stdout.trim();
    try {
      return JSON.parse(text) as T;
    } catch {
      return text as T;
    }
  };

  /** A failed call: exit 1 and the JSON-RPC code in the output; returns the output. */
  const fails = async (code: number, ...args: string[]): Promise<string> => {
    const r = await cli(...args);
    assert.equal(r.code, 1, `time-cli ${args.join(" ")} should fail\n${r.stdout}${r.stderr}`);
    const output = r.stdout + r.stderr;
    assert.match(output, new RegExp(`error code: ${code}\\b`), output);
    assert.doesNotMatch(output, /\n\s+at /);
    return output;
  };

  before(async () => {
    root = makeTempDir("rpc-chain");
    dev = await makeFastDevnet(join(root, "node"), 1);
    node = startNode(dev.dir);
    ({ url, cookieFile } = await node.waitForRpc());
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    const rpc = rpcClient(url, cookieFile);
    await waitFor(
      "height 2",
      async () => ((await rpc.call<number>("getblockcount")) >= 2 ? true : undefined),
      {
        timeoutMs: 15_000,
        stepMs: 100,
      },
    );
  });

  after(async () => {
    await killAllChildren();
    removeDir(root);
  });

  void it("getblockcount, getbestblockhash and getblockhash agree", async () => {
    const count = await ok<number>("getblockcount");
    assert.ok(Number.isInteger(count) && count >= 2, `height ${count}`);
    const best = await ok<string>("getbestblockhash");
    assert.match(best, HEX64);
    const [h0, h1, atCount] = await Promise.all([
      ok<string>("getblockhash", "0"),
      ok<string>("getblockhash", "1"),
      ok<string>("getblockhash", String(count)),
    ]);
    assert.match(h0, HEX64);
    assert.match(h1, HEX64);
    assert.notEqual(h0, h1);
    assert.equal(h0, dev.genesisHash, "height 0 is the genesis written by `timed genesis`");
    // The best block was read after the count, so it is at that height or above.
    const bestBlock = await ok<BlockJson>("getblock", best);
    assert.ok(bestBlock.height >= count);
    if (bestBlock.height === count) assert.equal(best, atCount);
  });

  void it("getblock by height and by hash, verbosity 0, 1 and 2", async () => {
    const [h0, h1, h2] = await Promise.all([
      ok<string>("getblockhash", "0"),
      ok<string>("getblockhash", "1"),
      ok<string>("getblockhash", "2"),
    ]);
    const [byHeight, byHash, byHashUpper, defaultVerbosity, full, raw] = await Promise.all([
      ok<BlockJson>("getblock", "2", "1"),
      ok<BlockJson>("getblock", h2, "1"),
      ok<BlockJson>("getblock", h2.toUpperCase()),
      ok<BlockJson>("getblock", "2"),
      ok<BlockJson>("getblock", h2, "2"),
      ok<string>("getblock", "2", "0"),
    ]);
    const fixed = (b: BlockJson) => ({
      hash: b.hash,
      height: b.height,
      previousblockhash: b.previousblockhash,
      time: b.time,
      producer: b.producer,
    });

    assert.equal(byHeight.hash, h2);
    assert.equal(byHeight.height, 2);
    assert.equal(byHeight.previousblockhash, h1);
    assert.equal(byHeight.producer, dev.operatorPubkey, "the only masternode produced it");
    assert.ok(Number.isInteger(byHeight.time), "time is whole seconds");
    const nowS = Date.now() / 1000;
    assert.ok(byHeight.time <= nowS + 5 && byHeight.time > nowS - 300, `time ${byHeight.time} is not recent`);
    assert.ok(byHeight.tx.length >= 1, "at least the coinbase");
    for (const t of byHeight.tx) assert.match(String(t), HEX64);
    for (const other of [byHash, byHashUpper, defaultVerbosity]) {
      assert.deepEqual(fixed(other), fixed(byHeight));
      assert.deepEqual(other.tx, byHeight.tx);
    }

    // Verbosity 2: the same block with decoded transactions in place of txids.
    assert.deepEqual(fixed(full), fixed(byHeight));
    assert.equal(full.tx.length, byHeight.tx.length);
    full.tx.forEach((t, i) => {
      assert.equal(typeof t, "object");
      assert.equal((t as { txid: string }).txid, byHeight.tx[i]);
    });

    // Verbosity 0: the serialized block, which hashes to the block's hash.
    assert.match(raw, /^[0-9a-f]+$/);
    const block = decodeBlock(Buffer.from(raw, "hex"));
    assert.equal(blockHash(block.header).toString("hex"), h2);
    assert.equal(block.header.height, 2);
    assert.deepEqual(
      block.txs.map((t) => txid(t).toString("hex")),
      byHeight.tx,
    );

    // Genesis: height 0, no parent.
    const genesis = await ok<BlockJson>("getblock", "0");
    assert.equal(genesis.hash, h0);
    assert.equal(genesis.height, 0);
    assert.equal(genesis.previousblockhash, null);
    const first = await ok<BlockJson>("getblock", h1);
    assert.equal(first.height, 1);
    assert.equal(first.previousblockhash, h0);
    assert.ok(first.time <= byHeight.time);
  });

  void it("getblockchaininfo", async () => {
    const info = await ok<{ chain: string; blocks: number; bestblockhash: string; genesishash: string }>(
      "getblockchaininfo",
    );
    assert.equal(info.chain, "devnet");
    assert.ok(Number.isInteger(info.blocks) && info.blocks >= 2);
    assert.match(info.bestblockhash, HEX64);
    assert.equal(info.genesishash, await ok<string>("getblockhash", "0"));
    assert.equal(info.genesishash, dev.genesisHash);
    // One chain, one producer: the tip it reported stays at that height.
    assert.equal(await ok<string>("getblockhash", String(info.blocks)), info.bestblockhash);
  });

  void it("uptime, help and help METHOD", async () => {
    const uptime = await ok<number>("uptime");
    assert.ok(Number.isInteger(uptime) && uptime >= 0 && uptime < 600, `uptime ${uptime}`);
    const help = await ok<string>("help");
    for (const m of [
      "getblockcount",
      "getbestblockhash",
      "getblockhash",
      "getblock",
      "getblockchaininfo",
      "uptime",
      "stop",
      "help",
    ]) {
      assert.match(help, new RegExp(`^${m}\\b`, "m"), `help lists ${m}`);
    }
    const one = await ok<string>("help", "getblock");
    assert.match(one, /^getblock hash_or_height \[verbosity\]/);
    assert.match(one, /verbosity/);
    const unknown = await cli("help", "nosuchmethod");
    assert.equal(unknown.code, 1, "help on an unknown method is an error");
    assert.match(unknown.stderr, /nosuchmethod/);
  });

  void describe("errors", () => {
    void it("an unknown method is -32601", async () => {
      const out = await fails(-32601, "nosuchmethod");
      assert.match(out, /nosuchmethod/);
    });

    void it("getblockhash with a non-integer is -32602 naming the param", async () => {
      const outs = await Promise.all([
        fails(-32602, "getblockhash", "abc"),
        fails(-32602, "getblockhash", "-1"),
        fails(-32602, "getblockhash", "1.5"),
      ]);
      for (const out of outs) assert.match(out, /"height"/);
    });

    void it("getblockhash and getblock beyond the tip are out of range", async () => {
      const [a, b] = await Promise.all([
        fails(-8, "getblockhash", "99999999"),
        fails(-8, "getblock", "99999999"),
      ]);
      for (const out of [a, b]) assert.match(out, /99999999 out of range/);
    });

    void it("getblock with a malformed hash is refused with a message naming the param", async () => {
      for (const bad of ["zz", "0".repeat(63), `${"a".repeat(63)}g`]) {
        const r = await cli("getblock", bad);
        assert.equal(r.code, 1);
        const out = r.stdout + r.stderr;
        assert.match(out, /error code: (-32602|-8)\b/, out);
        assert.match(out, /hash_or_height/, out);
      }
    });

    void it("getblock with an unknown hash is -5 block not found", async () => {
      const out = await fails(-5, "getblock", "00".repeat(32));
      assert.match(out, /block not found/);
    });

    void it("too many params is -32602", async () => {
      const outs = await Promise.all([
        fails(-32602, "getblockcount", "1"),
        fails(-32602, "getblock", "1", "1", "1"),
        fails(-32602, "getblock", "1", "3"),
      ]);
      assert.match(outs[0]!, /too many/);
      assert.match(outs[1]!, /too many/);
      assert.match(outs[2]!, /"verbosity"/);
    });
  });

  void describe("authentication", () => {
    const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "getblockcount", params: [] });

    void it("the cookie file exists with mode 0600 while the node runs", () => {
      assert.equal(cookieFile, join(dev.dir, ".cookie"));
      const st = statSync(cookieFile);
      assert.equal(st.mode & 0o777, 0o600, `mode ${(st.mode & 0o777).toString(8)}`);
      assert.match(readFileSync(cookieFile, "utf8").trim(), /^__cookie__:[0-9a-f]{32,}$/);
    });

    void it("no credentials, a wrong password or a wrong user get 401; the cookie gets an answer", async () => {
      const cookie = readFileSync(cookieFile, "utf8").trim();
      const password = cookie.slice(cookie.indexOf(":") + 1);
      assert.equal((await rawPost(url, body)).status, 401);
      assert.equal((await rawPost(url, body, "__cookie__:wrong")).status, 401);
      assert.equal((await rawPost(url, body, `__cookie__:${password.slice(0, -1)}`)).status, 401);
      assert.equal((await rawPost(url, body, `someone:${password}`)).status, 401);
      const good = await rawPost(url, body, cookie);
      assert.equal(good.status, 200);
      const reply = JSON.parse(good.body) as { result: number; id: number };
      assert.equal(reply.id, 1);
      assert.ok(Number.isInteger(reply.result) && reply.result >= 2);
    });

    void it("time-cli with another node's cookie fails with an authorization error", async () => {
      const other = join(root, "other");
      mkdirSync(other);
      writeFileSync(join(other, ".cookie"), `__cookie__:${"ab".repeat(32)}`, { mode: 0o600 });
      const r = await runCli(["--datadir", other, "--rpc", url, "getblockcount"]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /authori[sz]ation failed/);
    });
  });

  void it("stop: the node exits 0 and removes its cookie and lock", async () => {
    const r = await cli("stop");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /stopping/);
    const exit = await node.waitExit(15_000);
    assert.equal(exit.code, 0, node.output());
    assert.equal(exit.signal, null);
    assert.ok(!existsSync(cookieFile), "the cookie is removed at stop");
    assert.ok(!existsSync(join(dev.dir, "node.lock")), "the lock is released at stop");
    const after = await cli("getblockcount");
    assert.equal(after.code, 1);
    assert.match(after.stderr, /could not connect/);
  });
});
