// Runs every test file under test/unit, test/sim and test/e2e through node:test. Node 20's --test takes
// no globs, so the files are listed here explicitly. Pass file paths to run a subset.
//
// Unit and simulation files run two at a time (TEST_CONCURRENCY). End-to-end files run one at a
// time (E2E_CONCURRENCY, default 1): each starts real node processes that race the wall clock,
// and two such files at once on a 2-core machine starve each other's nodes into timeouts.
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";

function collect(dir) {
  let out = [];
  let names;
  try { names = readdirSync(dir).sort(); } catch { return out; }
  for (const name of names) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out = out.concat(collect(p));
    else if (name.endsWith(".test.ts")) out.push(p);
  }
  return out;
}

function run(files, concurrency) {
  if (files.length === 0) return 0;
  const res = spawnSync(
    process.execPath,
    ["--import", "tsx", "--test", `--test-concurrency=${concurrency}`, "--test-timeout=300000", "--test-reporter=spec", ...files],
    { stdio: "inherit" },
  );
  return res.status ?? 1;
}

const args = process.argv.slice(2);
const concurrency = process.env.TEST_CONCURRENCY ?? "2";
if (args.length > 0) process.exit(run(args, concurrency));
const fast = run([...collect("test/unit"), ...collect("test/sim")], concurrency);
const e2e = run(collect("test/e2e"), process.env.E2E_CONCURRENCY ?? "1");
process.exit(fast !== 0 ? fast : e2e);
