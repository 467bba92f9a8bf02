import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { createMemoryLogger, nullLogger } from "../../../src/logging/index.js";
import { BanManager, banSubject } from "../../../src/p2p/banManager.js";
import { MsgType } from "../../../src/p2p/messages.js";
import { rateLimitsFor, sendBudget } from "../../../src/p2p/rateLimits.js";
import { TokenBucket } from "../../../src/util/tokenBucket.js";
import { ManualClock } from "../../../src/util/clock.js";

const MIN = 60_000;
const HOUR = 60 * MIN;

function make(clock = new ManualClock(), opts = {}): BanManager {
  return new BanManager(opts, { clock, logger: nullLogger });
}

const proof = (
  reason: string,
  evidence = "bytes 00ff",
): { reason: string; evidence: string; nodeId: null } => ({
  reason,
  evidence,
  nodeId: null,
});

test("bans: proof bans at once, 10 min, then 1 h, then 24 h for every later offence, with its evidence", () => {
  const clock = new ManualClock();
  const bans = make(clock);
  const ip = "10.0.0.1";

  const first = bans.banForProof(
    ip,
    proof("INVALID_BLOCK: bad merkle root", "block 12ab breaks BAD_MERKLE_ROOT"),
  );
  assert.equal(first.until, clock.now() + 10 * MIN);
  assert.equal(first.source, "proof");
  assert.equal(first.evidence, "block 12ab breaks BAD_MERKLE_ROOT");
  assert.equal(first.createdAt, clock.now());
  assert.equal(bans.banForProof(ip, proof("again")), first, "an IP already banned keeps its ban");
  clock.advance(10 * MIN - 1);
  assert.ok(bans.isBanned(ip), "still banned just before 10 min");
  clock.advance(1);
  assert.ok(!bans.isBanned(ip), "free after 10 min");

  const second = bans.banForProof(ip, proof("MALFORMED_FRAME: bad checksum"));
  assert.equal(second.until, clock.now() + HOUR);
  clock.advance(HOUR);
  const third = bans.banForProof(ip, proof("UNDECODABLE"));
  assert.equal(third.until, clock.now() + 24 * HOUR);
  clock.advance(24 * HOUR);
  assert.ok(!bans.isBanned(ip), "never permanent: IPs change hands");
  const fourth = bans.banForProof(ip, proof("UNDECODABLE"));
  assert.equal(fourth.until, clock.now() + 24 * HOUR, "later offences stay at 24 h");
  assert.equal(bans.offenceCount(ip), 4);
});

test("bans: flood scores ban for 5 min at 100 and never escalate; an exempt IP is only told to disconnect", () => {
  const clock = new ManualClock();
  const bans = make(clock);
  const ip = "10.0.0.9";
  for (let i = 0; i < 9; i++)
    assert.equal(bans.addFloodScore(ip, 10, "GetBlocks over its rate limit").ban, null);
  assert.equal(bans.score(ip), 90);
  const r = bans.addFloodScore(ip, 10, "GetBlocks over its rate limit");
  assert.ok(r.crossed && r.ban, "the tenth flood crosses the threshold");
  assert.equal(r.ban.until, clock.now() + 5 * MIN);
  assert.equal(r.ban.source, "flood");
  assert.match(r.ban.evidence, /10 × GetBlocks over its rate limit/);
  for (let round = 0; round < 3; round++) {
    clock.advance(5 * MIN);
    assert.ok(!bans.isBanned(ip));
    let last = null;
    for (let i = 0; i < 10; i++) last = bans.addFloodScore(ip, 10, "GetHeaders over its rate limit").ban;
    assert.ok(last);
    assert.equal(last.until, clock.now() + 5 * MIN, "a flood ban never grows");
  }
  assert.equal(bans.offenceCount(ip), 0, "floods do not count toward the proof escalation");

  const mn = "10.0.0.10";
  let crossed = false;
  for (let i = 0; i < 10; i++) {
    const x = bans.addFloodScore(mn, 10, "GetBlocks over its rate limit", { exempt: true });
    assert.equal(x.ban, null, "a registered masternode's address is never banned for a flood");
    crossed ||= x.crossed;
  }
  assert.ok(crossed, "the caller is told to disconnect it");
  assert.equal(bans.score(mn), 0, "its score starts over");
  assert.ok(!bans.isBanned(mn));
});

test("bans: flood scores older than the window are forgotten", () => {
  const clock = new ManualClock();
  const bans = make(clock);
  bans.addFloodScore("10.0.0.2", 60, "x");
  clock.advance(HOUR + 1);
  assert.equal(bans.score("10.0.0.2"), 0);
  assert.equal(bans.addFloodScore("10.0.0.2", 60, "x").ban, null, "60 + 60 an hour apart does not ban");
  assert.equal(bans.score("10.0.0.2"), 60);
});

test("bans: manual add/remove/list/clear; config bans survive clear", () => {
  const clock = new ManualClock();
  const bans = make(clock);
  const e = bans.ban("10.0.0.3", null, "manual", "manual");
  assert.equal(e.until, null);
  bans.ban("10.0.0.4", 24 * HOUR, "manual", "manual");
  bans.ban("a".repeat(64), null, "blacklisted in config", "config");
  assert.deepEqual(
    bans.list().map((b) => b.subject),
    ["10.0.0.4", "10.0.0.3", "a".repeat(64)],
    "temporary bans first, soonest to end first",
  );
  assert.equal(bans.unban("10.0.0.4"), true);
  assert.equal(bans.unban("10.0.0.4"), false);
  assert.equal(bans.clear(), 1);
  assert.deepEqual(
    bans.list().map((b) => b.subject),
    ["a".repeat(64)],
  );
  assert.equal(bans.unban("a".repeat(64)), false, "a config ban is not lifted by the operator");
  assert.throws(() => bans.ban("not-an-ip", 1, "x", "manual"));
});

