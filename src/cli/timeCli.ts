/**
 * time-cli: calls a node's JSON-RPC, with bitcoin-cli's habits.
 *
 * - Options come before METHOD, with one or two dashes and an optional "=VALUE":
 *   `-rpcwait`, `--datadir DIR`, `-datadir=DIR`. Everything after METHOD is an argument, so
 *   negative numbers pass through.
 * - Each argument is sent as JSON when it parses as JSON (42, true, null, {"a":1}), else as
 *   a string. One exception, so a digits-only hash survives: an integer too large to be exact
 *   in a double is sent as its string.
 * - A string result prints raw, null prints nothing, anything else prints as 2-space JSON.
 * - Exit 0 on success, 1 on any failure, with one clear message and never a stack trace.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseToml } from "smol-toml";
import { RpcCallError, RpcClient, RpcTransportError } from "../rpc/client.js";
import { COOKIE_FILE, readCookie, type RpcCredentials } from "../rpc/cookie.js";
import { RPC_IN_WARMUP } from "../rpc/errors.js";
import { SystemClock, type Clock } from "../util/clock.js";
import { CodedError } from "../util/codedError.js";

/** Where output goes and how time passes; tests pass their own. */
export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  clock: Clock;
}

const MAINNET_RPC_URL = "http://127.0.0.1:24001/";
/** RPC ports per network (INTERFACE.md), for a config that names the network but no address. */
const RPC_PORT_BY_NETWORK: Record<string, number> = { mainnet: 24001, testnet: 24101, devnet: 24201 };
/** 250 ms between -rpcwait attempts: quick to notice a node that came up, cheap to poll. */
const RPCWAIT_RETRY_MS = 250;
const DEFAULT_RPCWAIT_TIMEOUT_S = 30;
/** 60 s per call: above the server's 30 s handler timeout, so its answer arrives first. */
const DEFAULT_CLIENT_TIMEOUT_S = 60;

export const USAGE = `time-cli: call a TIME Coin node's JSON-RPC interface.

Usage: time-cli [options] METHOD [ARG...]
       time-cli [options] --named METHOD [NAME=VALUE...]

Options:
  --rpc URL                   The node's RPC address, http://HOST:PORT/ or HOST:PORT.
                              Default: [rpc].listen_address from DIR/config.toml,
                              else ${MAINNET_RPC_URL}
  --datadir DIR               The node's data directory: credentials from DIR/.cookie,
                              address from DIR/config.toml
  --config FILE               Read FILE instead of DIR/config.toml
  --devnet DIR                A \`timed devnet --dir DIR\`: reach its node named by --node
  --node NAME                 Which devnet node (default node-1), as its status line names it
  --rpcuser USER              RPC user name (instead of the cookie)
  --rpcpassword PASSWORD      RPC password
  --rpcwait                   Wait for the node to accept RPC calls (retry every 250 ms)
  --rpcwait-timeout SECONDS   Stop waiting after SECONDS (default ${DEFAULT_RPCWAIT_TIMEOUT_S}; 0 = no limit)
  --rpcclienttimeout SECONDS  Give up on a call after SECONDS (default ${DEFAULT_CLIENT_TIMEOUT_S})
  --named                     Arguments are NAME=VALUE and are sent by name
  -h, --help                  Show this help

Options take one or two dashes, and "=VALUE" or a separate VALUE: -rpcwait, -datadir=DIR.
Arguments are sent as JSON when they parse (42, true, null, {"a":1}, [1,2]), else as strings.

"time-cli help" lists the node's methods; "time-cli help METHOD" describes one.
`;

class UsageError extends CodedError<"USAGE"> {
  constructor(message: string) {
    super("USAGE", message);
  }
}

interface CliOptions {
  rpc?: string;
  datadir?: string;
  devnet?: string;
  node?: string;
  config?: string;
  rpcuser?: string;
  rpcpassword?: string;
  rpcwait: boolean;
  rpcwaitTimeoutS: number;
  clientTimeoutS: number;
  named: boolean;
  help: boolean;
  method?: string;
  args: string[];
}

const VALUE_OPTIONS = new Set([
  "rpc",
  "datadir",
  "devnet",
  "node",
  "config",
  "rpcuser",
  "rpcpassword",
  "rpcwait-timeout",
  "rpcclienttimeout",
]);
const FLAG_OPTIONS = new Set(["rpcwait", "named", "help"]);
/** Other spellings people will type, from bitcoin-cli or by analogy. */
const ALIASES: Record<string, string> = {
  h: "help",
  "?": "help",
  rpcwaittimeout: "rpcwait-timeout",
  "rpc-wait": "rpcwait",
  conf: "config",
};

function parseSeconds(option: string, text: string): number {
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n) || n < 0) {
    throw new UsageError(`--${option} takes a number of seconds, got ${JSON.stringify(text)}`);
  }
  return n;
}

