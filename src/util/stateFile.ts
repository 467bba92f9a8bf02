import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";

interface WarnLogger {
  warn(msg: string, ctx?: Record<string, unknown>, err?: unknown): void;
}

/**
 * Reads a JSON state file (address book, ban list). A missing file is `undefined`; an unreadable
 * or corrupt one is logged as a warning and also `undefined`: the node then starts without it
 * rather than refusing to start.
 */
export async function readJsonState(file: string, what: string, logger: WarnLogger): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") {
      logger.warn(`Cannot read the ${what}; starting without it`, { file }, e);
    }
    return undefined;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    logger.warn(`The ${what} file is corrupt; starting without it`, { file }, e);
    return undefined;
  }
}

/** Writes `text` to `file` atomically: a temporary file, then a rename over the old one. */
export async function writeFileAtomic(file: string, text: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.tmp`;
  await writeFile(tmp, text, "utf8");
  await rename(tmp, file);
}
