/**
 * The wallet's key file: ed25519 seeds in DATADIR/wallet.json (mode 0600).
 *
 * Key file (JSON):
 *   { "version": 1, "network": "devnet", "keys": [ { "seed": "<64 hex>", "created": <ms> } ] }
 * It is created when the first key is needed (getNewAddress, or a change address), written
 * atomically (temporary file, fsync, rename), and never silently replaced: a file that does not
 * parse is an error naming the file.
 */
import {
  chmodSync,
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  writeSync,
} from "node:fs";
import { dirname } from "node:path";
import type { NetworkName } from "../crypto/address.js";
import { KeyPair, SEED_LEN } from "../crypto/ed25519.js";
import type { Logger } from "../logging/index.js";
import { WalletError } from "./errors.js";

export const WALLET_FILE = "wallet.json";
const WALLET_VERSION = 1;

export interface StoredKey {
  key: KeyPair;
  created: number;
}

/** Reads the key file; none yet is an empty list. Warns when other users may read it. */
export function loadKeyFile(file: string, network: NetworkName, logger: Pick<Logger, "warn">): StoredKey[] {
  if (!existsSync(file)) return [];
  let text: string;
  try {
    text = readFileSync(file, "utf8");
    const mode = statSync(file).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      logger.warn("Wallet file is readable by other users; it holds private keys", {
        file,
        mode: mode.toString(8),
      });
    }
  } catch (e) {
    throw new WalletError("IO", `cannot read wallet file ${file}: ${errText(e)}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new WalletError("CORRUPT_FILE", `wallet file ${file} is corrupt: ${errText(e)}`);
  }
  const bad = (why: string): WalletError =>
    new WalletError("CORRUPT_FILE", `wallet file ${file} is corrupt: ${why}`);
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw bad("expected a JSON object");
  const o = json as Record<string, unknown>;
  if (o.version !== WALLET_VERSION) throw bad(`unsupported version ${JSON.stringify(o.version)}`);
  if (o.network !== network) {
    throw new WalletError(
      "WRONG_NETWORK",
      `wallet file ${file} belongs to ${String(o.network)}, not ${network}`,
    );
  }
  if (!Array.isArray(o.keys)) throw bad('"keys" must be an array');
  return (o.keys as unknown[]).map((k, i) => {
    if (typeof k !== "object" || k === null) throw bad(`keys[${i}] must be an object`);
    const r = k as Record<string, unknown>;
    if (typeof r.seed !== "string" || !/^[0-9a-f]{64}$/i.test(r.seed)) {
      throw bad(`keys[${i}].seed must be ${SEED_LEN * 2} hex characters`);
    }
    if (typeof r.created !== "number" || !Number.isSafeInteger(r.created)) {
      throw bad(`keys[${i}].created must be an integer (ms since the epoch)`);
    }
    return { key: KeyPair.fromSeed(Buffer.from(r.seed, "hex")), created: r.created };
  });
}

/** Writes the key file atomically with mode 0600: temporary file, fsync, rename. */
export function saveKeyFile(file: string, network: NetworkName, keys: StoredKey[]): void {
  const body =
    JSON.stringify(
      {
        version: WALLET_VERSION,
        network,
        keys: keys.map((k) => ({ seed: k.key.seed().toString("hex"), created: k.created })),
      },
      null,
      2,
    ) + "\n";
  const tmp = `${file}.tmp`;
  try {
    const fd = openSync(tmp, "w", 0o600);
    try {
      writeSync(fd, body);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    chmodSync(tmp, 0o600);
    renameSync(tmp, file);
    syncDir(dirname(file));
  } catch (e) {
    throw new WalletError("IO", `cannot write wallet file ${file}: ${errText(e)}`);
  }
}

/** Makes a rename durable; not every platform can fsync a directory, so failure is ignored. */
function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, "r");
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // best effort
  }
}

function errText(e: unknown): string {
  if (e instanceof Error) return (e as NodeJS.ErrnoException).code ?? e.message;
  return String(e);
}
