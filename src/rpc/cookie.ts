/**
 * The RPC cookie file, as in bitcoind: `DATADIR/.cookie` holds `__cookie__:<64 hex chars>`,
 * written with mode 0600 when the RPC server starts and removed when it stops. Whoever can
 * read the data directory can call the node; nobody has to configure a password.
 */
import { chmodSync, openSync, closeSync, writeSync, readFileSync, renameSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { CodedError } from "../util/codedError.js";

export const COOKIE_FILE = ".cookie";
export const COOKIE_USER = "__cookie__";
/** 32 random bytes = 256 bits, as bitcoind's cookie. */
export const COOKIE_SECRET_BYTES = 32;

export interface RpcCredentials {
  user: string;
  password: string;
}

export class CookieError extends CodedError<"MALFORMED" | "UNREADABLE"> {}

function isErrno(err: unknown, code: string): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === code;
}

/** Parses cookie content `user:password` (surrounding whitespace ignored). */
export function parseCookie(content: string, path: string): RpcCredentials {
  const text = content.trim();
  const colon = text.indexOf(":");
  if (colon <= 0 || colon === text.length - 1) {
    throw new CookieError("MALFORMED", `malformed RPC cookie file ${path}: expected user:password`, { path });
  }
  return { user: text.slice(0, colon), password: text.slice(colon + 1) };
}

/** Reads a cookie file; null if it does not exist. */
export function readCookieFile(path: string): RpcCredentials | null {
  let content: string;
  try {
    content = readFileSync(path, "utf8");
  } catch (err) {
    if (isErrno(err, "ENOENT")) return null;
    const reason = err instanceof Error ? err.message : String(err);
    throw new CookieError("UNREADABLE", `cannot read RPC cookie file ${path}: ${reason}`, { path });
  }
  return parseCookie(content, path);
}

/** Reads `dataDir/.cookie`; null if the node has not written one (not running). */
export function readCookie(dataDir: string): RpcCredentials | null {
  return readCookieFile(join(dataDir, COOKIE_FILE));
}

/** The exact content the server writes for a given secret. */
export function cookieContent(password: string): string {
  return `${COOKIE_USER}:${password}`;
}

/**
 * Writes the cookie atomically with mode 0600: a fresh temp file is created with 0600 (and
 * chmod-ed, since a umask can only narrow the mode), then renamed over the cookie, so a
 * reader never sees a half-written or world-readable file.
 */
export function writeCookieFile(path: string, password: string): void {
  const tmp = `${path}.tmp`;
  try {
    unlinkSync(tmp);
  } catch (err) {
    if (!isErrno(err, "ENOENT")) throw err;
  }
  const fd = openSync(tmp, "wx", 0o600);
  try {
    writeSync(fd, cookieContent(password));
  } finally {
    closeSync(fd);
  }
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

/**
 * Removes the cookie only if it still holds our secret: another node started later on the same
 * data directory (which should not happen, but) keeps its own cookie. Returns whether removed.
 */
export function removeCookieFile(path: string, password: string): boolean {
  let content: string;
  try {
    content = readFileSync(path, "utf8");
  } catch {
    return false;
  }
  if (content.trim() !== cookieContent(password)) return false;
  try {
    unlinkSync(path);
    return true;
  } catch {
    return false;
  }
}
