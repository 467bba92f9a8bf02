import { checkConfigMatchesGenesis, NodeStartError } from "./openChecks.js";
import { defaultSigPoolThreads, SignaturePool } from "../crypto/sigPool.js";
import { Chain } from "../chain/chain.js";
import type { KvOpener } from "../chain/kv.js";
import type { GenesisSpec } from "../consensus/genesis.js";
import type { NodeConfig } from "../config/index.js";
import { parseHostPort } from "../config/index.js";
import { readKeyFile, loadOrCreateKeyFile } from "../crypto/keyFile.js";
import type { KeyPair } from "../crypto/ed25519.js";
import type { Logger } from "../logging/index.js";
import { BlockProducer } from "../masternode/producer.js";
import { registerChainMethods } from "../rpc/chainMethods.js";
import { registerChainTipsMethods } from "../rpc/chainTipsMethods.js";
import { EventStream } from "../rpc/eventStream.js";
import { registerRewardReport } from "../rpc/rewardReport.js";
import { cachedDiagnosis, DOCTOR_CACHE_MS, registerDoctor, type DoctorSources } from "./doctorState.js";
import { registerOperatorMetrics } from "../metrics/operatorMetrics.js";
import { startNotifiers } from "./notify.js";
import { ClockWatch } from "../p2p/clockOffset.js";
import { RpcServer, type RpcAuth } from "../rpc/server.js";
import type { Clock, TimerHandle } from "../util/clock.js";
import type { Random } from "../util/random.js";
import { TypedEmitter } from "../util/typedEmitter.js";
import { findByOperator } from "../consensus/registry.js";
import { SERVICE_BLOCKS, SERVICE_MASTERNODE } from "../p2p/constants.js";
import { FULL_NODE_MASTERNODE_LINK_FLOOR, peerManagerOptionsFromConfig } from "../p2p/options.js";
import type { LocalInfo } from "../p2p/peer.js";
import { PeerManager } from "../p2p/peerManager.js";
import { TcpTransport, type Transport } from "../p2p/transport.js";
import { registerNetMethods } from "../rpc/netMethods.js";
import { BlockRelay } from "../relay/blockRelay.js";
import { BlockServer } from "../relay/blockServer.js";
import { registerSyncMethods, syncStatusToJson } from "../rpc/syncMethods.js";
import { syncOptionsFromConfig } from "../sync/options.js";
import { PeerStateView } from "../sync/peerStateView.js";
import { SyncCoordinator } from "../sync/syncCoordinator.js";
import { join } from "node:path";
import { Mempool } from "../mempool/mempool.js";
import { TxRelay } from "../relay/txRelay.js";
import { peerTxNetwork } from "../relay/txNetwork.js";
import { makeRouter, type MessageRoute } from "../relay/router.js";
import { nodeRoutes } from "../relay/routes.js";
import type { Peer } from "../p2p/peer.js";
import { registerTxMethods } from "../rpc/txMethods.js";
import { registerEvidenceMethods } from "../rpc/evidenceMethods.js";
import { registerWalletMethods } from "../rpc/walletMethods.js";
import { Wallet, WALLET_FILE } from "../wallet/wallet.js";
import { HeartbeatService } from "../masternode/heartbeatService.js";
import { EvidenceRelay } from "../relay/evidenceRelay.js";
import { FinalityRelay } from "../relay/finalityRelay.js";
import { FinalityVoter } from "../masternode/finalityVoter.js";
import { MAX_EVIDENCE_PER_BLOCK } from "../consensus/evidence.js";
import { livenessOptions, MasternodeLiveness } from "../masternode/liveness.js";
import { registerMasternodeMethods } from "../rpc/masternodeMethods.js";
import { txid as txidOf } from "../primitives/tx.js";
import { Metrics } from "../metrics/metrics.js";
import { NodeMetrics } from "../metrics/nodeMetrics.js";
import { registerFinalityMethods } from "../rpc/finalityMethods.js";
import { dataDirPaths, rpcAuthFromConfig } from "./dataDir.js";
import { mountDashboard, type Dashboard } from "../dashboard/dashboard.js";
import { basicAuthChecker } from "../dashboard/basicAuth.js";
import { dashboardDepsFor } from "../dashboard/nodeDeps.js";
import { acquireLock } from "./lockFile.js";

