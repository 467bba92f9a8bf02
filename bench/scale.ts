/**
 * scale_real_nodes: many real nodes on one machine, as a small operator or a test network runs
 * them. A devnet directory of SCALE_MASTERNODES (10) masternodes and SCALE_NODES (100) nodes in
 * all, 2 s blocks (prepareDevnet, as `timed devnet` builds it: node i on 127.0.1.i, bootstrapped
 * to node 1), then one `timed start` process per node, all spawned at once. Every 2 s each node is
 * asked over RPC for its connection count and best block:
 * - scale_real_nodes_converge_s: from the first spawn until, in one sweep, every node has at
 *   least MIN_LINKS connections and all report one best block;
 * - then WINDOW_S seconds of steady state, sampled each sweep:
 *   - scale_real_nodes_tip_spread: the largest height gap between nodes in a sweep (p50 in the
 *     note);
 *   - scale_real_nodes_rss_mb: mean resident memory per node process;
 *   - scale_real_nodes_cpu_pct: mean CPU per node process over the window, in % of one core.
 * The count itself is scale_real_nodes_count. Minutes long: only with `--only scale_real_nodes`;
 * SCALE_NODES and SCALE_MASTERNODES override the sizes. Every node runs with DEFAULT_NETWORK's
 * settings (see there), named in the count's note.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { openSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { prepareDevnet } from "../src/node/devnet.js";
import { RpcClient } from "../src/rpc/client.js";
import { readCookieFile } from "../src/rpc/cookie.js";
import { median, round, type BenchGroup, type Figure } from "./lib.js";

export const SCALE_COUNT = "scale_real_nodes_count";
export const SCALE_CONVERGE = "scale_real_nodes_converge_s";
export const SCALE_SPREAD = "scale_real_nodes_tip_spread";
export const SCALE_RSS = "scale_real_nodes_rss_mb";
export const SCALE_CPU = "scale_real_nodes_cpu_pct";

const NODES = Number(process.env.SCALE_NODES ?? 100);
const MASTERNODES = Number(process.env.SCALE_MASTERNODES ?? 10);
const MIN_LINKS = 3;
const PROFILE_DIR = process.env.SCALE_PROFILE_DIR ?? "";
/**
 * What every node's [network] table gets (SCALE_NETWORK overrides it, e.g.
 * "max_outbound = 8; ping_interval = 10"): nothing, so every node runs the devnet defaults (25
 * outbound connections, a ping tick every 2 s). Until the handshake keys went through JWK and the
 * accepting side of a link stopped pinging every interval, 100 processes on 2 cores never
 * converged with these defaults (76 of 100 had 3 links after 600 s, at a load average near 70),
 * and this bench ran with 8 outbound links and 10 s pings instead.
 */
const DEFAULT_NETWORK = "";
const NETWORK_SET = (process.env.SCALE_NETWORK ?? DEFAULT_NETWORK)
  .split(";")
  .map((x) => x.trim())
  .filter((x) => x !== "");
