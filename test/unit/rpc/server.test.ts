import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { request, type IncomingHttpHeaders } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { RpcCallError, RpcClient, RpcTransportError } from "../../../src/rpc/client.js";
import { readCookie } from "../../../src/rpc/cookie.js";
import { RpcError } from "../../../src/rpc/errors.js";
import {
  isLoopbackHost,
  RpcServer,
  toRpcJson,
  type RpcLogger,
  type RpcServerOptions,
} from "../../../src/rpc/server.js";
import { ManualClock, SystemClock } from "../../../src/util/clock.js";
import { CryptoRandom, SeededRandom } from "../../../src/util/random.js";

interface LogEntry {
  level: "info" | "warn" | "error";
  msg: string;
  ctx: Record<string, unknown> | undefined;
  err: unknown;
}

function captureLogger(): RpcLogger & { entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  return {
    entries,
    info: (msg, ctx) => entries.push({ level: "info", msg, ctx, err: undefined }),
    warn: (msg, ctx, err) => entries.push({ level: "warn", msg, ctx, err }),
    error: (msg, ctx, err) => entries.push({ level: "error", msg, ctx, err }),
  };
}

interface HttpResult {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  // A parsed JSON body, read freely in assertions.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

interface HttpOpts {
  method?: string;
  path?: string;
  body?: string;
  /** "user:password" for Basic auth; null for none. */
  auth?: string | null;
  headers?: Record<string, string>;
}

const USER = "alice";
const PASSWORD = "s3cret";

function basic(userpass: string): string {
  return `Basic ${Buffer.from(userpass).toString("base64")}`;
}

/** One request on its own connection, so concurrency tests really are concurrent. */
function http(port: number, opts: HttpOpts = {}): Promise<HttpResult> {
  const headers: Record<string, string> = { ...opts.headers };
  const auth = opts.auth === undefined ? `${USER}:${PASSWORD}` : opts.auth;
  if (auth !== null) headers.Authorization = basic(auth);
  if (opts.body !== undefined) {
    headers["Content-Type"] = "application/json";
    headers["Content-Length"] = String(Buffer.byteLength(opts.body));
  }
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        method: opts.method ?? "POST",
        path: opts.path ?? "/",
        headers,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const body = Buffer.concat(chunks).toString("utf8");
          let json: unknown = undefined;
          try {
            json = JSON.parse(body);
          } catch {
            // not JSON
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json });
        });
      },
    );
    req.on("error", reject);
    req.end(opts.body);
  });
}

function rpc(port: number, payload: unknown, opts: HttpOpts = {}): Promise<HttpResult> {
  return http(port, { ...opts, body: typeof payload === "string" ? payload : JSON.stringify(payload) });
}

function call(port: number, method: string, params: unknown = [], id: unknown = 1): Promise<HttpResult> {
  return rpc(port, { jsonrpc: "2.0", id, method, params });
}

const HASH = "ab".repeat(32);

