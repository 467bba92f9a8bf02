/**
 * The addresses dialled forever (bootstrap peers, addnode entries, registered masternodes'
 * service addresses), each with its redial state, and the list of masternode addresses. A
 * bounded table owned by the Dialer, which does the dialling and the backoff.
 */
import { checkHostPort } from "../config/hostPort.js";
import type { Logger } from "../logging/index.js";
import { formatAddress, parseIpAddress } from "./addressBook.js";
import { banSubject } from "./banManager.js";

export type TargetSource = "bootstrap" | "addnode" | "masternode";

/** An address dialled forever (bootstrap, addnode, registered masternodes): never given up. */
export interface PermanentTarget {
  key: string;
  host: string;
  port: number;
  sources: Set<TargetSource>;
  failures: number;
  retryAt: number;
  masternode: boolean;
}

/** Permanent targets (bootstrap + addnode + masternode addresses). */
export const MAX_PERMANENT_TARGETS = 2_000;

/** The permanent targets by "host:port" key (see the file comment). */
export class PermanentTargets {
  private readonly targets = new Map<string, PermanentTarget>();
  private readonly masternodeAddrs = new Set<string>();

  constructor(private readonly log: Logger) {}

  get size(): number {
    return this.targets.size;
  }

  get(key: string): PermanentTarget | undefined {
    return this.targets.get(key);
  }

  has(key: string): boolean {
    return this.targets.has(key);
  }

  delete(key: string): boolean {
    return this.targets.delete(key);
  }

  values(): IterableIterator<PermanentTarget> {
    return this.targets.values();
  }

  add(addr: string, source: TargetSource): boolean {
    const hp = checkHostPort(addr);
    if (!hp.ok) return false;
    const key = formatAddress(hp.value.host, hp.value.port);
    const existing = this.targets.get(key);
    if (existing) {
      existing.sources.add(source);
      return true;
    }
    if (this.targets.size >= MAX_PERMANENT_TARGETS) {
      this.log.warn("Too many permanent targets; ignoring one", { address: key, source });
      return false;
    }
    this.targets.set(key, {
      key,
      host: hp.value.host,
      port: hp.value.port,
      sources: new Set([source]),
      failures: 0,
      retryAt: 0,
      masternode: source === "masternode",
    });
    return true;
  }

  /** Replaces the masternode addresses (the targets they alone held are dropped). */
  setMasternodeAddresses(addrs: string[]): void {
    const next = new Set<string>();
    for (const a of addrs) {
      const hp = checkHostPort(a);
      if (!hp.ok) {
        this.log.debug("Ignoring a bad masternode address", { address: a });
        continue;
      }
      next.add(formatAddress(hp.value.host, hp.value.port));
      if (next.size >= MAX_PERMANENT_TARGETS) {
        this.log.warn("Too many masternode addresses; dialling the first ones only", {
          max: MAX_PERMANENT_TARGETS,
        });
        break;
      }
    }
    for (const key of this.masternodeAddrs) {
      if (next.has(key)) continue;
      const t = this.targets.get(key);
      t?.sources.delete("masternode");
      if (t && t.sources.size === 0) this.targets.delete(key);
    }
    this.masternodeAddrs.clear();
    for (const key of next) {
      this.masternodeAddrs.add(key);
      this.add(key, "masternode");
    }
  }

  /** `key` is a registered masternode's service address. */
  isMasternodeAddress(key: string): boolean {
    return this.masternodeAddrs.has(key);
  }

  /** `ip` is the host of a registered masternode's service address. */
  isMasternodeIp(ip: string): boolean {
    for (const key of this.masternodeAddrs) {
      const p = parseIpAddress(key);
      if (p && banSubject(p.host) === banSubject(ip)) return true;
    }
    return false;
  }

  /** The earliest retry time (epoch ms), Infinity when there is no target. */
  nextRetry(): number {
    let nextRetry = Infinity;
    for (const t of this.targets.values()) nextRetry = Math.min(nextRetry, t.retryAt);
    return nextRetry;
  }
}
