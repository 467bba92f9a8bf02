/**
 * A minimal wallet: ed25519 keys in DATADIR/wallet.json (mode 0600), the coins paying to them,
 * and sending with coin selection, a fee, change and signatures.
 *
 * Key file (JSON):
 *   { "version": 1, "network": "devnet", "keys": [ { "seed": "<64 hex>", "created": <ms> } ] }
 * It is created when the first key is needed (getNewAddress, or a change address), written
 * atomically (temporary file, fsync, rename), and never silently replaced: a file that does not
 * parse is an error naming the file.
 *
 * Coins are tracked from the chain: a scan of the UTXO set at start, then every connected block;
 * after a disconnect the set is rescanned (the simplest correct way to restore spent coins).
 *
 * Locked coins: the collateral of a masternode whose owner key is in this wallet (read from the
 * chain's registry at the tip), and the collateral named by a registration waiting in the mempool,
 * are never picked by coin selection, so an ordinary send cannot deregister a masternode by
 * accident. Spending one takes a deliberate `sweep` (the `spendcollateral` RPC).
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
import type { Block } from "../primitives/block.js";
import type { ChainReader } from "../chain/chainReader.js";
import { formatAmount } from "../primitives/amount.js";
import { MAX_MONEY, TX_VERSION } from "../primitives/constants.js";
import {
  TxKind,
  outpointKey,
  txSigMessage,
  txSize,
  txid as txidOf,
  type OutPoint,
  type Tx,
} from "../primitives/tx.js";
import type { UtxoEntry } from "../primitives/utxo.js";
import type { Registry } from "../consensus/registry.js";
import { decodeAddress, encodeAddress, pubkeyHash, type NetworkName } from "../crypto/address.js";
import { KeyPair, SEED_LEN } from "../crypto/ed25519.js";
import type { Logger } from "../logging/index.js";
import type { Mempool } from "../mempool/mempool.js";
import type { Clock } from "../util/clock.js";
import { CodedError } from "../util/codedError.js";
import type { Random } from "../util/random.js";
import { selectCoins, type SelectableCoin } from "./coinSelection.js";

export const WALLET_FILE = "wallet.json";
const WALLET_VERSION = 1;

/** Size of a transfer, as txSize counts it: 17 bytes + 132 per input + 28 per output. */
const TX_BASE_SIZE = 17;
const INPUT_SIZE = 132;
const OUTPUT_SIZE = 28;

export const defaultWalletOptions = {
  /**
   * 10 units per byte: ten times the default minimum relay fee, so a wallet transaction still
   * gets in when the mempool's minimum has risen; 1,770 units (0.0000177 TIME) for a simple send.
   */
  feeRate: 10n,
  /**
   * 1,320 units: an output worth less than the fee to spend it (one 132-byte input at the default
   * 10 units/byte) is uneconomic, so the wallet neither pays to one nor makes change that small.
   */
  dustThreshold: 1_320n,
} as const;

export interface WalletOptions {
  /** The key file, normally DATADIR/wallet.json. */
  file: string;
  network: NetworkName;
  /** Keys the wallet may spend from but does not store (the operator key, for its rewards). */
  extraKeys?: KeyPair[];
  /** Fee rate in units per byte. */
  feeRate?: bigint;
  dustThreshold?: bigint;
}

export interface WalletModules {
  chain: ChainReader;
  mempool: Mempool;
  /** TxRelay.submitLocal, so a send is announced to peers; without it, Mempool.accept. */
  relay?: { submitLocal(tx: Tx): { txid: Buffer; fee: bigint } };
  clock: Clock;
  random: Random;
  logger: Logger;
}

export type WalletErrorCode =
  | "CORRUPT_FILE"
  | "WRONG_NETWORK"
  | "IO"
  | "BAD_AMOUNT"
  | "DUST"
  | "BAD_FEE_RATE"
  | "INSUFFICIENT_FUNDS"
  /** sweep: an outpoint that is not an unspent, mature coin of this wallet, or already spent in the mempool. */
  | "NOT_SPENDABLE";

export class WalletError extends CodedError<WalletErrorCode> {}