function makeServer(opts: Partial<RpcServerOptions> = {}, random = new CryptoRandom()) {
  const logger = captureLogger();
  const calls: Array<{ method: string; ok: boolean; durationMs: number }> = [];
  const server = new RpcServer(
    {
      host: "127.0.0.1",
      port: 0,
      auth: { kind: "userpass", user: USER, password: PASSWORD },
      onCall: (method, durationMs, ok) => calls.push({ method, durationMs, ok }),
      ...opts,
    },
    { logger, clock: new SystemClock(), random },
  );
  server.register("echo", {
    description: "Returns its arguments.",
    params: [
      { name: "a", type: "any", optional: true, description: "first" },
      { name: "b", type: "any", optional: true, description: "second" },
    ],
    handler: (params) => params,
  });
  server.register("getblockhash", {
    description: "Returns the hash of the block at a height.",
    params: [{ name: "height", type: "integer", min: 0, description: "The block height." }],
    result: '"hash" (string) the block hash',
    examples: ["time-cli getblockhash 1000"],
    handler: (params) => {
      if (params.height !== 7) throw new RpcError(-8, "block height out of range");
      return HASH;
    },
  });
  server.register("getblock", {
    description: "Returns a block.",
    params: [{ name: "block", type: "hashOrHeight", description: "Hash or height." }],
    handler: (params) => {
      throw new RpcError(-5, `block not found: ${String(params.block)}`);
    },
  });
  server.register("boom", {
    description: "Always fails with an unexpected error.",
    params: [],
    handler: () => {
      throw new Error("secret internal detail /home/db");
    },
  });
  server.register("asyncboom", {
    description: "Fails asynchronously.",
    params: [],
    handler: async () => {
      await sleep(1);
      throw new Error("async secret");
    },
  });
  server.register("big", {
    description: "Returns bigints.",
    params: [],
    handler: () => ({
      small: 5n,
      max: 2n ** 53n - 1n,
      huge: 2n ** 64n,
      neg: -(2n ** 60n),
      list: [1n],
      bytes: Buffer.from([1, 255]),
    }),
  });
  server.register("slow", {
    description: "Sleeps.",
    params: [{ name: "ms", type: "integer", min: 0, description: "How long." }],
    handler: async (params, ctx) => {
      await sleep(params.ms as number, undefined, { signal: ctx.signal });
      return "done";
    },
  });
  return { server, logger, calls };
}

