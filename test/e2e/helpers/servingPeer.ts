/**
 * A raw test peer (test/e2e/helpers/rawPeer.ts) that completes the handshake claiming a height
 * and tip of its choosing, answers pings with that claim, and answers GetHeaders, GetBlocks and
 * GetHashes through handlers: by default honestly, from a real Chain through the node's own
 * BlockServer; a test overrides a handler to stay silent, send garbage, an invalid branch, or hang
 * up in the middle of a batch.
 */
import type { Chain } from "../../../src/chain/chain.js";
import type { KeyPair } from "../../../src/crypto/ed25519.js";
import { MsgType, type Message, type MessageOf } from "../../../src/p2p/messages.js";
import type { Peer } from "../../../src/p2p/peer.js";
import { BlockServer } from "../../../src/relay/blockServer.js";
import { RawPeer } from "./rawPeer.js";

/** What a handler does with a request: answer it, ignore it ("silent"), or hang up ("close"). */
export type Reply = Message | "silent" | "close";
/** A handler may also answer later. */
export type MaybeLater = Reply | Promise<Reply>;

export interface ServingPeerOptions {
  /** "host:port" of the node. */
  target: string;
  /** This peer's own loopback IP. */
  localHost: string;
  magic: Buffer;
  network: string;
  genesisHash: Buffer;
  /** The chain it serves honestly (null: it serves nothing unless a handler does). */
  chain: Chain | null;
  /** The height and tip it claims in Hello and every pong (default: its chain's tip). */
  height?: number;
  tipHash?: Buffer;
  operatorKey?: KeyPair | null;
  onGetHeaders?: (m: MessageOf<MsgType.GetHeaders>, honest: () => Reply) => MaybeLater;
  onGetBlocks?: (m: MessageOf<MsgType.GetBlocks>, honest: () => Reply) => MaybeLater;
  onGetHashes?: (m: MessageOf<MsgType.GetHashes>, honest: () => Reply) => MaybeLater;
}

export class ServingPeer {
  readonly requests: Message[] = [];
  private seen = 0;
  private timer: NodeJS.Timeout | null = null;

  private constructor(
    readonly raw: RawPeer,
    private readonly opts: ServingPeerOptions,
  ) {}

  static async connect(opts: ServingPeerOptions): Promise<ServingPeer> {
    const raw = await RawPeer.connect({
      target: opts.target,
      localHost: opts.localHost,
      magic: opts.magic,
      network: opts.network,
      genesisHash: opts.genesisHash,
      operatorKey: opts.operatorKey ?? null,
      answerPings: false,
    });
    const p = new ServingPeer(raw, opts);
    raw.sendHello({ height: p.height, tipHash: p.tipHash });
    await raw.waitHello();
    raw.sendAuth();
    p.timer = setInterval(() => p.poll(), 2);
    await raw.waitFor(
      () => raw.received(MsgType.Ping).length > 0 || raw.closed,
      "the node's first Ping (handshake done)",
      5_000,
    );
    if (raw.closed)
      throw new Error(`serving peer closed during handshake (${raw.goodbyeReason ?? "no goodbye"})`);
    return p;
  }

  get height(): number {
    return this.opts.height ?? this.opts.chain?.height ?? 0;
  }

  get tipHash(): Buffer {
    return this.opts.tipHash ?? this.opts.chain?.tip.hash ?? this.opts.genesisHash;
  }

  /** Requests of one type received so far. */
  received(type: MsgType): Message[] {
    return this.requests.filter((m) => m.type === type);
  }

  get closed(): boolean {
    return this.raw.closed;
  }

  private honest(m: Message): Reply {
    if (!this.opts.chain) return "silent";
    let answer: Message | null = null;
    const peer = { send: (x: Message) => void (answer = x), markKnown: () => undefined } as unknown as Peer;
    new BlockServer(this.opts.chain).handle(peer, m);
    return answer ?? "silent";
  }

  private poll(): void {
    const msgs = this.raw.messages;
    while (this.seen < msgs.length) {
      const m = msgs[this.seen++]!;
      let reply: MaybeLater = "silent";
      switch (m.type) {
        case MsgType.Ping:
          reply = {
            type: MsgType.Pong,
            nonce: m.nonce,
            height: this.height,
            tipHash: this.tipHash,
            timestamp: Date.now(),
          };
          break;
        case MsgType.GetHeaders:
          this.requests.push(m);
          reply = this.opts.onGetHeaders ? this.opts.onGetHeaders(m, () => this.honest(m)) : this.honest(m);
          break;
        case MsgType.GetBlocks:
          this.requests.push(m);
          reply = this.opts.onGetBlocks ? this.opts.onGetBlocks(m, () => this.honest(m)) : this.honest(m);
          break;
        case MsgType.GetHashes:
          this.requests.push(m);
          reply = this.opts.onGetHashes ? this.opts.onGetHashes(m, () => this.honest(m)) : this.honest(m);
          break;
        default:
          break;
      }
      if (reply instanceof Promise) {
        void reply.then((r) => this.deliver(r)).catch(() => this.close());
        continue;
      }
      if (!this.deliver(reply)) return;
    }
    if (this.raw.closed) this.stopPolling();
  }

  /** Sends a reply; false if it hung up. */
  private deliver(reply: Reply): boolean {
    if (reply === "close") {
      this.close();
      return false;
    }
    if (reply !== "silent" && !this.raw.closed) this.raw.send(reply);
    return true;
  }

  private stopPolling(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Hangs up at once (no Goodbye). */
  close(): void {
    this.stopPolling();
    this.raw.destroy();
  }
}