export interface TimeNodeOptions {
  config: NodeConfig;
  genesis: GenesisSpec;
}

export interface TimeNodeModules {
  clock: Clock;
  random: Random;
  logger: Logger;
  /** TCP by default; the simulator passes an in-memory transport. */
  transport?: Transport;
  /** How the chain opens its store: LMDB by default; the simulator passes an in-memory one. */
  openKv?: KvOpener;
  /** Threads checking synced batches' signatures (crypto/sigPool.ts); default min(4, cores), 0 none. */
  sigPoolThreads?: number;
}

export interface TimeNodeEvents {
  /** Someone (the `stop` RPC) asked the node to shut down. */
  stopRequested: void;
}

/** Every STATUS_INTERVAL_MS the node logs one line with height, tip and producer state. */
const STATUS_INTERVAL_MS = 10_000;

export { NodeStartError };

/**
 * The composition root: builds every part from the config, starts them in order and stops them
 * in reverse. No module reaches for a global; everything it needs is passed in here.
 */
export class TimeNode {
  readonly events = new TypedEmitter<TimeNodeEvents>();
  readonly chain: Chain;
  readonly nodeKey: KeyPair;
  readonly operatorKey: KeyPair | null;
  readonly producer: BlockProducer | null;
  readonly rpc: RpcServer | null;
  /** The credentials RPC (and the dashboard's data endpoint) check. */
  readonly rpcAuth: RpcAuth;
  readonly peers: PeerManager;
  readonly relay: BlockRelay;
  /** The one place peer state for sync lives (heights, RTT, failures, genesis refusals). */
  readonly syncView: PeerStateView;
  /** Owns catch-up and fork resolution (getsyncstatus). */
  readonly sync: SyncCoordinator;
  private readonly sigPool: SignaturePool | null;
  readonly mempool: Mempool;
  /** GET /events on the RPC listener (and the dashboard's). */
  readonly eventStream: EventStream;
  private readonly notifyUnsubscribe: Array<() => void> = [];
  private readonly doctorSources: DoctorSources;
  /** The peers' median clock offset, and the warning when this node's clock is off. */
  readonly clockWatch: ClockWatch;
  readonly txRelay: TxRelay<Peer>;
  readonly wallet: Wallet;
  readonly liveness: MasternodeLiveness;
  /** Every Prometheus metric, served at GET /metrics on the RPC listener. */
  readonly metrics: Metrics;
  private readonly nodeMetrics: NodeMetrics;
  readonly heartbeats: HeartbeatService;
  readonly evidence: EvidenceRelay;
  /** Finality votes: gossip and counting (all nodes); the voter (masternodes only). */
  readonly finality: FinalityRelay;
  readonly voter: FinalityVoter | null;
  /** Offences the finality relay has recorded since start (getfinalitystatus and the metrics). */
  readonly dashboard: Dashboard | null;
  private readonly blockServer: BlockServer;
  /** The routing table, handed to PeerManager as its one message seam. */
  private readonly router: MessageRoute;
  private readonly startedAt: number;
  private statusTimer: TimerHandle | null = null;
  private stopped = false;
  private readonly releaseLock: () => void;

