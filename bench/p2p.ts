/**
 * p2p_small_msgs_per_s: NewTip announcements (one block header, 262 bytes framed) sent with
 * Peer.send through one authenticated TCP connection over loopback and received by the other
 * Peer (frame decode, message decode, dispatch to its "message" event), counted over ~2 s. Both
 * Peers run in this process, so encoding and decoding share one core. The Peers have no rate
 * limits (a PeerManager would limit NewTip to 10/s per peer): this is the transport's capacity.
 *
 * discovery_20_nodes_ms: 20 PeerManagers, each on its own loopback IP with a fake chain tip and
 * the options a devnet TimeNode derives from its config; node 1 starts first, the other 19 start
 * together with only node 1 as bootstrap peer. Time from their start until every node has a
 * ready connection to every other; median of three runs.
 *
 * idle_peer_memory_kb: a child process (node --expose-gc) runs one PeerManager; this process
 * opens authenticated idle connections to it (bare Peers, each from its own loopback IP). The
 * child's heapUsed + external after gc, at 20 and then at 220 idle peers; the difference over 200.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { buildGenesisBlock } from "../src/consensus/genesis.js";
import { blockHash } from "../src/primitives/block.js";
import { NETWORK_DEFAULTS, fileDefaults } from "../src/config/defaults.js";
import { KeyPair } from "../src/crypto/ed25519.js";
import { nullLogger } from "../src/logging/index.js";
import { encodeFrame } from "../src/p2p/frame.js";
import { encodeMessage, GoodbyeReason, MsgType, type Message } from "../src/p2p/messages.js";
import { peerManagerOptionsFromConfig, type PeerManagerOptions } from "../src/p2p/options.js";
import { Peer, type LocalInfo } from "../src/p2p/peer.js";
import { PeerManager } from "../src/p2p/peerManager.js";
import { TcpTransport, type Connection } from "../src/p2p/transport.js";
import { SystemClock } from "../src/util/clock.js";
import { CryptoRandom } from "../src/util/random.js";
import { makeLocal } from "../test/unit/p2p/harness.js";
import { testGenesis, testKeys } from "../test/helpers/chainFixture.js";
import { median, round, type BenchContext, type BenchGroup, type Figure } from "./lib.js";

export const P2P_MSGS = "p2p_small_msgs_per_s";
export const DISCOVERY_20 = "discovery_20_nodes_ms";
export const IDLE_PEER_MEMORY = "idle_peer_memory_kb";

// Loopback ranges for these benchmarks (the unit tests use 127.0.x.y).
const MSG_HOST_A = "127.77.0.1";
const MSG_HOST_B = "127.77.0.2";
/** One /24 per run, so no run meets sockets a previous one is still closing. */
const DISCOVERY_NETS = ["127.77.1", "127.77.4", "127.77.5"];
const IDLE_SERVER_HOST = "127.77.2.1";
const IDLE_NET = "127.77.";
const IDLE_FIRST_OCTET3 = 10;

const MSG_SECONDS = 2;
const MSG_WARMUP_MS = 300;
/** Messages queued per event-loop turn, while the socket's user-space queue is below the mark. */
const MSG_BATCH = 2_000;
const MSG_QUEUE_MARK = 1 << 20;

const DISCOVERY_NODES = 20;
const DISCOVERY_TIMEOUT_MS = 30_000;

const IDLE_WARM = 20;
const IDLE_COUNT = 200;
const IDLE_DIAL_BATCH = 25;
const CHILD_FLAG = "--idle-peer-child";

