import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { INVALID_PARAMS, RpcError } from "../../../src/rpc/errors.js";
import {
  describeParams,
  parseParam,
  parseParams,
  synopsis,
  validateParamSpecs,
  type ParamSpec,
} from "../../../src/rpc/params.js";

const HASH = "AB".repeat(32);

function spec(type: ParamSpec["type"], extra: Partial<ParamSpec> = {}): ParamSpec {
  return { name: "p", type, description: "test", ...extra };
}

/** Asserts that fn throws INVALID_PARAMS with exactly this message. */
function throwsParams(fn: () => unknown, message: string | RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof RpcError, `expected RpcError, got ${String(err)}`);
    assert.equal(err.code, INVALID_PARAMS);
    if (typeof message === "string") assert.equal(err.message, message);
    else assert.match(err.message, message);
    return true;
  });
}

void describe("parseParam types", () => {
  void it("string", () => {
    assert.equal(parseParam(spec("string"), "x"), "x");
    assert.equal(parseParam(spec("string"), ""), "");
    throwsParams(() => parseParam(spec("string"), 5), 'invalid parameter "p": expected a string, got 5');
  });

  void it("integer accepts safe integers only", () => {
    assert.equal(parseParam(spec("integer"), -3), -3);
    throwsParams(
      () => parseParam(spec("integer"), 1.5),
      'invalid parameter "p": expected an integer, got 1.5',
    );
    throwsParams(
      () => parseParam(spec("integer"), "7"),
      'invalid parameter "p": expected an integer, got "7"',
    );
    throwsParams(() => parseParam(spec("integer"), 2 ** 53), /expected an integer/);
  });

  void it("integer with min 0 says non-negative", () => {
    const height: ParamSpec = { name: "height", type: "integer", min: 0, description: "h" };
    assert.equal(parseParam(height, 0), 0);
    throwsParams(
      () => parseParam(height, "abc"),
      'invalid parameter "height": expected a non-negative integer, got "abc"',
    );
    throwsParams(
      () => parseParam(height, -1),
      'invalid parameter "height": expected a non-negative integer, got -1',
    );
  });

  void it("integer min/max range", () => {
    const count = spec("integer", { name: "count", min: 1, max: 100 });
    assert.equal(parseParam(count, 1), 1);
    assert.equal(parseParam(count, 100), 100);
    throwsParams(
      () => parseParam(count, 101),
      'invalid parameter "count": expected an integer between 1 and 100, got 101',
    );
    throwsParams(() => parseParam(count, 0), /between 1 and 100, got 0/);
    throwsParams(() => parseParam(spec("integer", { min: 5 }), 4), /expected an integer >= 5, got 4/);
    throwsParams(() => parseParam(spec("integer", { max: 5 }), 6), /expected an integer <= 5, got 6/);
  });

  void it("number", () => {
    assert.equal(parseParam(spec("number"), 1.5), 1.5);
    throwsParams(
      () => parseParam(spec("number"), "1.5"),
      'invalid parameter "p": expected a number, got "1.5"',
    );
    throwsParams(
      () => parseParam(spec("number", { min: 0, max: 1 }), 1.5),
      /a number between 0 and 1, got 1.5/,
    );
  });

  void it("boolean", () => {
    assert.equal(parseParam(spec("boolean"), false), false);
    throwsParams(
      () => parseParam(spec("boolean"), "true"),
      /expected a boolean \(true or false\), got "true"/,
    );
    throwsParams(() => parseParam(spec("boolean"), 1), /expected a boolean/);
  });

  void it("hash is 64 hex chars and comes back lowercased", () => {
    assert.equal(parseParam(spec("hash"), HASH), HASH.toLowerCase());
    throwsParams(
      () => parseParam(spec("hash"), "ab"),
      'invalid parameter "p": expected a 64-character hex hash, got "ab"',
    );
    throwsParams(() => parseParam(spec("hash"), "zz".repeat(32)), /64-character hex hash/);
    throwsParams(() => parseParam(spec("hash"), 12), /64-character hex hash, got 12/);
  });

  void it("hashOrHeight takes a hash or a non-negative integer", () => {
    const s = spec("hashOrHeight", { name: "block" });
    assert.equal(parseParam(s, HASH), HASH.toLowerCase());
    assert.equal(parseParam(s, 0), 0);
    assert.equal(parseParam(s, 123), 123);
    throwsParams(
      () => parseParam(s, -1),
      /invalid parameter "block": expected a 64-character hex hash or a height/,
    );
    throwsParams(() => parseParam(s, "12"), /got "12"/);
    throwsParams(() => parseParam(s, 1.5), /got 1.5/);
  });

  void it("address is a non-empty string", () => {
    assert.equal(parseParam(spec("address"), "TIME1abc"), "TIME1abc");
    throwsParams(() => parseParam(spec("address"), ""), /expected an address \(a non-empty string\), got ""/);
    throwsParams(() => parseParam(spec("address"), 5), /expected an address/);
  });

  void it("amount takes a decimal string or a number and returns a string", () => {
    const amount = spec("amount", { name: "amount" });
    assert.equal(parseParam(amount, "12.5"), "12.5");
    assert.equal(parseParam(amount, "100"), "100");
    assert.equal(parseParam(amount, 12.5), "12.5");
    assert.equal(parseParam(amount, 0.00000001), "0.00000001");
    assert.equal(parseParam(amount, 3), "3");
    throwsParams(() => parseParam(amount, "1e5"), /invalid parameter "amount": expected an amount/);
    throwsParams(() => parseParam(amount, "-1"), /expected an amount/);
    throwsParams(() => parseParam(amount, -1), /expected an amount/);
    throwsParams(() => parseParam(amount, "abc"), /got "abc"/);
    throwsParams(() => parseParam(amount, true), /got true/);
  });

  void it("object and array", () => {
    assert.deepEqual(parseParam(spec("object"), { a: 1 }), { a: 1 });
    throwsParams(() => parseParam(spec("object"), [1]), /expected a JSON object, got \[1\]/);
    throwsParams(() => parseParam(spec("object"), "x"), /expected a JSON object/);
    assert.deepEqual(parseParam(spec("array"), [1, 2]), [1, 2]);
    throwsParams(() => parseParam(spec("array"), { a: 1 }), /expected a JSON array, got \{"a":1\}/);
  });

  void it("any accepts everything", () => {
    for (const v of [1, "x", null, true, [1], { a: 1 }]) assert.deepEqual(parseParam(spec("any"), v), v);
  });

  void it("enum lists the allowed values", () => {
    const command = spec("string", { name: "command", enum: ["add", "remove", "onetry"] });
    assert.equal(parseParam(command, "remove"), "remove");
    throwsParams(
      () => parseParam(command, "drop"),
      'invalid parameter "command": expected one of "add", "remove", "onetry", got "drop"',
    );
  });

  void it("long bad values are truncated in messages", () => {
    assert.throws(
      () => parseParam(spec("integer"), "x".repeat(500)),
      (err: Error) => err.message.length < 150 && err.message.includes("…"),
    );
  });
});

