import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { defaultConfig, NETWORK_NAMES } from "../../../src/config/index.js";
import { encodeAddress } from "../../../src/crypto/address.js";
import { KeyPair } from "../../../src/crypto/ed25519.js";
import { sha256 } from "../../../src/crypto/hash.js";
import { livenessOptions, SEEN_CACHE_SIZE, type AnnounceSource } from "../../../src/masternode/liveness.js";
import {
  heartbeatHash,
  isDesignatedWitness,
  WITNESSES_PER_HEARTBEAT,
  signAttestation,
  signMnAnnounce,
  verifyHeartbeat,
} from "../../../src/masternode/livenessMessages.js";
import { MAX_WITNESSES_PER_HEARTBEAT, type Heartbeat, type MnAnnounce } from "../../../src/p2p/messages.js";
import { heartbeat, livenessRig, opKey, opKeys, registryOf, TEST_OPTS } from "./helpers.js";

const NODE_ID = Buffer.alloc(32, 0xab);

function announce(
  key: KeyPair,
  timestamp: number,
  address = "127.0.9.1:24200",
  nodeId = NODE_ID,
): MnAnnounce {
  return signMnAnnounce(key, { nodeId, address, timestamp });
}

/** The connection the masternode itself would announce on. */
function directFrom(key: KeyPair, nodeId = NODE_ID): AnnounceSource {
  return { operatorPubkey: key.publicKey, nodeId };
}