void describe("RpcServer (userpass)", () => {
  const { server, logger, calls } = makeServer();
  let port = 0;

  before(async () => {
    const addr = await server.start();
    port = addr.port;
    assert.equal(addr.host, "127.0.0.1");
    assert.deepEqual(server.address, addr);
  });
  after(async () => {
    await server.stop();
  });

  void it("answers a call in JSON-RPC 2.0 style", async () => {
    const r = await call(port, "getblockhash", [7], "abc");
    assert.equal(r.status, 200);
    assert.match(String(r.headers["content-type"]), /application\/json/);
    assert.deepEqual(r.json, { jsonrpc: "2.0", id: "abc", result: HASH });
  });

  void it("accepts named params", async () => {
    const r = await call(port, "getblockhash", { height: 7 });
    assert.equal(r.json.result, HASH);
  });

  void it("accepts jsonrpc 1.0 and missing jsonrpc, answering 2.0", async () => {
    const r1 = await rpc(port, { jsonrpc: "1.0", id: 3, method: "echo", params: [1] });
    assert.deepEqual(r1.json, { jsonrpc: "2.0", id: 3, result: { a: 1 } });
    const r2 = await rpc(port, { id: 4, method: "echo", params: [] });
    assert.deepEqual(r2.json, { jsonrpc: "2.0", id: 4, result: {} });
    const r3 = await rpc(port, { jsonrpc: "3.0", id: 5, method: "echo" });
    assert.equal(r3.json.error.code, -32600);
  });

  void it("refuses a missing or wrong password with 401", async () => {
    for (const auth of [null, `${USER}:wrong`, `bob:${PASSWORD}`, `${USER}:${PASSWORD}x`]) {
      const r = await rpc(port, { id: 1, method: "echo" }, { auth });
      assert.equal(r.status, 401, `auth ${String(auth)}`);
      assert.equal(r.headers["www-authenticate"], 'Basic realm="jsonrpc"');
      assert.equal(typeof r.json.error, "string");
    }
    const garbage = await rpc(
      port,
      { id: 1, method: "echo" },
      { auth: null, headers: { Authorization: "Bearer x" } },
    );
    assert.equal(garbage.status, 401);
    assert.ok(logger.entries.some((e) => e.level === "warn" && /wrong credentials/.test(e.msg)));
  });

  void it("malformed JSON is -32700 with HTTP 200", async () => {
    const r = await rpc(port, '{"id":1,"method":');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, {
      jsonrpc: "2.0",
      id: null,
      error: { code: -32700, message: "parse error: invalid JSON" },
    });
  });

  void it("a non-object request and an empty batch are -32600", async () => {
    const r1 = await rpc(port, "42");
    assert.equal(r1.json.error.code, -32600);
    assert.equal(r1.json.id, null);
    const r2 = await rpc(port, "[]");
    assert.equal(r2.json.error.code, -32600);
    assert.match(r2.json.error.message, /empty batch/);
    const r3 = await rpc(port, { id: 1, method: 5 });
    assert.equal(r3.json.error.code, -32600);
    assert.equal(r3.json.id, 1);
    const r4 = await rpc(port, { id: { x: 1 }, method: "echo" });
    assert.equal(r4.json.error.code, -32600);
    assert.equal(r4.json.id, null);
  });

  void it("an unknown method is -32601", async () => {
    const r = await call(port, "nosuch");
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.error, { code: -32601, message: 'method not found: nosuch (see "help")' });
  });

  void it("bad params are -32602 naming the param", async () => {
    const r1 = await call(port, "getblockhash", ["abc"]);
    assert.deepEqual(r1.json.error, {
      code: -32602,
      message: 'invalid parameter "height": expected a non-negative integer, got "abc"',
    });
    const r2 = await call(port, "getblockhash", [1, 2, 3]);
    assert.equal(r2.json.error.message, "too many parameters: getblockhash takes 1, got 3");
    const r3 = await call(port, "getblock", []);
    assert.equal(r3.json.error.message, 'missing required parameter "block"');
  });

  void it("a plain Error is -32603 without its text, and logged with its stack", async () => {
    for (const method of ["boom", "asyncboom"]) {
      const r = await call(port, method);
      assert.deepEqual(r.json.error, { code: -32603, message: "internal error" });
      assert.doesNotMatch(r.body, /secret/);
    }
    const logged = logger.entries.filter((e) => e.level === "error" && e.ctx?.method === "boom");
    assert.equal(logged.length, 1);
    assert.ok(logged[0]!.err instanceof Error && typeof logged[0]!.err.stack === "string");
  });

  void it("RpcError codes pass through", async () => {
    const r1 = await call(port, "getblock", [HASH.toUpperCase()]);
    assert.deepEqual(r1.json.error, { code: -5, message: `block not found: ${HASH}` });
    const r2 = await call(port, "getblockhash", [9]);
    assert.deepEqual(r2.json.error, { code: -8, message: "block height out of range" });
  });

  void it("a batch answers each call independently and skips notifications", async () => {
    const r = await rpc(port, [
      { jsonrpc: "2.0", id: 1, method: "getblockhash", params: [7] },
      { jsonrpc: "2.0", id: 2, method: "nosuch" },
      { jsonrpc: "2.0", method: "echo", params: [1] },
      { jsonrpc: "2.0", id: 3, method: "getblockhash", params: ["x"] },
      7,
      { jsonrpc: "2.0", id: 4, method: "boom" },
      { jsonrpc: "2.0", id: 5, method: "echo", params: { b: "z" } },
    ]);
    assert.equal(r.status, 200);
    assert.ok(Array.isArray(r.json));
    assert.equal(r.json.length, 6);
    assert.deepEqual(r.json[0], { jsonrpc: "2.0", id: 1, result: HASH });
    assert.equal(r.json[1].error.code, -32601);
    assert.equal(r.json[2].id, 3);
    assert.equal(r.json[2].error.code, -32602);
    assert.deepEqual(r.json[3], {
      jsonrpc: "2.0",
      id: null,
      error: { code: -32600, message: "invalid request: expected a JSON object" },
    });
    assert.equal(r.json[4].error.code, -32603);
    assert.deepEqual(r.json[5], { jsonrpc: "2.0", id: 5, result: { b: "z" } });
  });

  void it("notifications alone get HTTP 204 and no body", async () => {
    const r1 = await rpc(port, { jsonrpc: "2.0", method: "echo" });
    assert.equal(r1.status, 204);
    assert.equal(r1.body, "");
    const r2 = await rpc(port, [
      { jsonrpc: "2.0", method: "echo" },
      { jsonrpc: "2.0", method: "nosuch" },
    ]);
    assert.equal(r2.status, 204);
  });

  void it("serialises bigint as a number when safe, else as a string; bytes as hex", async () => {
    const r = await call(port, "big");
    assert.equal(
      r.body,
      '{"jsonrpc":"2.0","id":1,"result":{"small":5,"max":9007199254740991,"huge":"18446744073709551616","neg":"-1152921504606846976","list":[1],"bytes":"01ff"}}',
    );
    assert.equal(toRpcJson(undefined), "null");
    assert.equal(toRpcJson(12n), "12");
  });

  void it("help lists every method sorted, with synopses", async () => {
    const r = await call(port, "help");
    assert.equal(
      r.json.result,
      [
        "asyncboom",
        "big",
        "boom",
        "echo [a] [b]",
        "getblock block",
        "getblockhash height",
        "help [command]",
        "slow ms",
      ].join("\n"),
    );
  });

  void it("help METHOD gives the full description", async () => {
    const r = await call(port, "help", ["getblockhash"]);
    const text: string = r.json.result;
    assert.match(text, /^getblockhash height\n\nReturns the hash of the block at a height\./);
    assert.match(text, /Arguments:\n1\. height {2}\(integer, required, min 0\) The block height\./);
    assert.match(text, /Result:\n"hash" \(string\) the block hash/);
    assert.match(text, /Examples:\n> time-cli getblockhash 1000/);
    const r2 = await call(port, "help", ["nosuch"]);
    assert.deepEqual(r2.json.error, { code: -8, message: "help: unknown method nosuch" });
  });

  void it("reports every call of a registered method to onCall", async () => {
    calls.length = 0;
    await call(port, "getblockhash", [7]);
    await call(port, "getblockhash", [9]);
    await call(port, "nosuch");
    assert.deepEqual(
      calls.map((c) => [c.method, c.ok]),
      [
        ["getblockhash", true],
        ["getblockhash", false],
      ],
    );
    assert.ok(calls.every((c) => c.durationMs >= 0));
  });

  void it("routes: GET / is not RPC, unknown paths are 404", async () => {
    const r1 = await http(port, { method: "GET", path: "/" });
    assert.equal(r1.status, 405);
    assert.equal(r1.headers.allow, "POST");
    const r2 = await http(port, { method: "GET", path: "/nothing" });
    assert.equal(r2.status, 404);
  });

  void it("RpcClient calls, batches and maps errors", async () => {
    const client = new RpcClient({
      url: `http://127.0.0.1:${port}/`,
      user: USER,
      password: PASSWORD,
      timeoutMs: 5000,
    });
    assert.equal(await client.call("getblockhash", [7]), HASH);
    await assert.rejects(client.call("getblock", [1]), (err: unknown) => {
      assert.ok(err instanceof RpcCallError);
      assert.equal(err.code, -5);
      assert.equal(err.message, "block not found: 1");
      return true;
    });
    const results = await client.batch([{ method: "getblockhash", params: [7] }, { method: "nosuch" }]);
    assert.deepEqual(results[0], { ok: true, result: HASH });
    assert.equal(results[1]!.ok, false);
    assert.equal(!results[1]!.ok && results[1]!.error.code, -32601);

    const viaUrl = new RpcClient({ url: `http://${USER}:${PASSWORD}@127.0.0.1:${port}/` });
    assert.equal(await viaUrl.call("getblockhash", { height: 7 }), HASH);

    const wrong = new RpcClient({ url: `http://127.0.0.1:${port}/`, user: USER, password: "nope" });
    await assert.rejects(
      wrong.call("help"),
      (err: unknown) => err instanceof RpcTransportError && err.code === "UNAUTHORIZED",
    );
  });
});

