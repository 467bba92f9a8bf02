/**
 * Dashboard login: one click from the printed URL, without weakening RPC authentication.
 *
 * The flow:
 * 1. `timed start` / `timed devnet` (or the authenticated RPC method `dashboardurl`) mints a
 *    login code and prints `http://HOST:PORT/#login=CODE`. The code sits in the URL fragment,
 *    which a browser never sends to a server: it does not reach access logs, proxies or a
 *    Referer header.
 * 2. The page's script POSTs the code to /dashboard/login. A code works once, within
 *    LOGIN_CODE_TTL_MS (10 min); it is deleted on first use, whether that use succeeds or comes
 *    too late. The answer sets a session cookie and the page drops the fragment from history.
 * 3. The session cookie is HttpOnly (page scripts cannot read it), SameSite=Strict (no other
 *    site can make the browser send it) and Path=/dashboard/api. It opens exactly one thing:
 *    the read-only GET /dashboard/api/state. It is never checked on POST / (JSON-RPC), which
 *    still needs HTTP Basic with the cookie file or the configured user and password.
 *    Sessions expire (SESSION_TTL_MS) and are bounded in number (MAX_SESSIONS).
 *
 * Why this does not weaken RPC auth: nothing in the printed URL lets anyone call a JSON-RPC
 * method. The URL holds a single-use, short-lived code whose only power is to open one
 * read-only session; once the operator's browser used it, the printed line is worthless, and a
 * code that leaked unused expires within minutes. Minting a code needs RPC credentials
 * (`dashboardurl`) or the node's own stdout. Codes and tokens are 128 and 256 random bits and are
 * stored only as SHA-256 digests.
 */
import { createHash } from "node:crypto";
import type { Clock } from "../util/clock.js";
import type { Random } from "../util/random.js";
import {
  LOGIN_CODE_BYTES,
  LOGIN_CODE_TTL_MS,
  MAX_LOGIN_CODES,
  MAX_SESSIONS,
  SESSION_COOKIE_PATH,
  SESSION_COOKIE_PREFIX,
  SESSION_TOKEN_BYTES,
  SESSION_TTL_MS,
} from "./constants.js";

export interface DashboardSessionOptions {
  codeTtlMs: number;
  maxCodes: number;
  sessionTtlMs: number;
  maxSessions: number;
}

export const defaultDashboardSessionOptions: DashboardSessionOptions = {
  codeTtlMs: LOGIN_CODE_TTL_MS,
  maxCodes: MAX_LOGIN_CODES,
  sessionTtlMs: SESSION_TTL_MS,
  maxSessions: MAX_SESSIONS,
};

export interface DashboardSessionModules {
  clock: Clock;
  random: Random;
}

export interface MintedCode {
  code: string;
  /** Seconds the code stays usable. */
  expiresInSeconds: number;
}

export interface NewSession {
  token: string;
  maxAgeSeconds: number;
}

/** Login codes and sessions, both keyed by SHA-256 digest, both in insertion (= age) order. */
export class DashboardSessions {
  private readonly opts: DashboardSessionOptions;
  /** digest(code) → monotonic expiry. */
  private readonly codes = new Map<string, number>();
  /** digest(token) → monotonic expiry. */
  private readonly sessions = new Map<string, number>();

  constructor(
    opts: Partial<DashboardSessionOptions>,
    private readonly modules: DashboardSessionModules,
  ) {
    this.opts = { ...defaultDashboardSessionOptions, ...opts };
    for (const [k, v] of Object.entries(this.opts)) {
      if (!Number.isSafeInteger(v) || v <= 0)
        throw new Error(`dashboard session option ${k} must be a positive integer`);
    }
  }

  /** A fresh single-use login code; the oldest outstanding code goes if the table is full. */
  mintCode(): MintedCode {
    this.prune();
    const code = this.modules.random.bytes(LOGIN_CODE_BYTES).toString("base64url");
    evictOldest(this.codes, this.opts.maxCodes - 1);
    this.codes.set(digest(code), this.modules.clock.monotonic() + this.opts.codeTtlMs);
    return { code, expiresInSeconds: Math.floor(this.opts.codeTtlMs / 1000) };
  }

  /**
   * Trades a login code for a session. The code is gone after this call whatever the outcome:
   * a used, expired or unknown code gives null.
   */
  redeem(code: string): NewSession | null {
    this.prune();
    if (code.length === 0 || code.length > 128) return null;
    const key = digest(code);
    const expiry = this.codes.get(key);
    this.codes.delete(key);
    if (expiry === undefined || expiry <= this.modules.clock.monotonic()) return null;
    const token = this.modules.random.bytes(SESSION_TOKEN_BYTES).toString("base64url");
    evictOldest(this.sessions, this.opts.maxSessions - 1);
    this.sessions.set(digest(token), this.modules.clock.monotonic() + this.opts.sessionTtlMs);
    return { token, maxAgeSeconds: Math.floor(this.opts.sessionTtlMs / 1000) };
  }

  /** True for a live session token. */
  isValid(token: string): boolean {
    if (token.length === 0 || token.length > 128) return false;
    const key = digest(token);
    const expiry = this.sessions.get(key);
    if (expiry === undefined) return false;
    if (expiry <= this.modules.clock.monotonic()) {
      this.sessions.delete(key);
      return false;
    }
    return true;
  }

  /** Ends every session and drops every code (the node is stopping). */
  clear(): void {
    this.codes.clear();
    this.sessions.clear();
  }

  get codeCount(): number {
    this.prune();
    return this.codes.size;
  }

  get sessionCount(): number {
    this.prune();
    return this.sessions.size;
  }

  private prune(): void {
    const now = this.modules.clock.monotonic();
    for (const table of [this.codes, this.sessions]) {
      for (const [k, expiry] of table) if (expiry <= now) table.delete(k);
    }
  }
}

/** The session cookie's name for a node whose RPC listens on `port`. */
export function sessionCookieName(port: number): string {
  return `${SESSION_COOKIE_PREFIX}${port}`;
}

/** The Set-Cookie value for a new session: HttpOnly, SameSite=Strict, sent only to the data API. */
export function sessionSetCookie(port: number, s: NewSession): string {
  return `${sessionCookieName(port)}=${s.token}; Path=${SESSION_COOKIE_PATH}; Max-Age=${s.maxAgeSeconds}; HttpOnly; SameSite=Strict`;
}

/** A Set-Cookie value that removes the session cookie (after a refused one, so the page starts clean). */
export function clearSessionCookie(port: number): string {
  return `${sessionCookieName(port)}=; Path=${SESSION_COOKIE_PATH}; Max-Age=0; HttpOnly; SameSite=Strict`;
}

/** The value of cookie `name` in a Cookie header, or null. */
export function readCookie(header: string | undefined, name: string): string | null {
  if (header === undefined) return null;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

function digest(secret: string): string {
  return createHash("sha256").update(secret, "utf8").digest("base64url");
}

/** Deletes the oldest entries until at most `keep` remain (a Map iterates in insertion order). */
function evictOldest(table: Map<string, number>, keep: number): void {
  for (const k of table.keys()) {
    if (table.size <= keep) return;
    table.delete(k);
  }
}
