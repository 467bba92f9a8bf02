import { CodedError } from "../util/codedError.js";

export type CodecErrorCode =
  /** A read went past the end of the input. */
  | "OUT_OF_BOUNDS"
  /** A length or count prefix is larger than the cap for that field. */
  | "LENGTH_OVER_CAP"
  /** Bytes were left over where the encoding must end exactly. */
  | "TRAILING_BYTES"
  /** A value is out of its domain (bad enum tag, non-canonical flag, invalid UTF-8, unsafe integer). */
  | "INVALID_VALUE";

export class CodecError extends CodedError<CodecErrorCode> {}
