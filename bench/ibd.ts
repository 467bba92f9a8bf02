/**
 * ibd_100k: a fresh node's initial block download of a long chain, as an operator runs it.
 *
 * A chain of IBD_BLOCKS (100,000; the IBD_BLOCKS environment variable overrides it, for a quick
 * look) blocks of 20 transfers each, every block from height 2 on carrying its parent's finality
 * certificate, is built in memory (bench/import.ts's builder, not timed), imported into one
 * serving node's data directory with the signature pool (not timed) and copied to two more. The
 * three serve it from this process. The syncing node is a separate `timed start` process (its own
 * data directory and loopback address, RPC on, the default signature pool), bootstrapped to the
 * three; from its spawn until getblockcount reports the tip:
 * - ibd_100k_blocks_per_s: blocks over that time;
 * - ibd_100k_peak_rss_mb: the child's peak resident memory (VmHWM), with its RSS and its
 *   anonymous part (RssAnon: the heap and buffers, without LMDB's memory-mapped file, whose
 *   pages count as resident once read) at each quarter of the chain in the note, which shows
 *   whether memory grows with the chain;
 * - ibd_100k_datadir_mb: its data directory's size once stopped;
 * - ibd_100k_verify_s: `timed verify` on that directory (a separate process), which replays every
 *   block and checks every certificate.
 * Minutes long: run it with `npm run bench -- --only ibd_100k`; the default run leaves it out.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { cpSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { blockHash, decodeBlock } from "../src/primitives/block.js";
import { initDataDir } from "../src/node/init.js";
import { dataDirPaths } from "../src/node/dataDir.js";
import { RpcClient } from "../src/rpc/client.js";
import { readCookieFile } from "../src/rpc/cookie.js";
import { defaultSigPoolThreads, SignaturePool } from "../src/crypto/sigPool.js";
import { freePort } from "../test/e2e/helpers/nodes.js";
import { buildTransferChain, importChain } from "./import.js";
import { BenchNode, NEVER_PRODUCE } from "./sync.js";
import { percentile, round, type BenchGroup, type Figure } from "./lib.js";

export const IBD_RATE = "ibd_100k_blocks_per_s";
export const IBD_RSS = "ibd_100k_peak_rss_mb";
export const IBD_DISK = "ibd_100k_datadir_mb";
export const IBD_VERIFY = "ibd_100k_verify_s";

const BLOCKS = Number(process.env.IBD_BLOCKS ?? 100_000);
const TXS_PER_BLOCK = 20;
const PEERS = 3;
const NET = "127.79.0";
const DEAD_MASTERNODE = `${NET}.99:1`;
const BIN = resolve(import.meta.dirname, "../bin/timed.js");
/** The whole download may take this long before the figure fails. */
const IBD_TIMEOUT_MS = 3_600_000;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A field of /proc/PID/status in MB (VmRSS, VmHWM), or 0 when the process is gone. */
function procMb(pid: number, field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

function dirBytes(dir: string): number {
  let sum = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    // Blocks allocated, not the apparent size: LMDB's file may be sparse.
    sum += e.isDirectory() ? dirBytes(p) : statSync(p).blocks * 512;
  }
  return sum;
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((res) => {
    if (child.exitCode !== null) res(child.exitCode);
    else child.once("exit", (code) => res(code));
  });
}

