/**
 * Declarative parameter specs for RPC methods, and the parser that checks a request's params
 * against them. A handler receives values that already have the declared type, so handlers
 * never re-validate shapes; they only check meaning (does this block exist?).
 *
 * Params may be positional (a JSON array, bitcoin-cli's default) or named (a JSON object,
 * `time-cli --named`). Every failure is an RpcError INVALID_PARAMS (-32602) whose message
 * names the parameter.
 */
import { INVALID_PARAMS, RpcError } from "./errors.js";

export type ParamType =
  | "string"
  | "integer"
  | "number"
  | "boolean"
  | "hash"
  | "hashOrHeight"
  | "address"
  | "amount"
  | "object"
  | "array"
  | "any";

export interface ParamSpec {
  name: string;
  type: ParamType;
  optional?: boolean;
  description: string;
  /** Inclusive bounds, for "integer", "number" and the height of "hashOrHeight". */
  min?: number;
  max?: number;
  /** Accepted values, for "string". */
  enum?: readonly string[];
}

/**
 * Parsed params keyed by name. An optional param that was not given (or given as null) is
 * absent from the record. Value types per ParamType:
 * - string, address: string (address is only checked to be non-empty; decoding is the handler's)
 * - integer: a safe integer; number: a finite number; boolean: boolean
 * - hash: 64 hex characters, lowercased
 * - hashOrHeight: a lowercased hash string, or a non-negative safe integer
 * - amount: a decimal string such as "12.5" (a JSON number is converted to one); turning it
 *   into units is the handler's job
 * - object: a plain object; array: an array; any: any JSON value
 */
export type ParsedParams = Record<string, unknown>;

const HASH_RE = /^[0-9a-fA-F]{64}$/;
const DECIMAL_RE = /^[0-9]+(\.[0-9]+)?$/;
/** Longest rendering of a bad value quoted back in an error message. */
const MAX_SHOWN_VALUE_CHARS = 60;

function invalid(message: string): RpcError {
  return new RpcError(INVALID_PARAMS, message);
}

/** A short JSON rendering of a value for error messages. */
export function showValue(value: unknown): string {
  if (value === undefined) return "nothing";
  let s: string;
  try {
    s = JSON.stringify(value) ?? `a ${typeof value}`;
  } catch {
    s = typeof value === "bigint" ? value.toString() : `a ${typeof value}`;
  }
  return s.length > MAX_SHOWN_VALUE_CHARS ? `${s.slice(0, MAX_SHOWN_VALUE_CHARS)}…` : s;
}

function rangeText(spec: ParamSpec, noun: string): string {
  const { min, max } = spec;
  if (min !== undefined && max !== undefined) return `${noun} between ${min} and ${max}`;
  if (min === 0) return `non-negative ${noun}`;
  if (min !== undefined) return `${noun} >= ${min}`;
  if (max !== undefined) return `${noun} <= ${max}`;
  return noun;
}

function withArticle(phrase: string): string {
  return /^[aeiou]/.test(phrase) ? `an ${phrase}` : `a ${phrase}`;
}

/** What the param accepts, as a phrase: "a non-negative integer", "one of "add", "remove"". */
export function describeExpected(spec: ParamSpec): string {
  switch (spec.type) {
    case "string":
      return spec.enum ? `one of ${spec.enum.map((v) => JSON.stringify(v)).join(", ")}` : "a string";
    case "integer":
      return withArticle(rangeText(spec, "integer"));
    case "number":
      return withArticle(rangeText(spec, "number"));
    case "boolean":
      return "a boolean (true or false)";
    case "hash":
      return "a 64-character hex hash";
    case "hashOrHeight": {
      const height = spec.min === undefined ? { ...spec, min: 0 } : spec;
      return `a 64-character hex hash or a height (${withArticle(rangeText(height, "integer"))})`;
    }
    case "address":
      return "an address (a non-empty string)";
    case "amount":
      return 'an amount (a decimal string such as "12.5", or a number)';
    case "object":
      return "a JSON object";
    case "array":
      return "a JSON array";
    case "any":
      return "any JSON value";
  }
}

function inRange(spec: ParamSpec, n: number): boolean {
  return (spec.min === undefined || n >= spec.min) && (spec.max === undefined || n <= spec.max);
}

/** Renders a non-negative finite number as a plain decimal string (no exponent). */
function numberToDecimal(n: number): string {
  const s = String(n);
  if (!/e/i.test(s)) return s;
  // Exponent form only happens for tiny (< 1e-6) or huge (>= 1e21) values.
  return n.toFixed(20).replace(/\.?0+$/, "");
}

