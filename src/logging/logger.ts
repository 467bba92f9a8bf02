/**
 * The node's logger: a message plus a context object, and the error last, as in Lodestar:
 *
 *     logger.info("Batch download error", { batch: id, peer, attempt }, err);
 *
 * Modules depend on the small `Logger` interface, never on pino, so a test passes `nullLogger`
 * or a memory logger and asserts on what was logged.
 */
import { isatty } from "node:tty";
import {
  pino,
  stdSerializers,
  stdTimeFunctions,
  type DestinationStream,
  type Logger as PinoInstance,
} from "pino";
import pretty from "pino-pretty";
import type { Clock } from "../util/clock.js";
import type { LogFormat, LogLevel } from "./levels.js";

export { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from "./levels.js";

export type LogFn = (msg: string, ctx?: Record<string, unknown>, err?: unknown) => void;

export interface Logger {
  trace: LogFn;
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  /** A logger that adds `bindings` to every record (e.g. `{ module: "sync" }` or `{ peer }`). */
  child(bindings: Record<string, unknown>): Logger;
  /** Lets a caller skip building an expensive context when the level is off. */
  isLevelEnabled(level: LogLevel): boolean;
}

export interface CreateLoggerOptions {
  level: LogLevel;
  format: LogFormat;
  /** Written as the `name` field of every record. */
  name?: string;
  /** A stream, or a file descriptor; stdout (1) by default. */
  destination?: NodeJS.WritableStream | number;
  /** Where record timestamps come from; the system clock by default. */
  clock?: Pick<Clock, "now">;
}

/** Levels as pino numbers them, so that filtering agrees with pino's. */
export const LEVEL_VALUES: Readonly<Record<LogLevel, number>> = {
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  fatal: 60,
  silent: Infinity,
};

type MethodLevel = "trace" | "debug" | "info" | "warn" | "error";

// Keys pino writes itself. A context key with one of these names would give a JSON line with a
// duplicate key, and a parser would keep only one of the two, so it is renamed with a "_".
const RESERVED_KEYS = new Set(["level", "time", "msg", "pid", "hostname", "name", "err"]);

/**
 * Makes a context JSON-friendly: byte arrays (hashes, keys) as hex, bigints (amounts) as
 * decimal strings, errors with their stack.
 */
function prepareContext(ctx: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(ctx)) {
    out[RESERVED_KEYS.has(k) ? `${k}_` : k] = prepareValue(v);
  }
  return out;
}

function prepareValue(v: unknown): unknown {
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("hex");
  if (typeof v === "bigint") return v.toString();
  if (v instanceof Error) return stdSerializers.err(v);
  return v;
}

class PinoLogger implements Logger {
  constructor(protected readonly p: PinoInstance) {}

  trace(msg: string, ctx?: Record<string, unknown>, err?: unknown): void {
    this.write("trace", msg, ctx, err);
  }
  debug(msg: string, ctx?: Record<string, unknown>, err?: unknown): void {
    this.write("debug", msg, ctx, err);
  }
  info(msg: string, ctx?: Record<string, unknown>, err?: unknown): void {
    this.write("info", msg, ctx, err);
  }
  warn(msg: string, ctx?: Record<string, unknown>, err?: unknown): void {
    this.write("warn", msg, ctx, err);
  }
  error(msg: string, ctx?: Record<string, unknown>, err?: unknown): void {
    this.write("error", msg, ctx, err);
  }

  child(bindings: Record<string, unknown>): Logger {
    return new PinoLogger(this.p.child(prepareContext(bindings)));
  }

  isLevelEnabled(level: LogLevel): boolean {
    return level !== "silent" && this.p.isLevelEnabled(level);
  }

  private write(
    level: MethodLevel,
    msg: string,
    ctx: Record<string, unknown> | undefined,
    err: unknown,
  ): void {
    if (!this.p.isLevelEnabled(level)) return;
    const obj = ctx ? prepareContext(ctx) : {};
    // pino serialises the `err` field with its stack, type and cause.
    if (err !== undefined) obj.err = err;
    this.p[level](obj, msg);
  }
}

class RootPinoLogger extends PinoLogger {
  flush(): void {
    this.p.flush();
  }
}

function isTty(dest: NodeJS.WritableStream | number): boolean {
  if (dest === 1) return process.stdout.isTTY === true;
  if (dest === 2) return process.stderr.isTTY === true;
  if (typeof dest === "number") return isatty(dest);
  return (dest as { isTTY?: boolean }).isTTY === true;
}

/**
 * A pino logger behind the Logger interface. "json" writes one JSON object per line, with the
 * level as its label and an ISO time; "pretty" goes through pino-pretty as a synchronous
 * stream (not the worker-thread transport), coloured only when writing to a terminal.
 */
export function createLogger(opts: CreateLoggerOptions): Logger & { flush(): void } {
  const dest = opts.destination ?? 1;
  const clock = opts.clock;
  const base: pino.LoggerOptions = { level: opts.level };
  if (opts.name !== undefined) base.name = opts.name;

  let stream: DestinationStream | NodeJS.WritableStream;
  if (opts.format === "json") {
    base.formatters = { level: (label) => ({ level: label }) };
    base.timestamp = clock
      ? () => `,"time":"${new Date(clock.now()).toISOString()}"`
      : stdTimeFunctions.isoTime;
    stream = typeof dest === "number" ? pino.destination({ dest, sync: true }) : dest;
  } else {
    if (clock) base.timestamp = () => `,"time":${clock.now()}`;
    stream = pretty({
      colorize: isTty(dest),
      translateTime: "SYS:HH:MM:ss.l",
      ignore: "pid,hostname",
      sync: true,
      destination: dest,
    });
  }
  return new RootPinoLogger(pino(base, stream as DestinationStream));
}

/** A logger that drops everything. */
export const nullLogger: Logger = {
  trace: () => {},
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  child: () => nullLogger,
  isLevelEnabled: () => false,
};

export interface LogRecord {
  level: LogLevel;
  msg: string;
  /** The child bindings merged with the call's context. */
  ctx: Record<string, unknown>;
  err?: unknown;
}

/** The memory logger keeps the last this many records, so a long test cannot grow it without bound. */
export const MEMORY_LOGGER_CAPACITY = 10_000;

export type MemoryLogger = Logger & { records: LogRecord[] };

/**
 * A logger for tests that keeps records in memory (shared with its children), oldest
 * dropped first beyond MEMORY_LOGGER_CAPACITY. Records every level unless given one.
 */
export function createMemoryLogger(opts: { level?: LogLevel } = {}): MemoryLogger {
  const records: LogRecord[] = [];
  const threshold = LEVEL_VALUES[opts.level ?? "trace"];
  const enabled = (level: LogLevel) => level !== "silent" && LEVEL_VALUES[level] >= threshold;

  const make = (bindings: Record<string, unknown>): MemoryLogger => {
    const write =
      (level: MethodLevel): LogFn =>
      (msg, ctx, err) => {
        if (!enabled(level)) return;
        const record: LogRecord = { level, msg, ctx: { ...bindings, ...ctx } };
        if (err !== undefined) record.err = err;
        records.push(record);
        if (records.length > MEMORY_LOGGER_CAPACITY) records.shift();
      };
    return {
      records,
      trace: write("trace"),
      debug: write("debug"),
      info: write("info"),
      warn: write("warn"),
      error: write("error"),
      child: (more) => make({ ...bindings, ...more }),
      isLevelEnabled: enabled,
    };
  };
  return make({});
}