const modules = (): { clock: SystemClock; random: CryptoRandom; logger: typeof nullLogger } => ({
  clock: new SystemClock(),
  random: new CryptoRandom(),
  logger: nullLogger,
});

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function waitFor(cond: () => boolean, what: string, timeoutMs: number, stepMs = 5): Promise<number> {
  const start = performance.now();
  for (;;) {
    if (cond()) return performance.now() - start;
    if (performance.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await sleep(stepMs);
  }
}

/** A bare Peer on a fresh connection; resolves once the handshake is done. */
function readyPeer(conn: Connection, local: LocalInfo, direction: "inbound" | "outbound"): Promise<Peer> {
  const peer = new Peer(conn, local, { direction, pingIntervalMs: 60_000, rateLimits: {} }, modules());
  return new Promise<Peer>((resolve, reject) => {
    peer.events.on("ready", () => resolve(peer));
    peer.events.on("closed", (e) => reject(new Error(`peer closed during the handshake: ${e.message}`)));
    peer.start();
  });
}

// --- p2p_small_msgs_per_s -----------------------------------------------------------------

async function smallMessages(ctx: BenchContext): Promise<Figure> {
  const transport = new TcpTransport();
  const localA = makeLocal(KeyPair.generate());
  const localB = makeLocal(KeyPair.generate());
  let inbound: Promise<Peer> | null = null;
  const listener = await transport.listen(MSG_HOST_B, 0, (c) => {
    inbound = readyPeer(c, localB, "inbound");
  });
  let sender: Peer | null = null;
  let receiver: Peer | null = null;
  let running = true;
  try {
    const conn = await transport.dial(listener.host, listener.port, {
      timeoutMs: 5_000,
      localHost: MSG_HOST_A,
    });
    sender = await readyPeer(conn, localA, "outbound");
    await waitFor(() => inbound !== null, "the inbound connection", 5_000);
    receiver = await inbound!;

    const genesis = buildGenesisBlock(testGenesis({ masternodes: testKeys("bench-p2p-mn", 3) }));
    const msg: Message = {
      type: MsgType.NewTip,
      height: genesis.header.height,
      hash: blockHash(genesis.header),
      header: genesis.header,
    };
    let received = 0;
    receiver.events.on("message", () => void received++);
    const s = sender;
    const pump = (): void => {
      if (!running || s.state !== "ready") return;
      if (s.sendQueueBytes < MSG_QUEUE_MARK) for (let i = 0; i < MSG_BATCH; i++) s.send(msg);
      setImmediate(pump);
    };
    ctx.log(`${P2P_MSGS}: NewTip through one loopback connection for ~${MSG_SECONDS} s`);
    pump();
    await sleep(MSG_WARMUP_MS);
    const c0 = received;
    const t0 = performance.now();
    await sleep(MSG_SECONDS * 1000);
    const c1 = received;
    const seconds = (performance.now() - t0) / 1000;
    running = false;
    if (sender.state !== "ready" || receiver.state !== "ready")
      throw new Error("the connection closed mid-run");
    const rate = (c1 - c0) / seconds;
    const bytes = encodeFrame(localA.magic, msg.type, encodeMessage(msg)).length;
    return {
      name: P2P_MSGS,
      value: Math.round(rate),
      unit: "msg/s",
      note: `NewTip ${bytes} B framed, Peer.send -> TCP -> Peer, one process; ${c1 - c0} msgs in ${round(seconds, 2)} s`,
    };
  } finally {
    running = false;
    sender?.close(GoodbyeReason.SHUTDOWN, "bench done");
    receiver?.close(GoodbyeReason.SHUTDOWN, "bench done");
    await listener.close();
  }
}

// --- discovery_20_nodes_ms ----------------------------------------------------------------

/**
 * The PeerManager options a devnet TimeNode derives from the default devnet config (node.ts),
 * with the address book and bans kept in memory.
 */
function devnetPeerOptions(host: string, bootstrap: string[]): PeerManagerOptions {
  const network = {
    ...fileDefaults("devnet", ".").network,
    listen_address: `${host}:0`,
    bootstrap_peers: bootstrap,
  };
  const pingMs = Math.max(1, Math.round(network.ping_interval * 1000));
  return peerManagerOptionsFromConfig(network, null, {
    discoveryIntervalMs: Math.min(60_000, Math.max(5_000, 10 * pingMs)),
  });
}

function startManager(
  host: string,
  bootstrap: string[],
  extra: Partial<PeerManagerOptions> = {},
): PeerManager {
  return new PeerManager(
    { ...devnetPeerOptions(host, bootstrap), ...extra },
    { ...modules(), transport: new TcpTransport(), local: makeLocal(KeyPair.generate()) },
  );
}

/** One run: ms from starting nodes 2..20 until each of the 20 has a ready peer in every other. */
async function discoveryOnce(net: string): Promise<number> {
  const managers: PeerManager[] = [];
  try {
    const first = startManager(`${net}.1`, []);
    managers.push(first);
    await first.start();
    const boot = first.localAddress!;
    const rest = Array.from({ length: DISCOVERY_NODES - 1 }, (_, i) =>
      startManager(`${net}.${i + 2}`, [boot]),
    );
    managers.push(...rest);
    const t0 = performance.now();
    await Promise.all(rest.map((m) => m.start()));
    const full = (): boolean => managers.every((m) => m.peers().length === DISCOVERY_NODES - 1);
    await waitFor(full, `every node connected to the ${DISCOVERY_NODES - 1} others`, DISCOVERY_TIMEOUT_MS);
    return performance.now() - t0;
  } finally {
    await Promise.all(managers.map((m) => m.stop()));
  }
}

async function discovery(ctx: BenchContext): Promise<Figure> {
  const runs: number[] = [];
  for (const net of DISCOVERY_NETS) {
    ctx.log(
      `${DISCOVERY_20}: run ${runs.length + 1}/${DISCOVERY_NETS.length}, ${DISCOVERY_NODES - 1} nodes with node 1 as their only bootstrap peer`,
    );
    runs.push(await discoveryOnce(net));
  }
  return {
    name: DISCOVERY_20,
    value: Math.round(median(runs)),
    unit: "ms",
    note: `median of ${runs.length} (${runs.map((r) => Math.round(r)).join(", ")} ms), devnet PeerManager options, ping ${NETWORK_DEFAULTS.devnet.pingIntervalSeconds} s`,
  };
}

// --- idle_peer_memory_kb ------------------------------------------------------------------

interface MemSample {
  heapUsed: number;
  external: number;
  rss: number;
  peers: number;
}

type ChildMsg =
  { kind: "listening"; addr: string } | { kind: "mem"; mem: MemSample } | { kind: "error"; message: string };
type ParentMsg = { kind: "measure"; peers: number } | { kind: "exit" };

/** The child: one PeerManager, measured on request. */
async function idleChild(): Promise<void> {
  const send = (m: ChildMsg): void => void process.send?.(m);
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("the idle-peer child needs --expose-gc");
  const pm = startManager(IDLE_SERVER_HOST, [], {
    maxPeers: 10_000,
    maxInbound: 10_000,
    reservedMasternodeSlots: 0,
    maxHandshaking: 1_000,
    // Idle: no pings or discovery during the measurement.
    pingIntervalMs: 60_000,
    discoveryIntervalMs: 600_000,
  });
  await pm.start();
  process.on("disconnect", () => void pm.stop().finally(() => process.exit(0)));
  process.on("message", (raw: ParentMsg) => {
    void (async () => {
      try {
        if (raw.kind === "exit") {
          await pm.stop();
          process.exit(0);
        }
        await waitFor(() => pm.peers().length === raw.peers, `${raw.peers} peers`, 20_000, 10);
        await sleep(300);
        for (let i = 0; i < 4; i++) {
          gc();
          await sleep(20);
        }
        const m = process.memoryUsage();
        send({
          kind: "mem",
          mem: { heapUsed: m.heapUsed, external: m.external, rss: m.rss, peers: pm.peers().length },
        });
      } catch (e) {
        send({ kind: "error", message: e instanceof Error ? e.message : String(e) });
      }
    })();
  });
  send({ kind: "listening", addr: pm.localAddress! });
}

function nextMessage(child: ChildProcess): Promise<ChildMsg> {
  return new Promise((resolve, reject) => {
    const onMsg = (m: ChildMsg): void => {
      cleanup();
      if (m.kind === "error") reject(new Error(`idle-peer child: ${m.message}`));
      else resolve(m);
    };
    const onExit = (code: number | null): void => {
      cleanup();
      reject(new Error(`idle-peer child exited (${code})`));
    };
    const cleanup = (): void => {
      child.off("message", onMsg);
      child.off("exit", onExit);
    };
    child.on("message", onMsg);
    child.on("exit", onExit);
  });
}

async function measureIn(child: ChildProcess, peers: number): Promise<MemSample> {
  const reply = nextMessage(child);
  child.send({ kind: "measure", peers } satisfies ParentMsg);
  const m = await reply;
  if (m.kind !== "mem") throw new Error(`idle-peer child sent ${m.kind}`);
  return m.mem;
}

async function idleMemory(ctx: BenchContext): Promise<Figure> {
  const self = fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, [...process.execArgv, "--expose-gc", self, CHILD_FLAG], {
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  });
  const peers: Peer[] = [];
  try {
    const hello = await nextMessage(child);
    if (hello.kind !== "listening") throw new Error(`idle-peer child sent ${hello.kind}`);
    const [host, portStr] = [
      hello.addr.slice(0, hello.addr.lastIndexOf(":")),
      hello.addr.slice(hello.addr.lastIndexOf(":") + 1),
    ];
    const port = Number(portStr);
    const transport = new TcpTransport();
    const open = async (n: number): Promise<void> => {
      for (let done = 0; done < n;) {
        const batch = Math.min(IDLE_DIAL_BATCH, n - done);
        const opened = await Promise.all(
          Array.from({ length: batch }, async (_, k) => {
            const i = peers.length + k;
            const from = `${IDLE_NET}${IDLE_FIRST_OCTET3 + (i >> 8)}.${(i & 255) + 1}`;
            const conn = await transport.dial(host, port, { timeoutMs: 5_000, localHost: from });
            return readyPeer(conn, makeLocal(KeyPair.generate()), "outbound");
          }),
        );
        peers.push(...opened);
        done += batch;
      }
    };
    ctx.log(`${IDLE_PEER_MEMORY}: ${IDLE_WARM} warm-up connections, then ${IDLE_COUNT} more`);
    await open(IDLE_WARM);
    const before = await measureIn(child, IDLE_WARM);
    await open(IDLE_COUNT);
    const after = await measureIn(child, IDLE_WARM + IDLE_COUNT);
    const closed = peers.filter((p) => p.state !== "ready").length;
    if (closed > 0) throw new Error(`${closed} idle peers closed during the measurement`);
    const perPeer = (after.heapUsed + after.external - before.heapUsed - before.external) / IDLE_COUNT;
    const heapPer = (after.heapUsed - before.heapUsed) / IDLE_COUNT / 1024;
    const extPer = (after.external - before.external) / IDLE_COUNT / 1024;
    const rssPer = (after.rss - before.rss) / IDLE_COUNT / 1024;
    return {
      name: IDLE_PEER_MEMORY,
      value: round(perPeer / 1024, 1),
      unit: "KB/peer",
      note: `PeerManager side, after gc: heap ${round(heapPer, 1)} + external ${round(extPer, 1)} KB (rss ${round(rssPer, 1)} KB), ${IDLE_WARM}->${IDLE_WARM + IDLE_COUNT} peers`,
    };
  } finally {
    for (const p of peers) p.close(GoodbyeReason.SHUTDOWN, "bench done");
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) => child.once("exit", () => r()));
      if (child.connected) child.send({ kind: "exit" } satisfies ParentMsg);
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    }
  }
}

export const p2pBench: BenchGroup = {
  name: "p2p",
  figures: [P2P_MSGS, DISCOVERY_20, IDLE_PEER_MEMORY],
  async run(ctx) {
    const figures: Figure[] = [];
    if (ctx.wants(P2P_MSGS)) figures.push(await smallMessages(ctx));
    if (ctx.wants(DISCOVERY_20)) figures.push(await discovery(ctx));
    if (ctx.wants(IDLE_PEER_MEMORY)) figures.push(await idleMemory(ctx));
    return figures;
  },
};

if (process.argv.includes(CHILD_FLAG)) await idleChild();
