/**
 * The dashboard in a real browser (issue 7 §4): Debian's chromium, driven by playwright-core,
 * loads node-0's dashboard on a running 4-masternode devnet (1 s blocks) from the one-click
 * login URL, and checks that the displayed height equals getblockcount, that it rises as blocks
 * arrive, that the peers table has getconnectioncount rows, and that the final height shows beside
 * the tip. Raw HTTP checks the auth rules: no session → 401 on the data endpoint, the session
 * cookie → 401 on JSON-RPC, a used code → 401. A screenshot goes to test-output/dashboard.png.
 *
 * The dashboard comes from `dashboardFor(node)`: the node's own once node.ts mounts it, else one
 * mounted on the node's RPC server here.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import type { Dashboard } from "../../src/dashboard/dashboard.js";
import { dashboardFor, devnetNodeView } from "../../src/dashboard/nodeDeps.js";
import { readCookieFile } from "../../src/rpc/cookie.js";
import { dataDirPaths } from "../../src/node/dataDir.js";
import { SystemClock } from "../../src/util/clock.js";
import { CryptoRandom } from "../../src/util/random.js";
import { cleanupAll, Devnet, sleep, trapEscapes, waitFor } from "./helpers/nodes.js";
import { REPO_ROOT } from "./helpers/proc.js";

const CHROMIUM = "/usr/bin/chromium";
/** The flags the machine's probe used: no sandbox (root), no GPU, and no background networking,
 * which this closed network would refuse many times over. */
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const OUT_DIR = join(REPO_ROOT, "test-output");
const SCREENSHOT = join(OUT_DIR, "dashboard.png");

interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function http(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: opts.method ?? "GET", headers: opts.headers, agent: false, timeout: 10_000 },
      (res) => {
        let text = "";
        res.setEncoding("utf8").on("data", (s: string) => (text += s));
        res.once("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
        res.once("error", reject);
      },
    );
    req.once("timeout", () => req.destroy(new Error(`no answer from ${url} within 10 s`)));
    req.once("error", reject);
    req.end(opts.body);
  });
}

/** The code in a login URL's fragment. */
function codeOf(loginUrl: string): string {
  const m = /#login=([A-Za-z0-9_-]+)$/.exec(loginUrl);
  assert.ok(m, `login URL ${loginUrl} carries no #login= code`);
  return m[1]!;
}

async function displayedHeight(page: Page): Promise<number> {
  const v = await page.getAttribute('[data-testid="height"]', "data-value");
  return v === null ? -1 : Number(v);
}

