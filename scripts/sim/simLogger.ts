/**
 * A node's log in the simulator: counts every record by level and keeps the last few at or above
 * a threshold, so a violation can show what the nodes involved said just before it. Bounded: a
 * thousand nodes log for hours of virtual time.
 */
import { LEVEL_VALUES, type LogFn, type Logger, type LogLevel } from "../../src/logging/index.js";

const ORDER = LEVEL_VALUES;
type MethodLevel = "trace" | "debug" | "info" | "warn" | "error";

export interface SimLogLine {
  at: number;
  level: MethodLevel;
  msg: string;
  ctx: Record<string, unknown>;
}

export class SimLog {
  readonly counts: Record<MethodLevel, number> = { trace: 0, debug: 0, info: 0, warn: 0, error: 0 };
  private readonly lines: SimLogLine[] = [];

  constructor(
    private readonly now: () => number,
    readonly level: LogLevel,
    readonly keep = 64,
  ) {}

  logger(bindings: Record<string, unknown> = {}): Logger {
    const threshold = ORDER[this.level];
    const write =
      (level: MethodLevel): LogFn =>
      (msg, ctx, err) => {
        if (ORDER[level] < threshold) return;
        this.counts[level]++;
        const line: SimLogLine = { at: this.now(), level, msg, ctx: { ...bindings, ...ctx } };
        if (err !== undefined) line.ctx.err = err instanceof Error ? err.message : err;
        this.lines.push(line);
        if (this.lines.length > this.keep) this.lines.shift();
      };
    return {
      trace: write("trace"),
      debug: write("debug"),
      info: write("info"),
      warn: write("warn"),
      error: write("error"),
      child: (more) => this.logger({ ...bindings, ...more }),
      isLevelEnabled: (level) => level !== "silent" && ORDER[level] >= threshold,
    };
  }

  /** The last lines kept, oldest first. */
  recent(): readonly SimLogLine[] {
    return this.lines;
  }
}
