/**
 * Loading config.toml: parse, check every key, merge over the network's defaults, then apply
 * overrides (command-line flags). Precedence, lowest first: defaults < file < overrides.
 *
 * Every problem becomes one ConfigError whose message is a single line naming the source and
 * the key, e.g. `config error in /d/config.toml: [sync].max_sync_batch_size: expected an
 * integer from 1 to 500 (the protocol cap), got "abc"`. Only the first problem is reported.
 */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { parse as parseToml, TomlError } from "smol-toml";
import { z } from "zod";
import { decodeAddress, type NetworkName } from "../crypto/address.js";
import { fileDefaults, resolvePaths } from "./defaults.js";
import { ConfigError, type ConfigErrorCode } from "./errors.js";
import {
  ConfigFragmentSchema,
  NETWORK_NAMES,
  NodeConfigSchema,
  SECTION_NAMES,
  SECTION_SCHEMAS,
  type ConfigOverrides,
  type NodeConfig,
} from "./schema.js";

export { resolveInDataDir } from "./paths.js";

/** A validated subset of a config: what a file or a set of overrides holds. */
export type ConfigFragment = z.output<typeof ConfigFragmentSchema>;

export interface ParseConfigOptions {
  /** Names where the text came from in error messages (usually the file's path). */
  source: string;
  /** The data directory when [node].data_dir is not set. */
  dataDir: string;
  /** The network when [node].network is not set. */
  network?: NetworkName;
  overrides?: ConfigOverrides;
  /** Names the overrides in error messages; "command-line options" unless given. */
  overridesSource?: string;
  /** A relative [node].data_dir in the text resolves against this (default: the cwd). */
  baseDir?: string;
}

export interface LoadConfigOptions {
  /** The config file; without one, the result is the defaults plus the overrides. */
  file?: string;
  dataDir: string;
  network?: NetworkName;
  overrides?: ConfigOverrides;
  overridesSource?: string;
}

const DEFAULT_OVERRIDES_SOURCE = "command-line options";

/**
 * Reads and validates a config file. File values override the defaults; `overrides` (from
 * CLI flags) override the file. The network comes from the overrides' or the file's
 * [node].network, else `opts.network`, else it is an error.
 */
export function loadConfig(opts: LoadConfigOptions): NodeConfig {
  if (opts.file === undefined) {
    return buildConfig({}, { ...opts, source: undefined });
  }
  const file = resolve(opts.file);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    fail("READ_FAILED", file, `cannot read the file (${describeFsError(err)})`);
  }
  return parseConfigText(text, { ...opts, source: file, baseDir: dirname(file) });
}

/** As loadConfig, for text already in memory. A relative [node].data_dir resolves against opts.baseDir. */
export function parseConfigText(text: string, opts: ParseConfigOptions): NodeConfig {
  return buildConfig(parseTomlText(text, opts.source), opts);
}

