/**
 * Helpers for end-to-end tests that run the real binaries (bin/timed.js, bin/time-cli.js, which
 * run the compiled dist/) as child processes on real LMDB data directories.
 *
 * Every wait has a timeout. Every child started here is tracked, and `killAllChildren()` (call
 * it from an `after` hook) SIGKILLs whatever is still running, so a failing test never leaves a
 * node behind; a process "exit" hook does the same as a last resort.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { RpcClient } from "../../../src/rpc/client.js";
import { KeyPair } from "../../../src/crypto/ed25519.js";
import { readCookieFile } from "../../../src/rpc/cookie.js";
import { sleep, waitFor } from "./wait.js";

export { sleep, waitFor };

export const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const TIMED = join(REPO_ROOT, "bin", "timed.js");
const TIME_CLI = join(REPO_ROOT, "bin", "time-cli.js");

/** Default bound for a one-shot command (init, genesis, verify, a time-cli call). */
export const COMMAND_TIMEOUT_MS = 30_000;

const live = new Set<ChildProcess>();

process.on("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

/** SIGKILLs every child still running and waits (bounded) for them to be gone. */
export async function killAllChildren(timeoutMs = 5_000): Promise<void> {
  const waits = [...live].map((child) => {
    child.kill("SIGKILL");
    return exitOf(child, timeoutMs).catch(() => undefined);
  });
  await Promise.all(waits);
}

function exitOf(
  child: ChildProcess,
  timeoutMs: number,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.off("exit", onExit);
      reject(new Error(`process ${child.pid} did not exit within ${timeoutMs} ms`));
    }, timeoutMs);
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      clearTimeout(timer);
      resolve({ code, signal });
    };
    child.once("exit", onExit);
  });
}

function spawnTracked(script: string, args: readonly string[]): ChildProcess {
  const child = spawn(process.execPath, [script, ...args], {
    cwd: REPO_ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NO_COLOR: "1" },
  });
  live.add(child);
  child.once("exit", () => live.delete(child));
  return child;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function run(script: string, args: readonly string[], timeoutMs: number): Promise<RunResult> {
  const started = performance.now();
  const child = spawnTracked(script, args);
  let stdout = "";
  let stderr = "";
  child.stdout?.setEncoding("utf8").on("data", (s: string) => (stdout += s));
  child.stderr?.setEncoding("utf8").on("data", (s: string) => (stderr += s));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(
        new Error(
          `${script} ${args.join(" ")} did not exit within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`,
        ),
      );
    }, timeoutMs);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    // "close" (not "exit"): the pipes are drained, so stdout and stderr are complete.
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - started });
    });
  });
}

/** Runs `timed ARGS...` to completion. */
export function runTimed(args: readonly string[], timeoutMs = COMMAND_TIMEOUT_MS): Promise<RunResult> {
  return run(TIMED, args, timeoutMs);
}

/** Runs `time-cli ARGS...` to completion. */
export function runCli(args: readonly string[], timeoutMs = COMMAND_TIMEOUT_MS): Promise<RunResult> {
  return run(TIME_CLI, args, timeoutMs);
}

const RPC_LINE = /^RPC (http:\/\/\S+) \(cookie: (.+)\)$/m;

/** A running `timed start`. */
export class NodeProcess {
  readonly child: ChildProcess;
  stdout = "";
  stderr = "";
  private readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(readonly args: readonly string[]) {
    this.child = spawnTracked(TIMED, args);
    this.child.stdout?.setEncoding("utf8").on("data", (s: string) => (this.stdout += s));
    this.child.stderr?.setEncoding("utf8").on("data", (s: string) => (this.stderr += s));
    this.exited = new Promise((resolve) => {
      this.child.once("close", (code, signal) => resolve({ code, signal }));
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Waits for the "RPC http://HOST:PORT/ (cookie: FILE)" line; fails if the node exits first. */
  async waitForRpc(timeoutMs = 15_000): Promise<{ url: string; cookieFile: string }> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const m = RPC_LINE.exec(this.stdout);
      if (m?.[1] !== undefined && m[2] !== undefined) return { url: m[1], cookieFile: m[2] };
      if (!this.running) {
        throw new Error(
          `timed exited (${this.child.exitCode ?? this.child.signalCode}) before RPC was up\n${this.output()}`,
        );
      }
      if (performance.now() > deadline) {
        throw new Error(`no RPC line from timed within ${timeoutMs} ms\n${this.output()}`);
      }
      await sleep(25);
    }
  }

  /** Resolves with how the process ended; rejects if it is still running after timeoutMs. */
  async waitExit(timeoutMs = 15_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(new Error(`timed (pid ${this.pid}) did not exit within ${timeoutMs} ms\n${this.output()}`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends `signal` and waits for the exit. */
  async kill(
    signal: NodeJS.Signals = "SIGKILL",
    timeoutMs = 15_000,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.running) this.child.kill(signal);
    return this.waitExit(timeoutMs);
  }

  output(): string {
    return `--- stdout ---\n${this.stdout.slice(-4000)}\n--- stderr ---\n${this.stderr.slice(-4000)}`;
  }
}

/**
 * Starts `timed start --datadir DIR --rpc 127.0.0.1:0 ...` (RPC on a free loopback port). P2P
 * also gets a free port unless `extra` names one: test files run in parallel, and two nodes on the
 * devnet's default 127.0.0.1:24200 would collide.
 */
export function startNode(datadir: string, extra: readonly string[] = []): NodeProcess {
  const listen = extra.includes("--listen") ? [] : ["--listen", "127.0.0.1:0"];
  return new NodeProcess([
    "start",
    "--datadir",
    datadir,
    "--rpc",
    "127.0.0.1:0",
    ...listen,
    "--log-format",
    "json",
    ...extra,
  ]);
}

/** A JSON-RPC client for a running node, authenticated with its cookie. */
export function rpcClient(url: string, cookieFile: string, timeoutMs = 10_000): RpcClient {
  const creds = readCookieFile(cookieFile);
  if (!creds) throw new Error(`no cookie at ${cookieFile}`);
  return new RpcClient({ url, user: creds.user, password: creds.password, timeoutMs });
}

/** A fresh temporary directory; remove it with `removeDir`. */
export function makeTempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `timed-e2e-${prefix}-`));
}

