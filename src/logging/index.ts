export {
  createLogger,
  createMemoryLogger,
  LEVEL_VALUES,
  MEMORY_LOGGER_CAPACITY,
  nullLogger,
  type CreateLoggerOptions,
  type LogFn,
  type Logger,
  type LogRecord,
  type MemoryLogger,
} from "./logger.js";
export { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from "./levels.js";