test("bans: subjects are canonical (IPv4-mapped IPv6, brackets, hex case)", () => {
  assert.equal(banSubject("::ffff:127.0.0.1"), "127.0.0.1");
  assert.equal(banSubject("[::1]"), "::1");
  assert.equal(banSubject("AB".repeat(32)), "ab".repeat(32));
  assert.equal(banSubject("example.com"), null);
  const bans = make();
  bans.ban("::ffff:10.1.1.1", 1_000, "m", "manual");
  assert.ok(bans.isBanned("10.1.1.1"));
});

test("bans: the table is bounded and evicts the ban that ends soonest", () => {
  const clock = new ManualClock();
  const bans = make(clock, { capacity: 5 });
  for (let i = 0; i < 5; i++) bans.ban(`10.0.1.${i}`, (i + 1) * MIN, "m", "manual");
  bans.ban("10.0.1.99", null, "m", "manual");
  assert.equal(bans.size, 5);
  assert.ok(!bans.isBanned("10.0.1.0"), "the soonest-ending ban made room");
  assert.ok(bans.isBanned("10.0.1.99"));
  for (let i = 0; i < 50; i++) bans.addFloodScore(`10.0.2.${i}`, 1, "x");
  assert.ok(bans.size <= 5);
});

test("bans: saved atomically and reloaded; expired and garbage entries are dropped", async () => {
  const dir = await mkdtemp(join(tmpdir(), "bans-"));
  try {
    const file = join(dir, "banlist.json");
    const clock = new ManualClock();
    const a = make(clock, { file });
    a.ban("10.0.0.5", null, "manual", "manual");
    a.ban("10.0.0.6", MIN, "manual", "manual");
    a.banForProof("10.0.0.7", {
      reason: "PROTOCOL_VIOLATION: second Hello",
      evidence: "Hello twice",
      nodeId: "ab".repeat(32),
    });
    a.ban("10.0.0.8", null, "config", "config");
    await a.save();
    const b = make(clock, { file });
    await b.load();
    assert.deepEqual(
      b
        .list()
        .map((x) => x.subject)
        .sort(),
      ["10.0.0.5", "10.0.0.6", "10.0.0.7"],
    );
    assert.equal(b.offenceCount("10.0.0.7"), 1, "escalation survives a restart");
    const kept = b.list().find((x) => x.subject === "10.0.0.7")!;
    assert.equal(kept.source, "proof");
    assert.equal(kept.evidence, "Hello twice", "the evidence survives a restart");
    assert.equal(kept.nodeId, "ab".repeat(32));
    // A version 1 file (before proof and flood were told apart) still loads.
    await writeFile(
      file,
      JSON.stringify({
        version: 1,
        bans: [{ subject: "10.0.0.20", createdAt: 1, until: null, reason: "old", source: "misbehaviour" }],
        offences: [["10.0.0.20", 2]],
      }),
    );
    const v1 = make(clock, { file });
    await v1.load();
    assert.equal(v1.list()[0]?.source, "proof");
    assert.equal(v1.list()[0]?.evidence, "");
    assert.equal(v1.offenceCount("10.0.0.20"), 2);
    await a.save();
    clock.advance(MIN);
    const c = make(clock, { file });
    await c.load();
    assert.ok(!c.isBanned("10.0.0.6"), "expired while down");

    await writeFile(file, "{not json");
    const logger = createMemoryLogger();
    const d = new BanManager({ file }, { clock, logger });
    await d.load();
    assert.equal(d.size, 0);
    assert.ok(logger.records.some((r) => r.level === "warn"));
    await writeFile(
      file,
      JSON.stringify({ version: 1, bans: [{ subject: "nonsense" }, 5, null], offences: "x" }),
    );
    const e = make(clock, { file });
    await e.load();
    assert.equal(e.size, 0);
    const text = await readFile(file, "utf8");
    assert.ok(text.length > 0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("rate limits: the original's table, with pings scaled to the ping interval", () => {
  const slow = rateLimitsFor(30_000);
  assert.deepEqual(slow[MsgType.Ping], [0.2, 2], "2 per 10 s at 30 s pings, as in the original");
  assert.deepEqual(slow[MsgType.NewTip]?.[0], 10);
  assert.deepEqual(slow[MsgType.Blocks]?.[0], 10);
  assert.deepEqual(slow[MsgType.GetBlocks], [10, 100]);
  assert.deepEqual(slow[MsgType.GetHeaders], [10, 100]);
  assert.deepEqual(slow[MsgType.GetPeers], [5 / 60, 5]);
  assert.deepEqual(slow[MsgType.Peers], [10 / 60, 10]);

  // A 0.1 s ping network: 10 pings/s must pass for a long time without tripping.
  const fast = rateLimitsFor(100);
  const [rate, burst] = fast[MsgType.Ping]!;
  assert.ok(rate >= 30);
  const bucket = new TokenBucket(rate, burst, 0);
  for (let t = 0; t < 60_000; t += 100) assert.ok(bucket.take(t), `ping at ${t} ms passes`);
  // A flood does not.
  let refused = 0;
  for (let i = 0; i < 1_000; i++) if (!bucket.take(60_000)) refused++;
  assert.ok(refused > 900);

  // What we send stays inside what the receiver allows.
  for (const t of [MsgType.GetPeers, MsgType.Peers] as const) {
    const lim = slow[t];
    const own = sendBudget(lim);
    assert.ok(own[0] < lim[0] && own[1] < lim[1] && own[1] >= 1);
  }
});
