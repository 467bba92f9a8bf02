/**
 * A minimal wallet: ed25519 keys in DATADIR/wallet.json (mode 0600; keyFile.ts), the coins paying
 * to them, and sending with coin selection (coinSelection.ts), a fee, change and signatures
 * (transfer.ts).
 *
 * Coins are tracked from the chain: a scan of the UTXO set at start, then every connected and
 * disconnected block. A disconnected block's outputs to us go; the outputs its inputs spent with
 * our keys are looked up in the UTXO set once the chain settles (the "tip" event), and come back
 * if they are unspent there. Only when a reorg gave back more than MAX_RESTORE of our coins is
 * the whole set scanned again.
 *
 * Locked coins: the collateral of a masternode whose owner key is in this wallet (read from the
 * chain's registry at the tip), and the collateral named by a registration waiting in the mempool,
 * are never picked by coin selection, so an ordinary send cannot deregister a masternode by
 * accident. Spending one takes a deliberate `sweep` (the `spendcollateral` RPC).
 */
import type { Block } from "../primitives/block.js";
import type { ChainReader } from "../chain/chainReader.js";
import { formatAmount } from "../primitives/amount.js";
import { MAX_MONEY } from "../primitives/constants.js";
import { outpointKey, txSize, txid as txidOf, type OutPoint, type Tx } from "../primitives/tx.js";
import type { UtxoEntry } from "../primitives/utxo.js";
import type { Registry } from "../consensus/registry.js";
import { decodeAddress, encodeAddress, pubkeyHash } from "../crypto/address.js";
import { KeyPair, SEED_LEN } from "../crypto/ed25519.js";
import type { Logger } from "../logging/index.js";
import type { Mempool } from "../mempool/mempool.js";
import type { Clock } from "../util/clock.js";
import type { Random } from "../util/random.js";
import { selectCoins } from "./coinSelection.js";
import { WalletError } from "./errors.js";
import { loadKeyFile, saveKeyFile, type StoredKey } from "./keyFile.js";
import { defaultWalletOptions, type WalletModules, type WalletOptions } from "./options.js";
import { INPUT_SIZE, OUTPUT_SIZE, TX_BASE_SIZE, signTransfer, type Coin } from "./transfer.js";

export { WalletError, type WalletErrorCode } from "./errors.js";
export { WALLET_FILE } from "./keyFile.js";
export { defaultWalletOptions, type WalletModules, type WalletOptions } from "./options.js";

/** Our coins a reorg may give back before the wallet scans the whole UTXO set instead. */
const MAX_RESTORE = 100_000;

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
  /** Hex public keys of every key we hold: a disconnected input signed by one spent our coin. */
  private readonly pubkeys = new Set<string>();
  /** Our outputs spent by blocks disconnected since the last "tip" event, to look up then. */
  private restore = new Map<string, OutPoint>();
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
    this.stored = loadKeyFile(this.opts.file, this.opts.network, this.logger);
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
      ev.on("blockDisconnected", ({ block }) => this.onBlockDisconnected(block)),
      ev.on("tip", () => {
        if (this.needsRescan) this.rescan();
        else if (this.restore.size > 0) this.restoreSpent();
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
    saveKeyFile(this.opts.file, this.opts.network, next);
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
    const tx = signTransfer(sel.coins, outputs, this.keys);
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
    const tx = signTransfer(coins, [{ amount: total - fee, address: to }], this.keys);
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
    this.restore.clear();
  }

  private onBlockDisconnected(block: Block): void {
    if (this.needsRescan) return;
    for (const tx of block.txs) {
      if (tx.outputs.some((o) => this.keys.has(o.address.toString("hex")))) {
        const id = txidOf(tx);
        tx.outputs.forEach((_o, index) => this.coins.delete(outpointKey({ txid: id, index })));
      }
      for (const input of tx.inputs) {
        if (!this.pubkeys.has(input.pubkey.toString("hex"))) continue;
        this.restore.set(outpointKey(input.prevout), input.prevout);
      }
    }
    if (this.restore.size > MAX_RESTORE) {
      this.restore.clear();
      this.needsRescan = true;
    }
  }

  /** The coins disconnected blocks had spent: back if the settled chain has them unspent. */
  private restoreSpent(): void {
    for (const [key, outpoint] of this.restore) {
      const entry = this.chain.storage.getUtxo(outpoint);
      if (!entry || !this.keys.has(entry.address.toString("hex"))) continue;
      const op = { txid: Buffer.from(outpoint.txid), index: outpoint.index };
      this.coins.set(key, { key, outpoint: op, entry, amount: entry.amount });
    }
    this.restore.clear();
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
    this.pubkeys.add(Buffer.from(key.publicKey).toString("hex"));
  }

  /** Change goes to the first key of the key file, which is created if the wallet has none. */
  private changeAddress(): Buffer {
    if (this.stored.length === 0) this.getNewAddress();
    return pubkeyHash(this.stored[0]!.key.publicKey);
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
