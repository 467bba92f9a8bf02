/** The operator API's errors: PeerManagerError and its codes (re-exported by peerManager.ts). */
import { CodedError } from "../util/codedError.js";

export type PeerManagerErrorCode =
  "INVALID_ADDRESS" | "ALREADY_ADDED" | "NOT_ADDED" | "WHITELISTED" | "NETWORK_DISABLED" | "NOT_STARTED";
/** Errors from the operator API (bad address, unknown addnode entry, …). Network input never throws. */
export class PeerManagerError extends CodedError<PeerManagerErrorCode> {}
