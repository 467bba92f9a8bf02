/**
 * The operator API's errors (PeerManagerError and its codes, re-exported by peerManager.ts), and
 * PeerError, how a request to a peer fails (re-exported by peer.ts).
 */
import { CodedError } from "../util/codedError.js";

export type PeerManagerErrorCode =
  "INVALID_ADDRESS" | "ALREADY_ADDED" | "NOT_ADDED" | "WHITELISTED" | "NETWORK_DISABLED" | "NOT_STARTED";
/** Errors from the operator API (bad address, unknown addnode entry, …). Network input never throws. */
export class PeerManagerError extends CodedError<PeerManagerErrorCode> {}

/** How a request to a peer fails: timed out, closed, refused, or answered with something else. */
export class PeerError extends Error {
  constructor(
    readonly code: "TIMEOUT" | "CLOSED" | "TOO_MANY_REQUESTS" | "NOT_FOUND" | "UNEXPECTED_RESPONSE",
    message: string,
  ) {
    super(message);
  }
}