  private constructor(
    readonly config: NodeConfig,
    private readonly modules: TimeNodeModules,
    parts: { chain: Chain; nodeKey: KeyPair; operatorKey: KeyPair | null; release: () => void },
  ) {
    this.releaseLock = parts.release;
    this.rpcAuth = rpcAuthFromConfig(config);
    this.chain = parts.chain;
    this.nodeKey = parts.nodeKey;
    this.operatorKey = parts.operatorKey;
    this.startedAt = modules.clock.monotonic();
    const log = modules.logger;
    this.mempool = new Mempool(
      {},
      { chain: this.chain, clock: modules.clock, logger: log.child({ module: "mempool" }) },
    );
    const hbMs = Math.round(config.masternode.heartbeat_interval * 1000);
    const annMs = Math.round(config.masternode.announce_interval * 1000);
    this.liveness = new MasternodeLiveness(livenessOptions(hbMs, annMs), {
      clock: modules.clock,
      logger: log.child({ module: "liveness" }),
      registry: () => this.chain.getRegistry(),
      selfOperator: this.operatorKey?.publicKey ?? null,
    });
    this.producer = this.operatorKey
      ? new BlockProducer(
          { minMasternodes: config.consensus.min_masternodes, operatorKey: this.operatorKey },
          {
            chain: this.chain,
            clock: modules.clock,
            logger: log.child({ module: "producer" }),
            // Counted from signed heartbeats checked against the registered keys (itself included).
            activeMasternodes: () => this.liveness.activeCount(),
            onBlockRejected: (txs) => this.mempool.evict(txs.map((t) => txidOf(t))),
            selectTransactions: (maxBytes, maxTxs) => this.mempool.selectForBlock(maxBytes, maxTxs),
            // Consensus transactions first: the last final block's certificate, then evidence.
            selectEvidence: () => {
              const cert = this.chain.finality.pendingTx(this.chain.tip);
              const evidence = this.chain.pendingEvidenceTxs(MAX_EVIDENCE_PER_BLOCK);
              return cert ? [cert, ...evidence] : evidence;
            },
            productionHold: () => this.sync.productionHold(),
          },
        )
      : null;
    this.peers = this.makePeerManager();
    this.blockServer = new BlockServer(this.chain);
    this.metrics = new Metrics();
    this.syncView = new PeerStateView({}, { clock: modules.clock });
    this.syncView.observe(this.peers);
    const threads = modules.sigPoolThreads ?? defaultSigPoolThreads();
    this.sigPool = threads > 0 ? new SignaturePool({ threads }) : null;
    this.sync = new SyncCoordinator(syncOptionsFromConfig(config.sync), {
      sigPool: this.sigPool,
      chain: this.chain,
      peers: this.peers,
      view: this.syncView,
      clock: modules.clock,
      logger: log.child({ module: "sync" }),
      metrics: this.metrics,
      ...(config.rpc.enabled ? { callerWaiting: () => this.rpc?.callerWaiting() === true } : {}),
    });
    this.relay = new BlockRelay(
      { requestTimeoutMs: 30_000 },
      {
        chain: this.chain,
        network: this.peers,
        clock: modules.clock,
        logger: log.child({ module: "relay" }),
        sync: this.sync,
      },
    );
    this.txRelay = new TxRelay(
      {},
      {
        mempool: this.mempool,
        network: peerTxNetwork(this.peers, () => this.txRelay),
        clock: modules.clock,
        logger: log.child({ module: "txrelay" }),
        chain: this.chain,
      },
    );
    this.wallet = new Wallet(
      {
        file: join(config.node.data_dir, WALLET_FILE),
        network: this.chain.params.network,
        // A masternode's rewards are paid to its operator key's address: make them spendable.
        ...(this.operatorKey ? { extraKeys: [this.operatorKey] } : {}),
      },
      {
        chain: this.chain,
        mempool: this.mempool,
        relay: this.txRelay,
        clock: modules.clock,
        random: modules.random,
        logger: log.child({ module: "wallet" }),
      },
    );
    this.heartbeats = new HeartbeatService(
      { heartbeatIntervalMs: hbMs, announceIntervalMs: annMs },
      {
        clock: modules.clock,
        random: modules.random,
        logger: log.child({ module: "heartbeat" }),
        liveness: this.liveness,
        network: this.peers,
        operatorKey: this.operatorKey,
        nodeId: this.nodeKey.publicKey,
        serviceAddress: () => config.network.external_address ?? this.peers.localAddress ?? "",
        tip: () => ({ height: this.chain.tip.height, hash: this.chain.tip.hash }),
        // An announcement names where a masternode listens: dial it.
        onAnnounced: (address, nodeId) =>
          this.peers.addressBook.add({
            address,
            nodeId,
            services: SERVICE_BLOCKS | SERVICE_MASTERNODE,
            source: "peers",
          }),
      },
    );
    this.evidence = new EvidenceRelay({
      chain: this.chain,
      network: this.peers,
      logger: log.child({ module: "evidence" }),
    });
    this.finality = new FinalityRelay({
      chain: this.chain,
      network: this.peers,
      clock: modules.clock,
      logger: log.child({ module: "finality" }),
      isMasternode: this.operatorKey !== null,
      hintSync: (peer) => this.sync.hintFinal(peer.nodeIdHex),
    });
    this.voter = this.operatorKey
      ? new FinalityVoter({
          chain: this.chain,
          operatorKey: this.operatorKey,
          publish: (vote) => void this.finality.publish(vote),
          logger: log.child({ module: "finality" }),
        })
      : null;
    const routeLog = log.child({ module: "p2p" });
    this.router = makeRouter(
      nodeRoutes({
        blockServer: this.blockServer,
        blockRelay: this.relay,
        txRelay: this.txRelay,
        heartbeats: this.heartbeats,
        evidence: this.evidence,
        finality: this.finality,
      }),
      {
        onHandlerError: (peer, type, e) =>
          routeLog.error("Peer message handler failed", { peer: peer.addr, type }, e),
        onUnrouted: (peer, type) => routeLog.debug("Unrouted message", { peer: peer.addr, type }),
      },
    );
    this.wirePeers();
    this.nodeMetrics = new NodeMetrics(this.metrics.registry, {
      chain: this.chain,
      peers: this.peers,
      liveness: this.liveness,
      mempool: this.mempool,
      operatorKey: this.operatorKey?.publicKey ?? null,
      finality: { finality: this.chain.finality, relay: this.finality },
    });
    this.clockWatch = new ClockWatch({
      peers: () => this.peers.peers(),
      maxFutureDriftMs: this.chain.params.maxFutureDriftMs,
      logger: log.child({ module: "clock" }),
    });
    this.eventStream = new EventStream({
      chain: this.chain,
      mempool: this.mempool,
      peers: this.peers,
      liveness: this.liveness,
      sync: this.sync,
      clock: modules.clock,
    });
    registerOperatorMetrics(this.metrics.registry, { clock: this.clockWatch, events: this.eventStream });
    this.doctorSources = {
      chain: this.chain,
      peers: this.peers,
      sync: this.sync,
      liveness: this.liveness,
      producer: this.producer,
      operatorKey: this.operatorKey?.publicKey ?? null,
      minMasternodes: config.consensus.min_masternodes,
      syncThreshold: config.sync.sync_threshold,
      clockWatch: this.clockWatch,
      clock: modules.clock,
    };
    this.rpc = config.rpc.enabled ? this.makeRpc() : null;
    this.dashboard = this.rpc
      ? mountDashboard(
          this.rpc,
          dashboardDepsFor(this, {
            uptimeSeconds: () => (modules.clock.monotonic() - this.startedAt) / 1000,
            syncStatus: () => syncStatusToJson(this.sync.status()),
            events: this.eventStream.handle,
            // The dashboard polls every 1.5 s; the doctor reads 100 blocks for its rewards question.
            doctor: cachedDiagnosis(this.doctorSources, DOCTOR_CACHE_MS),
          }),
          {
            clock: modules.clock,
            random: modules.random,
            logger: log.child({ module: "dashboard" }),
            checkBasicAuth: basicAuthChecker(this.rpcAuth),
          },
        )
      : null;
  }

