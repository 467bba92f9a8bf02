/**
 * blocknotify / finalizednotify (src/node/notify.ts) with real child processes (this Node binary
 * running a one-line script): the hash replaces "%s", arguments reach the program exactly as
 * written (no shell: command substitution and separators stay text), a hanging command is killed
 * at its timeout, and a burst keeps at most 4 running and 64 queued, dropping the oldest.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { createMemoryLogger } from "../../../src/logging/index.js";
import { MAX_QUEUED, MAX_RUNNING, Notifier } from "../../../src/node/notify.js";
import { SystemClock } from "../../../src/util/clock.js";
import { waitFor } from "../../e2e/helpers/wait.js";

const dir = mkdtempSync(join(tmpdir(), "timed-notify-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const modules = { clock: new SystemClock(), logger: createMemoryLogger({ level: "info" }) };
/** node -e SCRIPT ARGS...: appends its arguments, one line per run, to OUT. */
const APPEND = "require('fs').appendFileSync(process.argv[1], JSON.stringify(process.argv.slice(2)) + '\\n')";

describe("notify hooks", () => {
  it("runs the program with the hash in place of %s, and no shell ever sees the arguments", async () => {
    const out = join(dir, "args.jsonl");
    const marker = join(dir, "injected");
    const n = new Notifier(
      "blocknotify",
      [process.execPath, "-e", APPEND, out, "hash=%s", `$(touch ${marker})`, "; touch " + marker],
      modules,
    );
    const hash = "ab".repeat(32);
    n.fire(hash);
    await waitFor("the run", () => n.outcomes.ok === 1, { timeoutMs: 10_000 });
    assert.deepEqual(JSON.parse(readFileSync(out, "utf8")), [
      `hash=${hash}`,
      `$(touch ${marker})`,
      `; touch ${marker}`,
    ]);
    assert.ok(!existsSync(marker), "nothing was run by a shell");
  });

  it("kills a command that outlives its timeout, and logs it", async () => {
    const n = new Notifier(
      "finalizednotify",
      [process.execPath, "-e", "setTimeout(() => {}, 60000)"],
      modules,
      300,
    );
    n.fire("cd".repeat(32));
    await waitFor("the timeout", () => n.outcomes.timedOut === 1, { timeoutMs: 10_000 });
    assert.ok(modules.logger.records.some((r) => r.msg === "finalizednotify command did not succeed"));
  });

  it("a burst runs at most 4 at once with 64 waiting; the oldest waiting give way, counted", async () => {
    const out = join(dir, "burst.jsonl");
    const n = new Notifier("blocknotify", [process.execPath, "-e", APPEND, out, "%s"], modules);
    const total = 100;
    for (let i = 0; i < total; i++) n.fire(i.toString(16).padStart(64, "0"));
    assert.equal(n.dropped, total - MAX_RUNNING - MAX_QUEUED);
    await waitFor("every kept run", () => n.outcomes.ok === MAX_RUNNING + MAX_QUEUED, { timeoutMs: 60_000 });
    const ran = readFileSync(out, "utf8")
      .trim()
      .split("\n")
      .map((l) => parseInt((JSON.parse(l) as string[])[0]!, 16));
    // The first four started at once; of the rest, the newest 64 were kept.
    assert.deepEqual(
      new Set(ran),
      new Set([0, 1, 2, 3, ...Array.from({ length: MAX_QUEUED }, (_, i) => total - MAX_QUEUED + i)]),
    );
  });
});
