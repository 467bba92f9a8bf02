/**
 * p2p_small_msgs_per_s: NewTip announcements (one block header) sent with Peer.send through one
 * authenticated, encrypted TCP connection over loopback (ChaCha20-Poly1305 records, as production
 * runs) and received by the other Peer (record open, message decode, dispatch to its "message"
 * event). Both Peers run in this process, so sealing and opening share one core. The Peers have
 * no rate limits (a PeerManager would limit NewTip to 10/s per peer): this is the transport's
 * capacity. p2p_small_msgs_plaintext_per_s: the same with `plaintext: true` on both LocalInfos (a
 * devnet's plaintext_transport: plain frames). p2p_encrypted_vs_plaintext: the first over the
 * second. After one short warm-up run per mode, MSG_ROUNDS rounds alternate a plaintext and an
 * encrypted run of ~MSG_SECONDS s, each on its own fresh connection pair; the figures are the
 * medians, so both modes are measured in the same window.
 *
 * p2p_handshake_ms: from dial to both Peers "ready" over loopback TCP (Hellos with X25519 keys,
 * then Auth records signing the transcript), fresh node keys and connection each time, one
 * handshake at a time, every connection closed (Goodbye, both sockets closed) before the next:
 * the median of HS_COUNT encrypted handshakes, alternating with as many plaintext ones after a
 * warm-up; the note has the p99 and the plaintext median.
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
import { RECORD_HEADER_SIZE, RECORD_TAG_SIZE } from "../src/p2p/secureChannel.js";
import { encodeMessage, GoodbyeReason, MsgType, type Message } from "../src/p2p/messages.js";
import { peerManagerOptionsFromConfig, type PeerManagerOptions } from "../src/p2p/options.js";
import { Peer, type LocalInfo } from "../src/p2p/peer.js";
import { PeerManager } from "../src/p2p/peerManager.js";
import { TcpTransport, type Connection, type Listener } from "../src/p2p/transport.js";
import { SystemClock } from "../src/util/clock.js";
import { CryptoRandom } from "../src/util/random.js";
import { MAGIC, makeLocal } from "../test/unit/p2p/harness.js";
import { testGenesis, testKeys } from "../test/helpers/chainFixture.js";
import { median, round, type BenchContext, type BenchGroup, type Figure } from "./lib.js";

export const P2P_MSGS = "p2p_small_msgs_per_s";
export const P2P_MSGS_PLAIN = "p2p_small_msgs_plaintext_per_s";
export const P2P_MSGS_RATIO = "p2p_encrypted_vs_plaintext";
export const HANDSHAKE = "p2p_handshake_ms";
export const DISCOVERY_20 = "discovery_20_nodes_ms";
export const IDLE_PEER_MEMORY = "idle_peer_memory_kb";

// Loopback ranges for these benchmarks (the unit tests use 127.0.x.y; bench/masternode.ts uses
// 127.77.3, 127.77.6 and 127.77.7).
const MSG_HOST_A = "127.77.0.1";
const MSG_HOST_B = "127.77.0.2";
const HS_SERVER_HOST = "127.77.8.1";
const HS_CLIENT_HOST = "127.77.8.2";
/** One /24 per run, so no run meets sockets a previous one is still closing. */
const DISCOVERY_NETS = ["127.77.1", "127.77.4", "127.77.5"];
const IDLE_SERVER_HOST = "127.77.2.1";
const IDLE_NET = "127.77.";
const IDLE_FIRST_OCTET3 = 10;

/** Counted seconds of each run, per mode. */
const MSG_SECONDS = 1;
const MSG_ROUNDS = 3;
/** Each run pumps this long on its fresh connection before counting. */
const MSG_RUN_WARMUP_MS = 200;
/** The counted part of the one warm-up run per mode (its result is dropped). */
const MSG_WARMUP_MS = 500;
/** Messages queued per event-loop turn, while the socket's user-space queue is below the mark. */
const MSG_BATCH = 2_000;
const MSG_QUEUE_MARK = 1 << 20;

const HS_COUNT = 100;
const HS_WARMUP = 10;

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

// --- connection pairs (p2p_small_msgs_*, p2p_handshake_ms) --------------------------------

/** Two bare Peers on the two ends of one fresh loopback connection, both ready. */
interface PeerPair {
  initiator: Peer;
  responder: Peer;
  conns: Connection[];
  /** From the dial until both Peers were ready. */
  ms: number;
}

/** A loopback listener whose next accepted connection becomes the responder of the next pair. */
class PairServer {
  private accept: ((c: Connection) => void) | null = null;

  private constructor(
    private readonly transport: TcpTransport,
    private listener: Listener | null,
  ) {}

