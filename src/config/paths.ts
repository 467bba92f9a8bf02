import { isAbsolute, resolve } from "node:path";

/** `p` as an absolute path: unchanged if already absolute, else taken relative to `dataDir`. */
export function resolveInDataDir(dataDir: string, p: string): string {
  return isAbsolute(p) ? p : resolve(dataDir, p);
}