/** Parses TOML, turning smol-toml's multi-line error into one line with the position. */
export function parseTomlText(text: string, source: string): Record<string, unknown> {
  try {
    return parseToml(text.startsWith("\uFEFF") ? text.slice(1) : text);
  } catch (err) {
    if (err instanceof TomlError) {
      const what = (err.message.split("\n")[0] ?? "").replace(/^Invalid TOML document:\s*/, "");
      fail("BAD_TOML", source, `invalid TOML at line ${err.line}, column ${err.column}: ${what}`);
    }
    fail("BAD_TOML", source, `invalid TOML: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * Checks a fragment (any subset of sections and keys) and returns it typed, or throws a
 * ConfigError for its first problem, attributed to `source`.
 */
export function validateFragment(raw: unknown, source: string | undefined): ConfigFragment {
  const r = ConfigFragmentSchema.safeParse(raw);
  if (r.success) return r.data;
  // An unknown section or key is most likely the real mistake (a typo), so it goes first.
  const issues = [...r.error.issues].sort(
    (a, b) => Number(b.code === "unrecognized_keys") - Number(a.code === "unrecognized_keys"),
  );
  const issue = issues[0];
  if (issue === undefined) fail("INVALID_VALUE", source, "invalid configuration");
  return reportIssue(issue, raw, source);
}

/** Applies `frag` over `base`, section by section. Arrays are replaced, not appended to. */
export function mergeConfig(base: NodeConfig, frag: ConfigFragment): NodeConfig {
  return {
    node: { ...base.node, ...frag.node },
    network: { ...base.network, ...frag.network },
    rpc: { ...base.rpc, ...frag.rpc },
    masternode: { ...base.masternode, ...frag.masternode },
    consensus: { ...base.consensus, ...frag.consensus },
    sync: { ...base.sync, ...frag.sync },
    logging: { ...base.logging, ...frag.logging },
  };
}

/**
 * Checks that hold between keys, or depend on the network. Throws for the first that fails.
 * Exported for the template, which validates the values it is asked to write.
 */
export function checkConsistency(cfg: NodeConfig, source: string | undefined): void {
  const net = cfg.network;
  if (net.reserved_masternode_slots > net.max_inbound) {
    fail(
      "INCONSISTENT",
      source,
      `[network].reserved_masternode_slots (${net.reserved_masternode_slots}) must not exceed [network].max_inbound (${net.max_inbound})`,
      "network.reserved_masternode_slots",
    );
  }
  if (net.plaintext_transport && cfg.node.network !== "devnet") {
    fail(
      "INCONSISTENT",
      source,
      `[network].plaintext_transport is allowed only on devnet; ${cfg.node.network} sessions are always encrypted`,
      "network.plaintext_transport",
    );
  }
  const { user, password } = cfg.rpc;
  if ((user === undefined) !== (password === undefined)) {
    const [given, missing] = user !== undefined ? ["user", "password"] : ["password", "user"];
    fail(
      "INCONSISTENT",
      source,
      `[rpc].${given} is set but [rpc].${missing} is not: set both, or neither to use the cookie file`,
      `rpc.${missing}`,
    );
  }
  const reward = cfg.masternode.reward_address;
  if (reward !== "") {
    try {
      decodeAddress(reward, cfg.node.network);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      fail(
        "INVALID_VALUE",
        source,
        `[masternode].reward_address: expected a ${cfg.node.network} TIME address or "", got ${showValue(reward)} (${why})`,
        "masternode.reward_address",
      );
    }
  }
}

// --- the pipeline --------------------------------------------------------------------------

function buildConfig(
  raw: unknown,
  opts: Omit<ParseConfigOptions, "source"> & { source: string | undefined },
): NodeConfig {
  const file = validateFragment(raw, opts.source);
  const overridesSource = opts.overridesSource ?? DEFAULT_OVERRIDES_SOURCE;
  const overrides = opts.overrides ? validateFragment(dropUndefined(opts.overrides), overridesSource) : {};

  const network = overrides.node?.network ?? file.node?.network ?? opts.network;
  if (network === undefined) {
    fail(
      "NO_NETWORK",
      opts.source,
      `[node].network is not set and no network was given (accepted: ${NETWORK_NAMES.join(", ")})`,
      "node.network",
    );
  }

  // The file alone must be consistent, so that a problem is blamed on where it was made.
  let cfg = mergeConfig(fileDefaults(network, opts.dataDir), file);
  cfg.node.network = network;
  if (file.node?.data_dir !== undefined) cfg.node.data_dir = resolve(opts.baseDir ?? ".", file.node.data_dir);
  checkConsistency(cfg, opts.source);

  if (opts.overrides) {
    cfg = mergeConfig(cfg, overrides);
    checkConsistency(cfg, overridesSource);
  }

  // Each key was checked above; this re-check guards the merge itself and copies the result.
  const final = NodeConfigSchema.safeParse(resolvePaths(cfg));
  if (!final.success) {
    const issue = final.error.issues[0];
    if (issue === undefined) fail("INVALID_VALUE", opts.source, "invalid configuration");
    return reportIssue(issue, cfg, opts.source);
  }
  return final.data;
}

/**
 * Overrides typically come straight from flag parsing, where an absent flag is `undefined`:
 * such keys are dropped rather than treated as values.
 */
export function dropUndefined(overrides: ConfigOverrides): unknown {
  if (typeof overrides !== "object" || overrides === null) return overrides;
  const out: Record<string, unknown> = {};
  for (const [section, values] of Object.entries(overrides as Record<string, unknown>)) {
    if (values === undefined) continue;
    if (typeof values === "object" && values !== null && !Array.isArray(values)) {
      out[section] = Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined));
    } else {
      out[section] = values;
    }
  }
  return out;
}

// --- error messages ------------------------------------------------------------------------

type Issue = z.ZodError["issues"][number];

function reportIssue(issue: Issue, data: unknown, source: string | undefined): never {
  const path = issue.path.map((p) => (typeof p === "symbol" ? String(p) : p));
  const [section, key] = path;

  if (issue.code === "unrecognized_keys") {
    const unknown = issue.keys[0] ?? "?";
    if (path.length === 0) {
      const accepted = `(accepted: ${SECTION_NAMES.join(", ")})`;
      if (isTable(valueAt(data, [unknown]))) {
        fail("UNKNOWN_SECTION", source, `unknown section [${keyName(unknown)}] ${accepted}`, unknown);
      }
      fail(
        "UNKNOWN_SECTION",
        source,
        `unknown top-level key ${keyName(unknown)}: every key belongs in a section ${accepted}`,
        unknown,
      );
    }
    const sectionSchema = sectionSchemaOf(section);
    const accepted = sectionSchema ? ` (accepted: ${Object.keys(sectionSchema.shape).join(", ")})` : "";
    fail(
      "UNKNOWN_KEY",
      source,
      `unknown key [${keyName(String(section))}].${keyName(unknown)}${accepted}`,
      `${String(section)}.${unknown}`,
    );
  }

  const where = formatPath(path);
  const got = showValue(valueAt(data, path));
  if (key === undefined) {
    fail("INVALID_VALUE", source, `${where}: expected a table (a [section]), got ${got}`, String(section));
  }
  const expected = expectedAt(path) ?? issue.message;
  // A custom issue (from a refinement) says what exactly is wrong, e.g. "there is no :PORT".
  const detail = issue.code === "custom" ? ` (${issue.message})` : "";
  fail(
    "INVALID_VALUE",
    source,
    `${where}: expected ${expected}, got ${got}${detail}`,
    `${String(section)}.${key}`,
  );
}

function sectionSchemaOf(section: PropertyKey | undefined) {
  return typeof section === "string" && Object.hasOwn(SECTION_SCHEMAS, section)
    ? SECTION_SCHEMAS[section as keyof typeof SECTION_SCHEMAS]
    : undefined;
}

/** The `.describe()` text of the field at `path`, or of the array element for `key[i]`. */
function expectedAt(path: PropertyKey[]): string | undefined {
  const [section, key, index] = path;
  const shape = sectionSchemaOf(section)?.shape as Record<string, z.ZodType> | undefined;
  if (shape === undefined || typeof key !== "string" || !Object.hasOwn(shape, key)) return undefined;
  let field = shape[key];
  if (field instanceof z.ZodOptional) field = field.unwrap() as z.ZodType;
  if (index !== undefined && field instanceof z.ZodArray) return (field.element as z.ZodType).description;
  return field?.description;
}

function formatPath(path: PropertyKey[]): string {
  const [section, key, ...rest] = path;
  let s = `[${keyName(String(section))}]`;
  if (key !== undefined) s += `.${keyName(String(key))}`;
  for (const p of rest) s += typeof p === "number" ? `[${p}]` : `.${keyName(String(p))}`;
  return s;
}

function keyName(k: string): string {
  return /^[A-Za-z0-9_-]+$/.test(k) ? k : JSON.stringify(k);
}

function valueAt(data: unknown, path: PropertyKey[]): unknown {
  let v = data;
  for (const p of path) {
    if (typeof v !== "object" || v === null) return undefined;
    v = (v as Record<PropertyKey, unknown>)[p];
  }
  return v;
}

function isTable(v: unknown): boolean {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

const MAX_SHOWN = 80;

/** A value as it would appear in the file, short and on one line. */
export function showValue(v: unknown): string {
  let s: string;
  if (v === undefined) return "nothing";
  if (v instanceof Date) s = `a date (${v.toISOString()})`;
  else if (typeof v === "string") s = JSON.stringify(v);
  else if (typeof v === "number")
    s = Number.isNaN(v) ? "nan" : v === Infinity ? "inf" : v === -Infinity ? "-inf" : String(v);
  else if (typeof v === "boolean" || typeof v === "bigint") s = String(v);
  else if (Array.isArray(v)) s = safeJson(v);
  else if (isTable(v)) s = "a table";
  else s = String(v as string);
  return s.length > MAX_SHOWN ? `${s.slice(0, MAX_SHOWN - 1)}…` : s;
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? x.toString() : x)) ?? String(v);
  } catch {
    return "a value";
  }
}

function describeFsError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case "ENOENT":
      return "no such file";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "EISDIR":
      return "it is a directory";
    default:
      return err instanceof Error ? err.message : String(err);
  }
}

function fail(code: ConfigErrorCode, source: string | undefined, text: string, key?: string): never {
  const where = source === undefined ? "config error" : `config error in ${source}`;
  // One line, always: nothing in a message may start a new one.
  const message = `${where}: ${text}`.replace(/[\r\n]+/g, " ");
  throw new ConfigError(code, message, { source, key });
}