describe("liveness: heartbeats", () => {
  const [a, b, c] = opKeys("hb", 3) as [KeyPair, KeyPair, KeyPair];

  it("accepts a heartbeat signed by the registered key and marks the masternode active", () => {
    const { clock, liveness } = livenessRig([a, b, c]);
    assert.equal(liveness.activeCount(), 0);
    assert.equal(liveness.onHeartbeat(heartbeat(a, clock)), "new");
    assert.equal(liveness.isActive(a.publicKey), true);
    assert.equal(liveness.isActive(b.publicKey), false);
    assert.equal(liveness.activeCount(), 1);
    assert.equal(liveness.lastSeq(a.publicKey), clock.now());
  });

  it("an exact duplicate is ignored silently", () => {
    const { clock, liveness } = livenessRig([a, b]);
    const hb = heartbeat(a, clock);
    assert.equal(liveness.onHeartbeat(hb), "new");
    assert.equal(liveness.onHeartbeat(hb), "duplicate");
    assert.equal(liveness.onHeartbeat({ ...hb }), "duplicate");
  });

  it("an exact copy of a heartbeat older than the masternode's latest is a replay, and refreshes nothing", () => {
    const { clock, liveness } = livenessRig([a, b]);
    const old = heartbeat(a, clock);
    assert.equal(liveness.onHeartbeat(old), "new");
    clock.advance(1_000);
    const latest = heartbeat(a, clock);
    assert.equal(liveness.onHeartbeat(latest), "new");
    const seenAt = Math.floor(clock.now() / 1000);
    clock.advance(2_000);
    // The latest again is a relay crossing; the older one again is somebody replaying it.
    assert.equal(liveness.onHeartbeat(latest), "duplicate");
    assert.equal(liveness.onHeartbeat(old), "replay");
    assert.equal(liveness.lastSeq(a.publicKey), latest.seq);
    const row = liveness.list("devnet").find((r) => r.pubkey === a.publicKey.toString("hex"))!;
    assert.equal(row.seq, latest.seq);
    assert.equal(row.lastseen, seenAt, "neither copy counts as a new sign of life");
  });

  it("a key that is not in the registry is an unknown operator, and counts for nothing", () => {
    const { clock, liveness } = livenessRig([a, b]);
    const stranger = opKey("hb-stranger", 0);
    assert.equal(liveness.onHeartbeat(heartbeat(stranger, clock)), "unknown-operator");
    assert.equal(liveness.activeCount(), 0);
    assert.equal(liveness.isActive(stranger.publicKey), false);
  });

  it("a heartbeat naming a registered key but signed by another key is a bad signature", () => {
    const { clock, liveness } = livenessRig([a, b]);
    const forger = opKey("hb-forger", 0);
    const forged: Heartbeat = { ...heartbeat(forger, clock), operatorPubkey: a.publicKey };
    assert.equal(liveness.onHeartbeat(forged), "bad-signature");
    // A field changed after signing breaks the signature too.
    const tampered: Heartbeat = { ...heartbeat(a, clock), height: 999 };
    assert.equal(liveness.onHeartbeat(tampered), "bad-signature");
    assert.equal(liveness.activeCount(), 0);
  });

  it("checks the key against the registry, which can change under it", () => {
    const rig = livenessRig([a, b]);
    assert.equal(rig.liveness.onHeartbeat(heartbeat(c, rig.clock)), "unknown-operator");
    rig.setRegistry(registryOf([a, b, c]));
    rig.clock.advance(1);
    assert.equal(rig.liveness.onHeartbeat(heartbeat(c, rig.clock)), "new");
    // Deregistered: no longer active, however recent its heartbeat.
    rig.setRegistry(registryOf([a, b]));
    assert.equal(rig.liveness.isActive(c.publicKey), false);
    assert.equal(rig.liveness.activeCount(), 0);
  });

  it("rejects a replay: a different heartbeat whose seq is not above the last accepted", () => {
    const { clock, liveness } = livenessRig([a, b]);
    const first = heartbeat(a, clock, { seq: 100 });
    clock.advance(1_000);
    const second = heartbeat(a, clock, { seq: 200 });
    assert.equal(liveness.onHeartbeat(second), "new");
    // Older seq, never seen here (e.g. captured elsewhere): a replay.
    assert.equal(liveness.onHeartbeat(first), "replay");
    // Same seq, different content: also a replay.
    assert.equal(liveness.onHeartbeat(heartbeat(a, clock, { seq: 200, height: 8 })), "replay");
    assert.equal(liveness.lastSeq(a.publicKey), 200);
    assert.equal(liveness.onHeartbeat(heartbeat(a, clock, { seq: 201 })), "new");
  });

  it("refuses heartbeats from the future and ignores stale ones", () => {
    const { clock, liveness } = livenessRig([a, b]);
    const now = clock.now();
    assert.equal(
      liveness.onHeartbeat(heartbeat(a, clock, { timestamp: now + TEST_OPTS.maxClockDriftMs + 1 })),
      "future",
    );
    assert.equal(
      liveness.onHeartbeat(heartbeat(a, clock, { timestamp: now - TEST_OPTS.windowMs - 1 })),
      "stale",
    );
    assert.equal(liveness.activeCount(), 0);
    // At the edges: accepted.
    assert.equal(
      liveness.onHeartbeat(heartbeat(b, clock, { timestamp: now + TEST_OPTS.maxClockDriftMs })),
      "new",
    );
    assert.equal(liveness.onHeartbeat(heartbeat(a, clock, { timestamp: now - TEST_OPTS.windowMs })), "new");
  });

  it("lastSeen is the local receipt time for gossip, the sender's time (capped) for a list entry", () => {
    const { clock, liveness } = livenessRig([a, b]);
    const now = clock.now();
    liveness.onHeartbeat(heartbeat(a, clock, { timestamp: now - 4_000 }), "gossip");
    liveness.onHeartbeat(heartbeat(b, clock, { timestamp: now - 4_000 }), "list");
    const rows = new Map(liveness.list("devnet").map((r) => [r.pubkey, r]));
    assert.equal(rows.get(a.publicKey.toString("hex"))?.lastseen, Math.floor(now / 1000));
    assert.equal(rows.get(b.publicKey.toString("hex"))?.lastseen, Math.floor((now - 4_000) / 1000));
    // The list entry runs out 4 s earlier than the gossiped one.
    clock.advance(1_500);
    assert.equal(liveness.isActive(a.publicKey), true);
    assert.equal(liveness.isActive(b.publicKey), false);
    // A list entry stamped in the (tolerated) future still counts from our clock, not later.
    const { clock: c2, liveness: l2 } = livenessRig([a]);
    l2.onHeartbeat(heartbeat(a, c2, { timestamp: c2.now() + 1_500 }), "list");
    assert.equal(l2.list("devnet")[0]?.lastseen, Math.floor(c2.now() / 1000));
  });

  it("activeCount follows the window on a ManualClock, self included once it has heartbeated", () => {
    const self = a;
    const { clock, liveness } = livenessRig([a, b, c], self);
    assert.equal(liveness.activeCount(), 0, "self does not count before its first heartbeat");
    liveness.recordOwnHeartbeat(heartbeat(self, clock));
    assert.equal(liveness.activeCount(), 1);
    clock.advance(2_000);
    assert.equal(liveness.onHeartbeat(heartbeat(b, clock)), "new");
    clock.advance(2_000);
    assert.equal(liveness.onHeartbeat(heartbeat(c, clock)), "new");
    assert.equal(liveness.activeCount(), 3);
    clock.advance(1_001); // self's heartbeat is now 5,001 ms old
    assert.equal(liveness.activeCount(), 2);
    assert.equal(liveness.isActive(self.publicKey), false);
    clock.advance(2_000);
    assert.equal(liveness.activeCount(), 1);
    clock.advance(2_000);
    assert.equal(liveness.activeCount(), 0);
    const rows = liveness.list("devnet");
    assert.ok(rows.every((r) => r.status === "inactive" && r.lastseen !== null));
  });

  it("an own heartbeat echoed back is a duplicate", () => {
    const { clock, liveness } = livenessRig([a, b], a);
    const own = heartbeat(a, clock);
    liveness.recordOwnHeartbeat(own);
    assert.equal(liveness.onHeartbeat(own), "duplicate");
    assert.throws(() => liveness.recordOwnHeartbeat(heartbeat(b, clock)), /not signed by our operator key/);
  });

  it("the seen-cache is bounded at SEEN_CACHE_SIZE and forgets the oldest first", () => {
    const { clock, liveness } = livenessRig([a, b], a);
    const first = heartbeat(a, clock, { seq: 1 });
    liveness.recordOwnHeartbeat(first);
    // recordOwnHeartbeat does not verify (it is our own), so unsigned copies fill the cache fast.
    const base = heartbeat(a, clock);
    for (let i = 0; i < SEEN_CACHE_SIZE + 10; i++) liveness.recordOwnHeartbeat({ ...base, seq: 10 + i });
    assert.equal(liveness.seenCacheSize, SEEN_CACHE_SIZE);
    // The first one fell out: no longer a silent duplicate, but an old seq (a replay).
    assert.equal(liveness.onHeartbeat(first), "replay");
    assert.equal(liveness.trackedCount, 1, "state is per registered masternode, not per heartbeat");
  });

  it("the seen-cache forgets hashes once a copy would be refused by its timestamp anyway", () => {
    const { clock, liveness } = livenessRig([a, b], a);
    const first = heartbeat(a, clock, { seq: 1 });
    liveness.recordOwnHeartbeat(first);
    for (let i = 0; i < 99; i++) liveness.recordOwnHeartbeat(heartbeat(a, clock, { seq: 2 + i }));
    assert.equal(liveness.seenCacheSize, 100);
    const keepMs = 2 * TEST_OPTS.windowMs + TEST_OPTS.maxClockDriftMs;
    clock.advance(keepMs - 1);
    liveness.recordOwnHeartbeat(heartbeat(a, clock, { seq: 200 }));
    assert.equal(liveness.seenCacheSize, 101, "nothing is forgotten before its time");
    clock.advance(1);
    liveness.recordOwnHeartbeat(heartbeat(a, clock, { seq: 201 }));
    assert.equal(liveness.seenCacheSize, 2, "the 100 old ones are gone, the two recent ones kept");
    // A copy of a forgotten one is past the window by its own timestamp: refused, not re-accepted.
    assert.equal(liveness.onHeartbeat(first), "stale");
  });

  it("prune drops the state of masternodes that left the registry", () => {
    const rig = livenessRig([a, b, c]);
    for (const k of [a, b, c]) rig.liveness.onHeartbeat(heartbeat(k, rig.clock));
    assert.equal(rig.liveness.trackedCount, 3);
    rig.setRegistry(registryOf([a]));
    assert.equal(rig.liveness.prune(), 2);
    assert.equal(rig.liveness.trackedCount, 1);
    assert.equal(rig.liveness.activeCount(), 1);
  });

  it("signatures are domain-separated: an attestation signature never verifies as a heartbeat", () => {
    const { clock } = livenessRig([a]);
    const hb = heartbeat(a, clock);
    assert.equal(verifyHeartbeat(hb, a.publicKey), true);
    assert.equal(verifyHeartbeat(hb, b.publicKey), false, "checked against the given (registered) key");
  });
});

