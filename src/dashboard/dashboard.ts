/**
 * The live dashboard, served on the RPC listener (no build step: static files from ./static).
 *
 * Routes (all mounted with the RPC server's `auth: false`; each checks what it needs itself):
 *   GET  /                       the page (public: it holds no data)
 *   GET  /dashboard/app.js|app.css|favicon.svg   its script, style and icon (public)
 *   POST /dashboard/login        {"code"} → a read-only session cookie (session.ts)
 *   GET  /dashboard/api/state    the JSON the page polls: a session cookie or RPC Basic auth
 *   GET  /dashboard/api/events   the node's event stream (server-sent events), the same check
 * and the authenticated RPC method `dashboardurl`, which mints a fresh one-click login link.
 * POST / (JSON-RPC) is untouched: it never looks at the session cookie.
 *
 * The dashboard keeps one bounded ring of height samples (ours and our peers' median) for the
 * chart; start() begins sampling and stop() ends it and every session.
 */
import { readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { RpcError, SERVER_ERROR } from "../rpc/errors.js";
import { toRpcJson, type RpcServer } from "../rpc/server.js";
import type { Clock, TimerHandle } from "../util/clock.js";
import type { Random } from "../util/random.js";
import type { BasicAuthCheck } from "./basicAuth.js";
import {
  HISTORY_SAMPLE_INTERVAL_MS,
  HISTORY_SAMPLES,
  EVENTS_PATH,
  LOGIN_PATH,
  MAX_DEVNET_ROWS,
  MAX_LOGIN_BODY_BYTES,
  MAX_MASTERNODE_ROWS,
  MAX_PEER_ROWS,
  PAGE_PATH,
  RECENT_BLOCKS,
  STATE_PATH,
} from "./constants.js";
import { DashboardError } from "./errors.js";
import { HeightHistory, medianHeight } from "./heightHistory.js";
import type {
  BadgeKind,
  DashboardDeps,
  DashboardState,
  DevnetNodeView,
  NodeStatusView,
  SyncStatusView,
} from "./interface.js";
import {
  clearSessionCookie,
  DashboardSessions,
  readCookie,
  sessionCookieName,
  sessionSetCookie,
  type DashboardSessionOptions,
} from "./session.js";

export interface DashboardOptions {
  sampleIntervalMs: number;
  historySamples: number;
  recentBlocks: number;
}

export const defaultDashboardOptions: DashboardOptions = {
  sampleIntervalMs: HISTORY_SAMPLE_INTERVAL_MS,
  historySamples: HISTORY_SAMPLES,
  recentBlocks: RECENT_BLOCKS,
};

export interface DashboardLogger {
  warn(msg: string, ctx?: Record<string, unknown>, err?: unknown): void;
}

export interface DashboardMountOptions extends Partial<DashboardOptions>, Partial<DashboardSessionOptions> {
  clock: Clock;
  random: Random;
  /** Accepts the RPC credentials on the data endpoint (basicAuth.ts); without it only sessions work. */
  checkBasicAuth?: BasicAuthCheck | null;
  logger?: DashboardLogger | null;
  /** Where index.html, app.js, app.css and favicon.svg are; default: found next to this module. */
  assetsDir?: string;
}

interface Asset {
  path: string;
  file: string;
  type: string;
}

const ASSETS: Asset[] = [
  { path: PAGE_PATH, file: "index.html", type: "text/html; charset=utf-8" },
  { path: "/dashboard/app.js", file: "app.js", type: "text/javascript; charset=utf-8" },
  { path: "/dashboard/app.css", file: "app.css", type: "text/css; charset=utf-8" },
  { path: "/dashboard/favicon.svg", file: "favicon.svg", type: "image/svg+xml" },
];

/** Served with every dashboard response: no inline script, no framing, no referrer, no sniffing. */
const SECURITY_HEADERS: Record<string, string> = {
  "Content-Security-Policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "Referrer-Policy": "no-referrer",
  "X-Content-Type-Options": "nosniff",
  "X-Frame-Options": "DENY",
};

/** Mounts the dashboard's routes and the `dashboardurl` method on `rpc`. Call start() to sample. */
export function mountDashboard(rpc: RpcServer, deps: DashboardDeps, opts: DashboardMountOptions): Dashboard {
  return new Dashboard(rpc, deps, opts);
}

export class Dashboard {
  readonly sessions: DashboardSessions;
  private readonly opts: DashboardOptions;
  private readonly history: HeightHistory;
  private readonly assets = new Map<string, { body: Buffer; type: string }>();
  private timer: TimerHandle | null = null;
  private devnetNodes: (() => DevnetNodeView[]) | null;
  private syncStartHeight: number | null = null;
  private sampleFailing = false;

  constructor(
    private readonly rpc: RpcServer,
    private readonly deps: DashboardDeps,
    private readonly mount: DashboardMountOptions,
  ) {
    this.opts = {
      sampleIntervalMs: mount.sampleIntervalMs ?? defaultDashboardOptions.sampleIntervalMs,
      historySamples: mount.historySamples ?? defaultDashboardOptions.historySamples,
      recentBlocks: mount.recentBlocks ?? defaultDashboardOptions.recentBlocks,
    };
    this.sessions = new DashboardSessions(
      {
        ...(mount.codeTtlMs !== undefined ? { codeTtlMs: mount.codeTtlMs } : {}),
        ...(mount.maxCodes !== undefined ? { maxCodes: mount.maxCodes } : {}),
        ...(mount.sessionTtlMs !== undefined ? { sessionTtlMs: mount.sessionTtlMs } : {}),
        ...(mount.maxSessions !== undefined ? { maxSessions: mount.maxSessions } : {}),
      },
      { clock: mount.clock, random: mount.random },
    );
    this.history = new HeightHistory(this.opts.historySamples);
    this.devnetNodes = deps.devnetNodes ?? null;
    this.loadAssets(mount.assetsDir ?? findAssetsDir());
    this.addRoutes();
    this.registerMethods();
  }

  /** Starts sampling heights for the chart (one sample at once, then every sampleIntervalMs). */
  start(): void {
    if (this.timer) return;
    this.sample();
    this.timer = this.mount.clock.setInterval(() => this.sample(), this.opts.sampleIntervalMs);
  }

  /** Stops sampling and ends every session and login code. Idempotent. */
  stop(): void {
    this.timer?.cancel();
    this.timer = null;
    this.sessions.clear();
  }

  /** Shows every devnet node on this dashboard (`timed devnet`, node-1). */
  setDevnetNodes(provider: (() => DevnetNodeView[]) | null): void {
    this.devnetNodes = provider;
  }

  /**
   * A fresh one-click login link, `http://HOST:PORT/#login=CODE`: the code is single-use and
   * expires (session.ts). Throws DashboardError NOT_LISTENING before the RPC server is up.
   */
  loginUrl(): string {
    return this.mintLink().url;
  }

  private mintLink(): { url: string; expiresin: number } {
    const addr = this.rpc.address;
    if (!addr) throw new DashboardError("NOT_LISTENING", "the RPC server is not listening yet");
    const minted = this.sessions.mintCode();
    return {
      url: `${baseUrl(addr.host, addr.port)}#login=${minted.code}`,
      expiresin: minted.expiresInSeconds,
    };
  }

  /** The page's data, as GET /dashboard/api/state answers it. */
  state(): DashboardState {
    const node = this.deps.status();
    const syncView = this.deps.syncStatus ? this.deps.syncStatus() : null;
    const sync = syncView ? this.withProgress(syncView) : null;
    const peers = this.deps.peers();
    const masternodes = this.deps.masternodes();
    const devnet = this.devnetNodes ? this.devnetNodes().slice(0, MAX_DEVNET_ROWS) : null;
    return {
      now: this.mount.clock.now(),
      node,
      badge: badgeFor(node, syncView),
      sync,
      peers: peers.slice(0, MAX_PEER_ROWS).map((p) => ({
        nodeid: p.nodeid,
        addr: p.addr,
        inbound: p.inbound,
        masternode: p.masternode,
        height: p.height,
        pingtime: p.pingtime,
        conntime: p.conntime,
      })),
      peerCount: peers.length,
      masternodes: masternodes.slice(0, MAX_MASTERNODE_ROWS).map((m) => ({
        pubkey: m.pubkey,
        address: m.address,
        tier: m.tier,
        status: m.status,
        lastseen: m.lastseen,
      })),
      masternodeCount: masternodes.length,
      blocks: this.deps.recentBlocks(this.opts.recentBlocks),
      history: this.history.toArray(),
      historyIntervalMs: this.opts.sampleIntervalMs,
      devnet,
      doctor: this.deps.doctor ? this.deps.doctor() : null,
    };
  }

  private sample(): void {
    try {
      const { height } = this.deps.status();
      const peerMedian = medianHeight(this.deps.peers().map((p) => p.height));
      this.history.push({ t: this.mount.clock.now(), height, peerMedian });
      const sync = this.deps.syncStatus?.();
      if (sync) this.trackSyncStart(sync);
      this.sampleFailing = false;
    } catch (err) {
      // A provider failing (the node stopping under us) must not kill the timer's process.
      if (!this.sampleFailing) this.mount.logger?.warn("Dashboard sample failed", {}, err);
      this.sampleFailing = true;
    }
  }

  private trackSyncStart(sync: SyncStatusView): void {
    if (!sync.syncing) this.syncStartHeight = null;
    else if (this.syncStartHeight === null) this.syncStartHeight = sync.height;
  }

  private withProgress(sync: SyncStatusView): NonNullable<DashboardState["sync"]> {
    this.trackSyncStart(sync);
    const targetHeight =
      typeof sync.target === "number"
        ? sync.target
        : (sync.target?.height ??
          sync.consensusheight ??
          (sync.behind > 0 ? sync.height + sync.behind : null));
    // Only the fields the page shows: a richer status (getsyncstatus's) passes through untouched.
    return {
      syncing: sync.syncing,
      height: sync.height,
      consensusheight: sync.consensusheight,
      behind: sync.behind,
      blockspersecond: sync.blockspersecond,
      target: sync.target ?? null,
      targetHeight,
      progress: syncProgress(sync.height, this.syncStartHeight, targetHeight),
    };
  }

  private loadAssets(dir: string): void {
    for (const a of ASSETS) {
      let body: Buffer;
      try {
        body = readFileSync(join(dir, a.file));
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        throw new DashboardError(
          "ASSETS_MISSING",
          `dashboard file ${a.file} is missing from ${dir}: ${reason}`,
          {
            dir,
          },
        );
      }
      this.assets.set(a.path, { body, type: a.type });
    }
  }

  private addRoutes(): void {
    for (const [path, asset] of this.assets) {
      this.rpc.addRoute(
        "GET",
        path,
        (_req, res) => {
          res.writeHead(200, {
            ...SECURITY_HEADERS,
            "Content-Type": asset.type,
            "Content-Length": String(asset.body.length),
            "Cache-Control": "no-cache",
          });
          res.end(asset.body);
        },
        { auth: false },
      );
    }
    this.rpc.addRoute("POST", LOGIN_PATH, (req, res) => this.onLogin(req, res), { auth: false });
    this.rpc.addRoute("GET", STATE_PATH, (req, res) => this.onState(req, res), { auth: false });
    const events = this.deps.events;
    if (events)
      this.rpc.addRoute(
        "GET",
        EVENTS_PATH,
        (req, res) => {
          if (this.signedIn(req, res)) events(req, res);
        },
        { auth: false },
      );
  }

  private async onLogin(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== `http://${req.headers.host ?? ""}`) {
      reply(res, 403, { error: "login from another origin is refused" });
      return;
    }
    if (!/^application\/json\b/i.test(req.headers["content-type"] ?? "")) {
      // A cross-site form cannot send JSON without a CORS preflight, which this server never grants.
      reply(res, 415, { error: "login expects Content-Type: application/json" });
      return;
    }
    const body = await readSmallBody(req, MAX_LOGIN_BODY_BYTES);
    if (body === null) {
      reply(res, 413, { error: `login body over ${MAX_LOGIN_BODY_BYTES} bytes` }, { Connection: "close" });
      return;
    }
    let code: unknown;
    try {
      code = (JSON.parse(body) as { code?: unknown } | null)?.code;
    } catch {
      code = undefined;
    }
    if (typeof code !== "string") {
      reply(res, 400, { error: 'login expects {"code": "..."}' });
      return;
    }
    const session = this.sessions.redeem(code);
    if (!session) {
      reply(res, 401, {
        error: "this login link was already used or has expired: run `time-cli dashboardurl` for a new one",
      });
      return;
    }
    res.writeHead(204, { ...SECURITY_HEADERS, "Set-Cookie": sessionSetCookie(localPort(req), session) });
    res.end();
  }

  private onState(req: IncomingMessage, res: ServerResponse): void {
    if (!this.signedIn(req, res)) return;
    const body = toRpcJson(this.state());
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      "Content-Type": "application/json",
      "Content-Length": String(Buffer.byteLength(body)),
      "Cache-Control": "no-store",
    });
    res.end(body);
  }

  /** A valid session cookie or the RPC credentials; else answers 401 and returns false. */
  private signedIn(req: IncomingMessage, res: ServerResponse): boolean {
    const name = sessionCookieName(localPort(req));
    const token = readCookie(req.headers.cookie, name);
    const bySession = token !== null && this.sessions.isValid(token);
    if (!bySession && !(this.mount.checkBasicAuth?.(req) ?? false)) {
      // No WWW-Authenticate: a browser must not pop a password dialog over the page.
      reply(
        res,
        401,
        {
          error:
            "not signed in: open the link `timed start` printed, or run `time-cli dashboardurl` for a new one (or use RPC Basic auth)",
        },
        token !== null ? { "Set-Cookie": clearSessionCookie(localPort(req)) } : {},
      );
      return false;
    }
    return true;
  }

  private registerMethods(): void {
    this.rpc.register("dashboardurl", {
      description:
        "Returns a fresh one-click link to this node's dashboard. The link holds a single-use login code that expires; opening it gives the browser a read-only dashboard session (never JSON-RPC access).",
      params: [],
      result: "{url, expiresin (seconds)}",
      examples: ["time-cli dashboardurl"],
      handler: () => {
        if (!this.rpc.address) throw new RpcError(SERVER_ERROR, "the RPC server is not listening");
        return this.mintLink();
      },
    });
  }
}