void describe("RpcServer limits", () => {
  void it("refuses a body over the cap with 413, chunked too, and keeps serving", async () => {
    const { server } = makeServer({ maxBodyBytes: 1024 });
    const { port } = await server.start();
    try {
      const big = JSON.stringify({ id: 1, method: "echo", params: ["x".repeat(4000)] });
      const r1 = await rpc(port, big);
      assert.equal(r1.status, 413);
      assert.deepEqual(r1.json, {
        jsonrpc: "2.0",
        id: null,
        error: { code: -32600, message: "request body too large: limit 1024 bytes" },
      });
      assert.equal((await call(port, "getblockhash", [7])).json.result, HASH);

      // Chunked (no Content-Length): keep sending until the server answers.
      const status = await new Promise<number>((resolve, reject) => {
        let answered = false;
        const req = request(
          {
            host: "127.0.0.1",
            port,
            method: "POST",
            path: "/",
            agent: false,
            headers: { Authorization: basic(`${USER}:${PASSWORD}`), "Transfer-Encoding": "chunked" },
          },
          (res) => {
            answered = true;
            res.resume();
            res.on("end", () => resolve(res.statusCode ?? 0));
          },
        );
        req.on("error", (err) => (answered ? undefined : reject(err)));
        const pump = async (): Promise<void> => {
          for (let i = 0; i < 1000 && !answered; i++) {
            req.write("x".repeat(256));
            await sleep(2);
          }
          req.end();
        };
        void pump();
      });
      assert.equal(status, 413);
      assert.equal((await call(port, "getblockhash", [7])).json.result, HASH);
      // A body just under the cap is fine.
      const ok = await call(port, "echo", ["y".repeat(900)]);
      assert.equal(ok.status, 200);
    } finally {
      await server.stop();
    }
  });

  void it("answers 503 busy above maxConcurrent and recovers", async () => {
    const { server } = makeServer({ maxConcurrent: 2 });
    const { port } = await server.start();
    try {
      const results = await Promise.all(Array.from({ length: 20 }, () => call(port, "slow", [300])));
      const ok = results.filter((r) => r.status === 200);
      const busy = results.filter((r) => r.status === 503);
      assert.equal(ok.length + busy.length, 20);
      assert.ok(ok.length >= 2, `${ok.length} succeeded`);
      assert.ok(busy.length >= 1, `${busy.length} were refused`);
      for (const r of ok) assert.equal(r.json.result, "done");
      for (const r of busy) {
        assert.deepEqual(r.json, {
          jsonrpc: "2.0",
          id: null,
          error: { code: -32000, message: "server busy: too many concurrent requests (limit 2)" },
        });
      }
      assert.equal((await call(port, "getblockhash", [7])).json.result, HASH);
    } finally {
      await server.stop();
    }
  });

  void it("times out a slow handler with -32000", async () => {
    const { server, logger } = makeServer({ requestTimeoutMs: 100 });
    const { port } = await server.start();
    try {
      const r = await call(port, "slow", [5000]);
      assert.deepEqual(r.json.error, { code: -32000, message: "request timed out" });
      assert.ok(logger.entries.some((e) => e.level === "warn" && /timed out/.test(e.msg)));
      assert.equal((await call(port, "slow", [1])).json.result, "done");
    } finally {
      await server.stop();
    }
  });

  void it("refuses batches over maxBatch", async () => {
    const { server } = makeServer({ maxBatch: 3 });
    const { port } = await server.start();
    try {
      const batch = Array.from({ length: 4 }, (_, i) => ({ id: i, method: "echo" }));
      const r = await rpc(port, batch);
      assert.equal(r.json.error.code, -32600);
      assert.match(r.json.error.message, /batch of 4 calls exceeds the limit of 3/);
    } finally {
      await server.stop();
    }
  });
});