describe("liveness: attestations", () => {
  const keys = opKeys("att", 3);
  const [a, b, c] = keys as [KeyPair, KeyPair, KeyPair];

  it("records a registered witness of the latest heartbeat once", () => {
    const { clock, liveness } = livenessRig(keys);
    const hb = heartbeat(a, clock);
    liveness.onHeartbeat(hb);
    const att = signAttestation(b, {
      heartbeatHash: heartbeatHash(hb),
      operatorPubkey: a.publicKey,
      seq: hb.seq,
      timestamp: clock.now(),
    });
    assert.equal(liveness.onAttestation(att), "new");
    assert.equal(liveness.onAttestation(att), "duplicate");
    clock.advance(10);
    const again = signAttestation(b, {
      heartbeatHash: heartbeatHash(hb),
      operatorPubkey: a.publicKey,
      seq: hb.seq,
      timestamp: clock.now(),
    });
    assert.equal(liveness.onAttestation(again), "duplicate", "one witness counts once");
    const attC = signAttestation(c, {
      heartbeatHash: heartbeatHash(hb),
      operatorPubkey: a.publicKey,
      seq: hb.seq,
      timestamp: clock.now(),
    });
    assert.equal(liveness.onAttestation(attC), "new");
    assert.equal(liveness.rowFor(a.publicKey, "devnet")?.witnesses, 2);
    // A newer heartbeat starts a fresh witness count.
    clock.advance(1_000);
    liveness.onHeartbeat(heartbeat(a, clock));
    assert.equal(liveness.rowFor(a.publicKey, "devnet")?.witnesses, 0);
    // ...and an attestation of the old one is stale.
    const late = signAttestation(c, {
      heartbeatHash: heartbeatHash(hb),
      operatorPubkey: a.publicKey,
      seq: hb.seq,
      timestamp: clock.now() + 1,
    });
    assert.equal(liveness.onAttestation(late), "stale");
  });

  it("rejects unregistered witnesses, bad signatures, self-attestations and unknown heartbeats", () => {
    const { clock, liveness } = livenessRig(keys);
    const hb = heartbeat(a, clock);
    const fields = {
      heartbeatHash: heartbeatHash(hb),
      operatorPubkey: a.publicKey,
      seq: hb.seq,
      timestamp: clock.now(),
    };
    assert.equal(liveness.onAttestation(signAttestation(b, fields)), "unknown-heartbeat", "not seen yet");
    liveness.onHeartbeat(hb);
    const stranger = opKey("att-stranger", 0);
    assert.equal(liveness.onAttestation(signAttestation(stranger, fields)), "unknown-operator");
    assert.equal(
      liveness.onAttestation({ ...signAttestation(stranger, fields), witnessPubkey: b.publicKey }),
      "bad-signature",
    );
    assert.equal(
      liveness.onAttestation(signAttestation(a, fields)),
      "invalid",
      "a masternode cannot witness itself",
    );
    assert.equal(
      liveness.onAttestation(signAttestation(b, { ...fields, heartbeatHash: Buffer.alloc(32, 1) })),
      "unknown-heartbeat",
    );
    assert.equal(
      liveness.onAttestation(signAttestation(b, { ...fields, timestamp: clock.now() + 60_000 })),
      "future",
    );
    assert.equal(liveness.rowFor(a.publicKey, "devnet")?.witnesses, 0);
  });

  it("takes attestations only from the witnesses the lottery designates (about 4 per heartbeat)", () => {
    const many = opKeys("att-many", 40);
    const target = many[0]!;
    const { clock, liveness } = livenessRig(many);
    const hb = heartbeat(target, clock);
    liveness.onHeartbeat(hb);
    const hash = heartbeatHash(hb);
    const verdicts = many.slice(1).map((w) =>
      liveness.onAttestation(
        signAttestation(w, {
          heartbeatHash: hash,
          operatorPubkey: target.publicKey,
          seq: hb.seq,
          timestamp: clock.now(),
        }),
      ),
    );
    const designated = many.slice(1).map((w) => isDesignatedWitness(hash, w.publicKey, many.length));
    assert.deepEqual(
      verdicts,
      designated.map((d) => (d ? "new" : "invalid")),
      "designated witnesses count, the others are dropped without a penalty",
    );
    assert.equal(liveness.rowFor(target.publicKey, "devnet")?.witnesses, designated.filter(Boolean).length);
  });

  it("the lottery designates WITNESSES_PER_HEARTBEAT witnesses on average, and everyone in a small network", () => {
    const keys = opKeys("lottery", 101);
    let total = 0;
    let most = 0;
    for (let i = 0; i < 500; i++) {
      const hash = sha256(Buffer.from(`heartbeat ${i}`));
      const n = keys.filter((k) => isDesignatedWitness(hash, k.publicKey, keys.length)).length;
      total += n;
      most = Math.max(most, n);
    }
    const mean = total / 500;
    assert.ok(Math.abs(mean - WITNESSES_PER_HEARTBEAT) < 0.5, `mean ${mean}`);
    assert.ok(most < MAX_WITNESSES_PER_HEARTBEAT, `at most ${most}`);
    const few = keys.slice(0, WITNESSES_PER_HEARTBEAT + 1);
    assert.ok(few.every((k) => isDesignatedWitness(sha256(Buffer.from("x")), k.publicKey, few.length)));
  });
});

