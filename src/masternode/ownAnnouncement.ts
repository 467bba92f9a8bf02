/**
 * This masternode's own announcement (PROTOCOL.md, MnAnnounce): the address it names, and when a
 * new one is signed. The announce tick always signs anew; a new peer and every MnList answer reuse
 * the last one while it is younger than half the announce interval and names the same address.
 * Signing one per answer cost a signature each, and each receiver a check (docs/SIMULATION.md,
 * finding 12).
 */
import { checkHostPort } from "../config/hostPort.js";
import type { KeyPair } from "../crypto/ed25519.js";
import type { Logger } from "../logging/index.js";
import { isUnspecifiedHost } from "../p2p/addressBook.js";
import { MsgType, type MnAnnounceMsg } from "../p2p/messages.js";
import type { Clock } from "../util/clock.js";
import type { MasternodeLiveness } from "./liveness.js";
import { signMnAnnounce } from "./livenessMessages.js";

export interface OwnAnnouncementModules {
  clock: Clock;
  logger: Logger;
  liveness: MasternodeLiveness;
  /** Our operator key when this node runs a masternode, else null. */
  operatorKey: KeyPair | null;
  /** Our node id (node key), which the announcement binds to the operator key. */
  nodeId: Buffer;
  /** "host:port" peers should dial; when unusable, the registered service address is announced. */
  serviceAddress: () => string;
}

export class OwnAnnouncement {
  private last: MnAnnounceMsg | null = null;
  private warnedAddress = false;

  constructor(
    private readonly announceIntervalMs: number,
    private readonly modules: OwnAnnouncementModules,
  ) {}

  /**
   * Our announcement, signed now when `fresh` or when the last one is too old or names another
   * address (and recorded in our liveness view); null when we are not a registered masternode
   * with a dialable address.
   */
  get(fresh = false): MnAnnounceMsg | null {
    const { operatorKey: key, liveness, clock } = this.modules;
    if (!key) return null;
    const entry = liveness.entryFor(key.publicKey);
    if (!entry) return null;
    const address = usableAddress(this.modules.serviceAddress()) ?? usableAddress(entry.address);
    if (address === null) {
      if (!this.warnedAddress) {
        this.modules.logger.warn("Not announcing: no dialable service address", {
          serviceAddress: this.modules.serviceAddress(),
          registered: entry.address,
        });
        this.warnedAddress = true;
      }
      return null;
    }
    const last = this.last;
    const now = clock.now();
    const reusable =
      last !== null &&
      last.address === address &&
      last.timestamp <= now &&
      now - last.timestamp < this.announceIntervalMs / 2;
    if (!fresh && reusable) return last;
    const ann = signMnAnnounce(key, { nodeId: this.modules.nodeId, address, timestamp: now });
    liveness.recordOwnAnnounce(ann);
    this.last = { type: MsgType.MnAnnounce, ...ann };
    return this.last;
  }
}

/** `s` as an announceable "host:port": well formed, a real port, not an unspecified host. */
function usableAddress(s: string): string | null {
  const hp = checkHostPort(s);
  return hp.ok && !isUnspecifiedHost(hp.value.host) ? s : null;
}