void describe("dashboard in a real browser", () => {
  let devnet: Devnet | undefined;
  let dashboard: Dashboard | null = null;
  let browser: Browser | undefined;
  const escapes = trapEscapes();

  before(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(
        `${CHROMIUM} not found: this test drives Debian's chromium, which .ci/run installs (apt-get install chromium). Install it the same way; never download a browser.`,
      );
    }
    devnet = await Devnet.create({
      name: "dashboard",
      blockTime: 1,
      nodes: [1, 2, 3, 4].map((i) => ({
        host: `127.0.30.${i}`,
        masternode: true,
        produce: true,
        bootstrap: i === 1 ? [] : [0],
      })),
    });
    const d = devnet;
    await waitFor(
      "a connected devnet with a few blocks",
      async () => (await d.node(0).connectionCount()) === 3 && d.node(0).n.chain.height >= 3,
      { timeoutMs: 20_000, detail: () => d.describe(), stepMs: 100 },
    );
    const node = d.node(0).n;
    dashboard = dashboardFor(node, { clock: new SystemClock(), random: new CryptoRandom() });
    assert.ok(dashboard, "node-0 runs RPC, so it has a dashboard");
    dashboard.setDevnetNodes(() => d.nodes.map((h) => devnetNodeView(h.name, h.n)));
    mkdirSync(OUT_DIR, { recursive: true });
    // Playwright gives each launch a fresh, empty --user-data-dir of its own and removes it at close.
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: CHROMIUM_ARGS,
      timeout: 20_000,
    });
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    dashboard?.stop();
    escapes.release();
    await cleanupAll(devnet);
    assert.deepEqual(escapes.errors, [], "nothing escaped to the process");
  });

  void it("refuses the data endpoint without a session, and JSON-RPC with only a session", async () => {
    const h = devnet!.node(0);
    const base = h.n.rpcUrl!;
    const stateUrl = new URL("/dashboard/api/state", base).toString();

    const anon = await http(stateUrl);
    assert.equal(anon.status, 401, anon.body);
    assert.equal(
      anon.headers["www-authenticate"],
      undefined,
      "no Basic challenge: a browser must not pop a dialog",
    );

    // A fresh link from the authenticated RPC method, traded for a session like the page does.
    const minted = await h.rpc.call<{ url: string; expiresin: number }>("dashboardurl");
    assert.ok(minted.url.startsWith(base), `${minted.url} is on ${base}`);
    assert.ok(minted.expiresin > 0 && minted.expiresin <= 600);
    const code = codeOf(minted.url);
    const login = (): Promise<HttpResult> =>
      http(new URL("/dashboard/login", base).toString(), {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ code }),
      });
    const ok = await login();
    assert.equal(ok.status, 204, ok.body);
    const setCookie = ([] as string[]).concat(ok.headers["set-cookie"] ?? []);
    assert.equal(setCookie.length, 1);
    assert.match(setCookie[0]!, /; HttpOnly/);
    assert.match(setCookie[0]!, /; SameSite=Strict/);
    assert.match(setCookie[0]!, /; Path=\/dashboard\/api/);
    const cookie = setCookie[0]!.split(";", 1)[0]!;

    const again = await login();
    assert.equal(again.status, 401, "a used code is refused");

    const bySession = await http(stateUrl, { headers: { Cookie: cookie } });
    assert.equal(bySession.status, 200, bySession.body);
    assert.equal((JSON.parse(bySession.body) as { node: { height: number } }).node.height >= 0, true);

    const rpcBySession = await http(base, {
      method: "POST",
      headers: { "Content-Type": "application/json", Cookie: cookie },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "getblockcount" }),
    });
    assert.equal(rpcBySession.status, 401, "the session cookie grants nothing on JSON-RPC");

    const creds = readCookieFile(dataDirPaths(h.dir).cookie)!;
    const basic = `Basic ${Buffer.from(`${creds.user}:${creds.password}`).toString("base64")}`;
    const byBasic = await http(stateUrl, { headers: { Authorization: basic } });
    assert.equal(byBasic.status, 200, "RPC Basic auth works on the data endpoint (curl -u)");
    const wrongBasic = await http(stateUrl, {
      headers: { Authorization: `Basic ${Buffer.from(`${creds.user}:nope`).toString("base64")}` },
    });
    assert.equal(wrongBasic.status, 401);
  });

  void it("shows the live height, its rise, and one row per peer", async () => {
    const h = devnet!.node(0);
    const context = await browser!.newContext({ viewport: { width: 1440, height: 1000 } });
    try {
      const page = await context.newPage();
      const consoleErrors: string[] = [];
      page.on("console", (m) => {
        if (m.type() === "error") consoleErrors.push(m.text());
      });
      page.on("pageerror", (e) => consoleErrors.push(String(e)));

      // One navigation = the operator's one click on the printed link.
      const loginUrl = dashboard!.loginUrl();
      await page.goto(loginUrl, { waitUntil: "domcontentloaded", timeout: 10_000 });
      await page.waitForSelector('body[data-ready="true"]', { timeout: 10_000 });
      assert.ok(!page.url().includes("login="), `the code is gone from the address bar: ${page.url()}`);
      const cookies = await context.cookies();
      assert.equal(cookies.length, 1);
      assert.equal(cookies[0]!.httpOnly, true);
      assert.equal(cookies[0]!.sameSite, "Strict");

      // Displayed height == getblockcount. A block may land between the two reads (1 s blocks,
      // 1.5 s polls): re-read both until they agree, for at most 15 s.
      let shown = -1;
      let count = -2;
      const t0 = performance.now();
      while (performance.now() - t0 < 15_000) {
        shown = await displayedHeight(page);
        count = await h.rpc.call<number>("getblockcount");
        if (shown === count && shown === (await displayedHeight(page))) break;
        await sleep(100);
      }
      assert.equal(shown, count, "the displayed height equals getblockcount");
      const shownText = await page.textContent('[data-testid="height"]');
      assert.equal(shownText, count.toLocaleString("en-US"));

      // It rises as blocks arrive.
      await waitFor("the displayed height to rise", async () => (await displayedHeight(page)) > shown, {
        timeoutMs: 15_000,
        detail: async () => `still ${await displayedHeight(page)}`,
        stepMs: 100,
      });

      // The peers table has one row per connection (re-read both until they agree).
      let rows = -1;
      let conns = -2;
      const t1 = performance.now();
      while (performance.now() - t1 < 10_000) {
        rows = await page.locator('[data-testid="peer-row"]').count();
        conns = await h.connectionCount();
        if (rows === conns) break;
        await sleep(100);
      }
      assert.equal(rows, conns, "peers table rows == getconnectioncount");
      assert.equal(conns, 3);

      // The rest of the page is there: masternodes, recent blocks, devnet tiles, a badge, the chart.
      assert.equal(await page.locator('[data-testid="masternode-row"]').count(), 4);
      assert.ok((await page.locator('[data-testid="block-row"]').count()) >= 3);
      assert.equal(await page.locator('[data-testid="devnet-node"]').count(), 4);
      assert.equal(await page.getAttribute('[data-testid="badge"]', "data-state"), "in-sync");
      const tip = await page.getAttribute('[data-testid="tip"]', "title");
      assert.match(tip ?? "", /^[0-9a-f]{64}$/, "the full tip hash is in the title");
      // The last final block beside the tip: four voting masternodes keep it within a block or two.
      const final = await waitFor(
        "a final height on the page",
        async () => {
          const v = await page.getAttribute('[data-testid="final-height"]', "data-value");
          return v !== null && Number(v) >= 1 ? Number(v) : undefined;
        },
        { timeoutMs: 10_000, stepMs: 100 },
      );
      const shownTip = await displayedHeight(page);
      assert.ok(final <= shownTip && final >= shownTip - 3, `final ${final}, tip ${shownTip}`);
      assert.ok((await page.locator('[data-testid="block-row"][data-final="true"]').count()) >= 1);

      // The event stream, read by the page's EventSource: new blocks and final blocks as they come.
      await waitFor(
        "block and finalized events in the page's list",
        async () =>
          (await page.locator('[data-testid="events"] li[data-type="block"]').count()) >= 1 &&
          (await page.locator('[data-testid="events"] li[data-type="finalized"]').count()) >= 1,
        { timeoutMs: 15_000, stepMs: 200 },
      );
      assert.equal(await page.textContent('[data-testid="events-state"]'), "live");
      const newest = await page.textContent('[data-testid="events"] li[data-type="block"]');
      assert.match(newest ?? "", /block [\d,]+ [0-9a-f]{8}…[0-9a-f]{6} \(\d+ txs\)/);

      // The doctor's seven verdicts; four connected masternodes on one chain: the chain, the
      // connections and the producing questions are answered ok.
      await waitFor(
        "the doctor panel",
        async () => (await page.locator('[data-testid="doctor-row"]').count()) === 7,
        {
          timeoutMs: 10_000,
          stepMs: 200,
        },
      );
      for (const check of ["chain", "producing", "connections"])
        assert.equal(
          await page.getAttribute(`[data-testid="doctor-row"][data-check="${check}"]`, "data-status"),
          "ok",
          check,
        );

      // Let the chart gather a few samples, then take the picture.
      await waitFor(
        "a few chart samples",
        async () => Number(await page.getAttribute('[data-testid="height-chart"]', "data-samples")) >= 4,
        { timeoutMs: 15_000, stepMs: 200 },
      );
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      assert.deepEqual(consoleErrors, [], "no errors in the page's console");
    } finally {
      await context.close();
    }
  });

  void it("a used link opens the signed-out panel, not the data", async () => {
    const url = dashboard!.loginUrl();
    const ok = await http(new URL("/dashboard/login", url).toString(), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ code: codeOf(url) }),
    });
    assert.equal(ok.status, 204);
    const context = await browser!.newContext();
    try {
      const page = await context.newPage();
      await page.goto(url, { waitUntil: "domcontentloaded", timeout: 10_000 });
      await page.waitForSelector('[data-testid="login-needed"]:not([hidden])', { timeout: 10_000 });
      assert.match((await page.textContent("#login-message")) ?? "", /already used or has expired/);
      assert.equal(await page.getAttribute('[data-testid="height"]', "data-value"), null);
    } finally {
      await context.close();
    }
  });
});