describe("liveness: announcements", () => {
  const keys = opKeys("ann", 3);
  const [a, b] = keys as [KeyPair, KeyPair, KeyPair];

  it("a direct announcement updates lastSeen, the address and node id, and returns them", () => {
    const { clock, liveness } = livenessRig(keys);
    const ann = announce(a, clock.now() - 3_000, "127.0.9.9:24200");
    const r = liveness.onAnnounce(ann, directFrom(a));
    assert.equal(r.verdict, "new");
    assert.equal(r.address, "127.0.9.9:24200");
    assert.deepEqual(r.nodeId, NODE_ID);
    assert.equal(liveness.isActive(a.publicKey), true, "an announcement is evidence of life");
    const row = liveness.rowFor(a.publicKey, "devnet")!;
    assert.equal(row.address, "127.0.9.9:24200");
    assert.equal(row.nodeid, NODE_ID.toString("hex"));
    assert.equal(row.lastseen, Math.floor(clock.now() / 1000), "local receipt time");
    assert.equal(liveness.onAnnounce(ann, directFrom(a)).verdict, "duplicate");
  });

  it("rejects what does not come from the masternode itself or is malformed", () => {
    const { clock, liveness } = livenessRig(keys);
    const now = clock.now();
    const stranger = opKey("ann-stranger", 0);
    assert.equal(
      liveness.onAnnounce(announce(stranger, now), directFrom(stranger)).verdict,
      "unknown-operator",
    );
    // Relayed by someone else (announcements are never relayed), or from another node id.
    assert.equal(liveness.onAnnounce(announce(a, now), directFrom(b)).verdict, "mismatch");
    assert.equal(
      liveness.onAnnounce(announce(a, now), { operatorPubkey: null, nodeId: NODE_ID }).verdict,
      "mismatch",
    );
    assert.equal(
      liveness.onAnnounce(announce(a, now), directFrom(a, Buffer.alloc(32, 1))).verdict,
      "mismatch",
    );
    assert.equal(liveness.onAnnounce(announce(a, now, "no port"), directFrom(a)).verdict, "invalid");
    const forged = { ...announce(stranger, now), operatorPubkey: a.publicKey };
    assert.equal(liveness.onAnnounce(forged, directFrom(a)).verdict, "bad-signature");
    assert.equal(liveness.onAnnounce(announce(a, now + 60_000), directFrom(a)).verdict, "future");
    assert.equal(liveness.onAnnounce(announce(a, now - 90_001), directFrom(a)).verdict, "stale");
    assert.equal(liveness.activeCount(), 0);
    // Then a good one, and an older one after it: a replay.
    assert.equal(liveness.onAnnounce(announce(a, now), directFrom(a)).verdict, "new");
    assert.equal(liveness.onAnnounce(announce(a, now - 1_000), directFrom(a)).verdict, "replay");
  });

  it("a list entry (no connection) counts from its own timestamp", () => {
    const { clock, liveness } = livenessRig(keys);
    const r = liveness.onAnnounce(announce(a, clock.now() - 60_000));
    assert.equal(r.verdict, "new");
    assert.equal(liveness.rowFor(a.publicKey, "devnet")?.lastseen, Math.floor((clock.now() - 60_000) / 1000));
    assert.equal(liveness.isActive(a.publicKey), false, "a minute-old announcement says nothing about now");
  });
});

