/**
 * time-cli as a real child process against a real RpcServer running in this process. The CLI
 * runs from source through tsx, exactly as bin/time-cli.js runs it from dist: main() gets a
 * process.argv-shaped array and its resolved code becomes process.exitCode (so a CLI that
 * left a handle open would hang here, not pass).
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { RpcError } from "../../src/rpc/errors.js";
import { RpcServer, type RpcAuth, type RpcLogger } from "../../src/rpc/server.js";
import { SystemClock } from "../../src/util/clock.js";
import { CryptoRandom } from "../../src/util/random.js";

const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const ENTRY =
  "import('./src/cli/timeCli.ts')" +
  ".then((m) => m.main(['node', 'time-cli', ...process.argv.slice(1)]))" +
  ".then((code) => { process.exitCode = code; }, (err) => { console.error('UNCAUGHT', err); process.exitCode = 99; });";
const HASH = "0f".repeat(32);

const silentLogger: RpcLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function runCli(args: string[], timeoutMs = 30_000): Promise<CliResult> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", "-e", ENTRY, "--", ...args], {
      cwd: REPO_ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => (stdout += s));
    child.stderr.setEncoding("utf8").on("data", (s: string) => (stderr += s));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`time-cli ${args.join(" ")} did not exit within ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: performance.now() - started });
    });
  });
}

function makeServer(auth: RpcAuth, port = 0): RpcServer {
  const server = new RpcServer(
    { host: "127.0.0.1", port, auth },
    { logger: silentLogger, clock: new SystemClock(), random: new CryptoRandom() },
  );
  server.register("getblockcount", { description: "The height.", params: [], handler: () => 42 });
  server.register("getbestblockhash", { description: "The tip hash.", params: [], handler: () => HASH });
  server.register("nothing", { description: "Returns null.", params: [], handler: () => null });
  server.register("echo", {
    description: "Returns its arguments by name.",
    params: Array.from({ length: 10 }, (_, i) => ({
      name: `arg${i}`,
      type: "any" as const,
      optional: true,
      description: `argument ${i}`,
    })),
    handler: (params) => params,
  });
  server.register("getblockhash", {
    description: "The hash at a height.",
    params: [{ name: "height", type: "integer", min: 0, description: "The height." }],
    handler: () => HASH,
  });
  server.register("fail", {
    description: "Always fails.",
    params: [],
    handler: () => {
      throw new RpcError(-5, "block not found");
    },
  });
  return server;
}

function writeConfig(dir: string, port: number, extra = ""): void {
  writeFileSync(
    join(dir, "config.toml"),
    `[node]\nnetwork = "devnet"\n\n[rpc]\nenabled = true\nlisten_address = "127.0.0.1:${port}"\n${extra}`,
  );
}

/** A port that nothing listens on (a server bound it and let it go). */
async function freePort(): Promise<number> {
  const s = makeServer({ kind: "userpass", user: "u", password: "p" });
  const { port } = await s.start();
  await s.stop();
  return port;
}