  private makePeerManager(): PeerManager {
    const { config, modules } = this;
    const pingMs = Math.max(1, Math.round(config.network.ping_interval * 1000));
    const local: LocalInfo = {
      network: this.chain.params.network,
      magic: this.chain.params.magic,
      genesisHash: this.chain.genesisHash,
      nodeKey: this.nodeKey,
      operatorKey: this.operatorKey,
      plaintext: config.network.plaintext_transport,
      listenAddr: () => config.network.external_address ?? config.network.listen_address,
      services: () => SERVICE_BLOCKS | (this.operatorKey ? SERVICE_MASTERNODE : 0),
      tip: () => ({ height: this.chain.tip.height, hash: this.chain.tip.hash }),
    };
    return new PeerManager(
      // Ask one peer for addresses every 10 pings (60 s on mainnet is the ceiling).
      peerManagerOptionsFromConfig(config.network, config.node.data_dir, {
        discoveryIntervalMs: Math.min(60_000, Math.max(5_000, 10 * pingMs)),
        ...(config.masternode.enabled
          ? {}
          : { masternodeLinkFloor: FULL_NODE_MASTERNODE_LINK_FLOOR, masternodesFillOutbound: false }),
      }),
      {
        clock: modules.clock,
        random: modules.random,
        logger: modules.logger.child({ module: "p2p" }),
        transport: modules.transport ?? new TcpTransport(modules.clock),
        local,
        isRegisteredMasternode: (pk) => findByOperator(this.chain.getRegistry(), pk) !== undefined,
        registeredMasternodeCount: () => {
          const registry = this.chain.getRegistry();
          const me = this.operatorKey?.publicKey;
          return me && findByOperator(registry, me) ? registry.length - 1 : registry.length;
        },
        route: (peer, msg) => this.router(peer, msg),
        livenessRateContext: () => ({
          registrySize: this.chain.getRegistry().length,
          heartbeatIntervalMs: Math.round(config.masternode.heartbeat_interval * 1000),
        }),
      },
    );
  }

