import { isIP, isIPv4, isIPv6 } from "node:net";
import { ConfigError } from "./errors.js";

export interface HostPort {
  /** A hostname, an IPv4 address, or an IPv6 address without its brackets. */
  host: string;
  port: number;
}

/** What the schema says it expects of an address; also used in parseHostPort's errors. */
export const HOST_PORT_EXPECTED = "HOST:PORT (port 1..65535; IPv6 as [::1]:PORT)";
export const LISTEN_ADDRESS_EXPECTED = "HOST:PORT (port 0..65535, 0 = any free port; IPv6 as [::1]:PORT)";

// RFC 1123 labels: letters, digits and inner hyphens, at most 63 characters each.
const HOSTNAME_RE =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
// An ed25519 public key, which is a node's identity (DESIGN.md), in hex.
const NODE_ID_RE = /^[0-9a-fA-F]{64}$/;

/**
 * Splits `s` into host and port, or says in a few words what is wrong with it. The port is
 * 1..65535, or 0..65535 with `allowPortZero` (listen addresses: 0 asks the OS for a free port).
 */
export function checkHostPort(
  s: string,
  opts: { allowPortZero?: boolean } = {},
): { ok: true; value: HostPort } | { ok: false; problem: string } {
  const bad = (problem: string) => ({ ok: false as const, problem });
  if (s.length === 0) return bad("it is empty");
  if (/\s/.test(s)) return bad("it contains whitespace");
  let host: string;
  let portText: string;
  if (s.startsWith("[")) {
    const m = /^\[([^\]]*)\]:(.*)$/.exec(s);
    if (!m) return bad("an IPv6 address in brackets must be followed by :PORT");
    host = m[1] ?? "";
    portText = m[2] ?? "";
    if (!isIPv6(host)) return bad(`${host} is not an IPv6 address`);
  } else {
    const colon = s.lastIndexOf(":");
    if (colon < 0) return bad("there is no :PORT");
    host = s.slice(0, colon);
    portText = s.slice(colon + 1);
    if (host.includes(":")) return bad("an IPv6 address must be in brackets, as [::1]:PORT");
    if (host.length === 0) return bad("there is no host before the port");
    if (/^[0-9.]+$/.test(host)) {
      if (!isIPv4(host)) return bad(`${host} is not an IPv4 address`);
    } else if (!HOSTNAME_RE.test(host)) {
      return bad(`${host} is not a valid hostname`);
    }
  }
  if (!/^[0-9]{1,5}$/.test(portText)) return bad("the port is not a number");
  const port = Number(portText);
  const min = opts.allowPortZero ? 0 : 1;
  if (port < min || port > 65535) return bad(`the port must be ${min}..65535`);
  return { ok: true, value: { host, port } };
}

/** Parses `HOST:PORT` (IPv6 as `[::1]:PORT`), or throws a ConfigError saying what is wrong. */
export function parseHostPort(s: string, opts: { allowPortZero?: boolean } = {}): HostPort {
  const r = checkHostPort(s, opts);
  if (!r.ok) {
    const expected = opts.allowPortZero ? LISTEN_ADDRESS_EXPECTED : HOST_PORT_EXPECTED;
    throw new ConfigError(
      "BAD_ADDRESS",
      `bad address ${JSON.stringify(s)}: ${r.problem} (expected ${expected})`,
      {
        address: s,
      },
    );
  }
  return r.value;
}

/** The inverse of parseHostPort: brackets an IPv6 host. */
export function formatHostPort(hp: HostPort): string {
  return hp.host.includes(":") ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

export const PEER_FILTER_EXPECTED = "an IP address (port optional) or a 64-hex-digit node id";

/**
 * White- and blacklist entries name an IP (IPs are what limits and bans apply to) or a node
 * id (DESIGN.md: "whitelists, which may name an IP or a key"). A port is tolerated so that a
 * line copied from bootstrap_peers works; hostnames are not, since bans match addresses.
 */
export function checkPeerFilter(s: string): string | undefined {
  if (NODE_ID_RE.test(s) || isIP(s) !== 0) return undefined;
  if (s.startsWith("[") && s.endsWith("]") && isIPv6(s.slice(1, -1))) return undefined;
  const hp = checkHostPort(s);
  if (hp.ok && isIP(hp.value.host) !== 0) return undefined;
  return hp.ok ? `${hp.value.host} is a hostname, not an IP address` : "not an IP address or node id";
}