function parseFlagValue(option: string, text: string | undefined): boolean {
  if (text === undefined || text === "1" || text === "true") return true;
  if (text === "0" || text === "false") return false;
  throw new UsageError(`--${option} takes no value (or 1/0), got ${JSON.stringify(text)}`);
}

export function parseCliArgs(args: readonly string[]): CliOptions {
  const opts: CliOptions = {
    rpcwait: false,
    rpcwaitTimeoutS: DEFAULT_RPCWAIT_TIMEOUT_S,
    clientTimeoutS: DEFAULT_CLIENT_TIMEOUT_S,
    named: false,
    help: false,
    args: [],
  };
  for (let i = 0; i < args.length; i++) {
    const token = args[i] ?? "";
    if (opts.method !== undefined) {
      opts.args.push(token);
      continue;
    }
    if (token === "--") {
      const method = args[i + 1];
      if (method !== undefined) {
        opts.method = method;
        opts.args.push(...args.slice(i + 2));
      }
      break;
    }
    if (!token.startsWith("-") || token === "-") {
      opts.method = token;
      continue;
    }
    const body = token.replace(/^--?/, "");
    const eq = body.indexOf("=");
    const rawName = eq < 0 ? body : body.slice(0, eq);
    const inline = eq < 0 ? undefined : body.slice(eq + 1);
    const name = ALIASES[rawName] ?? rawName;
    if (FLAG_OPTIONS.has(name)) {
      const on = parseFlagValue(name, inline);
      if (name === "rpcwait") opts.rpcwait = on;
      else if (name === "named") opts.named = on;
      else opts.help = on;
      continue;
    }
    if (!VALUE_OPTIONS.has(name)) throw new UsageError(`unknown option ${token}`);
    let value = inline;
    if (value === undefined) {
      value = args[i + 1];
      i++;
    }
    if (value === undefined) throw new UsageError(`option --${name} needs a value`);
    switch (name) {
      case "rpc":
        opts.rpc = value;
        break;
      case "datadir":
        opts.datadir = value;
        break;
      case "devnet":
        opts.devnet = value;
        break;
      case "node":
        opts.node = value;
        break;
      case "config":
        opts.config = value;
        break;
      case "rpcuser":
        opts.rpcuser = value;
        break;
      case "rpcpassword":
        opts.rpcpassword = value;
        break;
      case "rpcwait-timeout":
        opts.rpcwaitTimeoutS = parseSeconds(name, value);
        break;
      case "rpcclienttimeout":
        opts.clientTimeoutS = parseSeconds(name, value);
        if (opts.clientTimeoutS === 0) throw new UsageError("--rpcclienttimeout must be more than 0");
        break;
    }
  }
  if (opts.node !== undefined && opts.devnet === undefined) throw new UsageError("--node needs --devnet DIR");
  if (opts.devnet !== undefined && opts.datadir !== undefined)
    throw new UsageError("--devnet and --datadir both name a node: give one");
  return opts;
}

/**
 * The data directory of a `timed devnet` node, by name, from DIR/devnet.json (written before the
 * nodes start). Throws UsageError naming what is wrong.
 */
export function devnetNodeDir(devnetDir: string, name = "node-1"): string {
  const file = join(devnetDir, "devnet.json");
  let nodes: Array<{ name?: unknown; datadir?: unknown }>;
  try {
    nodes = (JSON.parse(readFileSync(file, "utf8")) as { nodes?: typeof nodes }).nodes ?? [];
  } catch (e) {
    throw new UsageError(
      `--devnet ${devnetDir}: cannot read ${file} (${(e as Error).message.split("\n")[0]})`,
    );
  }
  const hit = nodes.find((n) => n.name === name);
  if (!hit || typeof hit.datadir !== "string") {
    const names = nodes.map((n) => String(n.name)).join(", ");
    throw new UsageError(
      `--devnet ${devnetDir} has no node named ${JSON.stringify(name)} (it has ${names || "none"})`,
    );
  }
  return hit.datadir;
}

/** bitcoin-cli's rule: JSON if it parses, else the string itself. */
export function parseCliValue(text: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return text;
  }
  // An integer beyond 2^53 would arrive rounded; send its digits (e.g. a digits-only hash).
  if (typeof value === "number" && !Number.isSafeInteger(value) && /^\s*-?\d+\s*$/.test(text)) return text;
  // A decimal (an amount such as 12345678901.12345678) would be rounded by a double: send its
  // exact text; the node parses amounts from strings exactly.
  if (typeof value === "number" && /[.eE]/.test(text)) return text.trim();
  return value;
}