  /** One handler for every peer, inbound or outbound alike. */
  private wirePeers(): void {
    const log = this.modules.logger;
    const ev = this.peers.events;
    // PeerManager logs connects and disconnects itself.
    ev.on("peerReady", (peer) => {
      this.relay.onPeerReady(peer);
      this.heartbeats.onPeerReady(peer);
      this.evidence.onPeerReady(peer);
      this.finality.onPeerReady(peer);
    });
    ev.on("peerState", (peer) => this.relay.onPeerState(peer));
    ev.onListenerError = (event, err) => log.error("Peer event handler failed", { event }, err);
    // Masternodes from the registry are dialled forever (with their faster backoff).
    let lastRoot = "";
    const updateTargets = (): void => {
      const root = this.chain.tip.mnRoot.toString("hex");
      if (root === lastRoot) return;
      lastRoot = root;
      const me = this.operatorKey?.publicKey;
      this.peers.setMasternodeAddresses(
        this.chain
          .getRegistry()
          .filter((e) => !me || !e.operatorPubkey.equals(me))
          .map((e) => e.address),
      );
    };
    updateTargets();
    this.chain.events.on("tip", updateTargets);
  }

  private makeRpc(): RpcServer {
    const { host, port } = parseHostPort(this.config.rpc.listen_address, { allowPortZero: true });
    const rpc = new RpcServer(
      {
        host,
        port,
        auth: this.rpcAuth,
        onCall: (method, durationMs, ok) =>
          this.nodeMetrics.rpcRequestDuration.observe(
            { method, result: ok ? "ok" : "error" },
            durationMs / 1000,
          ),
      },
      {
        logger: this.modules.logger.child({ module: "rpc" }),
        clock: this.modules.clock,
        random: this.modules.random,
      },
    );
    // Prometheus text format; needs the same credentials as RPC (scrape with basic auth).
    // Server-sent events (eventStream.ts), under the same credentials as RPC.
    rpc.addRoute("GET", "/events", this.eventStream.handle);
    rpc.addRoute("GET", "/metrics", async (_req, res) => {
      const body = await this.metrics.metrics();
      res.writeHead(200, { "Content-Type": this.metrics.contentType });
      res.end(body);
    });
    registerNetMethods(rpc, {
      chain: this.chain,
      peers: this.peers,
      nodeId: this.nodeKey.publicKey,
      clock: this.clockWatch,
    });
    registerSyncMethods(rpc, { coordinator: this.sync });
    registerMasternodeMethods(rpc, {
      chain: this.chain,
      liveness: this.liveness,
      producer: this.producer,
      operatorKey: this.operatorKey,
      minMasternodes: this.config.consensus.min_masternodes,
      network: this.peers,
      registration: {
        wallet: this.wallet,
        relay: this.txRelay,
        mempool: this.mempool,
        serviceAddress: () => this.config.network.external_address ?? this.peers.localAddress,
        rewardAddress: this.config.masternode.reward_address,
      },
    });
    registerTxMethods(rpc, { chain: this.chain, mempool: this.mempool, relay: this.txRelay });
    registerEvidenceMethods(rpc, { chain: this.chain });
    registerChainTipsMethods(rpc, { chain: this.chain });
    registerRewardReport(rpc, { chain: this.chain });
    registerDoctor(rpc, this.doctorSources);
    registerWalletMethods(rpc, { wallet: this.wallet, network: this.chain.params.network });
    registerChainMethods(rpc, {
      chain: this.chain,
      finality: this.chain.finality,
      uptime: () => (this.modules.clock.monotonic() - this.startedAt) / 1000,
      requestStop: () =>
        this.modules.clock.setTimeout(() => this.events.emit("stopRequested", undefined), 50),
    });
    registerFinalityMethods(rpc, {
      chain: this.chain,
      finality: this.chain.finality,
      relay: this.finality,
      voter: this.voter,
      offencesSeen: () => this.finality.offencesTotal,
    });
    return rpc;
  }