const PROFILE_EVERY = Number(process.env.SCALE_PROFILE_EVERY ?? 25);
const WINDOW_S = 30;
const CONVERGE_TIMEOUT_MS = 600_000;
const BIN = resolve(import.meta.dirname, "../bin/timed.js");
const CLK_TCK = 100;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function rssMb(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** utime + stime of a process (all its threads), in seconds. */
function cpuSeconds(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8");
    const rest = f.slice(f.lastIndexOf(")") + 2).split(" ");
    return (Number(rest[11]) + Number(rest[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}

interface Probe {
  links: number;
  best: string;
  height: number;
}

export const scaleBench: BenchGroup = {
  name: "scale",
  figures: [SCALE_COUNT, SCALE_CONVERGE, SCALE_SPREAD, SCALE_RSS, SCALE_CPU],
  explicitOnly: true,
  async run(ctx) {
    const { dir, infos } = prepareDevnet({
      nodes: MASTERNODES,
      fullNodes: NODES - MASTERNODES,
      blockTime: 2,
      dir: join(ctx.tempDir("timebench-scale-"), "devnet"),
    });
    // SCALE_NETWORK: settings added to every node's [network] table, e.g.
    // "max_outbound = 8; ping_interval = 10" (the defaults are the config's).
    if (NETWORK_SET.length > 0) {
      for (const info of infos) {
        const file = join(info.datadir, "config.toml");
        const text = readFileSync(file, "utf8").replace(
          /^\[network\]$/m,
          ["[network]", ...NETWORK_SET].join("\n"),
        );
        writeFileSync(file, text);
      }
    }
    const children: ChildProcess[] = [];
    try {
      ctx.log(`scale: spawning ${NODES} timed start processes (${MASTERNODES} masternodes) in ${dir}`);
      const t0 = performance.now();
      for (const [i, info] of infos.entries()) {
        const log = openSync(join(info.datadir, "node.log"), "a");
        // SCALE_PROFILE_DIR: every SCALE_PROFILE_EVERY-th node (default 25) writes a CPU profile
        // there when it stops (see OPERATIONS.md, "Profiling").
        const prof =
          PROFILE_DIR !== "" && i % PROFILE_EVERY === 0
            ? ["--cpu-prof", `--cpu-prof-dir=${PROFILE_DIR}`]
            : [];
        children.push(
          spawn(process.execPath, [...prof, BIN, "start", "--datadir", info.datadir], {
            stdio: ["ignore", log, log],
          }),
        );
      }
      const clients: Array<RpcClient | null> = infos.map(() => null);
      const probe = async (i: number): Promise<Probe | null> => {
        if (!clients[i]) {
          const creds = readCookieFile(join(infos[i]!.datadir, ".cookie"));
          if (!creds) return null;
          clients[i] = new RpcClient({
            url: infos[i]!.rpc,
            user: creds.user,
            password: creds.password,
            timeoutMs: 5_000,
          });
        }
        try {
          const c = clients[i]!;
          const [links, best, height] = await Promise.all([
            c.call<number>("getconnectioncount"),
            c.call<string>("getbestblockhash"),
            c.call<number>("getblockcount"),
          ]);
          return { links, best, height };
        } catch {
          return null;
        }
      };
      const sweep = (): Promise<Array<Probe | null>> => Promise.all(infos.map((_, i) => probe(i)));
      let converged = 0;
      let last = "";
      for (;;) {
        const elapsed = performance.now() - t0;
        if (elapsed > CONVERGE_TIMEOUT_MS)
          throw new Error(`scale: not converged after ${CONVERGE_TIMEOUT_MS} ms: ${last}`);
        const dead = children.findIndex((c) => c.exitCode !== null);
        if (dead >= 0) throw new Error(`scale: ${infos[dead]!.name} exited (${children[dead]!.exitCode})`);
        const ps = await sweep();
        const up = ps.filter((p): p is Probe => p !== null);
        const tips = new Set(up.map((p) => p.best));
        const linked = up.filter((p) => p.links >= MIN_LINKS).length;
        last = `${up.length}/${NODES} answering, ${linked} with ≥ ${MIN_LINKS} links, ${tips.size} tips, heights ${Math.min(...up.map((p) => p.height))}–${Math.max(...up.map((p) => p.height))}`;
        if (up.length === NODES && linked === NODES && tips.size === 1) {
          converged = (performance.now() - t0) / 1000;
          break;
        }
        ctx.log(`scale: ${round(elapsed / 1000, 0)} s: ${last}`);
        await sleep(2_000);
      }
      ctx.log(`scale: converged after ${round(converged, 1)} s; steady state for ${WINDOW_S} s`);
      const cpu0 = children.map((c) => cpuSeconds(c.pid!));
      const w0 = performance.now();
      const spreads: number[] = [];
      const rss: number[] = [];
      while (performance.now() - w0 < WINDOW_S * 1000) {
        const ps = await sweep();
        const hs = ps.filter((p): p is Probe => p !== null).map((p) => p.height);
        if (hs.length > 0) spreads.push(Math.max(...hs) - Math.min(...hs));
        rss.push(children.reduce((a, c) => a + rssMb(c.pid!), 0) / children.length);
        await sleep(2_000);
      }
      const windowS = (performance.now() - w0) / 1000;
      const cpuPct = children.map((c, i) => ((cpuSeconds(c.pid!) - cpu0[i]!) / windowS) * 100);
      const meanCpu = cpuPct.reduce((a, b) => a + b, 0) / cpuPct.length;
      const figures: Figure[] = [
        {
          name: SCALE_COUNT,
          value: NODES,
          unit: "nodes",
          note: `${MASTERNODES} masternodes, 2 s blocks, each its own timed start process; [network] ${NETWORK_SET.length > 0 ? NETWORK_SET.join(", ") : "defaults"}`,
        },
        {
          name: SCALE_CONVERGE,
          value: round(converged, 1),
          unit: "s",
          note: `first spawn to one sweep where every node has ≥ ${MIN_LINKS} connections and all report one best block`,
        },
        {
          name: SCALE_SPREAD,
          value: Math.max(...spreads),
          unit: "blocks",
          note: `largest height gap in a sweep over ${WINDOW_S} s (${spreads.length} sweeps; p50 ${median(spreads)})`,
        },
        {
          name: SCALE_RSS,
          value: round(median(rss), 1),
          unit: "MB",
          note: `mean RSS per node process (median over the sweeps); all ${NODES}: ${round((median(rss) * NODES) / 1024, 2)} GB`,
        },
        {
          name: SCALE_CPU,
          value: round(meanCpu, 2),
          unit: "% core",
          note: `mean over ${round(windowS, 0)} s (highest node ${round(Math.max(...cpuPct), 1)} %); all ${NODES}: ${round((meanCpu * NODES) / 100, 2)} cores`,
        },
      ];
      return figures;
    } finally {
      for (const c of children) if (c.exitCode === null) c.kill("SIGTERM");
      const deadline = performance.now() + 30_000;
      while (children.some((c) => c.exitCode === null) && performance.now() < deadline) await sleep(200);
      for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
    }
  },
};
