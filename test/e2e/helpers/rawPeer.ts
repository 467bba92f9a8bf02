/**
 * A "test peer" that speaks the P2P protocol by hand over node:net, with the node's own framing
 * (src/p2p/frame.ts), session layer (src/p2p/handshake.ts, secureChannel.ts) and codecs
 * (src/p2p/messages.ts). It can do a correct handshake and then misbehave: stay silent, flood,
 * send garbage. Once both Hellos are in, `send` and `sendFrame` seal records in the session, as a
 * node does; `write` puts raw bytes on the wire. Every socket it opens is tracked so
 * `destroyAllRawPeers()` (call it from `after`) leaves nothing behind.
 */
import { connect, type Socket } from "node:net";
import { KeyPair } from "../../../src/crypto/ed25519.js";
import { randomBytes } from "node:crypto";
import {
  MIN_PROTOCOL_VERSION,
  PROTOCOL_VERSION,
  SERVICE_BLOCKS,
  SERVICE_MASTERNODE,
} from "../../../src/p2p/constants.js";
import { encodeFrame, FrameDecoder } from "../../../src/p2p/frame.js";
import {
  authFor,
  checkAuth,
  HandshakeState,
  transportOf,
  type HandshakeIdentity,
  type Session,
} from "../../../src/p2p/handshake.js";
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
  /** Offer a plaintext session (a devnet node with plaintext_transport accepts it). */
  plaintext?: boolean;
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
  /** The node's Auth verified against the session's transcript. */
  remoteAuthOk: boolean | null = null;
  /** The session, once both Hellos are in and both would be accepted. */
  session: Session | null = null;
  readonly handshakeState = new HandshakeState("initiator", randomBytes(32));
  private sentHello: HelloMsg | null = null;
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

  /** What the session layer needs of us. */
  get identity(): HandshakeIdentity {
    return {
      network: this.opts.network,
      magic: this.opts.magic,
      genesisHash: this.opts.genesisHash,
      nodeKey: this.key,
      operatorKey: this.operatorKey,
      plaintext: this.opts.plaintext ?? false,
    };
  }

  /**
   * Starts the session once both Hellos are in, if the node will accept ours and we its (the node
   * refuses a bad version or transport in plaintext, and then no session starts).
   */
  private maybeEstablish(theirRaw: Buffer | null): void {
    const ours = this.sentHello;
    const theirs = this.remoteHello;
    if (this.session || !ours || !theirs || !theirRaw) return;
    const acceptable = (h: HelloMsg): boolean =>
      h.version >= MIN_PROTOCOL_VERSION &&
      h.ephemeralKey !== null &&
      h.transport === transportOf(this.identity);
    if (!acceptable(ours) || !acceptable(theirs)) return;
    const s = this.handshakeState.establish(theirs, theirRaw, this.identity);
    if ("reason" in s) return;
    this.session = s;
    if (s.opener) this.decoder.setOpener(s.opener);
  }

  private remoteHelloRaw: Buffer | null = null;

  private onData(chunk: Buffer): void {
    this.decoder.feed(chunk);
    for (;;) {
      let f: RawFrame | null;
      try {
        f = this.decoder.next();
      } catch (e) {
        this.decodeError = e as Error;
        return;
      }
      if (!f) return;
      this.frames.push(f);
      let msg: Message;
      try {
        msg = decodeMessage(f.type as MsgType, f.payload);
      } catch (e) {
        this.decodeError = e as Error;
        continue;
      }
      this.messages.push(msg);
      if (msg.type === MsgType.Hello && !this.remoteHello) {
        this.remoteHello = msg;
        this.remoteHelloRaw = f.payload;
        this.maybeEstablish(f.payload);
      } else if (
        msg.type === MsgType.Auth &&
        this.remoteHello &&
        this.session &&
        this.remoteAuthOk === null
      ) {
        this.remoteAuthOk = !("reason" in checkAuth(msg, this.remoteHello.nodeId, this.session));
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

  /**
   * Sends `payload` as `type`: sealed in the session's next record once there is one, else as a
   * plaintext frame with `magic` (the node's by default; another magic always goes in plaintext).
   */
  sendFrame(type: number, payload: Buffer, magic: Buffer = this.opts.magic): void {
    this.write(this.frameBytes(type, payload, magic));
  }

  /**
   * The bytes `sendFrame` would write (a sealed record takes the session's next sequence number,
   * so write them, in order, before anything else is sealed).
   */
  frameBytes(type: number, payload: Buffer, magic: Buffer = this.opts.magic): Buffer {
    const sealer = this.session?.sealer;
    if (sealer && magic.equals(this.opts.magic)) return sealer.seal(type, payload);
    return encodeFrame(magic, type, payload);
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
      ephemeralKey: this.handshakeState.ephemeral.publicKey,
      transport: transportOf(this.identity),
      ...overrides,
    };
  }

  /** Sends our Hello (plaintext, as every Hello is) and starts the session if the node's is in. */
  sendHello(overrides: Partial<HelloMsg> = {}, magic?: Buffer): void {
    const hello = this.helloMsg(overrides);
    const payload = encodeMessage(hello);
    this.write(encodeFrame(magic ?? this.opts.magic, MsgType.Hello, payload));
    // A Hello framed for another network never reaches the node's handshake.
    if (this.sentHello || (magic && !magic.equals(this.opts.magic))) return;
    this.sentHello = hello;
    this.handshakeState.sent(payload);
    this.maybeEstablish(this.remoteHelloRaw);
  }

  /**
   * Our Auth over the session's transcript, signed as src/p2p/peer.ts does (handshake.ts,
   * authFor), sealed in the session's first record. `corrupt` flips one bit of the signature.
   */
  sendAuth(opts: { corrupt?: boolean } = {}): void {
    if (!this.session) throw new Error("sendAuth before both Hellos were in (or one was refused)");
    const auth = authFor(this.session, this.identity);
    if (opts.corrupt) auth.signature[0] = auth.signature[0]! ^ 0x01;
    this.send(auth);
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
    if (this.remoteAuthOk !== true) throw new Error("the node's Auth did not verify against the transcript");
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