void describe("RpcServer cookie auth", () => {
  let dir = "";
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "rpc-cookie-"));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  void it("writes a 0600 cookie from random.bytes(32), accepts it, and removes it at stop", async () => {
    const cookieFile = join(dir, ".cookie");
    const { server } = makeServer({ auth: { kind: "cookie", cookieFile } }, new SeededRandom(42));
    const { port } = await server.start();
    try {
      assert.ok(existsSync(cookieFile));
      assert.equal(statSync(cookieFile).mode & 0o777, 0o600);
      const content = readFileSync(cookieFile, "utf8");
      assert.match(content, /^__cookie__:[0-9a-f]{64}$/);
      assert.equal(content, `__cookie__:${new SeededRandom(42).bytes(32).toString("hex")}`);
      const creds = readCookie(dir);
      assert.ok(creds);
      assert.equal(creds.user, "__cookie__");

      const r = await call(port, "getblockhash", [7], 1);
      assert.equal(r.status, 401);
      const ok = await rpc(
        port,
        { id: 1, method: "getblockhash", params: [7] },
        { auth: `${creds.user}:${creds.password}` },
      );
      assert.equal(ok.json.result, HASH);
      const bad = await rpc(port, { id: 1, method: "echo" }, { auth: `${creds.user}:${"0".repeat(64)}` });
      assert.equal(bad.status, 401);
    } finally {
      await server.stop();
    }
    assert.equal(existsSync(cookieFile), false);
    assert.equal(readCookie(dir), null);
  });

  void it("leaves a cookie that is no longer ours", async () => {
    const cookieFile = join(dir, ".cookie");
    const a = makeServer({ auth: { kind: "cookie", cookieFile } }, new SeededRandom(1)).server;
    const b = makeServer({ auth: { kind: "cookie", cookieFile } }, new SeededRandom(2)).server;
    await a.start();
    await b.start();
    const bCookie = readFileSync(cookieFile, "utf8");
    await a.stop();
    assert.equal(readFileSync(cookieFile, "utf8"), bCookie);
    await b.stop();
    assert.equal(existsSync(cookieFile), false);
  });
});

