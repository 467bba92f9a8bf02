import assert from "node:assert/strict";
import { test } from "node:test";
import { netgroupsOf } from "../../../src/p2p/netgroup.js";

test("netgroups: public IPv4 groups by /24 (narrow) and /16 (wide)", () => {
  const a = netgroupsOf("203.0.113.7");
  assert.deepEqual(a, { narrow: "v4:203.0.113/24", wide: "v4:203.0/16", local: false });
  assert.equal(netgroupsOf("203.0.113.200").narrow, a.narrow, "same /24");
  assert.notEqual(netgroupsOf("203.0.114.1").narrow, a.narrow, "another /24 …");
  assert.equal(netgroupsOf("203.0.114.1").wide, a.wide, "… in the same /16");
  assert.equal(netgroupsOf("::ffff:203.0.113.9").narrow, a.narrow, "IPv4-mapped IPv6 is IPv4");
});

test("netgroups: public IPv6 groups by /48 and /32, whatever the spelling", () => {
  const a = netgroupsOf("2001:db8:1234:5678::1");
  assert.deepEqual(a, { narrow: "v6:2001:db8:1234::/48", wide: "v6:2001:db8::/32", local: false });
  assert.equal(netgroupsOf("2001:0db8:1234:ffff:0:0:0:9").narrow, a.narrow);
  assert.equal(netgroupsOf("[2001:db8:1234::2]").narrow, a.narrow, "brackets are ignored");
  assert.notEqual(netgroupsOf("2001:db8:1235::1").narrow, a.narrow);
  assert.equal(netgroupsOf("2001:db8:1235::1").wide, a.wide);
});

test("netgroups: loopback, private, CGNAT, link-local and unique-local addresses are each their own group", () => {
  for (const ip of [
    "127.0.1.1",
    "10.77.0.3",
    "172.16.5.4",
    "172.31.0.1",
    "192.168.1.20",
    "100.64.0.1",
    "169.254.1.1",
    "::1",
    "fd00::1",
    "fe80::1",
  ]) {
    const g = netgroupsOf(ip);
    assert.equal(g.local, true, ip);
    assert.equal(g.narrow, g.wide, ip);
  }
  // A devnet on 127.0.1.x and the chaos campaign on 10.77.0.x form a full mesh: no two nodes share a group.
  assert.notEqual(netgroupsOf("127.0.1.1").narrow, netgroupsOf("127.0.1.2").narrow);
  assert.notEqual(netgroupsOf("10.77.0.1").wide, netgroupsOf("10.77.0.2").wide);
  // Just outside the private ranges is public again.
  assert.equal(netgroupsOf("172.32.0.1").local, false);
  assert.equal(netgroupsOf("100.128.0.1").local, false);
});
