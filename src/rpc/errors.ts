/**
 * JSON-RPC error codes and the error a method handler throws to answer with one.
 *
 * The application codes are bitcoind's (src/rpc/protocol.h), so operators and scripts that
 * know bitcoin-cli read them the same way here.
 */

// Standard JSON-RPC 2.0 codes.
export const PARSE_ERROR = -32700;
export const INVALID_REQUEST = -32600;
export const METHOD_NOT_FOUND = -32601;
export const INVALID_PARAMS = -32602;
export const INTERNAL_ERROR = -32603;
/** Implementation-defined server error (-32000..-32099): busy, timed out. */
export const SERVER_ERROR = -32000;

// Application codes, as in bitcoind.
export const RPC_MISC_ERROR = -1;
export const RPC_TYPE_ERROR = -3;
/** An unspecified wallet problem (here: the key file cannot be written). */
export const RPC_WALLET_ERROR = -4;
export const RPC_INVALID_ADDRESS_OR_KEY = -5;
export const RPC_WALLET_INSUFFICIENT_FUNDS = -6;
export const RPC_OUT_OF_MEMORY = -7;
export const RPC_INVALID_PARAMETER = -8;
export const RPC_DATABASE_ERROR = -20;
export const RPC_DESERIALIZATION_ERROR = -22;
export const RPC_CLIENT_NODE_NOT_ADDED = -24;
export const RPC_VERIFY_ERROR = -25;
export const RPC_VERIFY_REJECTED = -26;
export const RPC_IN_WARMUP = -28;
export const RPC_CLIENT_INVALID_IP_OR_SUBNET = -30;

/**
 * Thrown by a method handler to answer with a specific JSON-RPC error. Its `code` is the
 * numeric JSON-RPC code (not a CodedError string code: the number is what goes on the wire).
 * `data`, when given, is sent as the error's `data` member and must be JSON-serialisable.
 */
export class RpcError extends Error {
  readonly code: number;
  readonly data: unknown;
  constructor(code: number, message: string, data?: unknown) {
    super(message);
    this.name = "RpcError";
    this.code = code;
    this.data = data;
  }
}

/** The `error` member of a JSON-RPC response. */
export interface RpcErrorObject {
  code: number;
  message: string;
  data?: unknown;
}
