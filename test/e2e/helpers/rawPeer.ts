/**
 * A "test peer" that speaks the P2P protocol by hand over node:net, with the node's own framing
 * (src/p2p/frame.ts) and codecs (src/p2p/messages.ts). It can do a correct handshake (signing
 * the node's challenge as src/p2p/peer.ts does) and then misbehave: stay silent, flood, send
 * garbage. Every socket it opens is tracked so `destroyAllRawPeers()` (call it from `after`)
 * leaves nothing behind.
 */
import { connect, type Socket } from "node:net";
import { KeyPair, verifySignature } from "../../../src/crypto/ed25519.js";
import { randomBytes } from "node:crypto";
import { PROTOCOL_VERSION, SERVICE_BLOCKS, SERVICE_MASTERNODE } from "../../../src/p2p/constants.js";
import { encodeFrame, FrameDecoder } from "../../../src/p2p/frame.js";
import {
  decodeMessage,
  encodeMessage,
  GoodbyeReason,
  goodbyeReasonName,
  MsgType,
  payloadCap,
  type HelloMsg,
  type Message,
} from "../../../src/p2p/messages.js";
import { AUTH_DOMAIN, MN_AUTH_DOMAIN } from "../../../src/p2p/peer.js";
import { waitFor } from "./wait.js";

export interface RawPeerOptions {
  /** "host:port" of the node. */
  target: string;
  /** Source IP to bind (every test peer has its own loopback IP). */
  localHost: string;
  /** The node's network magic: frames from the node are decoded with it. */
  magic: Buffer;
  network: string;
  genesisHash: Buffer;
  /** This peer's node key; a fresh one by default. */
  key?: KeyPair;
  /** A masternode operator key to prove in Auth. */
  operatorKey?: KeyPair | null;
  /** Answer the node's pings with pongs (default false: a silent peer). */
  answerPings?: boolean;
}

export interface RawFrame {
  type: number;
  payload: Buffer;
}

const live = new Set<RawPeer>();

/** Destroys every raw peer's socket still open. */
export function destroyAllRawPeers(): void {
  for (const p of live) p.destroy();
  live.clear();
}

function splitHostPort(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(":");
  return { host: addr.slice(0, i), port: Number(addr.slice(i + 1)) };
}

/** Polls `cond` until it holds, or throws naming `what`. */
/** The shared wait helper, polling every 5 ms (frames arrive fast on loopback). */
async function until(cond: () => boolean, what: string, timeoutMs: number): Promise<void> {
  await waitFor(what, cond, { timeoutMs, stepMs: 5 });
}

export class RawPeer {
  readonly key: KeyPair;
  readonly operatorKey: KeyPair | null;
  readonly challenge = randomBytes(32);
  /** Every frame the node sent, in order (undecodable ones included). */
  readonly frames: RawFrame[] = [];
  /** Every frame that decoded. */
  readonly messages: Message[] = [];
  /** The node's Hello, once received. */
  remoteHello: HelloMsg | null = null;
  /** The node's Auth verified against our challenge. */
  remoteAuthOk: boolean | null = null;
  goodbye: { reason: number; message: string } | null = null;
  connected = false;
  closed = false;
  /** The decoder refused the node's bytes (would be a node bug). */
  decodeError: Error | null = null;
  answerPings: boolean;
  localPort = 0;
  private readonly socket: Socket;
  private readonly decoder: FrameDecoder;
  private readonly connectedP: Promise<void>;