export interface WalletCoin {
  outpoint: OutPoint;
  amount: bigint;
  address: string;
  /** Height of the block that created it. */
  height: number;
  confirmations: number;
  coinbase: boolean;
  /** False for a coinbase output younger than the maturity. */
  mature: boolean;
  /** The collateral of a registered (or pooled) masternode registration: coin selection skips it. */
  locked: boolean;
  /** Mature, not locked, and not spent by a mempool transaction. */
  spendable: boolean;
}

export interface SendResult {
  txid: Buffer;
  tx: Tx;
  fee: bigint;
  change: bigint;
}

export interface SendOptions {
  /** Units per byte; the wallet's fee rate by default. */
  feeRate?: bigint;
  /** Coins coin selection must not use (besides the locked ones). */
  exclude?: readonly OutPoint[];
}

interface StoredKey {
  key: KeyPair;
  created: number;
}

interface Coin extends SelectableCoin {
  outpoint: OutPoint;
  entry: UtxoEntry;
}

export class Wallet {
  private readonly opts: Required<Omit<WalletOptions, "extraKeys">> & { extraKeys: KeyPair[] };
  private readonly chain: ChainReader;
  private readonly mempool: Mempool;
  private readonly relay: WalletModules["relay"];
  private readonly clock: Clock;
  private readonly random: Random;
  private readonly logger: Logger;

  /** Keys from the key file, oldest first. */
  private stored: StoredKey[] = [];
  /** Every key we can sign with, by the hex of its 20-byte address hash. */
  private readonly keys = new Map<string, KeyPair>();
  /** Our unspent outputs on the main chain, by outpointKey. */
  private coins = new Map<string, Coin>();
  private needsRescan = false;
  private unsubscribe: Array<() => void> = [];
  /** Collateral outpoints (outpointKey) of registry entries owned by our keys, for one registry. */
  private lockCache: { registry: Registry; keys: number; locked: Set<string> } | null = null;

  constructor(opts: WalletOptions, modules: WalletModules) {
    this.opts = {
      file: opts.file,
      network: opts.network,
      extraKeys: opts.extraKeys ?? [],
      feeRate: opts.feeRate ?? defaultWalletOptions.feeRate,
      dustThreshold: opts.dustThreshold ?? defaultWalletOptions.dustThreshold,
    };
    if (this.opts.feeRate < 0n) throw new WalletError("BAD_FEE_RATE", "wallet fee rate must not be negative");
    this.chain = modules.chain;
    this.mempool = modules.mempool;
    this.relay = modules.relay;
    this.clock = modules.clock;
    this.random = modules.random;
    this.logger = modules.logger;
    this.stored = this.load();
    for (const s of this.stored) this.addKey(s.key);
    for (const k of this.opts.extraKeys) this.addKey(k);
  }

  /** Scans the UTXO set for our coins and follows the chain from then on. */
  start(): void {
    if (this.unsubscribe.length > 0) return;
    this.rescan();
    const ev = this.chain.events;
    this.unsubscribe.push(
      ev.on("blockConnected", ({ block }) => this.onBlockConnected(block)),
      ev.on("blockDisconnected", () => {
        this.needsRescan = true;
      }),
      ev.on("tip", () => {
        if (this.needsRescan) this.rescan();
      }),
    );
  }

  stop(): void {
    for (const off of this.unsubscribe) off();
    this.unsubscribe = [];
  }

  get file(): string {
    return this.opts.file;
  }

  /** Every address the wallet can spend from: key-file keys first, then the extra keys. */
  addresses(): string[] {
    const all = [...this.stored.map((s) => s.key), ...this.opts.extraKeys].map((k) =>
      encodeAddress(pubkeyHash(k.publicKey), this.opts.network),
    );
    return [...new Set(all)];
  }

  /** Makes a new key, saves the key file (creating it at first use), and returns its address. */
  getNewAddress(): string {
    const key = KeyPair.fromSeed(this.random.bytes(SEED_LEN));
    const next = [...this.stored, { key, created: this.clock.now() }];
    this.save(next);
    this.stored = next;
    this.addKey(key);
    return encodeAddress(pubkeyHash(key.publicKey), this.opts.network);
  }

