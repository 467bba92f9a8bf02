import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";

export class LockError extends Error {}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Takes `path` as an exclusive lock holding our pid. A lock left by a process that no longer
 * exists (kill -9) is taken over; a live holder is refused with one clear line.
 */
export function acquireLock(path: string): () => void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, "wx", 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => {
        try {
          if (readFileSync(path, "utf8").trim() === String(process.pid)) unlinkSync(path);
        } catch {
          // already gone
        }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") {
        throw new LockError(
          `cannot create lock file ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
        );
      }
      const holder = Number.parseInt(readFileSafe(path), 10);
      if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && alive(holder)) {
        throw new LockError(`data directory is in use by another node (pid ${holder}, lock ${path})`);
      }
      try {
        unlinkSync(path); // stale: its holder is gone
      } catch {
        // raced with another taker; retry once
      }
    }
  }
  throw new LockError(`cannot take lock ${path}`);
}

function readFileSafe(path: string): string {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return "";
  }
}
