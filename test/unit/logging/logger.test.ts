import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { describe, it } from "node:test";
import {
  createLogger,
  createMemoryLogger,
  MEMORY_LOGGER_CAPACITY,
  nullLogger,
  type LogLevel,
} from "../../../src/logging/index.js";

/** A stream that collects what is written to it. */
function sink() {
  const stream = new PassThrough();
  let text = "";
  stream.on("data", (chunk: Buffer) => (text += chunk.toString("utf8")));
  return {
    stream,
    /** Waits for pending writes to come through, then returns the text so far. */
    async text(): Promise<string> {
      await new Promise((r) => setImmediate(r));
      return text;
    },
    async lines(): Promise<Array<Record<string, unknown>>> {
      const t = await this.text();
      return t
        .split("\n")
        .filter((l) => l.length > 0)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    },
  };
}

describe("createLogger (json)", () => {
  it("writes one parseable JSON object per line with msg, level and the context", async () => {
    const out = sink();
    const log = createLogger({ level: "info", format: "json", destination: out.stream, name: "timed" });
    log.info("Batch download error", { batch: 7, peer: "10.0.0.1:24000", attempt: 2 });
    log.warn("second", { n: 1 });
    const lines = await out.lines();
    assert.equal(lines.length, 2);
    const [first, second] = lines;
    assert.equal(first?.msg, "Batch download error");
    assert.equal(first?.level, "info");
    assert.equal(first?.batch, 7);
    assert.equal(first?.peer, "10.0.0.1:24000");
    assert.equal(first?.attempt, 2);
    assert.equal(first?.name, "timed");
    assert.equal(typeof first?.time, "string");
    assert.equal(second?.level, "warn");
  });

  it("filters by level", async () => {
    const out = sink();
    const log = createLogger({ level: "warn", format: "json", destination: out.stream });
    log.trace("t");
    log.debug("d");
    log.info("i");
    log.warn("w");
    log.error("e");
    assert.deepEqual(
      (await out.lines()).map((l) => l.msg),
      ["w", "e"],
    );
    assert.equal(log.isLevelEnabled("info"), false);
    assert.equal(log.isLevelEnabled("warn"), true);
    assert.equal(log.isLevelEnabled("silent"), false);
  });

  it("silent writes nothing", async () => {
    const out = sink();
    const log = createLogger({ level: "silent", format: "json", destination: out.stream });
    log.error("nothing");
    assert.equal(await out.text(), "");
  });

  it("child bindings appear on every record, and nest", async () => {
    const out = sink();
    const log = createLogger({ level: "debug", format: "json", destination: out.stream });
    const sync = log.child({ module: "sync" });
    sync.debug("tick", { height: 10 });
    sync.child({ peer: "abc" }).info("batch");
    log.info("root");
    const [a, b, c] = await out.lines();
    assert.deepEqual([a?.module, a?.height], ["sync", 10]);
    assert.deepEqual([b?.module, b?.peer], ["sync", "abc"]);
    assert.equal(c?.module, undefined);
  });

  it("puts the error in `err` with its stack", async () => {
    const out = sink();
    const log = createLogger({ level: "info", format: "json", destination: out.stream });
    log.error("write failed", { key: "b" }, new Error("disk full"));
    const [line] = await out.lines();
    const err = line?.err as Record<string, unknown>;
    assert.equal(err.message, "disk full");
    assert.equal(err.type, "Error");
    assert.match(String(err.stack), /disk full/);
    assert.equal(line?.key, "b");
  });

  it("writes bytes as hex, bigints as strings, and keeps pino's own keys intact", async () => {
    const out = sink();
    const log = createLogger({ level: "info", format: "json", destination: out.stream });
    log.info("block", { hash: new Uint8Array([0xde, 0xad]), amount: 10n ** 20n, level: "ctx", msg: "ctx" });
    const [line] = await out.lines();
    assert.equal(line?.hash, "dead");
    assert.equal(line?.amount, "100000000000000000000");
    assert.equal(line?.level, "info");
    assert.equal(line?.msg, "block");
    assert.equal(line?.level_, "ctx");
    assert.equal(line?.msg_, "ctx");
  });

  it("takes timestamps from an injected clock", async () => {
    const out = sink();
    const log = createLogger({
      level: "info",
      format: "json",
      destination: out.stream,
      clock: { now: () => 0 },
    });
    log.info("at epoch");
    const [line] = await out.lines();
    assert.equal(line?.time, "1970-01-01T00:00:00.000Z");
  });
});

describe("createLogger (pretty)", () => {
  it("writes a readable line with the message and context", async () => {
    const out = sink();
    const log = createLogger({ level: "info", format: "pretty", destination: out.stream });
    log.info("Syncing", { height: 4210 });
    log.debug("hidden");
    log.flush();
    await new Promise((r) => setTimeout(r, 20));
    const text = await out.text();
    assert.match(text, /INFO.*Syncing/);
    assert.match(text, /height: 4210/);
    assert.doesNotMatch(text, /hidden/);
    assert.ok(!text.includes("\u001b["), "no colours when not writing to a terminal");
  });
});

describe("memory logger", () => {
  it("records level, message, context (with child bindings) and error", () => {
    const log = createMemoryLogger();
    const err = new Error("x");
    log.info("hello", { a: 1 });
    log.child({ peer: "p" }).warn("careful", { b: 2 }, err);
    log.trace("fine");
    assert.deepEqual(log.records, [
      { level: "info", msg: "hello", ctx: { a: 1 } },
      { level: "warn", msg: "careful", ctx: { peer: "p", b: 2 }, err },
      { level: "trace", msg: "fine", ctx: {} },
    ]);
  });

  it("honours a level", () => {
    const log = createMemoryLogger({ level: "warn" });
    const levels: LogLevel[] = ["trace", "debug", "info", "warn", "error"];
    log.debug("no");
    log.error("yes");
    assert.deepEqual(
      log.records.map((r) => r.msg),
      ["yes"],
    );
    assert.deepEqual(
      levels.map((l) => log.isLevelEnabled(l)),
      [false, false, false, true, true],
    );
  });

  it("keeps only the last MEMORY_LOGGER_CAPACITY records", () => {
    const log = createMemoryLogger();
    assert.equal(MEMORY_LOGGER_CAPACITY, 10_000);
    for (let i = 0; i < MEMORY_LOGGER_CAPACITY + 5; i++) log.child({ i }).debug(`m${i}`);
    assert.equal(log.records.length, MEMORY_LOGGER_CAPACITY);
    assert.equal(log.records[0]?.msg, "m5");
    assert.equal(log.records.at(-1)?.msg, `m${MEMORY_LOGGER_CAPACITY + 4}`);
  });
});

describe("nullLogger", () => {
  it("does nothing and says no level is enabled", () => {
    nullLogger.error("ignored", { a: 1 }, new Error("e"));
    assert.equal(nullLogger.child({ x: 1 }).isLevelEnabled("error"), false);
  });
});