  static async listen(transport: TcpTransport, host: string): Promise<PairServer> {
    const server = new PairServer(transport, null);
    server.listener = await transport.listen(host, 0, (c) => {
      const accept = server.accept;
      server.accept = null;
      if (accept) accept(c);
      else c.destroy();
    });
    return server;
  }

  /**
   * Dials the listener from `from` with fresh node keys on both sides (both plaintext or both
   * encrypted); resolves once both Peers are ready.
   */
  async pair(from: string, plaintext: boolean): Promise<PeerPair> {
    const listener = this.listener;
    if (!listener) throw new Error("the pair server is closed");
    const localI: LocalInfo = { ...makeLocal(KeyPair.generate()), plaintext };
    const localR: LocalInfo = { ...makeLocal(KeyPair.generate()), plaintext };
    const conns: Connection[] = [];
    const responder = new Promise<Peer>((resolve, reject) => {
      this.accept = (c) => {
        conns.push(c);
        readyPeer(c, localR, "inbound").then(resolve, reject);
      };
    });
    // Awaited below with the initiator; if the dial fails first, its failure is the one thrown.
    responder.catch(() => undefined);
    const t0 = performance.now();
    try {
      const conn = await this.transport.dial(listener.host, listener.port, {
        timeoutMs: 5_000,
        localHost: from,
      });
      conns.push(conn);
      const [initiator, r] = await Promise.all([readyPeer(conn, localI, "outbound"), responder]);
      return { initiator, responder: r, conns, ms: performance.now() - t0 };
    } catch (e) {
      this.accept = null;
      for (const c of conns) c.destroy();
      throw e;
    }
  }

  async close(): Promise<void> {
    const l = this.listener;
    this.listener = null;
    await l?.close();
  }
}

/**
 * Closes a pair the way a node does: the initiator says Goodbye and ends its side, the responder
 * ends its side on the Goodbye; resolves once both sockets are closed.
 */
async function closePair(p: PeerPair): Promise<void> {
  const closed = p.conns.map(
    (c) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          c.destroy();
          resolve();
        }, 5_000);
        c.onClose(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  );
  p.initiator.close(GoodbyeReason.SHUTDOWN, "bench done");
  await Promise.all(closed);
  // A Goodbye that never arrived (the sockets were destroyed) leaves the responder to close here.
  p.responder.close(GoodbyeReason.SHUTDOWN, "bench done");
}

// --- p2p_small_msgs_per_s, p2p_small_msgs_plaintext_per_s, p2p_encrypted_vs_plaintext -----

interface MsgRun {
  rate: number;
  msgs: number;
  seconds: number;
}

/** One run on a fresh connection pair: NewTip pumped for `countMs` after `warmupMs`. */
async function msgRun(msg: Message, plaintext: boolean, warmupMs: number, countMs: number): Promise<MsgRun> {
  const server = await PairServer.listen(new TcpTransport(), MSG_HOST_B);
  let pair: PeerPair | null = null;
  let running = true;
  try {
    pair = await server.pair(MSG_HOST_A, plaintext);
    const { initiator: sender, responder: receiver } = pair;
    if (sender.encrypted === plaintext || receiver.encrypted === plaintext)
      throw new Error(`the session is not ${plaintext ? "plaintext" : "encrypted"}`);
    let received = 0;
    receiver.events.on("message", () => void received++);
    const pump = (): void => {
      if (!running || sender.state !== "ready") return;
      if (sender.sendQueueBytes < MSG_QUEUE_MARK) for (let i = 0; i < MSG_BATCH; i++) sender.send(msg);
      setImmediate(pump);
    };
    pump();
    await sleep(warmupMs);
    const c0 = received;
    const t0 = performance.now();
    await sleep(countMs);
    const c1 = received;
    const seconds = (performance.now() - t0) / 1000;
    running = false;
    if (sender.state !== "ready" || receiver.state !== "ready")
      throw new Error("the connection closed mid-run");
    return { rate: (c1 - c0) / seconds, msgs: c1 - c0, seconds };
  } finally {
    running = false;
    if (pair) await closePair(pair);
    await server.close();
  }
}

const spread = (xs: readonly number[]): string =>
  `${Math.round(Math.min(...xs)).toLocaleString("en-US")}–${Math.round(Math.max(...xs)).toLocaleString("en-US")}`;