describe("liveness: list and snapshot", () => {
  const keys = opKeys("list", 3);
  const [a, b, c] = keys as [KeyPair, KeyPair, KeyPair];

  it("lists every registered masternode with the masternodelist fields", () => {
    const { clock, liveness } = livenessRig(keys);
    liveness.onHeartbeat(heartbeat(b, clock));
    const rows = liveness.list("devnet");
    assert.equal(rows.length, 3);
    assert.deepEqual(
      rows.map((r) => r.pubkey),
      registryOf(keys).map((e) => e.operatorPubkey.toString("hex")),
    );
    const rb = rows.find((r) => r.pubkey === b.publicKey.toString("hex"))!;
    assert.equal(rb.status, "active");
    assert.equal(rb.lastseen, Math.floor(clock.now() / 1000));
    assert.equal(rb.height, 7);
    const entry = registryOf(keys).find((e) => e.operatorPubkey.equals(b.publicKey))!;
    assert.equal(rb.address, entry.address);
    assert.equal(rb.rewardaddress, encodeAddress(entry.rewardAddress, "devnet"));
    assert.equal(rb.registeredheight, entry.registeredHeight);
    assert.ok(["free", "bronze", "silver", "gold"].includes(rb.tier));
    const ra = rows.find((r) => r.pubkey === a.publicKey.toString("hex"))!;
    assert.deepEqual(
      { status: ra.status, lastseen: ra.lastseen, witnesses: ra.witnesses },
      { status: "inactive", lastseen: null, witnesses: 0 },
    );
  });

  it("snapshot holds the latest usable announcement and heartbeat per masternode", () => {
    const { clock, liveness } = livenessRig(keys);
    liveness.onHeartbeat(heartbeat(a, clock, { seq: 1 }));
    clock.advance(100);
    const latest = heartbeat(a, clock, { seq: 2 });
    liveness.onHeartbeat(latest);
    liveness.onHeartbeat(heartbeat(b, clock, { timestamp: clock.now() - 4_000 }), "list");
    liveness.onAnnounce(announce(c, clock.now()), directFrom(c));
    let snap = liveness.snapshot();
    assert.equal(snap.heartbeats.length, 2);
    assert.ok(snap.heartbeats.some((h) => h.seq === 2 && h.operatorPubkey.equals(a.publicKey)));
    assert.equal(snap.announces.length, 1);
    // b's heartbeat ages out of the window first; the announcement lasts longer.
    clock.advance(1_001);
    snap = liveness.snapshot();
    assert.deepEqual(
      snap.heartbeats.map((h) => h.seq),
      [latest.seq],
    );
    assert.equal(snap.announces.length, 1);
  });
});

describe("liveness: options from config", () => {
  it("window = 5 heartbeat intervals: 300 s on mainnet and testnet, 5 s on a devnet", () => {
    const want = { mainnet: [60, 600, 300_000], testnet: [60, 600, 300_000], devnet: [1, 30, 5_000] };
    for (const network of NETWORK_NAMES) {
      const m = defaultConfig(network, "/tmp/liveness-test").masternode;
      const [hb, ann, window] = want[network];
      assert.equal(m.heartbeat_interval, hb);
      assert.equal(m.announce_interval, ann);
      const o = livenessOptions(m.heartbeat_interval * 1000, m.announce_interval * 1000);
      assert.equal(o.windowMs, window);
      assert.ok(o.maxClockDriftMs >= 2_000);
      assert.ok((o.announceMaxAgeMs ?? 0) >= 2 * m.announce_interval * 1000);
    }
  });
});