void describe("parseParams", () => {
  const getblockhash: ParamSpec[] = [{ name: "height", type: "integer", min: 0, description: "h" }];
  const setban: ParamSpec[] = [
    { name: "ip", type: "string", description: "ip" },
    { name: "command", type: "string", enum: ["add", "remove"], description: "c" },
    { name: "seconds", type: "integer", min: 1, optional: true, description: "s" },
  ];

  void it("positional", () => {
    assert.deepEqual(parseParams("getblockhash", getblockhash, [5]), { height: 5 });
    assert.deepEqual(parseParams("setban", setban, ["1.2.3.4", "add", 60]), {
      ip: "1.2.3.4",
      command: "add",
      seconds: 60,
    });
  });

  void it("named", () => {
    assert.deepEqual(parseParams("getblockhash", getblockhash, { height: 5 }), { height: 5 });
    assert.deepEqual(parseParams("setban", setban, { command: "remove", ip: "::1" }), {
      ip: "::1",
      command: "remove",
    });
  });

  void it("optional params may be left out, or given as null; they are then absent", () => {
    const parsed = parseParams("setban", setban, ["1.2.3.4", "add"]);
    assert.deepEqual(parsed, { ip: "1.2.3.4", command: "add" });
    assert.equal(Object.hasOwn(parsed, "seconds"), false);
    assert.deepEqual(parseParams("setban", setban, ["1.2.3.4", "add", null]), {
      ip: "1.2.3.4",
      command: "add",
    });
  });

  void it("absent or null params mean none", () => {
    assert.deepEqual(parseParams("getblockcount", [], undefined), {});
    assert.deepEqual(parseParams("getblockcount", [], null), {});
    assert.deepEqual(parseParams("getblockcount", [], []), {});
    assert.deepEqual(parseParams("getblockcount", [], {}), {});
  });

  void it("missing required parameter", () => {
    throwsParams(() => parseParams("getblockhash", getblockhash, []), 'missing required parameter "height"');
    throwsParams(() => parseParams("getblockhash", getblockhash, {}), 'missing required parameter "height"');
    throwsParams(
      () => parseParams("getblockhash", getblockhash, [null]),
      'missing required parameter "height"',
    );
    throwsParams(() => parseParams("setban", setban, { ip: "x" }), 'missing required parameter "command"');
  });

  void it("too many parameters", () => {
    throwsParams(
      () => parseParams("getblockhash", getblockhash, [1, 2, 3]),
      "too many parameters: getblockhash takes 1, got 3",
    );
    throwsParams(
      () => parseParams("setban", setban, ["a", "add", 1, 2]),
      "too many parameters: setban takes 2 to 3, got 4",
    );
    throwsParams(
      () => parseParams("getblockcount", [], [1]),
      "too many parameters: getblockcount takes 0, got 1",
    );
  });

  void it("unknown named parameter", () => {
    throwsParams(
      () => parseParams("getblockhash", getblockhash, { height: 1, verbose: true }),
      'unknown parameter "verbose" for getblockhash (accepted: height)',
    );
  });

  void it("wrong type names the param", () => {
    throwsParams(
      () => parseParams("getblockhash", getblockhash, ["abc"]),
      'invalid parameter "height": expected a non-negative integer, got "abc"',
    );
    throwsParams(
      () => parseParams("setban", setban, { ip: "x", command: "add", seconds: 0 }),
      'invalid parameter "seconds": expected an integer >= 1, got 0',
    );
  });

  void it("params that are neither array nor object", () => {
    throwsParams(
      () => parseParams("getblockhash", getblockhash, "5"),
      'params must be an array or an object, got "5"',
    );
    throwsParams(() => parseParams("getblockhash", getblockhash, 5), /params must be an array or an object/);
  });

  void it("a hash param is lowercased through parseParams too", () => {
    const specs: ParamSpec[] = [{ name: "hash", type: "hash", description: "h" }];
    assert.deepEqual(parseParams("getblock", specs, [HASH]), { hash: HASH.toLowerCase() });
    throwsParams(() => parseParams("getblock", specs, []), 'missing required parameter "hash"');
  });
});

