/**
 * HTTP Basic on the dashboard's data endpoint, with exactly the RPC credentials (so
 * `curl -u __cookie__:SECRET http://…/dashboard/api/state` works). The check compares SHA-256
 * digests in constant time, as the RPC server does.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { readCookieFile } from "../rpc/cookie.js";
import type { RpcAuth } from "../rpc/server.js";

export type BasicAuthCheck = (req: IncomingMessage) => boolean;

/**
 * A check of a request's Basic credentials against `auth`. With the cookie, the file is read
 * when a request carries credentials (the server rewrites it at every start, so nothing is
 * cached); a missing or unreadable cookie refuses.
 */
export function basicAuthChecker(auth: RpcAuth): BasicAuthCheck {
  return (req) => {
    const header = req.headers.authorization;
    const m = header === undefined ? null : /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
    if (m?.[1] === undefined) return false;
    let expected: string;
    if (auth.kind === "userpass") {
      expected = `${auth.user}:${auth.password}`;
    } else {
      let creds;
      try {
        creds = readCookieFile(auth.cookieFile);
      } catch {
        return false;
      }
      if (!creds) return false;
      expected = `${creds.user}:${creds.password}`;
    }
    return timingSafeEqual(sha256(Buffer.from(m[1], "base64").toString("utf8")), sha256(expected));
  };
}

function sha256(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}
