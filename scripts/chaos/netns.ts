/**
 * Network namespaces, bridges and veth pairs, through iproute2. Everything lives in namespaces
 * named `<prefix>-…`; nothing is created in the root namespace, so deleting the namespaces
 * removes every interface too.
 *
 * Commands are synchronous: teardown must also work from an "exit" handler, and each command
 * takes a few milliseconds.
 */
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

/** Leftover namespaces of any chaos run: `tc` + 4 hex digits, then `-sw`, `-mon` or `-n<i>`. */
export const NS_PATTERN = /^tc[0-9a-f]{4}-(sw|mon|n\d{1,2})$/;
/** Partition sides use br1..br3 (k is 2 or 3); br0 is the normal network. */
export const PARTITION_BRIDGES = 3;
const COMMAND_TIMEOUT_MS = 10_000;

export const P2P_PORT = 24200;
export const RPC_PORT = 24201;
export const MON_ADDR = "10.78.0.254";

export interface Topology {
  prefix: string;
  nodes: number;
}

export const nsSwitch = (t: Topology): string => `${t.prefix}-sw`;
export const nsMon = (t: Topology): string => `${t.prefix}-mon`;
export const nsNode = (t: Topology, i: number): string => `${t.prefix}-n${i}`;
export const p2pHost = (i: number): string => `10.77.0.${i}`;
export const mgmtHost = (i: number): string => `10.78.0.${i}`;
/** The switch-side end of node i's data veth (an interface name inside `<p>-sw`). */
export const switchPort = (i: number): string => `s${i}`;
export const allNamespaces = (t: Topology): string[] => [
  nsSwitch(t),
  nsMon(t),
  ...Array.from({ length: t.nodes }, (_, k) => nsNode(t, k + 1)),
];

export class CommandError extends Error {}

/** Runs a command; throws CommandError with its stderr on failure. Returns stdout. */
export function run(cmd: string, args: readonly string[], timeoutMs = COMMAND_TIMEOUT_MS): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: timeoutMs });
  if (r.error) throw new CommandError(`${cmd} ${args.join(" ")}: ${r.error.message}`);
  if (r.status !== 0) {
    throw new CommandError(
      `${cmd} ${args.join(" ")} failed (${r.status ?? r.signal}): ${(r.stderr || r.stdout).trim()}`,
    );
  }
  return r.stdout;
}

const ip = (...args: string[]): string => run("ip", args);
const bridge = (ns: string, ...args: string[]): string => run("ip", ["netns", "exec", ns, "bridge", ...args]);

/** A one-line reason why this machine cannot run the campaign, or null. */
export function missingRequirement(): string | null {
  if (process.platform !== "linux") return "npm run chaos needs Linux (network namespaces)";
  if (typeof process.getuid !== "function" || process.getuid() !== 0)
    return "npm run chaos needs root (it creates network namespaces); run it with sudo";
  for (const [cmd, args] of [
    ["ip", ["-V"]],
    ["bridge", ["-V"]],
  ] as const) {
    const r = spawnSync(cmd, args, { encoding: "utf8", timeout: COMMAND_TIMEOUT_MS });
    if (r.error || r.status !== 0)
      return `npm run chaos needs iproute2: \`${cmd}\` is missing or broken (apt-get install iproute2)`;
  }
  return null;
}