void describe("RpcServer routes", () => {
  void it("addRoute mounts GET handlers with and without auth", async () => {
    const { server } = makeServer();
    server.addRoute("GET", "/metrics", (_req, res) => {
      res.writeHead(200, { "Content-Type": "text/plain" });
      res.end("height 7\n");
    });
    server.addRoute(
      "GET",
      "/",
      async (_req, res) => {
        await sleep(1);
        res.writeHead(200, { "Content-Type": "text/html" });
        res.end("<h1>dashboard</h1>");
      },
      { auth: false },
    );
    server.addRoute("GET", "/broken", () => {
      throw new Error("route failure");
    });
    assert.throws(() => server.addRoute("POST", "/", () => undefined), /JSON-RPC endpoint/);
    assert.throws(() => server.addRoute("GET", "/metrics", () => undefined), /already registered/);
    const { port } = await server.start();
    try {
      const noAuth = await http(port, { method: "GET", path: "/metrics", auth: null });
      assert.equal(noAuth.status, 401);
      const withAuth = await http(port, { method: "GET", path: "/metrics?x=1" });
      assert.equal(withAuth.status, 200);
      assert.equal(withAuth.body, "height 7\n");
      const open = await http(port, { method: "GET", path: "/", auth: null });
      assert.equal(open.status, 200);
      assert.equal(open.body, "<h1>dashboard</h1>");
      const broken = await http(port, { method: "GET", path: "/broken" });
      assert.equal(broken.status, 500);
      assert.doesNotMatch(broken.body, /route failure/);
      const post = await http(port, { method: "POST", path: "/metrics", body: "{}" });
      assert.equal(post.status, 405);
      // RPC still works next to a GET / route.
      assert.equal((await call(port, "getblockhash", [7])).json.result, HASH);
    } finally {
      await server.stop();
    }
  });
});

