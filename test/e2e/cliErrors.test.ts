/**
 * `timed` refusing bad input, with the real binary: every case exits non-zero with exactly one
 * line on stderr that names the problem (no stack trace), and leaves the data directory as it
 * was.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  killAllChildren,
  makeTempDir,
  oneErrorLine,
  removeDir,
  rpcClient,
  runTimed,
  startNode,
  type RunResult,
} from "./helpers/proc.js";

function startArgs(dir: string): string[] {
  return ["start", "--datadir", dir, "--rpc", "127.0.0.1:0", "--log-level", "warn"];
}

function editConfig(dir: string, edit: (text: string) => string): void {
  const file = join(dir, "config.toml");
  const before = readFileSync(file, "utf8");
  const after = edit(before);
  assert.notEqual(after, before, "the config edit changed nothing");
  writeFileSync(file, after);
}

/** The failure line, with the process's output in the message when the shape is wrong. */
function errorLine(r: RunResult): string {
  try {
    return oneErrorLine(r);
  } catch (e) {
    assert.fail((e as Error).message);
  }
}

void describe("timed: bad input exits non-zero with one line naming the problem", () => {
  let root = "";
  /** A fresh one-masternode devnet directory, never started. */
  let base = "";
  /** A devnet directory whose node has run once, so its chain database exists. */
  let ran = "";
  let operatorPubkey = "";

  /** A copy of `from` to break without touching the original. */
  const copyOf = (from: string, name: string): string => {
    const dir = join(root, name);
    cpSync(from, dir, { recursive: true });
    return dir;
  };

  before(async () => {
    root = makeTempDir("cli-errors");
    base = join(root, "base");
    const init = await runTimed(["init", "--datadir", base, "--network", "devnet", "--masternode"]);
    assert.equal(init.code, 0, init.stderr);
    operatorPubkey = /^operator pubkey: ([0-9a-f]{64})$/m.exec(init.stdout)?.[1] ?? "";
    assert.match(operatorPubkey, /^[0-9a-f]{64}$/);

    ran = copyOf(base, "ran");
    const node = startNode(ran, ["--log-level", "warn"]);
    await node.waitForRpc();
    const exit = await node.kill("SIGTERM");
    assert.equal(exit.code, 0, node.output());
    assert.ok(existsSync(join(ran, "chain")), "the first start creates the chain database");
  });

  after(async () => {
    await killAllChildren();
    removeDir(root);
  });

  void describe("config", () => {
    void it("an unknown key names [sync].foo", async () => {
      const dir = copyOf(base, "unknown-key");
      editConfig(dir, (t) => t.replace(/^\[sync\]$/m, "[sync]\nfoo = 1"));
      const line = errorLine(await runTimed(startArgs(dir)));
      assert.match(line, /\[sync\]\.foo/);
      assert.match(line, /unknown/);
      assert.ok(!existsSync(join(dir, "chain")), "a bad config must not create the chain database");
      assert.ok(!existsSync(join(dir, "node.lock")), "a bad config must not leave a lock");
    });

    void it("a value of the wrong type names [sync].max_sync_batch_size", async () => {
      const dir = copyOf(base, "wrong-type");
      editConfig(dir, (t) => t.replace(/^\[sync\]$/m, '[sync]\nmax_sync_batch_size = "abc"'));
      const line = errorLine(await runTimed(startArgs(dir)));
      assert.match(line, /\[sync\]\.max_sync_batch_size/);
      assert.match(line, /"abc"/);
      assert.ok(!existsSync(join(dir, "chain")));
    });

    void it("a TOML syntax error is one line with the file", async () => {
      const dir = copyOf(base, "bad-toml");
      editConfig(dir, (t) => t.replace(/^\[sync\]$/m, "[sync\n"));
      const line = errorLine(await runTimed(startArgs(dir)));
      assert.ok(line.includes(join(dir, "config.toml")), line);
    });
  });

  void describe("a data directory of another network or genesis", () => {
    void it("a config saying testnet on a devnet directory is refused, naming devnet", async () => {
      const dir = copyOf(ran, "config-testnet");
      editConfig(dir, (t) => t.replace(/^network = "devnet"$/m, 'network = "testnet"'));
      const line = errorLine(await runTimed(startArgs(dir)));
      assert.match(line, /belongs to devnet/);
      assert.match(line, /testnet/);
    });

    void it("a testnet genesis and config over a devnet chain database is refused by the store", async () => {
      const dir = copyOf(ran, "store-testnet");
      const testnetGenesis = join(root, "testnet-genesis.json");
      const gen = await runTimed([
        "genesis",
        "--network",
        "testnet",
        "--out",
        testnetGenesis,
        "--masternode",
        `${operatorPubkey}@127.0.0.1:24100`,
      ]);
      assert.equal(gen.code, 0, gen.stderr);
      cpSync(testnetGenesis, join(dir, "genesis.json"));
      editConfig(dir, (t) =>
        t
          .replace(/^network = "devnet"$/m, 'network = "testnet"')
          .replace(/^block_time_seconds = \d+$/m, "block_time_seconds = 600"),
      );
      const line = errorLine(await runTimed(startArgs(dir)));
      assert.match(line, /belongs to devnet/);
      assert.ok(!existsSync(join(dir, "node.lock")), "a refused start releases its lock");
      // The refused start did not touch the chain: the original still verifies.
      const verify = await runTimed(["verify", "--datadir", ran]);
      assert.equal(verify.code, 0, verify.stderr);
    });

    void it("another devnet genesis over the chain database is refused, naming both genesis hashes", async () => {
      const dir = copyOf(ran, "other-genesis");
      const otherGenesis = join(root, "other-devnet-genesis.json");
      const gen = await runTimed([
        "genesis",
        "--network",
        "devnet",
        "--out",
        otherGenesis,
        "--masternode",
        `${operatorPubkey}@127.0.0.1:24200`,
        "--timestamp",
        "1000",
      ]);
      assert.equal(gen.code, 0, gen.stderr);
      const otherHash = /\(genesis ([0-9a-f]{64}),/.exec(gen.stdout)?.[1];
      assert.ok(otherHash !== undefined, gen.stdout);
      cpSync(otherGenesis, join(dir, "genesis.json"));
      const line = errorLine(await runTimed(startArgs(dir)));
      assert.match(line, /genesis/);
      assert.ok(line.includes(otherHash), line);
      // verify refuses the same way.
      const vline = errorLine(await runTimed(["verify", "--datadir", dir]));
      assert.ok(vline.includes(otherHash), vline);
    });
  });

  void describe("init", () => {
    void it("refuses a data directory that already exists, and leaves it as it was", async () => {
      const config = readFileSync(join(base, "config.toml"), "utf8");
      const nodeKey = readFileSync(join(base, "node.key"), "utf8");
      for (const extra of [[], ["--masternode"]]) {
        const line = errorLine(await runTimed(["init", "--datadir", base, "--network", "devnet", ...extra]));
        assert.match(line, /refusing to overwrite/);
        assert.ok(line.includes(base), line);
      }
      assert.equal(readFileSync(join(base, "config.toml"), "utf8"), config);
      assert.equal(readFileSync(join(base, "node.key"), "utf8"), nodeKey);
    });

    void it("refuses any non-empty directory", async () => {
      const dir = join(root, "not-empty");
      mkdirSync(dir);
      writeFileSync(join(dir, "notes.txt"), "mine\n");
      const line = errorLine(
        await runTimed(["init", "--datadir", dir, "--network", "devnet", "--masternode"]),
      );
      assert.match(line, /refusing to overwrite/);
      assert.ok(!existsSync(join(dir, "config.toml")));
    });

    void it("testnet without --genesis explains that a genesis file is needed", async () => {
      const dir = join(root, "testnet-no-genesis");
      const line = errorLine(await runTimed(["init", "--datadir", dir, "--network", "testnet"]));
      assert.match(line, /--genesis/);
      assert.match(line, /testnet/);
      assert.ok(!existsSync(dir), "a refused init creates nothing");
    });

    void it("an unknown network is named", async () => {
      const line = errorLine(await runTimed(["init", "--datadir", join(root, "x"), "--network", "moonnet"]));
      assert.match(line, /--network/);
      assert.match(line, /moonnet/);
    });
  });

  void describe("start and verify on directories that are not ready", () => {
    void it("start on a missing directory says so and creates nothing", async () => {
      const dir = join(root, "missing");
      const line = errorLine(await runTimed(startArgs(dir)));
      assert.ok(line.includes(dir), line);
      assert.match(line, /does not exist/);
      assert.match(line, /timed init/);
      assert.ok(!existsSync(dir));
    });

    void it("start on an empty directory says it is not initialised", async () => {
      const dir = join(root, "empty-start");
      mkdirSync(dir);
      const line = errorLine(await runTimed(startArgs(dir)));
      assert.match(line, /not an initialised data directory/);
      assert.match(line, /timed init/);
    });

    void it("verify on an uninitialised or missing directory says so", async () => {
      const empty = join(root, "empty-verify");
      mkdirSync(empty);
      for (const dir of [empty, join(root, "missing-verify")]) {
        const line = errorLine(await runTimed(["verify", "--datadir", dir]));
        assert.ok(line.includes(dir), line);
        assert.match(line, /not an initialised data directory/);
      }
      assert.ok(!existsSync(join(root, "missing-verify")));
    });

    void it("verify on a directory whose node never started says there is no chain yet", async () => {
      const dir = copyOf(base, "never-started");
      const line = errorLine(await runTimed(["verify", "--datadir", dir]));
      assert.match(line, /no chain database/);
      assert.ok(!existsSync(join(dir, "chain")), "verify must not create a chain database");
    });
  });

  void describe("genesis", () => {
    void it("a malformed --masternode spec is quoted back with the expected form", async () => {
      const out = join(root, "bad-spec.json");
      for (const spec of [
        "abc@1.2.3.4:5",
        `${operatorPubkey}`,
        `${operatorPubkey}@host`,
        `${operatorPubkey.slice(2)}@127.0.0.1:1`,
      ]) {
        const line = errorLine(
          await runTimed(["genesis", "--network", "devnet", "--out", out, "--masternode", spec]),
        );
        assert.match(line, /--masternode/);
        assert.match(line, /PUBKEY@HOST:PORT/);
        assert.ok(line.includes(spec), line);
      }
      assert.ok(!existsSync(out), "no genesis file is written");
    });

    void it("an unknown tier is named", async () => {
      const out = join(root, "bad-tier.json");
      const line = errorLine(
        await runTimed([
          "genesis",
          "--network",
          "devnet",
          "--out",
          out,
          "--masternode",
          `${operatorPubkey}@127.0.0.1:24200:diamond`,
        ]),
      );
      assert.match(line, /tier/);
      assert.match(line, /diamond/);
      assert.ok(!existsSync(out));
    });
  });

  void it("a second node on a data directory in use is refused by the lock; the first keeps running", async () => {
    const dir = copyOf(ran, "locked");
    const first = startNode(dir, ["--log-level", "warn"]);
    const { url, cookieFile } = await first.waitForRpc();
    const cookie = readFileSync(cookieFile, "utf8");
    const lock = readFileSync(join(dir, "node.lock"), "utf8").trim();
    assert.equal(lock, String(first.pid));

    const line = errorLine(await runTimed(startArgs(dir)));
    assert.match(line, /in use/);
    assert.ok(line.includes(String(first.pid)), line);

    // The refused node took nothing from the running one: its lock, cookie and RPC.
    assert.equal(readFileSync(join(dir, "node.lock"), "utf8").trim(), lock);
    assert.equal(readFileSync(cookieFile, "utf8"), cookie);
    assert.ok(first.running);
    const height = await rpcClient(url, cookieFile).call<number>("getblockcount");
    assert.ok(Number.isInteger(height) && height >= 0);
    const exit = await first.kill("SIGTERM");
    assert.equal(exit.code, 0, first.output());
  });
});
