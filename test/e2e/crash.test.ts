/**
 * Crash safety with real processes: a one-masternode devnet node (`timed start`, 1 s blocks) is
 * SIGKILLed at random moments while it produces blocks and answers RPC. After every kill,
 * `timed verify` must find the stored chain consistent, and the next start must still have
 * every block the node reported over RPC before it died: the same hash at the last reported
 * height, checked before the restarted node could produce its way past a loss.
 *
 * The schedule is random but seeded; rerun a failure with CRASH_SEED=<seed from the test name>.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  killAllChildren,
  makeFastDevnet,
  makeTempDir,
  removeDir,
  rpcClient,
  runTimed,
  seededRandom,
  startNode,
  waitFor,
  type FastDevnet,
} from "./helpers/proc.js";

/** At least 10 kills; each costs about 3.5 s (two process starts, the random delay, verify). */
const ITERATIONS = 10;
const SEED = process.env.CRASH_SEED !== undefined ? Number(process.env.CRASH_SEED) : Date.now() % 2 ** 31;
/** The kill comes 0.3 to 2.5 s after the node has produced its first block of the run. */
const MIN_DELAY_MS = 300;
const MAX_DELAY_MS = 2_500;

interface ChainInfo {
  blocks: number;
  bestblockhash: string;
}

interface Reported {
  height: number;
  hash: string;
}

void describe("crash safety: SIGKILL at random moments", () => {
  let root = "";
  let dev: FastDevnet;

  before(async () => {
    root = makeTempDir("crash");
    dev = await makeFastDevnet(join(root, "node"), 1);
  });

  after(async () => {
    await killAllChildren();
    removeDir(root);
  });

  void it(
    `verify passes and no reported block is lost over ${ITERATIONS} kills (seed ${SEED})`,
    { timeout: 150_000 },
    async (t) => {
      const rand = seededRandom(SEED);
      const lockFile = join(dev.dir, "node.lock");
      // The highest (height, tip) any RPC answer has reported, across all runs.
      const seen: { last: Reported | null } = { last: null };
      const record = (info: ChainInfo): void => {
        if (seen.last === null || info.blocks >= seen.last.height) {
          seen.last = { height: info.blocks, hash: info.bestblockhash };
        }
      };
      const summary: string[] = [];

      for (let i = 0; i < ITERATIONS; i++) {
        const node = startNode(dev.dir, ["--log-level", "warn"]);
        const { url, cookieFile } = await node.waitForRpc();
        const rpc = rpcClient(url, cookieFile);

        // Before anything else: the restarted node is at least where the dead one said it was.
        const count = await rpc.call<number>("getblockcount");
        const before = seen.last;
        if (before !== null) {
          assert.ok(
            count >= before.height,
            `run ${i}: restarted at height ${count}, but the killed node had reported ${before.height}`,
          );
          const hash = await rpc.call<string>("getblockhash", [before.height]);
          assert.equal(hash, before.hash, `run ${i}: block ${before.height} changed across the crash`);
        }

        // Let it produce at least one block in this run, then kill it at a random moment while
        // polling RPC as fast as it answers. Only answers that arrived count as reported.
        const startHeight = count;
        await waitFor(
          "the node to produce a block",
          async () => {
            const info = await rpc.call<ChainInfo>("getblockchaininfo");
            record(info);
            return info.blocks > startHeight ? true : undefined;
          },
          { timeoutMs: 10_000, stepMs: 50 },
        );
        const delayMs = MIN_DELAY_MS + rand() * (MAX_DELAY_MS - MIN_DELAY_MS);
        let killed = false;
        const killTimer = setTimeout(() => {
          killed = true;
          node.child.kill("SIGKILL");
        }, delayMs);
        try {
          for (let polls = 0; !killed && polls < 10_000; polls++) {
            try {
              record(await rpc.call<ChainInfo>("getblockchaininfo"));
            } catch (e) {
              if (!killed) throw e;
            }
            if (!killed) await sleep(Math.floor(rand() * 60));
          }
        } finally {
          clearTimeout(killTimer);
        }
        const exit = await node.waitExit(10_000);
        assert.equal(exit.signal, "SIGKILL", `run ${i}: expected death by SIGKILL\n${node.output()}`);
        assert.ok(
          existsSync(lockFile),
          `run ${i}: the killed node should have left its (now stale) lock behind`,
        );
        const reported = seen.last;
        assert.ok(reported !== null, "RPC reported no height");

        const verify = await runTimed(["verify", "--datadir", dev.dir]);
        assert.equal(
          verify.code,
          0,
          `run ${i}: timed verify failed after the kill\n${verify.stdout}${verify.stderr}`,
        );
        const m = /^ok: height (\d+) tip ([0-9a-f]{64})/m.exec(verify.stdout);
        assert.ok(m?.[1] !== undefined, `run ${i}: unexpected verify output: ${verify.stdout}`);
        const verified = Number(m[1]);
        assert.ok(
          verified >= reported.height,
          `run ${i}: verify found height ${verified}, but RPC had reported ${reported.height}`,
        );
        summary.push(
          `kill ${i}: after ${Math.round(delayMs)} ms, reported ${reported.height}, stored ${verified}`,
        );
      }

      // A last start takes over the stale lock once more, then a clean SIGTERM shutdown.
      const node = startNode(dev.dir, ["--log-level", "warn"]);
      const { url, cookieFile } = await node.waitForRpc();
      const rpc = rpcClient(url, cookieFile);
      const final = seen.last;
      assert.ok(final !== null);
      assert.ok((await rpc.call<number>("getblockcount")) >= final.height);
      assert.equal(await rpc.call<string>("getblockhash", [final.height]), final.hash);
      const exit = await node.kill("SIGTERM");
      assert.equal(exit.code, 0, `SIGTERM should stop the node cleanly\n${node.output()}`);
      assert.ok(!existsSync(lockFile), "a clean stop releases the lock");
      assert.ok(!existsSync(cookieFile), "a clean stop removes the cookie");
      const verify = await runTimed(["verify", "--datadir", dev.dir]);
      assert.equal(verify.code, 0, verify.stderr);
      t.diagnostic(`seed ${SEED}`);
      for (const line of summary) t.diagnostic(line);
    },
  );
});