export const ibdBench: BenchGroup = {
  name: "ibd",
  figures: [IBD_RATE, IBD_RSS, IBD_DISK, IBD_VERIFY],
  explicitOnly: true,
  async run(ctx) {
    const pre = buildTransferChain(ctx, {
      label: "ibd",
      blocks: BLOCKS,
      txsPerBlock: TXS_PER_BLOCK,
      certificates: true,
      masternodeAddress: () => DEAD_MASTERNODE,
    });
    const tipHeight = pre.blocks.length;
    const tip = blockHash(decodeBlock(pre.blocks[tipHeight - 1]!).header).toString("hex");
    const root = ctx.tempDir("timebench-ibd-");
    const hosts = Array.from({ length: PEERS }, (_, i) => `${NET}.${i + 1}`);
    const ports = await Promise.all([...hosts, `${NET}.10`, `${NET}.10`].map((h) => freePort(h)));
    const peers = hosts.map((h, i) => BenchNode.create(root, `peer-${i + 1}`, h, ports[i]!, pre.spec, []));
    const pool = new SignaturePool({ threads: defaultSigPoolThreads() });
    await importChain(ctx, pre, { dir: peers[0]!.chainDir, label: "ibd: import into peer 1", pool }).finally(
      () => pool.close(),
    );
    for (const p of peers.slice(1)) cpSync(peers[0]!.chainDir, p.chainDir, { recursive: true });
    let child: ChildProcess | null = null;
    try {
      for (const p of peers) await p.start();
      const xDir = join(root, "x");
      initDataDir({
        dir: xDir,
        network: "devnet",
        masternode: false,
        genesis: pre.spec,
        now: Date.now(),
        set: {
          node: { name: "x" },
          network: { listen_address: `${NET}.10:${ports[PEERS]}`, bootstrap_peers: peers.map((p) => p.p2p) },
          rpc: { enabled: true, listen_address: `${NET}.10:${ports[PEERS + 1]}` },
          consensus: { min_masternodes: NEVER_PRODUCE },
          logging: { level: "warn", format: "json" },
        },
      });
      ctx.log(`ibd: a fresh timed process syncs ${tipHeight} blocks from ${PEERS} peers (timed)`);
      const t0 = performance.now();
      // IBD_NODE_ARGS: extra node flags for the syncing process, e.g. "--cpu-prof
      // --cpu-prof-dir=/tmp/ibd" (docs/OPERATIONS.md, "Profiling").
      const nodeArgs = (process.env.IBD_NODE_ARGS ?? "").split(" ").filter((a) => a !== "");
      child = spawn(process.execPath, [...nodeArgs, BIN, "start", "--datadir", xDir], {
        stdio: ["ignore", "ignore", "pipe"],
      });
      let stderr = "";
      child.stderr?.on("data", (d: Buffer) => {
        stderr = (stderr + d.toString()).slice(-4_000);
      });
      const pid = child.pid!;
      let client: RpcClient | null = null;
      let height = 0;
      const quarters: string[] = [];
      let lastLog = t0;
      // How long the node takes to answer RPC while it syncs: an operator's getblockcount
      // should not wait behind the import.
      let rpcMaxMs = 0;
      const rpcTimes: number[] = [];
      let rpcAnswered = false;
      let rpcFailures = 0;
      while (height < tipHeight) {
        if (performance.now() - t0 > IBD_TIMEOUT_MS) throw new Error(`ibd: timed out at height ${height}`);
        if (child.exitCode !== null) throw new Error(`ibd: the node exited (${child.exitCode}): ${stderr}`);
        await sleep(250);
        if (!client) {
          const creds = readCookieFile(dataDirPaths(xDir).cookie);
          if (!creds) continue;
          client = new RpcClient({
            url: `http://${NET}.10:${ports[PEERS + 1]}`,
            user: creds.user,
            password: creds.password,
            timeoutMs: 10_000,
          });
        }
        const c0 = performance.now();
        try {
          height = await client.call<number>("getblockcount");
          const ms = performance.now() - c0;
          rpcMaxMs = Math.max(rpcMaxMs, ms);
          rpcTimes.push(ms);
          rpcAnswered = true;
        } catch {
          if (rpcAnswered) rpcFailures++; // a timeout (10 s) once it was listening
          continue; // not listening yet, or busy
        }
        while (quarters.length < 4 && height >= ((quarters.length + 1) * tipHeight) / 4)
          quarters.push(`${round(procMb(pid, "VmRSS"), 0)} (${round(procMb(pid, "RssAnon"), 0)} anon)`);
        if (performance.now() - lastLog > 15_000) {
          lastLog = performance.now();
          ctx.log(`ibd: height ${height}/${tipHeight}, RSS ${round(procMb(pid, "VmRSS"), 0)} MB`);
        }
      }
      const seconds = (performance.now() - t0) / 1000;
      const best = await client!.call<string>("getbestblockhash");
      if (best !== tip) throw new Error(`ibd: the node's tip ${best} is not the chain's ${tip}`);
      const peak = procMb(pid, "VmHWM");
      child.kill("SIGTERM");
      await exited(child);
      child = null;
      const disk = dirBytes(xDir) / 1024 / 1024;
      ctx.log("ibd: timed verify on the synced data directory (timed)");
      const v0 = performance.now();
      const verify = spawn(process.execPath, [BIN, "verify", "--datadir", xDir], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      verify.stdout?.on("data", (d: Buffer) => (out += d.toString()));
      verify.stderr?.on("data", (d: Buffer) => (out += d.toString()));
      const code = await exited(verify);
      const verifySeconds = (performance.now() - v0) / 1000;
      if (code !== 0) throw new Error(`ibd: timed verify exited ${code}: ${out.slice(-2_000)}`);
      const figures: Figure[] = [
        {
          name: IBD_RATE,
          value: round(tipHeight / seconds, 1),
          unit: "blocks/s",
          note: `${tipHeight.toLocaleString("en-US")} blocks x ${TXS_PER_BLOCK} transfers + a certificate each, from ${PEERS} peers over loopback, in ${round(seconds, 1)} s (spawn to tip); getblockcount every 250 ms during the sync: longest answer ${round(rpcMaxMs, 0)} ms (p99 ${round(
            percentile(
              [...rpcTimes].sort((a, b) => a - b),
              0.99,
            ),
            0,
          )} ms of ${rpcTimes.length}), ${rpcFailures} unanswered within 10 s`,
        },
        {
          name: IBD_RSS,
          value: round(peak, 0),
          unit: "MB",
          note: `the syncing process's VmHWM; RSS at each quarter of the chain (anonymous memory, i.e. not LMDB's mapped file): ${quarters.join(", ")} MB`,
        },
        {
          name: IBD_DISK,
          value: round(disk, 0),
          unit: "MB",
          note: `its data directory after a clean stop (${round((disk * 1024) / tipHeight, 2)} KB/block)`,
        },
        {
          name: IBD_VERIFY,
          value: round(verifySeconds, 1),
          unit: "s",
          note: `timed verify on it: ${out.trim().split("\n").at(-1)?.slice(0, 140) ?? ""}`,
        },
      ];
      return figures;
    } finally {
      if (child && child.exitCode === null) {
        child.kill("SIGKILL");
        await exited(child);
      }
      for (const p of peers) await p.stop();
    }
  },
};