void describe("RpcServer lifecycle and checks", () => {
  void it("knows loopback hosts", () => {
    for (const h of ["127.0.0.1", "127.0.1.3", "localhost", "::1", "[::1]", "::ffff:127.0.0.1"]) {
      assert.equal(isLoopbackHost(h), true, h);
    }
    for (const h of ["0.0.0.0", "10.0.0.1", "::", "192.168.1.1", "example.com", "128.0.0.1"]) {
      assert.equal(isLoopbackHost(h), false, h);
    }
  });

  void it("warns when asked to listen on a non-loopback address", async () => {
    const { server, logger } = makeServer({ host: "0.0.0.0" });
    await server.start();
    await server.stop();
    assert.ok(logger.entries.some((e) => e.level === "warn" && /non-loopback/.test(e.msg)));
  });

  void it("stop closes keep-alive connections and is idempotent; start fails clearly on a used port", async () => {
    const { server } = makeServer();
    const { port } = await server.start();
    const client = new RpcClient({ url: `http://127.0.0.1:${port}/`, user: USER, password: PASSWORD });
    assert.equal(await client.call("getblockhash", [7]), HASH);
    const other = makeServer({ port }).server;
    await assert.rejects(other.start(), /cannot listen for RPC on 127\.0\.0\.1:\d+/);
    await server.stop();
    await server.stop();
    assert.equal(server.address, null);
    await assert.rejects(
      client.call("help"),
      (err: unknown) => err instanceof RpcTransportError && err.code === "CONNECTION_REFUSED",
    );
  });

  void it("refuses bad options and bad registrations", () => {
    assert.throws(
      () => makeServer({ auth: { kind: "userpass", user: "u", password: "" } }),
      /must not be empty/,
    );
    assert.throws(() => makeServer({ maxConcurrent: 0 }), /maxConcurrent must be a positive integer/);
    const { server } = makeServer();
    assert.throws(
      () => server.register("echo", { description: "", params: [], handler: () => 1 }),
      /already registered/,
    );
    assert.throws(
      () => server.register("Bad-Name", { description: "", params: [], handler: () => 1 }),
      /bad RPC method name/,
    );
  });
});

describe("RpcServer: callerWaiting (the sync commits in short parts while it is true)", () => {
  it("is true from a connection's arrival until its request is read, and false again once answered", async () => {
    const clock = new ManualClock(1_000_000);
    const server = new RpcServer(
      { host: "127.0.0.1", port: 0, auth: { kind: "userpass", user: USER, password: PASSWORD } },
      { logger: captureLogger(), clock, random: new CryptoRandom() },
    );
    server.register("ping", { description: "Answers 1.", params: [], handler: () => 1 });
    const { port } = await server.start();
    const silent = connect(port, "127.0.0.1");
    try {
      assert.equal(server.callerWaiting(), false);
      // The server sees the connection on a later turn: wait for it (bounded).
      for (let i = 0; i < 200 && !server.callerWaiting(); i++) await sleep(10);
      assert.equal(server.callerWaiting(), true, "a connection with no request yet is a caller waiting");
      // A call on a connection of its own is answered; the silent one still counts.
      assert.equal((await call(port, "ping")).status, 200);
      assert.equal(server.callerWaiting(), true);
      // Silent for 10 s: not waiting for anything (so it cannot slow the sync for good).
      clock.advance(10_000);
      assert.equal(server.callerWaiting(), false);
      // A new connection counts from its arrival; once its call is answered, nothing waits.
      assert.equal((await call(port, "ping")).status, 200);
      assert.equal(server.callerWaiting(), false);
    } finally {
      silent.destroy();
      await server.stop();
    }
  });
});