void describe("spec helpers", () => {
  void it("validateParamSpecs refuses required after optional, duplicates and bad enums", () => {
    assert.throws(
      () =>
        validateParamSpecs("m", [
          { name: "a", type: "integer", optional: true, description: "" },
          { name: "b", type: "integer", description: "" },
        ]),
      /required parameter "b" follows an optional one/,
    );
    assert.throws(
      () =>
        validateParamSpecs("m", [
          { name: "a", type: "integer", description: "" },
          { name: "a", type: "string", description: "" },
        ]),
      /duplicate parameter "a"/,
    );
    assert.throws(
      () => validateParamSpecs("m", [{ name: "a", type: "integer", enum: ["x"], description: "" }]),
      /has an enum but is not a string/,
    );
    assert.doesNotThrow(() =>
      validateParamSpecs("m", [
        { name: "a", type: "integer", description: "" },
        { name: "b", type: "string", optional: true, description: "" },
      ]),
    );
  });

  void it("synopsis brackets optional params", () => {
    assert.equal(
      synopsis("getblockhash", [{ name: "height", type: "integer", description: "" }]),
      "getblockhash height",
    );
    assert.equal(
      synopsis("setban", [
        { name: "ip", type: "string", description: "" },
        { name: "seconds", type: "integer", optional: true, description: "" },
      ]),
      "setban ip [seconds]",
    );
    assert.equal(synopsis("getblockcount", []), "getblockcount");
  });

  void it("describeParams numbers each param with its facts", () => {
    const lines = describeParams([
      { name: "height", type: "integer", min: 0, description: "The height." },
      { name: "command", type: "string", enum: ["add", "remove"], optional: true, description: "What." },
    ]);
    assert.equal(lines[0], "1. height   (integer, required, min 0) The height.");
    assert.equal(lines[1], "2. command  (string, optional, one of: add, remove) What.");
  });
});
