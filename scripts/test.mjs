// Runs every test file under test/unit, test/sim and test/e2e through node:test. Node 20's --test takes
// no globs, so the files are listed here explicitly. Pass file paths to run a subset.
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

const args = process.argv.slice(2);
const files = args.length > 0 ? args : [...collect("test/unit"), ...collect("test/sim"), ...collect("test/e2e")];
const concurrency = process.env.TEST_CONCURRENCY ?? "2";
const res = spawnSync(
  process.execPath,
  ["--import", "tsx", "--test", `--test-concurrency=${concurrency}`, "--test-timeout=300000", "--test-reporter=spec", ...files],
  { stdio: "inherit" },
);
process.exit(res.status ?? 1);
