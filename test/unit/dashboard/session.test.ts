import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  clearSessionCookie,
  DashboardSessions,
  readCookie,
  sessionCookieName,
  sessionSetCookie,
} from "../../../src/dashboard/session.js";
import { ManualClock } from "../../../src/util/clock.js";
import { SeededRandom } from "../../../src/util/random.js";

const MIN = 60_000;

function make(opts: ConstructorParameters<typeof DashboardSessions>[0] = {}): {
  clock: ManualClock;
  s: DashboardSessions;
} {
  const clock = new ManualClock();
  return { clock, s: new DashboardSessions(opts, { clock, random: new SeededRandom(7) }) };
}

void describe("dashboard login codes and sessions", () => {
  void it("a code opens one session, once", () => {
    const { s } = make();
    const { code, expiresInSeconds } = s.mintCode();
    assert.match(code, /^[A-Za-z0-9_-]{22}$/, "128 bits, URL-safe");
    assert.equal(expiresInSeconds, 600);
    const session = s.redeem(code);
    assert.ok(session);
    assert.match(session.token, /^[A-Za-z0-9_-]{43}$/, "256 bits");
    assert.ok(s.isValid(session.token));
    assert.equal(s.redeem(code), null, "a used code is refused");
    assert.equal(s.sessionCount, 1);
  });

  void it("an expired code is refused, and is gone after the attempt", () => {
    const { clock, s } = make();
    const { code } = s.mintCode();
    clock.advance(10 * MIN);
    assert.equal(s.redeem(code), null, "at exactly the TTL it has expired");
    const fresh = s.mintCode().code;
    clock.advance(10 * MIN - 1);
    assert.ok(s.redeem(fresh), "one millisecond before the TTL it still works");
    assert.equal(s.codeCount, 0);
  });

  void it("unknown, empty and oversized codes are refused", () => {
    const { s } = make();
    s.mintCode();
    assert.equal(s.redeem("nope"), null);
    assert.equal(s.redeem(""), null);
    assert.equal(s.redeem("x".repeat(10_000)), null);
    assert.equal(s.codeCount, 1, "a wrong guess does not burn someone else's code");
  });

  void it("sessions expire", () => {
    const { clock, s } = make({ sessionTtlMs: 60 * MIN });
    const session = s.redeem(s.mintCode().code)!;
    assert.equal(session.maxAgeSeconds, 3600);
    clock.advance(60 * MIN - 1);
    assert.ok(s.isValid(session.token));
    clock.advance(1);
    assert.equal(s.isValid(session.token), false);
    assert.equal(s.sessionCount, 0);
  });

  void it("sessions are bounded: a login beyond the cap ends the oldest", () => {
    const { s } = make({ maxSessions: 3 });
    const tokens = Array.from({ length: 5 }, () => s.redeem(s.mintCode().code)!.token);
    assert.equal(s.sessionCount, 3);
    assert.deepEqual(
      tokens.map((t) => s.isValid(t)),
      [false, false, true, true, true],
    );
  });

  void it("outstanding codes are bounded: minting beyond the cap drops the oldest", () => {
    const { s } = make({ maxCodes: 2 });
    const [a, b, c] = [s.mintCode().code, s.mintCode().code, s.mintCode().code];
    assert.equal(s.codeCount, 2);
    assert.equal(s.redeem(a!), null);
    assert.ok(s.redeem(b!));
    assert.ok(s.redeem(c!));
  });

  void it("clear() ends every session and code", () => {
    const { s } = make();
    const code = s.mintCode().code;
    const token = s.redeem(s.mintCode().code)!.token;
    s.clear();
    assert.equal(s.isValid(token), false);
    assert.equal(s.redeem(code), null);
  });

  void it("an invented token is not a session", () => {
    const { s } = make();
    s.redeem(s.mintCode().code);
    assert.equal(s.isValid("A".repeat(43)), false);
    assert.equal(s.isValid(""), false);
  });

  void it("refuses nonsense options", () => {
    const clock = new ManualClock();
    assert.throws(() => new DashboardSessions({ maxSessions: 0 }, { clock, random: new SeededRandom(1) }));
    assert.throws(() => new DashboardSessions({ codeTtlMs: 1.5 }, { clock, random: new SeededRandom(1) }));
  });
});

void describe("dashboard session cookie", () => {
  void it("is HttpOnly, SameSite=Strict and sent only to the data API", () => {
    const c = sessionSetCookie(24201, { token: "tok", maxAgeSeconds: 60 });
    assert.equal(c, "timed_dashboard_24201=tok; Path=/dashboard/api; Max-Age=60; HttpOnly; SameSite=Strict");
    assert.match(clearSessionCookie(24201), /^timed_dashboard_24201=; .*Max-Age=0/);
  });

  void it("is found by name in a Cookie header", () => {
    const name = sessionCookieName(24101);
    assert.equal(readCookie(`a=1; ${name}=xyz; b=2`, name), "xyz");
    assert.equal(
      readCookie(`timed_dashboard_24201=other`, name),
      null,
      "another node's cookie on the same host",
    );
    assert.equal(readCookie(undefined, name), null);
    assert.equal(readCookie("garbage;;=;", name), null);
  });
});