/** Builds the switch, the management network and every node's namespace (see README.md). */
export function setUp(t: Topology): void {
  for (const ns of allNamespaces(t)) {
    ip("netns", "add", ns);
    ip("-n", ns, "link", "set", "lo", "up");
  }
  const sw = nsSwitch(t);
  for (let b = 0; b <= PARTITION_BRIDGES; b++) {
    ip("-n", sw, "link", "add", `br${b}`, "type", "bridge");
    ip("-n", sw, "link", "set", `br${b}`, "up");
  }
  const mon = nsMon(t);
  ip("-n", mon, "link", "add", "mbr", "type", "bridge");
  ip("-n", mon, "addr", "add", `${MON_ADDR}/24`, "dev", "mbr");
  ip("-n", mon, "link", "set", "mbr", "up");
  for (let i = 1; i <= t.nodes; i++) {
    const n = nsNode(t, i);
    // Data network: node ns eth0 <-> switch port s<i> on br0.
    ip("-n", sw, "link", "add", switchPort(i), "type", "veth", "peer", "name", "eth0", "netns", n);
    ip("-n", sw, "link", "set", switchPort(i), "master", "br0");
    ip("-n", sw, "link", "set", switchPort(i), "up");
    ip("-n", n, "addr", "add", `${p2pHost(i)}/24`, "dev", "eth0");
    ip("-n", n, "link", "set", "eth0", "up");
    // Management network: node ns mgmt0 <-> monitor port m<i>, isolated so nodes never talk over it.
    ip("-n", mon, "link", "add", `m${i}`, "type", "veth", "peer", "name", "mgmt0", "netns", n);
    ip("-n", mon, "link", "set", `m${i}`, "master", "mbr");
    bridge(mon, "link", "set", "dev", `m${i}`, "isolated", "on");
    ip("-n", mon, "link", "set", `m${i}`, "up");
    ip("-n", n, "addr", "add", `${mgmtHost(i)}/24`, "dev", "mgmt0");
    ip("-n", n, "link", "set", "mgmt0", "up");
  }
}

/** Moves node i's switch port onto bridge br<b> (0 = the normal network). */
export function setPortBridge(t: Topology, i: number, b: number): void {
  ip("-n", nsSwitch(t), "link", "set", switchPort(i), "master", `br${b}`);
}

/** Carrier up or down on node i's switch port (down = cable pulled). */
export function setPortUp(t: Topology, i: number, up: boolean): void {
  ip("-n", nsSwitch(t), "link", "set", switchPort(i), up ? "up" : "down");
}

/** Every named namespace on the machine. */
export function listNamespaces(): string[] {
  return ip("netns", "list")
    .split("\n")
    .map((l) => l.trim().split(/\s+/)[0] ?? "")
    .filter((n) => n !== "");
}

function pidsIn(ns: string): number[] {
  try {
    return ip("netns", "pids", ns)
      .split(/\s+/)
      .filter((s) => /^\d+$/.test(s))
      .map(Number);
  } catch {
    return [];
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function killPids(pids: readonly number[]): number {
  let n = 0;
  for (const pid of pids) {
    if (pid === process.pid || pid === process.ppid) continue;
    try {
      process.kill(pid, "SIGKILL");
      n++;
    } catch {
      // already gone
    }
  }
  // SIGKILL is asynchronous; give the kernel a moment (bounded) so the namespace can go.
  const deadline = performance.now() + 3_000;
  while (pids.some((p) => p !== process.pid && alive(p)) && performance.now() < deadline) {
    spawnSync("sleep", ["0.05"]);
  }
  return n;
}

/**
 * Processes of chaos runs that may have outlived their namespace: node processes whose command
 * line names a chaos data directory (`timed-chaos-…`, or only `marker` when given), and
 * controllers.
 */
export function strayProcesses(marker = "timed-chaos-"): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (pid === process.pid || pid === process.ppid) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${e}/cmdline`, "utf8").split("\0");
    } catch {
      continue;
    }
    const node = argv.some((a) => a.endsWith("timed.js")) && argv.some((a) => a.includes(marker));
    const controller =
      marker === "timed-chaos-" && argv.some((a) => a.endsWith("scripts/chaos/controller.ts"));
    if (node || controller) out.push(pid);
  }
  return out;
}

/**
 * Kills every process inside the given namespaces, then deletes them. Never throws: it is
 * called on every exit path. Returns what it did, for the operator.
 */
export function tearDown(namespaces: readonly string[]): {
  killed: number;
  deleted: string[];
  errors: string[];
} {
  const errors: string[] = [];
  const existing = new Set(safeList(errors));
  const ours = namespaces.filter((ns) => existing.has(ns));
  const killed = killPids(ours.flatMap(pidsIn));
  const deleted: string[] = [];
  for (const ns of ours) {
    try {
      ip("netns", "del", ns);
      deleted.push(ns);
    } catch (e) {
      errors.push((e as Error).message);
    }
  }
  return { killed, deleted, errors };
}

/** Kills stray chaos processes by pid. */
export function killStrays(marker?: string): number {
  return killPids(strayProcesses(marker));
}

function safeList(errors: string[]): string[] {
  try {
    return listNamespaces();
  } catch (e) {
    errors.push((e as Error).message);
    return [];
  }
}
