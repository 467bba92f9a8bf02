import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, describe, it } from "node:test";
import { addressFromPubkey } from "../../../src/crypto/address.js";
import {
  ConfigError,
  defaultConfig,
  loadConfig,
  NETWORK_NAMES,
  NodeConfigSchema,
  parseConfigText,
  parseHostPort,
  renderConfigTemplate,
  resolveInDataDir,
  SECTION_NAMES,
  type ConfigErrorCode,
  type ConfigOverrides,
  type NetworkName,
} from "../../../src/config/index.js";
import { SECTION_SCHEMAS } from "../../../src/config/schema.js";

const DATA = resolve("/tmp/timecoin-test-data");
const SOURCE = "/etc/timecoin/config.toml";

function parse(text: string, network?: NetworkName, overrides?: ConfigOverrides) {
  return parseConfigText(text, { source: SOURCE, dataDir: DATA, network, overrides });
}

/** Runs `fn`, which must throw a one-line ConfigError with `code` whose message holds each of `parts`. */
function expectConfigError(fn: () => unknown, code: ConfigErrorCode, ...parts: string[]): string {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.ok(!caught.message.includes("\n"), `message must be one line: ${JSON.stringify(caught.message)}`);
  for (const part of parts)
    assert.ok(caught.message.includes(part), `"${caught.message}" should mention ${part}`);
  return caught.message;
}

describe("config defaults", () => {
  const expected: Record<
    NetworkName,
    { p2p: string; rpc: string; block: number; coord: number; ping: number }
  > = {
    mainnet: { p2p: "0.0.0.0:24000", rpc: "127.0.0.1:24001", block: 600, coord: 30, ping: 30 },
    testnet: { p2p: "0.0.0.0:24100", rpc: "127.0.0.1:24101", block: 600, coord: 30, ping: 30 },
    devnet: { p2p: "127.0.0.1:24200", rpc: "127.0.0.1:24201", block: 2, coord: 5, ping: 2 },
  };

  for (const network of NETWORK_NAMES) {
    it(`${network}: ports, block time, coordinator interval, ping interval`, () => {
      const cfg = defaultConfig(network, DATA);
      const want = expected[network];
      assert.equal(cfg.node.network, network);
      assert.equal(cfg.network.listen_address, want.p2p);
      assert.equal(cfg.rpc.listen_address, want.rpc);
      assert.equal(cfg.consensus.block_time_seconds, want.block);
      assert.equal(cfg.sync.coordinator_interval, want.coord);
      assert.equal(cfg.network.ping_interval, want.ping);
    });
  }

  it("uses the original's limits and the seeds' sync values", () => {
    const cfg = defaultConfig("mainnet", DATA);
    assert.deepEqual(
      {
        max_peers: cfg.network.max_peers,
        max_inbound: cfg.network.max_inbound,
        max_outbound: cfg.network.max_outbound,
        reserved_masternode_slots: cfg.network.reserved_masternode_slots,
        max_connections_per_ip: cfg.network.max_connections_per_ip,
        connect_rate_per_minute: cfg.network.connect_rate_per_minute,
      },
      {
        max_peers: 125,
        max_inbound: 100,
        max_outbound: 25,
        reserved_masternode_slots: 50,
        max_connections_per_ip: 3,
        connect_rate_per_minute: 10,
      },
    );
    assert.deepEqual(cfg.sync, {
      enable_coordinator: true,
      coordinator_interval: 30,
      max_sync_batch_size: 500,
      sync_threshold: 5,
      peer_sync_timeout: 120,
      masternode_sync_timeout: 300,
    });
    assert.equal(cfg.consensus.min_masternodes, 3);
    assert.deepEqual(cfg.logging, { level: "info", format: "pretty" });
    assert.deepEqual(cfg.masternode, {
      enabled: false,
      operator_key_file: join(DATA, "operator.key"),
      tier: "free",
      reward_address: "",
      heartbeat_interval: 60,
      announce_interval: 600,
    });
    assert.deepEqual(cfg.rpc, { enabled: true, listen_address: "127.0.0.1:24001" });
  });

  it("passes its own schema on every network", () => {
    for (const network of NETWORK_NAMES) NodeConfigSchema.parse(defaultConfig(network, DATA));
  });

  it("makes data_dir absolute", () => {
    assert.equal(defaultConfig("devnet", "relative/dir").node.data_dir, resolve("relative/dir"));
  });
});