  private constructor(readonly opts: RawPeerOptions) {
    this.key = opts.key ?? KeyPair.generate();
    this.operatorKey = opts.operatorKey ?? null;
    this.answerPings = opts.answerPings ?? false;
    this.decoder = new FrameDecoder(opts.magic, payloadCap);
    const { host, port } = splitHostPort(opts.target);
    this.socket = connect({ host, port, localAddress: opts.localHost });
    live.add(this);
    this.connectedP = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.socket.destroy();
        reject(new Error(`raw peer ${opts.localHost} could not connect to ${opts.target} within 5 s`));
      }, 5_000);
      this.socket.once("connect", () => {
        clearTimeout(timer);
        this.connected = true;
        this.localPort = this.socket.localPort ?? 0;
        resolve();
      });
      this.socket.once("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
    // Errors (ECONNRESET after the node hangs up) are expected; "close" records the end.
    this.socket.on("error", () => undefined);
    this.socket.on("close", () => {
      this.closed = true;
      live.delete(this);
    });
    this.socket.on("data", (chunk: Buffer) => this.onData(chunk));
  }

  /** Opens a TCP connection from `opts.localHost`; resolves once connected. */
  static async connect(opts: RawPeerOptions): Promise<RawPeer> {
    const p = new RawPeer(opts);
    await p.connectedP;
    return p;
  }

  /** Opens a connection without waiting for it (for floods). */
  static start(opts: RawPeerOptions): RawPeer {
    const p = new RawPeer(opts);
    p.connectedP.catch(() => undefined);
    return p;
  }

  get nodeId(): string {
    return this.key.publicKey.toString("hex");
  }

  get goodbyeReason(): string | null {
    return this.goodbye ? goodbyeReasonName(this.goodbye.reason) : null;
  }

  /** Types of the frames received so far. */
  received(type: MsgType): Message[] {
    return this.messages.filter((m) => m.type === type);
  }

  private onData(chunk: Buffer): void {
    let frames: RawFrame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (e) {
      this.decodeError = e as Error;
      return;
    }
    for (const f of frames) {
      this.frames.push(f);
      let msg: Message;
      try {
        msg = decodeMessage(f.type as MsgType, f.payload);
      } catch (e) {
        this.decodeError = e as Error;
        continue;
      }
      this.messages.push(msg);
      if (msg.type === MsgType.Hello && !this.remoteHello) this.remoteHello = msg;
      else if (msg.type === MsgType.Auth && this.remoteHello && this.remoteAuthOk === null) {
        this.remoteAuthOk = verifySignature(
          this.remoteHello.nodeId,
          Buffer.concat([
            AUTH_DOMAIN,
            this.challenge,
            this.remoteHello.nodeId,
            this.key.publicKey,
            this.opts.genesisHash,
          ]),
          msg.signature,
        );
      } else if (msg.type === MsgType.Goodbye) this.goodbye = { reason: msg.reason, message: msg.message };
      else if (msg.type === MsgType.Ping && this.answerPings) {
        this.send({
          type: MsgType.Pong,
          nonce: msg.nonce,
          height: 0,
          tipHash: this.opts.genesisHash,
          timestamp: Date.now(),
        });
      }
    }
  }

  // --- sending -------------------------------------------------------------------------

  /** Writes raw bytes. */
  write(data: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(data);
  }

  /** Frames `payload` as `type` with `magic` (the node's by default). */
  sendFrame(type: number, payload: Buffer, magic: Buffer = this.opts.magic): void {
    this.write(encodeFrame(magic, type, payload));
  }

  send(msg: Message, magic?: Buffer): void {
    this.sendFrame(msg.type, encodeMessage(msg), magic);
  }

  /** Our Hello, correct unless overridden. */
  helloMsg(overrides: Partial<HelloMsg> = {}): HelloMsg {
    return {
      type: MsgType.Hello,
      version: PROTOCOL_VERSION,
      network: this.opts.network,
      genesisHash: this.opts.genesisHash,
      nodeId: this.key.publicKey,
      challenge: this.challenge,
      listenAddr: "",
      height: 0,
      tipHash: this.opts.genesisHash,
      services: SERVICE_BLOCKS | (this.operatorKey ? SERVICE_MASTERNODE : 0),
      userAgent: "rawpeer/test",
      timestamp: Date.now(),
      ...overrides,
    };
  }

  sendHello(overrides: Partial<HelloMsg> = {}, magic?: Buffer): void {
    this.send(this.helloMsg(overrides), magic);
  }

  /**
   * Our Auth over the node's challenge, signed as src/p2p/peer.ts does:
   * node key over AUTH_DOMAIN ‖ their challenge ‖ our id ‖ their id ‖ genesis hash.
   * `corrupt` flips one bit of the signature.
   */
  sendAuth(opts: { corrupt?: boolean } = {}): void {
    const hello = this.remoteHello;
    if (!hello) throw new Error("sendAuth before the node's Hello arrived");
    const me = this.key.publicKey;
    const signature = this.key.sign(
      Buffer.concat([AUTH_DOMAIN, hello.challenge, me, hello.nodeId, this.opts.genesisHash]),
    );
    if (opts.corrupt) signature[0] = signature[0]! ^ 0x01;
    const op = this.operatorKey;
    this.send({
      type: MsgType.Auth,
      signature,
      operator: op
        ? { pubkey: op.publicKey, signature: op.sign(Buffer.concat([MN_AUTH_DOMAIN, hello.challenge, me])) }
        : null,
    });
  }

  /** Waits for the node's Hello. */
  async waitHello(timeoutMs = 5_000): Promise<HelloMsg> {
    await until(
      () => this.remoteHello !== null || this.closed,
      `the node's Hello on raw peer ${this.opts.localHost}`,
      timeoutMs,
    );
    if (!this.remoteHello) {
      throw new Error(
        `raw peer ${this.opts.localHost} was closed before a Hello (goodbye: ${this.goodbyeReason ?? "none"})`,
      );
    }
    return this.remoteHello;
  }

  /**
   * A correct handshake: Hello, then Auth once the node's Hello is in. Resolves when the node
   * treats us as a peer, which we see as its first Ping (sent the moment it is ready).
   */
  async handshake(timeoutMs = 5_000): Promise<void> {
    this.sendHello();
    await this.waitHello(timeoutMs);
    this.sendAuth();
    await until(
      () => this.received(MsgType.Ping).length > 0 || this.closed,
      `handshake of raw peer ${this.opts.localHost} (the node's first Ping)`,
      timeoutMs,
    );
    if (this.received(MsgType.Ping).length === 0) {
      throw new Error(
        `raw peer ${this.opts.localHost} closed during handshake (${this.goodbyeReason ?? "no goodbye"})`,
      );
    }
    if (this.remoteAuthOk !== true) throw new Error("the node's Auth did not verify against our challenge");
  }

  /** Waits until the node closes the connection; returns the Goodbye reason name (or null). */
  async waitClosed(timeoutMs = 5_000): Promise<string | null> {
    await until(() => this.closed, `the node to close raw peer ${this.opts.localHost}`, timeoutMs);
    return this.goodbyeReason;
  }

  /** Waits until `cond` holds. */
  waitFor(cond: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
    return until(cond, what, timeoutMs);
  }

  /** Half-closes politely. */
  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
    live.delete(this);
  }
}

export { GoodbyeReason };
