/**
 * The node processes: `timed start` inside each node's namespace, its output appended to one log
 * file per node, and a JSON-RPC client over the management network.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { RpcClient, RpcTransportError } from "../../src/rpc/client.js";
import { readCookieFile } from "../../src/rpc/cookie.js";
import type { PlanNode } from "./plan.js";
import { withTimeout } from "./wait.js";

export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const TIMED = join(REPO_ROOT, "bin", "timed.js");
/** An RPC call to a healthy node answers in milliseconds; this only bounds a stuck one. */
const RPC_TIMEOUT_MS = 2_000;

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class NodeHandle {
  private child: ChildProcess | null = null;
  private exited: Promise<ExitInfo> = Promise.resolve({ code: null, signal: null });
  private client: RpcClient | null = null;
  /** Exits we did not cause (a crash), for the report. */
  readonly unexpectedExits: string[] = [];
  private expectingExit = false;
  private alive = false;

  constructor(readonly info: PlanNode) {}

  get index(): number {
    return this.info.index;
  }

  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  get running(): boolean {
    return this.alive;
  }

  /** Starts `timed start` in the node's namespace. Own process group: a terminal Ctrl-C reaches only us. */
  start(): void {
    if (this.running) throw new Error(`${this.info.name} is already running`);
    const fd = openSync(this.info.logFile, "a");
    try {
      this.child = spawn(
        "ip",
        [
          "netns",
          "exec",
          this.info.ns,
          process.execPath,
          TIMED,
          "start",
          "--datadir",
          this.info.datadir,
          "--log-format",
          "json",
        ],
        { cwd: REPO_ROOT, stdio: ["ignore", fd, fd], detached: true, env: { ...process.env, NO_COLOR: "1" } },
      );
    } finally {
      closeSync(fd);
    }
    const child = this.child;
    this.alive = true;
    this.expectingExit = false;
    this.client = null; // a fresh cookie is written at every start
    this.exited = new Promise((resolve) => {
      child.once("error", (e) => {
        this.alive = false;
        this.unexpectedExits.push(`spawn failed: ${e.message}`);
        resolve({ code: null, signal: null });
      });
      child.once("exit", (code, signal) => {
        this.alive = false;
        if (!this.expectingExit) this.unexpectedExits.push(`exited on its own (${code ?? signal})`);
        resolve({ code, signal });
      });
    });
  }

  /** Sends `signal` and waits (bounded) for the exit; SIGKILL if it outlasts `timeoutMs`. */
  async stop(signal: NodeJS.Signals, timeoutMs: number): Promise<ExitInfo> {
    if (!this.running) return this.exited;
    this.expectingExit = true;
    this.child!.kill(signal);
    try {
      return await withTimeout(this.exited, timeoutMs, `${this.info.name} exit`);
    } catch {
      this.child!.kill("SIGKILL");
      return withTimeout(this.exited, 10_000, `${this.info.name} exit after SIGKILL`);
    }
  }

  private rpcClient(): RpcClient | null {
    if (this.client) return this.client;
    const creds = readCookieFile(join(this.info.datadir, ".cookie"));
    if (!creds) return null;
    this.client = new RpcClient({
      url: this.info.rpcUrl,
      user: creds.user,
      password: creds.password,
      timeoutMs: RPC_TIMEOUT_MS,
    });
    return this.client;
  }

  /** Calls a method; throws when the node is down, not up yet, or answers with an error. */
  async call<T>(method: string, params: unknown[] = []): Promise<T> {
    const c = this.rpcClient();
    if (!c) throw new Error(`${this.info.name}: no RPC cookie yet`);
    try {
      return await c.call<T>(method, params);
    } catch (e) {
      // After a restart the old cookie may still be on disk until the new one replaces it.
      if (e instanceof RpcTransportError) this.client = null;
      throw e;
    }
  }

  /** Like call, but undefined on any failure: a node whose RPC is down counts as "no answer". */
  async tryCall<T>(method: string, params: unknown[] = []): Promise<T | undefined> {
    try {
      return await this.call<T>(method, params);
    } catch {
      return undefined;
    }
  }
}

export interface VerifyResult {
  node: string;
  code: number | null;
  output: string;
}

/** `timed verify --datadir DIR` on a stopped node (no networking, so no namespace needed). */
export function verifyDataDir(node: PlanNode, timeoutMs: number): Promise<VerifyResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [TIMED, "verify", "--datadir", node.datadir], {
      cwd: REPO_ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NO_COLOR: "1" },
    });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => (out += s));
    child.stderr.setEncoding("utf8").on("data", (s: string) => (out += s));
    const timer = setTimeout(() => {
      out += `\n(killed after ${timeoutMs} ms)`;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.once("error", (e) => {
      clearTimeout(timer);
      resolve({ node: node.name, code: null, output: e.message });
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ node: node.name, code, output: out.trim() });
    });
  });
}