function assertNoStack(r: CliResult): void {
  assert.doesNotMatch(r.stderr, /\n\s+at /, `stack trace in stderr:\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /UNCAUGHT/);
}

void describe("time-cli", () => {
  let root = "";
  let datadir = "";
  let server: RpcServer;
  let port = 0;

  before(async () => {
    root = mkdtempSync(join(tmpdir(), "time-cli-e2e-"));
    datadir = join(root, "node");
    mkdirSync(datadir);
    server = makeServer({ kind: "cookie", cookieFile: join(datadir, ".cookie") });
    port = (await server.start()).port;
    writeConfig(datadir, port);
  });
  after(async () => {
    await server.stop();
    rmSync(root, { recursive: true, force: true });
  });

  void it("finds the node through --datadir (config.toml address, .cookie credentials)", async () => {
    const r = await runCli(["--datadir", datadir, "getblockcount"]);
    assert.equal(r.stderr, "");
    assert.equal(r.code, 0);
    assert.equal(r.stdout, "42\n");
  });

  void it("parses arguments like bitcoin-cli and prints pretty JSON", async () => {
    const digits = "1234567890".repeat(6) + "1234";
    const r = await runCli([
      `-datadir=${datadir}`,
      "echo",
      "5",
      "true",
      '{"a":[1,2],"b":"x"}',
      "hello",
      "null",
      "1.5",
      "-3",
      "00ab",
      digits,
      "12345678901.12345678",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const expected = {
      arg0: 5,
      arg1: true,
      arg2: { a: [1, 2], b: "x" },
      arg3: "hello",
      arg4: null,
      // Decimals travel as their exact text, so an amount is never rounded by a double.
      arg5: "1.5",
      arg6: -3,
      arg7: "00ab",
      arg8: digits,
      arg9: "12345678901.12345678",
    };
    assert.equal(r.stdout, `${JSON.stringify(expected, null, 2)}\n`);
  });

  void it("sends key=value arguments by name with --named", async () => {
    const r = await runCli([
      "--datadir",
      datadir,
      "--named",
      "echo",
      "arg1=7",
      "arg0=abc",
      'arg2={"k":true}',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { arg0: "abc", arg1: 7, arg2: { k: true } });
    const bad = await runCli(["--datadir", datadir, "--named", "echo", "noequals"]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /NAME=VALUE/);
  });

  void it("prints a string result raw and a null result as nothing", async () => {
    const r = await runCli(["--datadir", datadir, "getbestblockhash"]);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, `${HASH}\n`);
    const n = await runCli(["--datadir", datadir, "nothing"]);
    assert.equal(n.code, 0);
    assert.equal(n.stdout, "");
  });

  void it("exits 1 with bitcoin-cli's error format on an RPC error", async () => {
    const r = await runCli(["--datadir", datadir, "fail"]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, "");
    assert.equal(r.stderr, "error code: -5\nerror message:\nblock not found\n");
    const p = await runCli(["--datadir", datadir, "getblockhash", "abc"]);
    assert.equal(p.code, 1);
    assert.equal(
      p.stderr,
      'error code: -32602\nerror message:\ninvalid parameter "height": expected a non-negative integer, got "abc"\n',
    );
  });

  void it("time-cli help asks the node", async () => {
    const r = await runCli(["--datadir", datadir, "help"]);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^echo \[arg0\]/m);
    assert.match(r.stdout, /^getblockcount$/m);
    assert.match(r.stdout, /^getblockhash height$/m);
    const one = await runCli(["--datadir", datadir, "help", "getblockhash"]);
    assert.equal(one.code, 0);
    assert.match(one.stdout, /^getblockhash height\n\nThe hash at a height\./);
  });

  void it("--rpc and --rpcuser/--rpcpassword override the datadir", async () => {
    const cookie = readFileSync(join(datadir, ".cookie"), "utf8");
    const [user, password] = cookie.split(":") as [string, string];
    const r = await runCli([
      "--rpc",
      `http://127.0.0.1:${port}/`,
      "--rpcuser",
      user,
      "--rpcpassword",
      password,
      "getblockcount",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "42\n");
    const hostPort = await runCli([
      "--rpc",
      `127.0.0.1:${port}`,
      `-rpcuser=${user}`,
      `-rpcpassword=${password}`,
      "getblockcount",
    ]);
    assert.equal(hostPort.stdout, "42\n");
    const wrong = await runCli([
      "--datadir",
      datadir,
      "--rpcuser",
      "x",
      "--rpcpassword",
      "y",
      "getblockcount",
    ]);
    assert.equal(wrong.code, 1);
    assert.match(
      wrong.stderr,
      /^error: authorization failed at http:\/\/127\.0\.0\.1:\d+\/: check --rpcuser/,
    );
    assertNoStack(wrong);
  });

  void it("uses [rpc] user/password from config.toml when there is no cookie", async () => {
    const dir = join(root, "userpass");
    mkdirSync(dir);
    const other = makeServer({ kind: "userpass", user: "operator", password: "change-me" });
    const { port: otherPort } = await other.start();
    try {
      writeConfig(dir, otherPort, 'user = "operator"\npassword = "change-me"\n');
      const r = await runCli(["--datadir", dir, "getblockcount"]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, "42\n");
    } finally {
      await other.stop();
    }
  });

  void it("exits 1 with 'could not connect' when nothing listens", async () => {
    const dead = await freePort();
    const r = await runCli(["--rpc", `http://127.0.0.1:${dead}/`, "getblockcount"]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, "");
    assert.match(
      r.stderr,
      new RegExp(
        `^error: could not connect to the server at http://127\\.0\\.0\\.1:${dead}/ \\(is timed running\\?`,
      ),
    );
    assertNoStack(r);
  });

  void it("-rpcwait waits for a node that starts later", async () => {
    const dir = join(root, "late");
    mkdirSync(dir);
    const latePort = await freePort();
    writeConfig(dir, latePort);
    const cli = runCli(["--datadir", dir, "-rpcwait", "getblockcount"]);
    await sleep(1000);
    const late = makeServer({ kind: "cookie", cookieFile: join(dir, ".cookie") }, latePort);
    await late.start();
    try {
      const r = await cli;
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, "42\n");
      assert.ok(r.ms >= 1000, `returned after ${r.ms} ms`);
    } finally {
      await late.stop();
    }
  });

  void it("-rpcwait gives up after --rpcwait-timeout", async () => {
    const dead = await freePort();
    const r = await runCli([
      "--rpc",
      `http://127.0.0.1:${dead}/`,
      "--rpcwait",
      "--rpcwait-timeout",
      "1",
      "getblockcount",
    ]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^error: gave up after 1 s waiting for the server at http:\/\/127\.0\.0\.1:\d+\//);
    assert.ok(r.ms >= 1000, `returned after ${r.ms} ms`);
    assertNoStack(r);
  });

  void it("prints usage for --help and with no method, and refuses unknown options", async () => {
    const help = await runCli(["--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^time-cli: call a TIME Coin node's JSON-RPC interface\.\n\nUsage: time-cli/);
    const none = await runCli([]);
    assert.equal(none.code, 0);
    assert.match(none.stdout, /Usage: time-cli/);
    const bad = await runCli(["--frobnicate", "getblockcount"]);
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr, 'error: unknown option --frobnicate\nsee "time-cli --help"\n');
    const noValue = await runCli(["--datadir"]);
    assert.equal(noValue.code, 1);
    assert.match(noValue.stderr, /option --datadir needs a value/);
  });
});