export function removeDir(dir: string): void {
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
}

/**
 * Asserts the shape of an expected CLI failure: a non-zero exit and exactly one line on
 * stderr, with no stack trace. Returns that line.
 */
export function oneErrorLine(r: RunResult): string {
  if (r.code === 0 || r.code === null) {
    throw new Error(
      `expected a non-zero exit, got ${r.code ?? r.signal}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`,
    );
  }
  const lines = r.stderr.split("\n").filter((l) => l.trim() !== "");
  if (lines.length !== 1) {
    throw new Error(`expected exactly one line on stderr, got ${lines.length}:\n${r.stderr}`);
  }
  const line = lines[0]!;
  if (/^\s+at /m.test(r.stderr) || /Error:/.test(line)) {
    throw new Error(`stderr looks like an uncaught exception:\n${r.stderr}`);
  }
  return line;
}

export interface FastDevnet {
  dir: string;
  operatorPubkey: string;
  genesisHash: string;
  blockTimeSeconds: number;
}

/**
 * A one-masternode devnet data directory with a short block time. `timed init --masternode`
 * makes a one-masternode devnet at the default 2 s; the block time lives in the genesis, so a
 * genesis listing the same operator key is made with `timed genesis --block-time`, put in place
 * of the directory's genesis.json (the chain database does not exist until the first start),
 * and [consensus].block_time_seconds is set to match. The config takes whole seconds, so 1 s
 * is the shortest block time a node can run. `masternodeAddress` is the service address the genesis
 * gives the masternode (start the node with `--listen` on it so peers reach it there).
 */
export async function makeFastDevnet(
  dir: string,
  blockTimeSeconds = 1,
  /** The masternode's service address in the genesis: where other nodes dial it. */
  masternodeAddress = "127.0.0.1:24200",
  /**
   * More genesis masternodes that nobody runs, each listed at `phantomAddress` (nothing may
   * listen there). With one of equal weight, no block is ever final (1 of 2 is not more than 2/3).
   */
  phantoms: { count: number; address: string } = { count: 0, address: "" },
): Promise<FastDevnet> {
  const init = await runTimed(["init", "--datadir", dir, "--network", "devnet", "--masternode"]);
  if (init.code !== 0) throw new Error(`timed init failed: ${init.stderr}`);
  const pk = /^operator pubkey: ([0-9a-f]{64})$/m.exec(init.stdout)?.[1];
  if (pk === undefined) throw new Error(`timed init printed no operator pubkey:\n${init.stdout}`);
  const genesisFile = `${dir}.genesis.json`;
  const gen = await runTimed([
    "genesis",
    "--network",
    "devnet",
    "--out",
    genesisFile,
    "--masternode",
    `${pk}@${masternodeAddress}`,
    ...Array.from({ length: phantoms.count }, () => [
      "--masternode",
      `${KeyPair.generate().publicKey.toString("hex")}@${phantoms.address}`,
    ]).flat(),
    "--block-time",
    String(blockTimeSeconds),
  ]);
  if (gen.code !== 0) throw new Error(`timed genesis failed: ${gen.stderr}`);
  const genesisHash = /\(genesis ([0-9a-f]{64}),/.exec(gen.stdout)?.[1];
  if (genesisHash === undefined) throw new Error(`timed genesis printed no hash:\n${gen.stdout}`);
  writeFileSync(join(dir, "genesis.json"), readFileSync(genesisFile));
  rmSync(genesisFile);
  const configFile = join(dir, "config.toml");
  const config = readFileSync(configFile, "utf8");
  const updated = config.replace(/^block_time_seconds = .*$/m, `block_time_seconds = ${blockTimeSeconds}`);
  if (updated === config && !config.includes(`block_time_seconds = ${blockTimeSeconds}\n`)) {
    throw new Error(`no block_time_seconds line in ${configFile}`);
  }
  if (!/^min_masternodes = 1$/m.test(updated))
    throw new Error(`${configFile} does not set min_masternodes = 1`);
  writeFileSync(configFile, updated);
  return { dir, operatorPubkey: pk, genesisHash, blockTimeSeconds };
}

/** A deterministic PRNG (mulberry32), so a failing random schedule can be replayed from its seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
