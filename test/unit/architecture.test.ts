/**
 * The floors of src/ (docs/ARCHITECTURE.md, "Layers"), checked from the import statements of
 * every source file: no file imports itself through a circle, and no folder imports from a
 * folder on its own floor or above (type-only imports included: a circle of types still ties
 * two rooms together).
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const SRC = fileURLToPath(new URL("../../src/", import.meta.url));

/** Floor by folder, lowest first. A folder may import only from folders on lower floors. */
const FLOORS: ReadonlyArray<readonly string[]> = [
  ["util"],
  ["codec", "crypto", "logging"],
  ["config", "primitives"],
  ["consensus"],
  ["chain"],
  ["mempool", "p2p"],
  ["wallet", "masternode"],
  ["metrics"],
  ["sync"],
  ["relay", "rpc"],
  ["dashboard"],
  ["node"],
  ["cli"],
];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) return sourceFiles(p);
    return p.endsWith(".ts") ? [p] : [];
  });
}

/** Every relative import and re-export of `file`, as absolute .ts paths. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const out: string[] = [];
  for (const m of text.matchAll(/^\s*(?:import|export)\s[^;]*?\sfrom\s+"(\.{1,2}\/[^"]+)"/gms)) {
    out.push(resolve(dirname(file), m[1]!.replace(/\.js$/, ".ts")));
  }
  return out;
}

const folderOf = (file: string): string => relative(SRC, file).split("/")[0]!.replace(/\.ts$/, "");

describe("architecture: the floors of src/", () => {
  const files = sourceFiles(SRC);
  const graph = new Map(files.map((f) => [f, importsOf(f)]));

  it("every folder of src/ has a floor", () => {
    const known = new Set(FLOORS.flat());
    const folders = new Set(files.map(folderOf));
    assert.deepEqual(
      [...folders].filter((f) => !known.has(f)),
      [],
    );
  });

  it("no folder imports from its own floor or above", () => {
    const floor = new Map(FLOORS.flatMap((fs, i) => fs.map((f) => [f, i] as const)));
    const bad: string[] = [];
    for (const [file, targets] of graph) {
      const from = folderOf(file);
      for (const t of targets) {
        const to = folderOf(t);
        if (to !== from && floor.get(to)! >= floor.get(from)!)
          bad.push(`${relative(SRC, file)} -> ${relative(SRC, t)}`);
      }
    }
    assert.deepEqual(bad, []);
  });

  it("no import circle between files", () => {
    // Depth-first search with colours; a grey target is a back edge, i.e. a circle.
    const colour = new Map<string, "grey" | "black">();
    const circles: string[] = [];
    const visit = (f: string, path: string[]): void => {
      colour.set(f, "grey");
      for (const t of graph.get(f) ?? []) {
        if (!graph.has(t)) continue;
        const c = colour.get(t);
        if (c === "grey") circles.push([...path, f, t].map((x) => relative(SRC, x)).join(" -> "));
        else if (c === undefined) visit(t, [...path, f]);
      }
      colour.set(f, "black");
    };
    for (const f of files) if (!colour.has(f)) visit(f, []);
    assert.deepEqual(circles, []);
  });

  it("the import parser sees the imports, so the checks above are not vacuous", () => {
    assert.ok(graph.size > 100, `read ${graph.size} files`);
    const total = [...graph.values()].reduce((n, ts) => n + ts.length, 0);
    assert.ok(total > 500, `found ${total} imports`);
    const chainTs = join(SRC, "chain", "chain.ts");
    assert.ok(
      graph.get(chainTs)!.some((t) => folderOf(t) === "consensus"),
      "chain.ts imports consensus/",
    );
  });
});
