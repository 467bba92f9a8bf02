/**
 * Log levels and formats, in a file of their own so that the config schema can name them
 * without pulling pino into its import graph.
 */

/** pino's levels, least to most severe; "silent" turns logging off. */
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** "pretty" is for people at a terminal; "json" is one object per line, for machines. */
export const LOG_FORMATS = ["pretty", "json"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
