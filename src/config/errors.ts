import { CodedError } from "../util/codedError.js";

export type ConfigErrorCode =
  /** The config file could not be read (missing, unreadable, a directory). */
  | "READ_FAILED"
  /** The file is not valid TOML; the message carries smol-toml's line and column. */
  | "BAD_TOML"
  /** A `[section]` (or a top-level key) this node does not know. */
  | "UNKNOWN_SECTION"
  /** A key inside a known section that this node does not know. */
  | "UNKNOWN_KEY"
  /** A value of the wrong type, out of range, or not one of the accepted values. */
  | "INVALID_VALUE"
  /** Values that are fine alone but not together (user without password, ...). */
  | "INCONSISTENT"
  /** Neither the file, the overrides nor the caller said which network this is. */
  | "NO_NETWORK"
  /** `parseHostPort` was given something that is not HOST:PORT. */
  | "BAD_ADDRESS";

/**
 * A bad configuration. The message is always one line an operator can act on, naming the
 * source and the key as `[section].key` (DESIGN.md: "one clear error naming the key and the
 * accepted values, not a stack trace"). `context` holds `source` and `key` for programs.
 */
export class ConfigError extends CodedError<ConfigErrorCode> {}