  /** Confirmed, mature coins, neither locked (masternode collateral) nor spent by a mempool transaction. */
  getBalance(): bigint {
    const locked = this.registryLocks();
    let total = 0n;
    for (const c of this.coins.values()) if (this.isSpendable(c, locked)) total += c.entry.amount;
    return total;
  }

  /** Fee rate (units per byte) the wallet pays by default. */
  get feeRate(): bigint {
    return this.opts.feeRate;
  }

  /** Smallest output the wallet creates. */
  get dustThreshold(): bigint {
    return this.opts.dustThreshold;
  }

  /** The key behind a 20-byte address hash, if the wallet holds it (for signing registrations). */
  keyForAddress(hash: Buffer): KeyPair | undefined {
    return this.keys.get(hash.toString("hex"));
  }

  /**
   * Whether coin selection leaves this outpoint alone: it is the collateral of a registered
   * masternode whose owner key is in this wallet, or of a registration waiting in the mempool.
   */
  isLocked(outpoint: OutPoint): boolean {
    return this.isLockedIn(outpoint, this.registryLocks());
  }

  /** Every locked coin of this wallet (see isLocked), oldest first. */
  lockedOutpoints(): OutPoint[] {
    return this.listUnspent(0)
      .filter((c) => c.locked)
      .map((c) => c.outpoint);
  }

  /**
   * Our confirmed coins with at least `minconf` confirmations, oldest first, leaving out those a
   * mempool transaction already spends. Immature coinbase outputs and locked collateral are listed
   * with spendable false.
   */
  listUnspent(minconf = 1): WalletCoin[] {
    const tip = this.chain.height;
    const locks = this.registryLocks();
    const out: WalletCoin[] = [];
    for (const c of this.coins.values()) {
      if (this.mempool.spentBy(c.outpoint)) continue;
      const confirmations = tip - c.entry.height + 1;
      if (confirmations < minconf) continue;
      const mature = this.isMature(c);
      const locked = this.isLockedIn(c.outpoint, locks);
      out.push({
        outpoint: c.outpoint,
        amount: c.entry.amount,
        address: encodeAddress(c.entry.address, this.opts.network),
        height: c.entry.height,
        confirmations,
        coinbase: c.entry.coinbase,
        mature,
        locked,
        spendable: mature && !locked,
      });
    }
    return out.sort((a, b) => a.height - b.height || cmp(outpointKey(a.outpoint), outpointKey(b.outpoint)));
  }

  /**
   * Pays `amount` units to `address`: selects coins, pays feeRate × the final size, returns change
   * to the wallet's first key, signs every input and submits the transaction. Returns its txid.
   * Throws AddressError for a bad address, WalletError for a bad amount or insufficient funds,
   * and MempoolError if the mempool refuses the transaction.
   */
  send(address: string, amount: bigint, opts: SendOptions = {}): Buffer {
    return this.createAndSend(address, amount, opts).txid;
  }

  /** As send, with the transaction, fee and change. The payment is always output 0. */
  createAndSend(address: string, amount: bigint, opts: SendOptions = {}): SendResult {
    const to = decodeAddress(address, this.opts.network);
    if (amount <= 0n) throw new WalletError("BAD_AMOUNT", "amount must be positive");
    if (amount > MAX_MONEY) throw new WalletError("BAD_AMOUNT", "amount is above the maximum supply");
    if (amount < this.opts.dustThreshold) {
      throw new WalletError(
        "DUST",
        `amount ${formatAmount(amount)} is below the dust threshold ${formatAmount(this.opts.dustThreshold)}`,
      );
    }
    const feeRate = opts.feeRate ?? this.opts.feeRate;
    if (feeRate < 0n) throw new WalletError("BAD_FEE_RATE", "fee rate must not be negative");
    const feeFor = (inputs: number, withChange: boolean): bigint =>
      feeRate * BigInt(TX_BASE_SIZE + inputs * INPUT_SIZE + (withChange ? 2 : 1) * OUTPUT_SIZE);
    const locked = this.registryLocks();
    const excluded = new Set((opts.exclude ?? []).map(outpointKey));
    const candidates = [...this.coins.values()].filter(
      (c) => this.isSpendable(c, locked) && !excluded.has(c.key),
    );
    const sel = selectCoins(candidates, { target: amount, feeFor, dust: this.opts.dustThreshold });
    if (!sel.ok) {
      throw new WalletError(
        "INSUFFICIENT_FUNDS",
        `insufficient funds: have ${formatAmount(sel.available)}, need ${formatAmount(sel.needed)}`,
      );
    }
    const outputs = [{ amount, address: to }];
    if (sel.change > 0n) outputs.push({ amount: sel.change, address: this.changeAddress() });
    const tx = this.signTransfer(sel.coins, outputs);
    const id = txidOf(tx);
    const size = txSize(tx);
    if (sel.change > 0n && sel.fee !== feeRate * BigInt(size)) {
      throw new Error(`wallet fee estimate ${sel.fee} does not match ${feeRate} × ${size} bytes`);
    }
    if (this.relay) this.relay.submitLocal(tx);
    else this.mempool.accept(tx);
    this.logger.info("Wallet sent a transaction", {
      txid: id.toString("hex"),
      to: address,
      amount: formatAmount(amount),
      fee: formatAmount(sel.fee),
      inputs: tx.inputs.length,
    });
    return { txid: id, tx, fee: sel.fee, change: sel.change };
  }