  /** Opens the chain and keys. Throws NodeStartError with one clear line on a bad data directory. */
  static open(opts: TimeNodeOptions, modules: TimeNodeModules): TimeNode {
    const { config, genesis } = opts;
    checkConfigMatchesGenesis(config, genesis);
    const paths = dataDirPaths(config.node.data_dir);
    const release = acquireLock(paths.lock);
    try {
      const nodeKey = loadOrCreateKeyFile(paths.nodeKey);
      const operatorKey = config.masternode.enabled ? readKeyFile(config.masternode.operator_key_file) : null;
      const chain = Chain.open(paths.chain, genesis, {
        clock: modules.clock,
        logger: modules.logger.child({ module: "chain" }),
        ...(modules.openKv ? { openKv: modules.openKv } : {}),
      });
      return new TimeNode(config, modules, { chain, nodeKey, operatorKey, release });
    } catch (e) {
      release();
      throw e;
    }
  }

  async start(): Promise<void> {
    const log = this.modules.logger;
    const tip = this.chain.tip;
    log.info("Chain opened", {
      network: this.chain.params.network,
      height: tip.height,
      tip: tip.hash.toString("hex"),
      genesis: this.chain.genesisHash.toString("hex"),
    });
    await this.peers.start();
    log.info("P2P listening", {
      address: this.peers.localAddress,
      nodeId: this.nodeKey.publicKey.toString("hex"),
    });
    this.relay.start();
    this.sync.start();
    this.mempool.start();
    this.txRelay.start();
    this.wallet.start();
    this.heartbeats.start();
    this.evidence.start();
    this.finality.start();
    this.voter?.start();
    if (this.rpc) {
      const addr = await this.rpc.start();
      log.info("RPC listening", { url: `http://${addr.host}:${addr.port}/` });
      this.eventStream.start();
      this.dashboard?.start();
    }
    this.producer?.start();
    this.notifyUnsubscribe.push(
      ...startNotifiers(this.config.node, this.chain.events, {
        clock: this.modules.clock,
        logger: this.modules.logger.child({ module: "notify" }),
      }),
    );
    this.statusTimer = this.modules.clock.setInterval(() => this.logStatus(), STATUS_INTERVAL_MS);
  }

  /** A fresh one-click dashboard link (it holds a single-use login code), or null without RPC. */
  dashboardLoginUrl(): string | null {
    return this.dashboard?.loginUrl() ?? null;
  }

  get rpcUrl(): string | null {
    const a = this.rpc?.address;
    return a ? `http://${a.host.includes(":") ? `[${a.host}]` : a.host}:${a.port}/` : null;
  }

  private logStatus(): void {
    this.clockWatch.check();
    const tip = this.chain.tip;
    const iso = this.peers.isolation();
    this.modules.logger.info("Status", {
      height: tip.height,
      tip: tip.hash.toString("hex").slice(0, 16),
      peers: this.peers.connectionCounts().total,
      ...(iso.since !== null
        ? { cutOffSeconds: Math.round((this.modules.clock.now() - iso.since) / 1000) }
        : {}),
      activeMasternodes: this.liveness.activeCount(),
      finalHeight: this.chain.finality.finalizedHeight,
      producer: this.producer?.status.reason ?? "not a masternode",
      produced: this.producer?.blocksProduced ?? 0,
    });
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.statusTimer?.cancel();
    this.producer?.stop();
    this.dashboard?.stop();
    for (const u of this.notifyUnsubscribe.splice(0)) u();
    this.eventStream.stop();
    if (this.rpc) await this.rpc.stop();
    this.sync.stop();
    await this.sigPool?.close();
    this.syncView.stop();
    this.relay.stop();
    this.heartbeats.stop();
    this.evidence.stop();
    this.voter?.stop();
    this.finality.stop();
    this.nodeMetrics.stop();
    this.wallet.stop();
    this.txRelay.stop();
    this.mempool.stop();
    await this.peers.stop();
    await this.chain.close();
    this.releaseLock();
    this.modules.logger.info("Node stopped", { height: this.chain.tip.height });
  }
}
