/**
 * The dashboard's HTTP surface on a real RpcServer (127.0.0.1:0) with fake providers: the page
 * is public, the data needs a session or RPC Basic auth, a session never opens JSON-RPC, codes
 * are single-use and expire (ManualClock), and the login endpoint refuses what it should.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { request, type IncomingHttpHeaders } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { basicAuthChecker } from "../../../src/dashboard/basicAuth.js";
import { badgeFor, mountDashboard, syncProgress, type Dashboard } from "../../../src/dashboard/dashboard.js";
import { HeightHistory, medianHeight } from "../../../src/dashboard/heightHistory.js";
import type { DashboardDeps, DashboardState } from "../../../src/dashboard/interface.js";
import { recentBlocks } from "../../../src/dashboard/nodeDeps.js";
import { readCookie as readCookieFile } from "../../../src/rpc/cookie.js";
import { RpcServer, type RpcAuth } from "../../../src/rpc/server.js";
import { ManualClock, SystemClock } from "../../../src/util/clock.js";
import { CryptoRandom, SeededRandom } from "../../../src/util/random.js";

const quiet = { info: () => {}, warn: () => {}, error: () => {} };

interface Res {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

function http(
  port: number,
  path: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port, path, method: opts.method ?? "GET", headers: opts.headers, agent: false },
      (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (s: string) => (body += s));
        res.once("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.once("error", reject);
    req.end(opts.body);
  });
}

const hex = (n: number): string => n.toString(16).padStart(64, "0");

function fakeDeps(): DashboardDeps & { height: number } {
  const deps = {
    height: 41,
    status: () => ({
      network: "devnet",
      nodeId: hex(1),
      name: "n1",
      height: deps.height,
      tip: hex(deps.height),
      tipTime: 1_700_000_000_000,
      producer: { state: "waiting", reason: "waiting: 2/3 active masternodes" },
      activeMasternodes: 2,
      registeredMasternodes: 3,
      minMasternodes: 3,
    }),
    peers: () =>
      [40, 42, 44].map((h, i) => ({
        nodeid: hex(100 + i),
        addr: `127.0.0.${i + 2}:1`,
        inbound: i === 0,
        masternode: true,
        height: h,
        pingtime: 0.002,
        conntime: 1_700_000_000,
      })),
    masternodes: () => [
      {
        pubkey: hex(7),
        address: "127.0.0.2:1",
        tier: "free" as const,
        status: "active" as const,
        lastseen: 1_700_000_000,
      },
    ],
    recentBlocks: (n: number) =>
      Array.from({ length: Math.min(n, deps.height + 1) }, (_, i) => ({
        height: deps.height - i,
        hash: hex(deps.height - i),
        producer: hex(7),
        txCount: 1,
        time: 1_700_000_000_000,
      })),
  };
  return deps;
}

void describe("dashboard HTTP surface", () => {
  const dir = mkdtempSync(join(tmpdir(), "timed-dashboard-"));
  const auth: RpcAuth = { kind: "cookie", cookieFile: join(dir, ".cookie") };
  const clock = new ManualClock();
  const deps = fakeDeps();
  let rpc: RpcServer;
  let dashboard: Dashboard;
  let port = 0;
  let basic = "";

  const login = (code: string, headers: Record<string, string> = {}): Promise<Res> =>
    http(port, "/dashboard/login", {
      method: "POST",
      headers: { "Content-Type": "application/json", ...headers },
      body: JSON.stringify({ code }),
    });
  const codeOf = (url: string): string => /#login=([A-Za-z0-9_-]+)$/.exec(url)![1]!;
  const sessionCookie = (r: Res): string => String(r.headers["set-cookie"]).split(";", 1)[0]!;

  before(async () => {
    rpc = new RpcServer(
      { host: "127.0.0.1", port: 0, auth },
      { logger: quiet, clock: new SystemClock(), random: new CryptoRandom() },
    );
    rpc.register("getblockcount", { description: "height", params: [], handler: () => deps.height });
    dashboard = mountDashboard(rpc, deps, {
      clock,
      random: new SeededRandom(3),
      checkBasicAuth: basicAuthChecker(auth),
    });
    port = (await rpc.start()).port;
    dashboard.start();
    const creds = readCookieFile(dir)!;
    basic = `Basic ${Buffer.from(`${creds.user}:${creds.password}`).toString("base64")}`;
  });

  after(async () => {
    dashboard.stop();
    await rpc.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  void it("serves the page and its files without auth, with a strict CSP", async () => {
    const page = await http(port, "/");
    assert.equal(page.status, 200);
    assert.match(String(page.headers["content-type"]), /^text\/html/);
    assert.match(page.body, /data-testid="height"/);
    assert.match(String(page.headers["content-security-policy"]), /script-src 'self'/);
    assert.equal(page.headers["referrer-policy"], "no-referrer");
    for (const path of ["/dashboard/app.js", "/dashboard/app.css", "/dashboard/favicon.svg"]) {
      assert.equal((await http(port, path)).status, 200, path);
    }
  });

  void it("the login URL carries the code in the fragment", () => {
    const url = dashboard.loginUrl();
    assert.match(url, new RegExp(`^http://127\\.0\\.0\\.1:${port}/#login=[A-Za-z0-9_-]{22}$`));
  });

  void it("the data endpoint needs a session or RPC Basic auth", async () => {
    const anon = await http(port, "/dashboard/api/state");
    assert.equal(anon.status, 401);
    assert.equal(anon.headers["www-authenticate"], undefined);
    const wrong = await http(port, "/dashboard/api/state", {
      headers: { Authorization: `Basic ${Buffer.from("__cookie__:wrong").toString("base64")}` },
    });
    assert.equal(wrong.status, 401);
    const byBasic = await http(port, "/dashboard/api/state", { headers: { Authorization: basic } });
    assert.equal(byBasic.status, 200);
    assert.equal(byBasic.headers["cache-control"], "no-store");
    const forged = await http(port, "/dashboard/api/state", {
      headers: { Cookie: `timed_dashboard_${port}=${"A".repeat(43)}` },
    });
    assert.equal(forged.status, 401);
    assert.match(String(forged.headers["set-cookie"]), /Max-Age=0/, "a dead cookie is cleared");
  });

  void it("a code is single-use; its session opens the data but never JSON-RPC", async () => {
    const code = codeOf(dashboard.loginUrl());
    const first = await login(code);
    assert.equal(first.status, 204);
    const cookie = sessionCookie(first);
    assert.match(cookie, new RegExp(`^timed_dashboard_${port}=`));
    assert.equal((await login(code)).status, 401, "used");

    const data = await http(port, "/dashboard/api/state", { headers: { Cookie: cookie } });
    assert.equal(data.status, 200);
    const state = JSON.parse(data.body) as DashboardState;
    assert.equal(state.node.height, 41);
    assert.equal(state.peerCount, 3);
    assert.equal(state.badge.text, "waiting: 2/3 active masternodes");
    assert.equal(state.blocks.length, 10);
    assert.equal(state.devnet, null);

    const rpcCall = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "getblockcount" });
    const bySession = await http(port, "/", {
      method: "POST",
      headers: { "Content-Type": "application/json", Cookie: cookie },
      body: rpcCall,
    });
    assert.equal(bySession.status, 401, "the session cookie is not RPC auth");
    const byBasic = await http(port, "/", {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: basic },
      body: rpcCall,
    });
    assert.equal(byBasic.status, 200);
  });

  void it("a code expires after 10 minutes; the session after 12 hours", async () => {
    const late = codeOf(dashboard.loginUrl());
    const early = codeOf(dashboard.loginUrl());
    const ok = await login(early);
    assert.equal(ok.status, 204);
    clock.advance(10 * 60_000);
    const refused = await login(late);
    assert.equal(refused.status, 401);
    assert.match(refused.body, /dashboardurl/);
    const cookie = sessionCookie(ok);
    assert.equal((await http(port, "/dashboard/api/state", { headers: { Cookie: cookie } })).status, 200);
    clock.advance(12 * 60 * 60_000);
    assert.equal((await http(port, "/dashboard/api/state", { headers: { Cookie: cookie } })).status, 401);
  });

  void it("the login endpoint refuses other origins, non-JSON and oversized bodies", async () => {
    const code = codeOf(dashboard.loginUrl());
    assert.equal((await login(code, { Origin: "http://evil.example" })).status, 403);
    const form = await http(port, "/dashboard/login", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: `code=${code}`,
    });
    assert.equal(form.status, 415);
    const big = await http(port, "/dashboard/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ code: "x".repeat(5000) }),
    });
    assert.equal(big.status, 413);
    const noCode = await http(port, "/dashboard/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: "[1]",
    });
    assert.equal(noCode.status, 400);
    assert.equal((await login(code, { Origin: `http://127.0.0.1:${port}` })).status, 204, "still unused");
  });

  void it("dashboardurl (RPC, authenticated) mints a working link", async () => {
    const res = await http(port, "/", {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: basic },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "dashboardurl" }),
    });
    const { result } = JSON.parse(res.body) as { result: { url: string; expiresin: number } };
    assert.equal(result.expiresin, 600);
    assert.equal((await login(codeOf(result.url))).status, 204);
  });

  void it("samples heights against the peers' median for the chart", () => {
    clock.advance(2_000);
    deps.height = 43;
    clock.advance(2_000);
    const h = dashboard.state().history;
    assert.ok(h.length >= 3);
    assert.deepEqual(h.at(-1), { t: clock.now(), height: 43, peerMedian: 42 });
  });
});

void describe("dashboard pieces", () => {
  void it("the badge: syncing, then waiting, else in sync", () => {
    const sync = { syncing: true, height: 5, consensusheight: 10, behind: 5, blockspersecond: 1 };
    const waiting = { producer: { state: "waiting", reason: "waiting: 2/3 active masternodes" } };
    assert.deepEqual(badgeFor(waiting, sync), { kind: "syncing", text: "syncing" });
    assert.deepEqual(badgeFor(waiting, { ...sync, syncing: false }), {
      kind: "waiting",
      text: "waiting: 2/3 active masternodes",
    });
    assert.deepEqual(badgeFor({ producer: null }, null), { kind: "in-sync", text: "in sync" });
  });

  void it("sync progress runs from where the sync started to the target", () => {
    assert.equal(syncProgress(150, 100, 200), 0.5);
    assert.equal(syncProgress(50, null, 200), 0.25);
    assert.equal(syncProgress(250, 100, 200), 1);
    assert.equal(syncProgress(10, 5, null), null);
  });

  void it("the history ring keeps the newest samples in order", () => {
    const r = new HeightHistory(3);
    for (let i = 1; i <= 5; i++) r.push({ t: i, height: i, peerMedian: null });
    assert.deepEqual(
      r.toArray().map((s) => s.height),
      [3, 4, 5],
    );
    assert.equal(medianHeight([]), null);
    assert.equal(medianHeight([5, 1, 3]), 3);
    assert.equal(medianHeight([1, 2, 3, 6]), 2);
  });

  void it("recent blocks come from the block index, newest first, genesis without producer", () => {
    const idx = (h: number) => ({
      height: h,
      hash: Buffer.alloc(32, h),
      producer: Buffer.alloc(32, 9),
      txCount: h,
      timestamp: h * 1000,
    });
    const chain = {
      tip: idx(2),
      getHashAtHeight: (h: number) => (h >= 0 && h <= 2 ? Buffer.alloc(32, h) : undefined),
      getIndex: (hash: Uint8Array) => idx(hash[0]!),
    };
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const blocks = recentBlocks(chain as any, 10);
    assert.deepEqual(
      blocks.map((b) => [b.height, b.txCount, b.producer === null]),
      [
        [2, 2, false],
        [1, 1, false],
        [0, 0, true],
      ],
    );
  });
});

void describe("dashboard sync view", () => {
  void it("shows progress from where the sync started, and only the fields the page needs", () => {
    const dir = mkdtempSync(join(tmpdir(), "timed-dashboard-sync-"));
    const rpc = new RpcServer(
      { host: "127.0.0.1", port: 0, auth: { kind: "cookie", cookieFile: join(dir, ".cookie") } },
      { logger: quiet, clock: new SystemClock(), random: new CryptoRandom() },
    );
    const deps = fakeDeps();
    deps.height = 100;
    // A getsyncstatus-shaped result, with more fields than the dashboard shows.
    const sync = () => ({
      syncing: true,
      height: deps.height,
      consensusheight: 300,
      behind: 300 - deps.height,
      blockspersecond: 50,
      target: 300,
      lead: "127.0.0.9:1",
      lasterror: null,
    });
    const clock = new ManualClock();
    const d = mountDashboard(rpc, { ...deps, syncStatus: sync }, { clock, random: new SeededRandom(1) });
    d.start();
    deps.height = 200;
    const s = d.state();
    assert.equal(s.badge.kind, "syncing");
    assert.equal(s.sync?.targetHeight, 300);
    assert.equal(s.sync?.progress, 0.5, "half way from 100 (where it started) to 300");
    assert.equal("lead" in s.sync!, false);
    d.stop();
    rmSync(dir, { recursive: true, force: true });
  });
});