  /**
   * Spends exactly `outpoints` (coins of this wallet, locked ones included: this is the deliberate
   * way to spend a masternode collateral) to `address` in one output, less feeRate × size.
   * Throws NOT_SPENDABLE for an outpoint that is not a mature wallet coin free in the mempool,
   * DUST when the fee leaves less than the dust threshold, and MempoolError if refused.
   */
  sweep(outpoints: readonly OutPoint[], address: string, opts: { feeRate?: bigint } = {}): SendResult {
    const to = decodeAddress(address, this.opts.network);
    const feeRate = opts.feeRate ?? this.opts.feeRate;
    if (feeRate < 0n) throw new WalletError("BAD_FEE_RATE", "fee rate must not be negative");
    if (outpoints.length === 0) throw new WalletError("BAD_AMOUNT", "nothing to spend");
    const coins: Coin[] = [];
    for (const o of outpoints) {
      const c = this.coins.get(outpointKey(o));
      if (!c || !this.isMature(c) || this.mempool.spentBy(o) !== undefined) {
        throw new WalletError(
          "NOT_SPENDABLE",
          `${outpointKey(o)} is not a confirmed, mature coin of this wallet free in the mempool`,
        );
      }
      if (!coins.some((k) => k.key === c.key)) coins.push(c);
    }
    let total = 0n;
    for (const c of coins) total += c.entry.amount;
    const fee = feeRate * BigInt(TX_BASE_SIZE + coins.length * INPUT_SIZE + OUTPUT_SIZE);
    if (total - fee < this.opts.dustThreshold) {
      throw new WalletError(
        "DUST",
        `spending ${formatAmount(total)} leaves ${formatAmount(total - fee)} after the fee ${formatAmount(fee)}, below the dust threshold`,
      );
    }
    const tx = this.signTransfer(coins, [{ amount: total - fee, address: to }]);
    const id = txidOf(tx);
    if (this.relay) this.relay.submitLocal(tx);
    else this.mempool.accept(tx);
    this.logger.info("Wallet swept coins", {
      txid: id.toString("hex"),
      to: address,
      inputs: coins.length,
      amount: formatAmount(total - fee),
      fee: formatAmount(fee),
    });
    return { txid: id, tx, fee, change: 0n };
  }

  /** A transfer spending `coins` (ours) to `outputs`, every input signed with its key. */
  private signTransfer(coins: readonly Coin[], outputs: Tx["outputs"]): Tx {
    const tx: Tx = {
      version: TX_VERSION,
      kind: TxKind.Transfer,
      inputs: coins.map((c) => ({
        prevout: c.outpoint,
        pubkey: this.keys.get(c.entry.address.toString("hex"))!.publicKey,
        signature: Buffer.alloc(64),
      })),
      outputs,
      payload: Buffer.alloc(0),
    };
    const msg = txSigMessage(txidOf(tx));
    const sigs = new Map<string, Buffer>();
    for (const [i, c] of coins.entries()) {
      const h = c.entry.address.toString("hex");
      let sig = sigs.get(h);
      if (!sig) {
        sig = this.keys.get(h)!.sign(msg);
        sigs.set(h, sig);
      }
      tx.inputs[i]!.signature = sig;
    }
    return tx;
  }