/**
 * The status badge: syncing wins; else a masternode that waits for enough active masternodes
 * says so in the producer's words ("waiting: 2/3 active masternodes"); else "in sync".
 */
export function badgeFor(
  node: Pick<NodeStatusView, "producer">,
  sync: SyncStatusView | null,
): { kind: BadgeKind; text: string } {
  if (sync?.syncing) return { kind: "syncing", text: "syncing" };
  if (node.producer?.state === "waiting") return { kind: "waiting", text: node.producer.reason };
  return { kind: "in-sync", text: "in sync" };
}

/** Fraction done of the current sync, from where it started (or from 0) to the target; null without a target. */
export function syncProgress(
  height: number,
  startHeight: number | null,
  target: number | null,
): number | null {
  if (target === null || target <= 0) return null;
  const from = startHeight !== null && startHeight < target ? startHeight : 0;
  return Math.min(1, Math.max(0, (height - from) / (target - from)));
}

function baseUrl(host: string, port: number): string {
  // A wildcard bind is reachable on loopback; a browser cannot open 0.0.0.0 or [::] everywhere.
  const h = host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "::1" : host;
  return `http://${h.includes(":") ? `[${h}]` : h}:${port}/`;
}

function localPort(req: IncomingMessage): number {
  return req.socket.localPort ?? 0;
}

