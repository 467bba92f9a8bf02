import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { KeyPair, SEED_LEN } from "./ed25519.js";

/** A key file is missing, unreadable or malformed; the message names the file. */
export class KeyFileError extends Error {}

/**
 * Key files hold the hex ed25519 seed on one line, and are written with mode 0600 because the
 * seed is the secret. `node.key` is the node identity; `operator.key` the masternode operator key.
 */
export function writeKeyFile(path: string, key: KeyPair): void {
  if (existsSync(path)) throw new KeyFileError(`refusing to overwrite existing key file ${path}`);
  writeFileSync(path, key.seed().toString("hex") + "\n", { mode: 0o600, flag: "wx" });
  chmodSync(path, 0o600);
}

export function readKeyFile(path: string): KeyPair {
  let text: string;
  try {
    text = readFileSync(path, "utf8").trim();
  } catch (e) {
    throw new KeyFileError(`cannot read key file ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  if (!new RegExp(`^[0-9a-fA-F]{${SEED_LEN * 2}}$`).test(text)) {
    throw new KeyFileError(`key file ${path} must hold a ${SEED_LEN * 2}-character hex ed25519 seed`);
  }
  return KeyPair.fromSeed(Buffer.from(text, "hex"));
}

export function loadOrCreateKeyFile(path: string): KeyPair {
  if (existsSync(path)) return readKeyFile(path);
  const key = KeyPair.generate();
  writeKeyFile(path, key);
  return key;
}