  // ---- coins ----

  private isMature(c: Coin): boolean {
    if (!c.entry.coinbase || c.entry.height === 0) return true;
    return this.chain.height + 1 - c.entry.height >= this.chain.params.coinbaseMaturity;
  }

  private isSpendable(c: Coin, locked: Set<string>): boolean {
    return (
      this.isMature(c) &&
      this.mempool.spentBy(c.outpoint) === undefined &&
      !this.isLockedIn(c.outpoint, locked)
    );
  }

  private isLockedIn(outpoint: OutPoint, registryLocked: Set<string>): boolean {
    return (
      registryLocked.has(outpointKey(outpoint)) || this.mempool.collateralClaimedBy(outpoint) !== undefined
    );
  }

  /**
   * Collateral outpoints of the tip's registry entries whose owner key is ours. Cached per
   * registry snapshot (and key count: a new key may own an entry).
   */
  private registryLocks(): Set<string> {
    const registry = this.chain.getRegistry();
    const cached = this.lockCache;
    if (cached && cached.registry === registry && cached.keys === this.keys.size) return cached.locked;
    const locked = new Set<string>();
    for (const e of registry) {
      if (e.collateral && e.ownerPubkey && this.keys.has(pubkeyHash(e.ownerPubkey).toString("hex"))) {
        locked.add(outpointKey(e.collateral));
      }
    }
    this.lockCache = { registry, keys: this.keys.size, locked };
    return locked;
  }

  private rescan(): void {
    const coins = new Map<string, Coin>();
    for (const u of this.chain.storage.iterateUtxos()) {
      if (!this.keys.has(u.entry.address.toString("hex"))) continue;
      const outpoint = { txid: Buffer.from(u.outpoint.txid), index: u.outpoint.index };
      const key = outpointKey(outpoint);
      coins.set(key, { key, outpoint, entry: u.entry, amount: u.entry.amount });
    }
    this.coins = coins;
    this.needsRescan = false;
  }

  private onBlockConnected(block: Block): void {
    const height = block.header.height;
    block.txs.forEach((tx, i) => {
      for (const input of tx.inputs) this.coins.delete(outpointKey(input.prevout));
      if (!tx.outputs.some((o) => this.keys.has(o.address.toString("hex")))) return;
      const id = txidOf(tx);
      tx.outputs.forEach((o, index) => {
        if (!this.keys.has(o.address.toString("hex"))) return;
        const outpoint = { txid: id, index };
        const key = outpointKey(outpoint);
        const entry: UtxoEntry = { amount: o.amount, address: o.address, height, coinbase: i === 0 };
        this.coins.set(key, { key, outpoint, entry, amount: o.amount });
      });
    });
  }

  // ---- keys ----

  private addKey(key: KeyPair): void {
    const h = pubkeyHash(key.publicKey).toString("hex");
    if (!this.keys.has(h)) this.keys.set(h, key);
  }

  /** Change goes to the first key of the key file, which is created if the wallet has none. */
  private changeAddress(): Buffer {
    if (this.stored.length === 0) this.getNewAddress();
    return pubkeyHash(this.stored[0]!.key.publicKey);
  }

  private load(): StoredKey[] {
    const file = this.opts.file;
    if (!existsSync(file)) return [];
    let text: string;
    try {
      text = readFileSync(file, "utf8");
      const mode = statSync(file).mode & 0o777;
      if ((mode & 0o077) !== 0) {
        this.logger.warn("Wallet file is readable by other users; it holds private keys", {
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
    if (o.network !== this.opts.network) {
      throw new WalletError(
        "WRONG_NETWORK",
        `wallet file ${file} belongs to ${String(o.network)}, not ${this.opts.network}`,
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
  private save(keys: StoredKey[]): void {
    const file = this.opts.file;
    const body =
      JSON.stringify(
        {
          version: WALLET_VERSION,
          network: this.opts.network,
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

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