describe("config template", () => {
  for (const network of NETWORK_NAMES) {
    it(`${network}: parses back to exactly the defaults`, () => {
      const text = renderConfigTemplate(network, DATA);
      // No network passed in: the template itself must say which network it is for.
      assert.deepEqual(parse(text), defaultConfig(network, DATA));
    });
  }

  it("lists every key, with a comment, and only the network uncommented", () => {
    const text = renderConfigTemplate("testnet", DATA);
    const lines = text.split("\n");
    for (const section of SECTION_NAMES) {
      assert.ok(lines.includes(`[${section}]`), `missing [${section}]`);
      for (const key of Object.keys(SECTION_SCHEMAS[section].shape)) {
        const i = lines.findIndex((l) => l.startsWith(`# ${key} = `) || l.startsWith(`${key} = `));
        assert.ok(i > 0, `missing ${section}.${key}`);
        assert.match(lines[i - 1] ?? "", /^# \S/, `no comment above ${section}.${key}`);
      }
    }
    assert.ok(lines.includes("# max_peers = 125"));
    assert.ok(lines.includes('# operator_key_file = "operator.key"'));
    const uncommented = lines.filter((l) => /^[a-z_]+ = /.test(l));
    assert.deepEqual(uncommented, ['network = "testnet"']);
  });

  it("writes `set` values uncommented and they take effect", () => {
    const set: ConfigOverrides = {
      masternode: { enabled: true },
      consensus: { min_masternodes: 1 },
      network: { bootstrap_peers: ["127.0.1.1:24200"], listen_address: "127.0.1.2:24200" },
      sync: { max_sync_batch_size: 100 },
    };
    const text = renderConfigTemplate("devnet", DATA, set);
    assert.ok(text.includes("\nenabled = true\n"));
    assert.ok(text.includes("\nmin_masternodes = 1\n"));
    assert.ok(text.includes('\nbootstrap_peers = [ "127.0.1.1:24200" ]\n'));
    const cfg = parse(text);
    const want = defaultConfig("devnet", DATA);
    want.masternode.enabled = true;
    want.consensus.min_masternodes = 1;
    want.network.bootstrap_peers = ["127.0.1.1:24200"];
    want.network.listen_address = "127.0.1.2:24200";
    want.sync.max_sync_batch_size = 100;
    assert.deepEqual(cfg, want);
  });

  it("ignores undefined `set` values and rejects bad ones", () => {
    assert.equal(
      renderConfigTemplate("devnet", DATA, { rpc: { user: undefined } }),
      renderConfigTemplate("devnet", DATA),
    );
    expectConfigError(
      () => renderConfigTemplate("devnet", DATA, { network: { listen_address: "nowhere" } }),
      "INVALID_VALUE",
      "[network].listen_address",
    );
  });
});

describe("config errors", () => {
  it("unknown key: names it and lists the accepted keys", () => {
    expectConfigError(
      () => parse("[node]\nnetwork = 'devnet'\n[sync]\nfoo = 1\n"),
      "UNKNOWN_KEY",
      SOURCE,
      "unknown key [sync].foo",
      "accepted: enable_coordinator, coordinator_interval",
    );
  });

  it("unknown section: names it and lists the sections", () => {
    expectConfigError(
      () => parse("[storage]\npath = 'x'\n", "devnet"),
      "UNKNOWN_SECTION",
      "unknown section [storage]",
      "accepted: node, network, rpc, masternode, consensus, sync, logging",
    );
    expectConfigError(() => parse("foo = 1\n", "devnet"), "UNKNOWN_SECTION", "foo");
  });

  it("wrong type: a string for a number", () => {
    const msg = expectConfigError(
      () => parse('[sync]\nmax_sync_batch_size = "abc"\n', "devnet"),
      "INVALID_VALUE",
      "[sync].max_sync_batch_size",
      'got "abc"',
    );
    assert.ok(msg.startsWith(`config error in ${SOURCE}: `), msg);
  });

  it("out of range numbers", () => {
    expectConfigError(() => parse("[sync]\nmax_sync_batch_size = 501\n", "devnet"), "INVALID_VALUE", "500");
    expectConfigError(
      () => parse("[network]\nmax_peers = -1\n", "devnet"),
      "INVALID_VALUE",
      "[network].max_peers",
    );
    expectConfigError(() => parse("[network]\nmax_peers = 1.5\n", "devnet"), "INVALID_VALUE", "got 1.5");
    expectConfigError(() => parse("[sync]\npeer_sync_timeout = 0\n", "devnet"), "INVALID_VALUE", "> 0");
    expectConfigError(() => parse("[network]\nping_interval = inf\n", "devnet"), "INVALID_VALUE", "got inf");
  });

  it("bad enum values list the accepted ones", () => {
    expectConfigError(
      () => parse("[logging]\nlevel = 'verbose'\n", "devnet"),
      "INVALID_VALUE",
      "[logging].level",
      "trace, debug, info, warn, error, fatal, silent",
      '"verbose"',
    );
    expectConfigError(() => parse("[logging]\nformat = 'xml'\n", "devnet"), "INVALID_VALUE", "pretty, json");
    expectConfigError(
      () => parse("[masternode]\ntier = 'platinum'\n", "devnet"),
      "INVALID_VALUE",
      "free, bronze, silver, gold",
    );
    expectConfigError(
      () => parse("[node]\nnetwork = 'regtest'\n"),
      "INVALID_VALUE",
      "[node].network",
      "mainnet, testnet, devnet",
    );
  });

  it("bad host:port", () => {
    expectConfigError(
      () => parse("[network]\nlisten_address = 'localhost'\n", "devnet"),
      "INVALID_VALUE",
      "[network].listen_address",
      "HOST:PORT",
      '"localhost"',
    );
    expectConfigError(
      () => parse("[rpc]\nlisten_address = '127.0.0.1:70000'\n", "devnet"),
      "INVALID_VALUE",
      "[rpc].listen_address",
    );
    expectConfigError(
      () => parse("[network]\nbootstrap_peers = ['1.2.3.4:24000', '1.2.3.4:0']\n", "devnet"),
      "INVALID_VALUE",
      "[network].bootstrap_peers[1]",
    );
    expectConfigError(
      () => parse("[network]\nexternal_address = '::1:24000'\n", "devnet"),
      "INVALID_VALUE",
      "brackets",
    );
  });

  it("user without password, and password without user", () => {
    expectConfigError(
      () => parse("[rpc]\nuser = 'alice'\n", "devnet"),
      "INCONSISTENT",
      "[rpc].user",
      "[rpc].password",
    );
    expectConfigError(
      () => parse("[rpc]\npassword = 'x'\n", "devnet"),
      "INCONSISTENT",
      "[rpc].password",
      "[rpc].user",
    );
    const cfg = parse("[rpc]\nuser = 'alice'\npassword = 'secret'\n", "devnet");
    assert.equal(cfg.rpc.user, "alice");
    assert.equal(cfg.rpc.password, "secret");
  });

  it("plaintext_transport: devnet only; testnet and mainnet sessions are always encrypted", () => {
    assert.equal(parse("", "devnet").network.plaintext_transport, false, "encrypted by default");
    assert.equal(
      parse("[network]\nplaintext_transport = true\n", "devnet").network.plaintext_transport,
      true,
    );
    for (const net of ["testnet", "mainnet"] as const) {
      expectConfigError(
        () => parse("[network]\nplaintext_transport = true\n", net),
        "INCONSISTENT",
        "[network].plaintext_transport",
        "only on devnet",
      );
      assert.equal(parse("[network]\nplaintext_transport = false\n", net).network.plaintext_transport, false);
    }
  });

  it("reserved masternode slots above max_inbound", () => {
    expectConfigError(
      () => parse("[network]\nmax_inbound = 10\n", "devnet"),
      "INCONSISTENT",
      "[network].reserved_masternode_slots",
      "[network].max_inbound",
    );
  });

  it("bad TOML reports line and column on one line", () => {
    expectConfigError(
      () => parse("[network]\nmax_peers = = 3\n", "devnet"),
      "BAD_TOML",
      SOURCE,
      "line 2",
      "column",
    );
    expectConfigError(() => parse("[network\n", "devnet"), "BAD_TOML", "line 1");
  });

  it("a section that is not a table", () => {
    expectConfigError(() => parse("sync = 3\n", "devnet"), "INVALID_VALUE", "[sync]", "table");
  });

  it("no network anywhere", () => {
    expectConfigError(() => parse(""), "NO_NETWORK", "[node].network", "mainnet, testnet, devnet");
  });

  it("reward address must belong to the network", () => {
    const devnetAddr = addressFromPubkey(new Uint8Array(32), "devnet");
    const mainnetAddr = addressFromPubkey(new Uint8Array(32), "mainnet");
    assert.equal(
      parse(`[masternode]\nreward_address = "${devnetAddr}"\n`, "devnet").masternode.reward_address,
      devnetAddr,
    );
    expectConfigError(
      () => parse(`[masternode]\nreward_address = "${mainnetAddr}"\n`, "devnet"),
      "INVALID_VALUE",
      "[masternode].reward_address",
    );
  });
});

describe("config values", () => {
  it("the whole [sync] section is honoured", () => {
    const cfg = parse(
      [
        "[sync]",
        "enable_coordinator = false",
        "coordinator_interval = 7.5",
        "max_sync_batch_size = 64",
        "sync_threshold = 0",
        "peer_sync_timeout = 11",
        "masternode_sync_timeout = 22",
      ].join("\n"),
      "mainnet",
    );
    assert.deepEqual(cfg.sync, {
      enable_coordinator: false,
      coordinator_interval: 7.5,
      max_sync_batch_size: 64,
      sync_threshold: 0,
      peer_sync_timeout: 11,
      masternode_sync_timeout: 22,
    });
  });

  it("file values override defaults; overrides beat file values", () => {
    const text = "[network]\nlisten_address = '0.0.0.0:1111'\nmax_peers = 7\n[logging]\nlevel = 'debug'\n";
    const fromFile = parse(text, "testnet");
    assert.equal(fromFile.network.listen_address, "0.0.0.0:1111");
    assert.equal(fromFile.network.max_peers, 7);
    assert.equal(fromFile.logging.level, "debug");

    const cfg = parse(text, "testnet", {
      network: { listen_address: "127.0.0.1:0", bootstrap_peers: ["[::1]:24100"] },
      logging: { level: "warn", format: undefined },
    });
    assert.equal(cfg.network.listen_address, "127.0.0.1:0");
    assert.deepEqual(cfg.network.bootstrap_peers, ["[::1]:24100"]);
    assert.equal(cfg.network.max_peers, 7, "a key the overrides do not name keeps the file's value");
    assert.equal(cfg.logging.level, "warn");
    assert.equal(cfg.logging.format, "pretty", "an undefined override is ignored");
  });

  it("overrides are validated and blamed on their source", () => {
    expectConfigError(
      () => parse("", "devnet", { network: { listen_address: "nope" } }),
      "INVALID_VALUE",
      "command-line options",
      "[network].listen_address",
      '"nope"',
    );
    expectConfigError(
      () =>
        parseConfigText("", {
          source: SOURCE,
          dataDir: DATA,
          network: "devnet",
          overrides: { logging: { level: "loud" as "info" } },
          overridesSource: "--log-level",
        }),
      "INVALID_VALUE",
      "--log-level",
      "[logging].level",
    );
    expectConfigError(
      () => parse("", "devnet", { network: { max_inbound: 1 } }),
      "INCONSISTENT",
      "command-line options",
    );
  });

  it("the network comes from the file before the caller", () => {
    assert.equal(parse("[node]\nnetwork = 'testnet'\n", "devnet").node.network, "testnet");
    assert.equal(parse("[node]\nnetwork = 'testnet'\n").network.listen_address, "0.0.0.0:24100");
    assert.equal(parse("", "devnet", { node: { network: "mainnet" } }).node.network, "mainnet");
  });

  it("relative operator_key_file resolves against the data dir; absolute stays", () => {
    assert.equal(
      parse("[masternode]\noperator_key_file = 'keys/op.key'\n", "devnet").masternode.operator_key_file,
      join(DATA, "keys/op.key"),
    );
    assert.equal(
      parse("[masternode]\noperator_key_file = '/abs/op.key'\n", "devnet").masternode.operator_key_file,
      "/abs/op.key",
    );
    // Against the data_dir the file names, not the caller's.
    assert.equal(
      parse("[node]\ndata_dir = '/srv/time'\n[masternode]\noperator_key_file = 'op.key'\n", "devnet")
        .masternode.operator_key_file,
      "/srv/time/op.key",
    );
    assert.equal(resolveInDataDir("/d", "a/b"), "/d/a/b");
    assert.equal(resolveInDataDir("/d", "/x"), "/x");
  });

  it("accepts fractional ping intervals, IPv6 and node ids in peer lists", () => {
    const id = "ab".repeat(32);
    const cfg = parse(
      `[network]\nping_interval = 0.25\nlisten_address = "[::]:0"\nwhitelisted_peers = ["10.0.0.1", "10.0.0.2:24000", "::1", "${id}"]\nblacklisted_peers = ["[fe80::1]:5"]\n`,
      "devnet",
    );
    assert.equal(cfg.network.ping_interval, 0.25);
    assert.deepEqual(cfg.network.whitelisted_peers, ["10.0.0.1", "10.0.0.2:24000", "::1", id]);
    expectConfigError(
      () => parse('[network]\nwhitelisted_peers = ["seed.example.com"]\n', "devnet"),
      "INVALID_VALUE",
      "[network].whitelisted_peers[0]",
    );
  });
});

describe("loadConfig", () => {
  const dir = mkdtempSync(join(tmpdir(), "timecoin-config-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("reads a file, with a relative data_dir taken from the file's directory", () => {
    mkdirSync(join(dir, "conf"));
    const file = join(dir, "conf", "config.toml");
    writeFileSync(file, "[node]\nnetwork = 'devnet'\ndata_dir = '../data'\n[sync]\nsync_threshold = 9\n");
    const cfg = loadConfig({ file, dataDir: "/ignored" });
    assert.equal(cfg.node.data_dir, join(dir, "data"));
    assert.equal(cfg.masternode.operator_key_file, join(dir, "data", "operator.key"));
    assert.equal(cfg.sync.sync_threshold, 9);
  });

  it("reads back what renderConfigTemplate wrote", () => {
    const file = join(dir, "rendered.toml");
    writeFileSync(file, renderConfigTemplate("testnet", dir));
    assert.deepEqual(loadConfig({ file, dataDir: dir }), defaultConfig("testnet", dir));
  });

  it("without a file gives defaults plus overrides", () => {
    const cfg = loadConfig({ dataDir: dir, network: "devnet", overrides: { rpc: { enabled: false } } });
    const want = defaultConfig("devnet", dir);
    want.rpc.enabled = false;
    assert.deepEqual(cfg, want);
    expectConfigError(() => loadConfig({ dataDir: dir }), "NO_NETWORK");
  });

  it("a missing file is one clear line", () => {
    expectConfigError(
      () => loadConfig({ file: join(dir, "nope.toml"), dataDir: dir }),
      "READ_FAILED",
      "nope.toml",
    );
  });
});

describe("parseHostPort", () => {
  it("parses hostnames, IPv4 and bracketed IPv6", () => {
    assert.deepEqual(parseHostPort("127.0.0.1:24000"), { host: "127.0.0.1", port: 24000 });
    assert.deepEqual(parseHostPort("seed.time-coin.io:24100"), { host: "seed.time-coin.io", port: 24100 });
    assert.deepEqual(parseHostPort("[::1]:24200"), { host: "::1", port: 24200 });
    assert.deepEqual(parseHostPort("0.0.0.0:0", { allowPortZero: true }), { host: "0.0.0.0", port: 0 });
  });

  it("rejects what is not HOST:PORT", () => {
    for (const bad of [
      "",
      "host",
      ":24000",
      "1.2.3.4:",
      "1.2.3.4:0",
      "1.2.3.4:65536",
      "::1:24000",
      "[::1]",
      "[zz]:1",
      "300.1.1.1:5",
      "a b:1",
      "h:1x",
      "-bad-:1",
    ]) {
      assert.throws(
        () => parseHostPort(bad),
        (err: unknown) =>
          err instanceof ConfigError && err.code === "BAD_ADDRESS" && !err.message.includes("\n"),
        bad,
      );
    }
  });
});