/** Checks one value against its spec; returns the parsed value or throws INVALID_PARAMS. */
export function parseParam(spec: ParamSpec, value: unknown): unknown {
  const bad = (): RpcError =>
    invalid(`invalid parameter "${spec.name}": expected ${describeExpected(spec)}, got ${showValue(value)}`);
  switch (spec.type) {
    case "string":
      if (typeof value !== "string") throw bad();
      if (spec.enum && !spec.enum.includes(value)) throw bad();
      return value;
    case "integer":
      if (typeof value !== "number" || !Number.isSafeInteger(value) || !inRange(spec, value)) throw bad();
      return value;
    case "number":
      if (typeof value !== "number" || !Number.isFinite(value) || !inRange(spec, value)) throw bad();
      return value;
    case "boolean":
      if (typeof value !== "boolean") throw bad();
      return value;
    case "hash":
      if (typeof value !== "string" || !HASH_RE.test(value)) throw bad();
      return value.toLowerCase();
    case "hashOrHeight": {
      if (typeof value === "string" && HASH_RE.test(value)) return value.toLowerCase();
      const min = spec.min ?? 0;
      if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min) throw bad();
      if (spec.max !== undefined && value > spec.max) throw bad();
      return value;
    }
    case "address":
      if (typeof value !== "string" || value.length === 0) throw bad();
      return value;
    case "amount":
      if (typeof value === "string" && DECIMAL_RE.test(value)) return value;
      if (typeof value === "number" && Number.isFinite(value) && value >= 0) return numberToDecimal(value);
      throw bad();
    case "object":
      if (typeof value !== "object" || value === null || Array.isArray(value)) throw bad();
      return value;
    case "array":
      if (!Array.isArray(value)) throw bad();
      return value;
    case "any":
      return value;
  }
}

/** "takes 1", "takes 1 to 3". */
function arity(specs: readonly ParamSpec[]): string {
  const required = specs.filter((s) => !s.optional).length;
  return required === specs.length ? `${specs.length}` : `${required} to ${specs.length}`;
}

/**
 * Parses a request's `params` (array, object, or absent/null meaning none) for `method`.
 * A null positional value for an optional param means "not given", as in bitcoin-cli.
 */
export function parseParams(method: string, specs: readonly ParamSpec[], raw: unknown): ParsedParams {
  const out: ParsedParams = {};
  const set = (spec: ParamSpec, value: unknown): void => {
    if (value === undefined || (value === null && spec.type !== "any")) {
      if (!spec.optional) throw invalid(`missing required parameter "${spec.name}"`);
      return;
    }
    out[spec.name] = parseParam(spec, value);
  };

  if (raw === undefined || raw === null) raw = [];
  if (Array.isArray(raw)) {
    if (raw.length > specs.length) {
      throw invalid(`too many parameters: ${method} takes ${arity(specs)}, got ${raw.length}`);
    }
    specs.forEach((spec, i) => set(spec, raw[i] as unknown));
    return out;
  }
  if (typeof raw === "object") {
    const named = raw as Record<string, unknown>;
    const known = new Set(specs.map((s) => s.name));
    for (const key of Object.keys(named)) {
      if (!known.has(key)) {
        const accepted = specs.length === 0 ? "none" : specs.map((s) => s.name).join(", ");
        throw invalid(`unknown parameter "${key}" for ${method} (accepted: ${accepted})`);
      }
    }
    for (const spec of specs) {
      set(spec, Object.hasOwn(named, spec.name) ? named[spec.name] : undefined);
    }
    return out;
  }
  throw invalid(`params must be an array or an object, got ${showValue(raw)}`);
}

/**
 * Checks a method's spec list at registration: names unique and well formed, no required
 * param after an optional one (positional calls could not skip it). Throws a plain Error: a
 * bad spec is a programming error, found at startup.
 */
export function validateParamSpecs(method: string, specs: readonly ParamSpec[]): void {
  const seen = new Set<string>();
  let sawOptional = false;
  for (const spec of specs) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(spec.name)) {
      throw new Error(`${method}: bad parameter name ${JSON.stringify(spec.name)}`);
    }
    if (seen.has(spec.name)) throw new Error(`${method}: duplicate parameter "${spec.name}"`);
    seen.add(spec.name);
    if (spec.optional) sawOptional = true;
    else if (sawOptional)
      throw new Error(`${method}: required parameter "${spec.name}" follows an optional one`);
    if (spec.enum && spec.type !== "string") {
      throw new Error(`${method}: parameter "${spec.name}" has an enum but is not a string`);
    }
  }
}

/** One-line synopsis: `getblockhash height`, `setban ip command [seconds]`. */
export function synopsis(method: string, specs: readonly ParamSpec[]): string {
  return [method, ...specs.map((s) => (s.optional ? `[${s.name}]` : s.name))].join(" ");
}

/** One line per param for `help METHOD`: `1. height  (integer, required, >= 0) The height.` */
export function describeParams(specs: readonly ParamSpec[]): string[] {
  const width = Math.max(0, ...specs.map((s) => s.name.length));
  return specs.map((spec, i) => {
    const facts: string[] = [spec.type, spec.optional ? "optional" : "required"];
    if (spec.min !== undefined) facts.push(`min ${spec.min}`);
    if (spec.max !== undefined) facts.push(`max ${spec.max}`);
    if (spec.enum) facts.push(`one of: ${spec.enum.join(", ")}`);
    return `${i + 1}. ${spec.name.padEnd(width)}  (${facts.join(", ")}) ${spec.description}`;
  });
}