async function smallMessages(ctx: BenchContext): Promise<Figure[]> {
  const genesis = buildGenesisBlock(testGenesis({ masternodes: testKeys("bench-p2p-mn", 3) }));
  const msg: Message = {
    type: MsgType.NewTip,
    height: genesis.header.height,
    hash: blockHash(genesis.header),
    header: genesis.header,
  };
  const payload = encodeMessage(msg);
  const frameBytes = encodeFrame(MAGIC, msg.type, payload).length;
  const recordBytes = RECORD_HEADER_SIZE + 2 + payload.length + RECORD_TAG_SIZE;

  ctx.log(
    `p2p_small_msgs: warm-up, then ${MSG_ROUNDS} rounds of plaintext and encrypted runs of ~${MSG_SECONDS} s, each on a fresh loopback connection`,
  );
  await msgRun(msg, true, MSG_RUN_WARMUP_MS, MSG_WARMUP_MS);
  await msgRun(msg, false, MSG_RUN_WARMUP_MS, MSG_WARMUP_MS);
  const plain: MsgRun[] = [];
  const enc: MsgRun[] = [];
  for (let r = 0; r < MSG_ROUNDS; r++) {
    plain.push(await msgRun(msg, true, MSG_RUN_WARMUP_MS, MSG_SECONDS * 1000));
    enc.push(await msgRun(msg, false, MSG_RUN_WARMUP_MS, MSG_SECONDS * 1000));
    ctx.log(
      `p2p_small_msgs: round ${r + 1}/${MSG_ROUNDS}: plaintext ${Math.round(plain[r]!.rate)}, encrypted ${Math.round(enc[r]!.rate)} msg/s`,
    );
  }
  const plainRates = plain.map((x) => x.rate);
  const encRates = enc.map((x) => x.rate);
  const plainMedian = median(plainRates);
  const encMedian = median(encRates);
  const runs = `median of ${MSG_ROUNDS} runs of ~${MSG_SECONDS} s, each on a fresh connection after ${MSG_RUN_WARMUP_MS} ms`;
  return [
    {
      name: P2P_MSGS,
      value: Math.round(encMedian),
      unit: "msg/s",
      note: `NewTip, ${recordBytes} B ChaCha20-Poly1305 record, Peer.send -> TCP -> Peer, one process; ${runs}, spread ${spread(encRates)}`,
    },
    {
      name: P2P_MSGS_PLAIN,
      value: Math.round(plainMedian),
      unit: "msg/s",
      note: `the same with plaintext: true on both LocalInfos (NewTip ${frameBytes} B framed); ${runs}, spread ${spread(plainRates)}`,
    },
    {
      name: P2P_MSGS_RATIO,
      value: round(encMedian / plainMedian, 3),
      unit: "ratio",
      note: `median encrypted / median plaintext msg/s, runs alternating plaintext, encrypted; per round ${encRates.map((e, i) => round(e / plainRates[i]!, 2)).join(", ")}`,
    },
  ];
}

// --- p2p_handshake_ms ---------------------------------------------------------------------

/** The nearest-rank percentile `p` (0..100) of `xs`. */
function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

async function handshakes(ctx: BenchContext): Promise<Figure> {
  const server = await PairServer.listen(new TcpTransport(), HS_SERVER_HOST);
  try {
    const once = async (plaintext: boolean): Promise<number> => {
      const p = await server.pair(HS_CLIENT_HOST, plaintext);
      if (p.initiator.encrypted === plaintext) throw new Error("the session is in the wrong mode");
      await closePair(p);
      return p.ms;
    };
    ctx.log(
      `${HANDSHAKE}: ${HS_WARMUP} warm-up pairs, then ${HS_COUNT} encrypted and ${HS_COUNT} plaintext handshakes, alternating, each on a fresh connection`,
    );
    for (let i = 0; i < HS_WARMUP; i++) {
      await once(false);
      await once(true);
    }
    const enc: number[] = [];
    const plain: number[] = [];
    for (let i = 0; i < HS_COUNT; i++) {
      enc.push(await once(false));
      plain.push(await once(true));
    }
    const ms = (v: number): number => round(v, 2);
    return {
      name: HANDSHAKE,
      value: ms(median(enc)),
      unit: "ms",
      note: `median of ${HS_COUNT} sequential encrypted handshakes over loopback TCP, dial to both Peers ready, fresh node keys each; p99 ${ms(percentile(enc, 99))} ms, min ${ms(Math.min(...enc))} ms; plaintext median ${ms(median(plain))} ms (p99 ${ms(percentile(plain, 99))} ms)`,
    };
  } finally {
    await server.close();
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
  figures: [P2P_MSGS, P2P_MSGS_PLAIN, P2P_MSGS_RATIO, HANDSHAKE, DISCOVERY_20, IDLE_PEER_MEMORY],
  async run(ctx) {
    const figures: Figure[] = [];
    if ([P2P_MSGS, P2P_MSGS_PLAIN, P2P_MSGS_RATIO].some((f) => ctx.wants(f)))
      figures.push(...(await smallMessages(ctx)));
    if (ctx.wants(HANDSHAKE)) figures.push(await handshakes(ctx));
    if (ctx.wants(DISCOVERY_20)) figures.push(await discovery(ctx));
    if (ctx.wants(IDLE_PEER_MEMORY)) figures.push(await idleMemory(ctx));
    return figures;
  },
};

if (process.argv.includes(CHILD_FLAG)) await idleChild();