function reply(
  res: ServerResponse,
  status: number,
  body: object,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    "Content-Type": "application/json",
    "Content-Length": String(Buffer.byteLength(text)),
    "Cache-Control": "no-store",
    ...headers,
  });
  res.end(text);
}

/** The body as text, or null once it grows past `limit` (the rest is discarded, never buffered). */
function readSmallBody(req: IncomingMessage, limit: number): Promise<string | null> {
  if (Number(req.headers["content-length"] ?? 0) > limit) return Promise.resolve(null);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        done = true;
        req.off("data", onData);
        resolve(null);
        return;
      }
      chunks.push(chunk);
    };
    req.on("data", onData);
    req.once("end", () => {
      if (!done) resolve(Buffer.concat(chunks).toString("utf8"));
      done = true;
    });
    req.once("error", (err) => {
      if (!done) reject(err);
      done = true;
    });
    req.once("close", () => {
      if (!done) reject(new Error("client closed the connection before sending the whole body"));
      done = true;
    });
  });
}

/** The static directory: next to this module under tsx (src/), or the source tree's from dist/. */
function findAssetsDir(): string {
  const candidates = [
    fileURLToPath(new URL("./static/", import.meta.url)),
    fileURLToPath(new URL("../../src/dashboard/static/", import.meta.url)),
  ];
  for (const dir of candidates) {
    try {
      readFileSync(join(dir, "index.html"));
      return dir;
    } catch {
      // try the next
    }
  }
  return candidates[0]!;
}