export function buildParams(args: readonly string[], named: boolean): unknown[] | Record<string, unknown> {
  if (!named) return args.map(parseCliValue);
  const out: Record<string, unknown> = {};
  for (const arg of args) {
    const eq = arg.indexOf("=");
    if (eq <= 0) throw new UsageError(`with --named, arguments are NAME=VALUE, got ${JSON.stringify(arg)}`);
    out[arg.slice(0, eq)] = parseCliValue(arg.slice(eq + 1));
  }
  return out;
}

interface RpcConfig {
  path: string;
  listenAddress?: string;
  network?: string;
  user?: string;
  password?: string;
}

function readConfig(path: string, required: boolean): RpcConfig | null {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if (!required && (err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new UsageError(`cannot read config ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (err) {
    const reason = err instanceof Error ? (err.message.split("\n")[0] ?? err.message) : String(err);
    throw new UsageError(`cannot parse config ${path}: ${reason}`);
  }
  const section = (name: string): Record<string, unknown> => {
    const s = doc[name];
    return typeof s === "object" && s !== null && !Array.isArray(s) ? (s as Record<string, unknown>) : {};
  };
  const str = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);
  const rpc = section("rpc");
  const config: RpcConfig = { path };
  const listenAddress = str(rpc.listen_address);
  const network = str(section("node").network);
  const user = str(rpc.user);
  const password = str(rpc.password);
  if (listenAddress !== undefined) config.listenAddress = listenAddress;
  if (network !== undefined) config.network = network;
  if (user !== undefined) config.user = user;
  if (password !== undefined) config.password = password;
  return config;
}

/** "HOST:PORT" or "[v6]:PORT" to a URL to connect to; a wildcard host becomes loopback. */
function urlFromHostPort(address: string, where: string): string {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(address) ?? /^([^:]+):(\d{1,5})$/.exec(address);
  if (!m?.[1] || !m[2]) throw new UsageError(`${where}: expected HOST:PORT, got ${JSON.stringify(address)}`);
  let host = m[1];
  const port = Number(m[2]);
  if (port < 1 || port > 65535) {
    throw new UsageError(`${where}: port ${port} cannot be connected to; pass --rpc HOST:PORT`);
  }
  if (host === "0.0.0.0") host = "127.0.0.1";
  if (host === "::") host = "::1";
  return host.includes(":") ? `http://[${host}]:${port}/` : `http://${host}:${port}/`;
}

function resolveUrl(opts: CliOptions, config: RpcConfig | null): string {
  if (opts.rpc !== undefined) {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(opts.rpc)) {
      try {
        return new URL(opts.rpc).toString();
      } catch {
        throw new UsageError(`--rpc: not a URL: ${JSON.stringify(opts.rpc)}`);
      }
    }
    return urlFromHostPort(opts.rpc, "--rpc");
  }
  if (config?.listenAddress !== undefined) {
    return urlFromHostPort(config.listenAddress, `[rpc].listen_address in ${config.path}`);
  }
  const port = config?.network !== undefined ? RPC_PORT_BY_NETWORK[config.network] : undefined;
  if (port !== undefined) return `http://127.0.0.1:${port}/`;
  return MAINNET_RPC_URL;
}

type CredentialSource = "options" | "cookie" | "config" | "none";

/** Read on every attempt: under -rpcwait the node writes its cookie only once it starts. */
function resolveCredentials(
  opts: CliOptions,
  config: RpcConfig | null,
): { creds: RpcCredentials | null; source: CredentialSource } {
  if (opts.rpcuser !== undefined || opts.rpcpassword !== undefined) {
    return { creds: { user: opts.rpcuser ?? "", password: opts.rpcpassword ?? "" }, source: "options" };
  }
  if (opts.datadir !== undefined) {
    const cookie = readCookie(opts.datadir);
    if (cookie) return { creds: cookie, source: "cookie" };
  }
  if (config?.user !== undefined && config.password !== undefined) {
    return { creds: { user: config.user, password: config.password }, source: "config" };
  }
  return { creds: null, source: "none" };
}

function isRetryable(err: unknown): boolean {
  if (err instanceof RpcTransportError) {
    if (err.code === "CONNECTION_REFUSED" || err.code === "SERVER_BUSY") return true;
    return err.code === "CONNECTION_FAILED" && err.context.errno === "ECONNRESET";
  }
  return err instanceof RpcCallError && err.code === RPC_IN_WARMUP;
}

function formatResult(result: unknown): string {
  if (result === null || result === undefined) return "";
  if (typeof result === "string") return result.endsWith("\n") ? result : `${result}\n`;
  return `${JSON.stringify(result, null, 2)}\n`;
}

function describeFailure(err: unknown, url: string, opts: CliOptions, source: CredentialSource): string {
  if (err instanceof RpcTransportError) {
    switch (err.code) {
      case "CONNECTION_REFUSED":
      case "CONNECTION_FAILED": {
        const detail = err.code === "CONNECTION_FAILED" ? ` (${err.message})` : "";
        return (
          `error: could not connect to the server at ${url} (is timed running? ` +
          `point at it with --datadir DIR or --rpc URL, or add --rpcwait to wait for it)${detail}`
        );
      }
      case "UNAUTHORIZED": {
        const hint =
          source === "cookie"
            ? `the cookie in ${join(opts.datadir ?? "", COOKIE_FILE)} was refused: is it another node's?`
            : source === "options"
              ? "check --rpcuser and --rpcpassword"
              : source === "config"
                ? "check [rpc].user and [rpc].password in the config"
                : `no credentials: pass --datadir DIR to use the node's cookie, or --rpcuser and --rpcpassword`;
        return `error: authorization failed at ${url}: ${hint}`;
      }
      case "TIMEOUT":
        return `error: no answer from ${url} within ${opts.clientTimeoutS} s (see --rpcclienttimeout)`;
      case "SERVER_BUSY":
      case "BAD_RESPONSE":
        return `error: ${err.message}`;
    }
  }
  if (err instanceof Error) return `error: ${err.message}`;
  return `error: ${String(err)}`;
}

/**
 * SystemClock timers are unref'd (a daemon must not stay up for a timer), so a bare
 * clock.sleep() would let the process exit mid-wait with code 0. Hold a ref'd handle meanwhile.
 */
async function sleepKeepingAlive(clock: Clock, ms: number): Promise<void> {
  const hold = setInterval(() => undefined, ms + 1000);
  try {
    await clock.sleep(ms);
  } finally {
    clearInterval(hold);
  }
}

const defaultIo = (): CliIo => ({
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  clock: new SystemClock(),
});

/**
 * Runs time-cli. `argv` is `process.argv`-shaped (as bin/time-cli.js passes it): the node
 * binary and the script path come first and are skipped. Resolves with the exit code.
 */
export async function main(argv: string[], io: CliIo = defaultIo()): Promise<number> {
  let opts: CliOptions;
  try {
    opts = parseCliArgs(argv.slice(2));
    // A devnet node by name is its data directory: its cookie, its config's RPC address.
    if (opts.devnet !== undefined) opts.datadir = devnetNodeDir(opts.devnet, opts.node);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr(`error: ${err.message}\nsee "time-cli --help"\n`);
    return 1;
  }
  if (opts.help || opts.method === undefined) {
    io.stdout(USAGE);
    return 0;
  }
  const method = opts.method;

  let url = opts.rpc ?? MAINNET_RPC_URL;
  let source: CredentialSource = "none";
  try {
    const configPath =
      opts.config ?? (opts.datadir !== undefined ? join(opts.datadir, "config.toml") : undefined);
    const config = configPath !== undefined ? readConfig(configPath, opts.config !== undefined) : null;
    url = resolveUrl(opts, config);
    const params = buildParams(opts.args, opts.named);
    const waitUntil =
      opts.rpcwait && opts.rpcwaitTimeoutS > 0
        ? io.clock.monotonic() + opts.rpcwaitTimeoutS * 1000
        : Infinity;

    for (;;) {
      const resolved = resolveCredentials(opts, config);
      source = resolved.source;
      const client = new RpcClient(
        {
          url,
          ...(resolved.creds ? { user: resolved.creds.user, password: resolved.creds.password } : {}),
          timeoutMs: opts.clientTimeoutS * 1000,
        },
        { clock: io.clock },
      );
      try {
        const result = await client.call(method, params);
        io.stdout(formatResult(result));
        return 0;
      } catch (err) {
        // A node that came up between our cookie read and the call answers 401: the cookie is
        // there now, so under -rpcwait that is worth another try.
        const noCookieYet =
          err instanceof RpcTransportError &&
          err.code === "UNAUTHORIZED" &&
          resolved.source === "none" &&
          opts.datadir !== undefined;
        if (!opts.rpcwait || !(isRetryable(err) || noCookieYet)) throw err;
        const remaining = waitUntil - io.clock.monotonic();
        if (remaining <= 0) {
          const last = err instanceof Error ? err.message : String(err);
          io.stderr(
            `error: gave up after ${opts.rpcwaitTimeoutS} s waiting for the server at ${url} (--rpcwait-timeout); last error: ${last}\n`,
          );
          return 1;
        }
        await sleepKeepingAlive(io.clock, Math.min(RPCWAIT_RETRY_MS, remaining));
      }
    }
  } catch (err) {
    if (err instanceof RpcCallError) {
      io.stderr(`error code: ${err.code}\nerror message:\n${err.message}\n`);
      return 1;
    }
    if (err instanceof UsageError) {
      io.stderr(`error: ${err.message}\nsee "time-cli --help"\n`);
      return 1;
    }
    // Transport and cookie failures, and anything unexpected: one line, no stack.
    io.stderr(`${describeFailure(err, url, opts, source)}\n`);
    return 1;
  }
}
