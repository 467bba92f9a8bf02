/**
 * `npm run chaos`: checks root and iproute2, builds the namespaces and the devnet's data
 * directories, runs the campaign (controller.ts) inside the monitor namespace, and tears
 * everything down however the campaign ends: normal end, error, SIGINT/SIGTERM/SIGHUP, the
 * controller crashing, or this process being orphaned (its npm killed).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import {
  allNamespaces,
  killStrays,
  listNamespaces,
  missingRequirement,
  NS_PATTERN,
  nsMon,
  setUp,
  tearDown,
  type Topology,
} from "./netns.js";
import { parseOptions, USAGE, UsageError, type ChaosOptions } from "./options.js";
import { buildPlan, writePlan } from "./plan.js";

const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CONTROLLER = fileURLToPath(new URL("./controller.ts", import.meta.url));
const TEMP_PREFIX = "timed-chaos-";
/** After the first signal, how long the controller gets to stop its nodes and report. */
const GRACE_MS = 60_000;

const say = (s: string): void => void process.stdout.write(s + "\n");
const fail = (s: string): void => void process.stderr.write(s + "\n");
// A closed terminal or pipe must not turn into a crash that skips the teardown.
process.stdout.on("error", () => undefined);
process.stderr.on("error", () => undefined);

function newPrefix(): string {
  const taken = new Set(listNamespaces().map((n) => n.split("-")[0]));
  for (let i = 0; i < 20; i++) {
    const p = `tc${randomBytes(2).toString("hex")}`;
    if (!taken.has(p)) return p;
  }
  throw new Error("no free namespace prefix (run with --cleanup?)");
}

function cleanupLeftovers(): number {
  const namespaces = listNamespaces().filter((n) => NS_PATTERN.test(n));
  const r = tearDown(namespaces);
  const strays = killStrays();
  say(
    `removed ${r.deleted.length} namespace(s)${r.deleted.length > 0 ? ` (${r.deleted.join(", ")})` : ""},` +
      ` killed ${r.killed + strays} process(es)`,
  );
  for (const e of r.errors) fail(`  ${e}`);
  const kept = readdirSync(tmpdir()).filter((d) => d.startsWith(TEMP_PREFIX));
  if (kept.length > 0)
    say(
      `kept directories (logs of earlier runs; delete by hand): ${kept.map((d) => join(tmpdir(), d)).join(" ")}`,
    );
  return r.errors.length > 0 ? 1 : 0;
}

/** Signals and orphaning: before the controller runs they only mark the run as stopped. */
let signals = 0;
let onInterrupt: (why: string) => void = () => undefined;
const interrupt = (why: string): void => {
  signals++;
  onInterrupt(why);
};
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(sig, () => interrupt(sig));
// If the npm or shell above us is killed we are reparented and nobody waits for us: stop.
const parentPid = process.ppid;
const orphanWatch = setInterval(() => {
  if (process.ppid !== parentPid && signals === 0) interrupt("parent process gone");
}, 500);
orphanWatch.unref();

/**
 * The longest a campaign can legitimately take: warm-up, then per cycle the fault, the
 * convergence wait, the settle and the snapshots, then stopping and verifying. A watchdog
 * interrupts the controller past it.
 */
function campaignBoundMs(o: ChaosOptions): number {
  const perCycle = Math.max(o.maxFault, o.shortMax) + o.convergeTimeout + o.settle + 60;
  return (300 + o.nodes * 150 + o.cycles * perCycle) * 1000;
}

/** Runs the controller in the monitor namespace; resolves with its exit code. */
function runController(t: Topology, planFile: string, boundMs: number): Promise<number> {
  if (signals > 0) return Promise.resolve(130);
  return new Promise((resolve) => {
    // Own process group: a terminal Ctrl-C reaches only us, and we forward exactly one SIGINT.
    const child = spawn(
      "ip",
      ["netns", "exec", nsMon(t), process.execPath, "--import", "tsx", CONTROLLER, "--plan", planFile],
      { cwd: REPO_ROOT, stdio: "inherit", detached: true },
    );
    let grace: NodeJS.Timeout | undefined;
    const watchdog = setTimeout(() => interrupt(`campaign still running after ${boundMs / 1000} s`), boundMs);
    onInterrupt = (why) => {
      if (signals === 1) {
        fail(`${why}: asking the campaign to stop (again to kill it)`);
        child.kill("SIGINT");
        grace = setTimeout(() => child.kill("SIGKILL"), GRACE_MS);
      } else {
        child.kill("SIGKILL");
      }
    };
    const done = (code: number): void => {
      onInterrupt = () => undefined;
      clearTimeout(grace);
      clearTimeout(watchdog);
      resolve(code);
    };
    child.once("error", (e) => {
      fail(`cannot start the controller: ${e.message}`);
      done(2);
    });
    child.once("exit", (code, signal) => {
      if (signal !== null) fail(`controller ended by ${signal}`);
      done(code ?? (signals > 0 ? 130 : 2));
    });
  });
}

async function main(): Promise<number> {
  let o: ChaosOptions;
  try {
    o = parseOptions(process.argv.slice(2));
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    fail(`chaos: ${e.message}`);
    fail(USAGE);
    return 2;
  }
  if (o.help) {
    say(USAGE);
    return 0;
  }
  const missing = missingRequirement();
  if (missing !== null) {
    fail(missing);
    return 2;
  }
  if (o.cleanup) return cleanupLeftovers();

  const leftovers = listNamespaces().filter((n) => NS_PATTERN.test(n));
  if (leftovers.length > 0)
    say(
      `note: namespaces of an earlier run remain (${leftovers.join(", ")}); \`npm run chaos -- --cleanup\` removes them`,
    );

  const t: Topology = { prefix: newPrefix(), nodes: o.nodes };
  const dir = mkdtempSync(join(tmpdir(), `${TEMP_PREFIX}${t.prefix}-`));
  let tornDown = false;
  const tearAll = (): void => {
    if (tornDown) return;
    tornDown = true;
    const r = tearDown(allNamespaces(t));
    // Belt and braces: a node of this run that somehow left its namespace.
    const strays = killStrays(dir);
    say(
      `cleanup: removed ${r.deleted.length} namespace(s), killed ${r.killed + strays} leftover process(es)`,
    );
    for (const e of r.errors) fail(`cleanup: ${e}`);
  };
  // Last resort for paths that skip the finally below (process.exit, an uncaught exception).
  process.on("exit", tearAll);

  let code: number;
  try {
    setUp(t);
    const planFile = writePlan(buildPlan(t, dir, o));
    code = await runController(t, planFile, campaignBoundMs(o));
  } catch (e) {
    fail(`chaos: ${e instanceof Error ? e.message : String(e)}`);
    code = 2;
  } finally {
    tearAll();
  }
  const keep = o.keep || code !== 0;
  if (keep) say(`kept ${dir} (node-<i>.log are the node logs, node-<i>/ the data dirs)`);
  else rmSync(dir, { recursive: true, force: true });
  return code;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    fail(`chaos: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(2);
  },
);
