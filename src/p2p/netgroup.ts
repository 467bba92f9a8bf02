import { isIPv4, isIPv6 } from "node:net";
import { normaliseHost } from "./transport.js";

/**
 * The netgroups of an address: who could plausibly control many addresses at once. An attacker
 * who rents addresses gets them in blocks, so connection limits and outbound diversity count
 * per block, not per address:
 * - narrow: the /24 of an IPv4 address, the /48 of an IPv6 address (one customer's allocation);
 * - wide: the /16 of an IPv4 address, the /32 of an IPv6 address (one provider's allocation).
 *
 * Loopback, private (RFC 1918), carrier-grade NAT, link-local and unique-local addresses are not
 * grouped: each such address is its own narrow and wide group. Nobody rents them on the public
 * internet; they are addresses an operator assigns on a network they control. That way a devnet
 * on 127.0.1.x, the chaos campaign on one private /24 (10.77.0.x), and a hundred local nodes all
 * form a full mesh. (On a shared private network, `max_connections_per_ip` still applies.)
 */
export interface Netgroups {
  narrow: string;
  wide: string;
  /** The address is local or private (not grouped). */
  local: boolean;
}

/** The netgroups of `ip` (an IPv4 or IPv6 address, IPv4-mapped IPv6 as IPv4). */
export function netgroupsOf(ip: string): Netgroups {
  const host = normaliseHost(
    ip
      .trim()
      .toLowerCase()
      .replace(/^\[|\]$/g, ""),
  );
  if (isIPv4(host)) {
    const o = host.split(".").map(Number);
    if (isLocalV4(o)) return { narrow: `ip:${host}`, wide: `ip:${host}`, local: true };
    return { narrow: `v4:${o[0]}.${o[1]}.${o[2]}/24`, wide: `v4:${o[0]}.${o[1]}/16`, local: false };
  }
  if (isIPv6(host)) {
    const groups = expandV6(host);
    if (groups === null || isLocalV6(groups))
      return { narrow: `ip:${host}`, wide: `ip:${host}`, local: true };
    const hex = groups.map((g) => g.toString(16));
    return {
      narrow: `v6:${hex.slice(0, 3).join(":")}::/48`,
      wide: `v6:${hex.slice(0, 2).join(":")}::/32`,
      local: false,
    };
  }
  // Not an IP (cannot happen for a connection's remote address): its own group.
  return { narrow: `ip:${host}`, wide: `ip:${host}`, local: true };
}

function isLocalV4(o: number[]): boolean {
  const [a = 0, b = 0] = o;
  return (
    a === 0 || // "this network"
    a === 10 ||
    a === 127 ||
    (a === 100 && b >= 64 && b <= 127) || // carrier-grade NAT, 100.64.0.0/10
    (a === 169 && b === 254) ||
    (a === 172 && b >= 16 && b <= 31) ||
    (a === 192 && b === 168)
  );
}

function isLocalV6(g: number[]): boolean {
  const first = g[0] ?? 0;
  if (g.every((x, i) => (i < 7 ? x === 0 : x <= 1))) return true; // :: and ::1
  if ((first & 0xfe00) === 0xfc00) return true; // unique local, fc00::/7
  if ((first & 0xffc0) === 0xfe80) return true; // link-local, fe80::/10
  return false;
}

/** The eight 16-bit groups of an IPv6 address, or null when it does not parse. */
function expandV6(host: string): number[] | null {
  let h = host;
  const zone = h.indexOf("%");
  if (zone >= 0) h = h.slice(0, zone);
  // A trailing dotted IPv4 part ("::ffff:1.2.3.4" not caught above, "64:ff9b::1.2.3.4").
  const dot = h.lastIndexOf(":");
  const tail = h.slice(dot + 1);
  if (tail.includes(".")) {
    if (!isIPv4(tail)) return null;
    const o = tail.split(".").map(Number);
    h = `${h.slice(0, dot + 1)}${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`;
  }
  const halves = h.split("::");
  if (halves.length > 2) return null;
  const parse = (part: string): number[] => (part === "" ? [] : part.split(":").map((x) => parseInt(x, 16)));
  const left = parse(halves[0] ?? "");
  const right = halves.length === 2 ? parse(halves[1] ?? "") : [];
  const fill = 8 - left.length - right.length;
  if ((halves.length === 1 && fill !== 0) || fill < 0) return null;
  const out = [...left, ...Array<number>(Math.max(0, fill)).fill(0), ...right];
  return out.length === 8 && out.every((x) => Number.isInteger(x) && x >= 0 && x <= 0xffff) ? out : null;
}
