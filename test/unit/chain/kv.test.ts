/**
 * The KvStore contract (src/chain/kv.ts), checked on both stores: LMDB, which every real node
 * uses, and MemoryKv, which the simulator uses. The chain relies on exactly these behaviours.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { openLmdbKv, type KvStore } from "../../../src/chain/kv.js";
import { MemoryKv, MemoryKvData } from "../../../src/chain/memoryKv.js";

const b = (hex: string): Buffer => Buffer.from(hex, "hex");
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const stores: Array<[string, () => KvStore]> = [
  [
    "LMDB",
    () => {
      const d = mkdtempSync(join(tmpdir(), "kv-test-"));
      dirs.push(d);
      return openLmdbKv(d, { durable: false });
    },
  ],
  ["MemoryKv", () => new MemoryKv()],
];

for (const [name, make] of stores) {
  void describe(`KvStore contract: ${name}`, () => {
    it("reads back what was put, and nothing after a remove", async () => {
      const kv = make();
      kv.putSync(b("0101"), b("aa"));
      assert.deepEqual(kv.get(b("0101")), b("aa"));
      kv.removeSync(b("0101"));
      assert.equal(kv.get(b("0101")), undefined);
      kv.removeSync(b("0101")); // removing an absent key is harmless
      await kv.close();
    });

    it("ranges are half-open and in byte order, across first bytes", async () => {
      const kv = make();
      for (const k of ["0203", "0101", "02ff", "0200", "03", "0201"]) kv.putSync(b(k), b(k));
      const keys = [...kv.getRange({ start: b("02"), end: b("03") })].map((e) => e.key.toString("hex"));
      assert.deepEqual(keys, ["0200", "0201", "0203", "02ff"]);
      const wide = [...kv.getKeys({ start: b("0101"), end: b("0201") })].map((k) => k.toString("hex"));
      assert.deepEqual(wide, ["0101", "0200"]);
      await kv.close();
    });

    it("a throwing transaction keeps nothing; a throwing child rolls back alone", async () => {
      const kv = make();
      kv.putSync(b("01"), b("00"));
      assert.throws(() =>
        kv.transactionSync(() => {
          kv.putSync(b("01"), b("11"));
          kv.putSync(b("02"), b("22"));
          kv.removeSync(b("01"));
          throw new Error("abort");
        }),
      );
      assert.deepEqual(kv.get(b("01")), b("00"));
      assert.equal(kv.get(b("02")), undefined);
      kv.transactionSync(() => {
        kv.putSync(b("03"), b("33"));
        assert.throws(() =>
          kv.transactionSync(() => {
            kv.putSync(b("03"), b("44"));
            kv.putSync(b("04"), b("44"));
            throw new Error("child");
          }),
        );
        kv.transactionSync(() => kv.putSync(b("05"), b("55")));
      });
      assert.deepEqual(kv.get(b("03")), b("33"));
      assert.equal(kv.get(b("04")), undefined);
      assert.deepEqual(kv.get(b("05")), b("55"));
      await kv.close();
    });
  });
}

void describe("MemoryKv as a crashed process's files", () => {
  it("a killed handle refuses every call; a new handle on the data sees every commit", () => {
    const data = new MemoryKvData();
    const first = new MemoryKv(data);
    first.putSync(b("01"), b("aa"));
    first.transactionSync(() => first.putSync(b("02"), b("bb")));
    first.kill("node-3 crashed");
    assert.throws(() => first.putSync(b("03"), b("cc")), /node-3 crashed/);
    assert.throws(() => first.get(b("01")), /node-3 crashed/);
    const second = new MemoryKv(data);
    assert.deepEqual(second.get(b("01")), b("aa"));
    assert.deepEqual(second.get(b("02")), b("bb"));
    assert.equal(second.get(b("03")), undefined);
  });
});
