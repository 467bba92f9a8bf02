export { Writer } from "./writer.js";
export { Reader, decodeExact } from "./reader.js";
export { CodecError, type CodecErrorCode } from "./errors.js";
