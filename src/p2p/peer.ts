import { CodecError } from "../codec/index.js";
import { BoundedMap } from "../util/boundedMap.js";
import type { TimerHandle } from "../util/clock.js";
import { TypedEmitter } from "../util/typedEmitter.js";
import {
  HANDSHAKE_TIMEOUT_MS,
  HELLO_TIMEOUT_MS,
  KNOWN_INVENTORY_PER_PEER,
  FRAME_HEADER_SIZE,
  MAX_DROPPED_PER_INTERVAL,
  MAX_SEND_QUEUE_BYTES,
  pingPolicy,
  PROOF_SCORE,
  REQUEST_TIMEOUT_MS,
  SERVICE_MASTERNODE,
  PING_REFRESH_INTERVALS,
  STALL_PING_INTERVALS,
} from "./constants.js";
import { fillFrameHeader, FrameDecoder, FrameError, framingFailure } from "./frame.js";
import type { Frame, WireMessage } from "./frame.js";
import { PeerError } from "./errors.js";
import { inventoryKey } from "./inventory.js";
export { PeerError };
import {
  decodeMessage,
  encodeMessageAfter,
  goodbyeReasonName,
  GoodbyeReason,
  MsgType,
  payloadCap,
  responseReqId,
  type HelloMsg,
  type Message,
  type MessageOf,
} from "./messages.js";
import { FLOOD_SCORE, REQUEST_TYPES } from "./rateLimits.js";
import { PendingRequests } from "./requests.js";
import { TokenBucket } from "../util/tokenBucket.js";
import type { Connection } from "./transport.js";
import {
  authFor,
  checkAuth,
  HandshakeState,
  helloFor,
  helloRefusal,
  keyRefusal,
  type Session,
} from "./handshake.js";
import { MAX_RECORDS_PER_DIRECTION, type RecordSealer } from "./secureChannel.js";

import type { Direction, LocalInfo, MisbehaviourKind, PeerModules, PeerOptions } from "./peerTypes.js";
export type { Direction, LocalInfo, MisbehaviourKind, PeerModules, PeerOptions } from "./peerTypes.js";
export { AUTH_DOMAIN, MN_AUTH_DOMAIN } from "./handshake.js";

export interface PeerEvents {
  /** Handshake complete and authenticated. */
  ready: Peer;
  message: { peer: Peer; msg: Message };
  /** The peer's height or tip changed (handshake, ping, pong, tip announcement). */
  state: Peer;
  /** `evidence` is the proof as received (hex of the offending bytes, hashes, the rule). */
  misbehaviour: { peer: Peer; kind: MisbehaviourKind; score: number; detail: string; evidence: string };
  closed: { peer: Peer; reason: GoodbyeReason; message: string; byUs: boolean };
}

/**
 * One connection to one peer, inbound or outbound alike: one message loop, one handler.
 * The handshake authenticates the node key (each side signs the other's challenge), and a
 * masternode also proves its operator key. After that every request type works in both
 * directions.
 */
export class Peer {
  readonly events = new TypedEmitter<PeerEvents>();
  readonly direction: Direction;
  readonly connectedAt: number;
  readonly ip: string;
  readonly port: number;
  /** Remote Hello, once received. */
  hello: HelloMsg | null = null;
  /** Operator key the peer proved it holds, or null. */
  operatorPubkey: Buffer | null = null;
  height = 0;
  tipHash: Buffer = Buffer.alloc(32);
  /** Last measured round-trip time in ms, or null before the first pong. */
  rttMs: number | null = null;
  /**
   * The peer's clock minus ours, in ms: from its Hello (one way, latency ignored), then from each
   * Pong (its timestamp against the middle of the round trip). Null before the Hello.
   */
  clockOffsetMs: number | null = null;
  lastMessageAt: number;
  /** Monotonic time of the last bytes received (partial frames count: a large frame in transit is not a stall). */
  private lastBytesAt: number;
  /** Monotonic time of the last complete frame. */
  private lastFrameMono: number;
  /** When the peer's last Ping arrived, and when we last sent one (monotonic ms). */
  private lastPeerPingAt: number | null = null;
  private lastPingSentAt: number | null = null;
  /** Messages dropped over their rate limit (liveness gossip, answers): never scored. */
  droppedOverLimit = 0;
  private droppedThisInterval = 0;
  private lastTickAt: number | null = null;
  bytesIn = 0;
  bytesOut = 0;
  state: "handshaking" | "ready" | "closed" = "handshaking";
  closeReason: GoodbyeReason | null = null;

  private readonly decoder: FrameDecoder;
  private readonly challenge: Buffer;
  private readonly handshake: HandshakeState;
  /** The session once both Hellos are in: its transcript and, when encrypted, its keys. */
  private session: Session | null = null;
  private sealer: RecordSealer | null = null;
  private sentAuth = false;
  private gotAuth = false;
  private handshakeTimer: TimerHandle | null = null;
  private helloTimer: TimerHandle | null = null;
  private pingTimer: TimerHandle | null = null;
  private readonly pings = new Map<number, number>();
  private readonly requests: PendingRequests;
  private readonly buckets = new Map<MsgType, TokenBucket>();
  private readonly known = new BoundedMap<number, true>(KNOWN_INVENTORY_PER_PEER);

  constructor(
    private readonly conn: Connection,
    private readonly local: LocalInfo,
    private readonly opts: PeerOptions,
    private readonly modules: PeerModules,
  ) {
    this.direction = opts.direction;
    this.ip = conn.remoteHost;
    this.port = conn.remotePort;
    this.connectedAt = modules.clock.now();
    this.lastMessageAt = this.connectedAt;
    this.lastBytesAt = modules.clock.monotonic();
    this.lastFrameMono = this.lastBytesAt;
    this.challenge = modules.random.bytes(32);
    this.requests = new PendingRequests(modules.clock);
    this.handshake = new HandshakeState(
      opts.direction === "outbound" ? "initiator" : "responder",
      modules.random.bytes(32),
    );
    this.decoder = new FrameDecoder(local.magic, payloadCap, (type, length) =>
      modules.logger.debug("Skipping unknown message type", { type, length }),
    );
    const now = modules.clock.now();
    for (const [type, limit] of Object.entries(opts.rateLimits) as Array<[string, [number, number]]>) {
      this.buckets.set(Number(type) as MsgType, new TokenBucket(limit[0], limit[1], now));
    }
  }

  /** Starts the handshake. */
  start(): void {
    this.conn.onData((chunk) => this.onData(chunk));
    this.conn.onClose(() => this.onConnClosed());
    this.handshakeTimer = this.modules.clock.setTimeout(
      () => this.close(GoodbyeReason.HANDSHAKE_TIMEOUT, "handshake did not complete in time"),
      this.opts.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS,
    );
    const helloMs = this.opts.helloTimeoutMs ?? HELLO_TIMEOUT_MS;
    this.helloTimer = this.modules.clock.setTimeout(() => {
      this.helloTimer = null;
      if (!this.hello) this.close(GoodbyeReason.HANDSHAKE_TIMEOUT, `no complete Hello within ${helloMs} ms`);
    }, helloMs);
    const tip = this.local.tip();
    const hello = this.encode(
      helloFor(this.local, this.handshake.ephemeral.publicKey, {
        challenge: this.challenge,
        listenAddr: this.local.listenAddr(),
        height: tip.height,
        tipHash: tip.hash,
        services: this.local.services(),
        timestamp: this.modules.clock.now(),
      }),
    );
    this.handshake.sent(hello.payload);
    this.sendFrame(hello);
  }

  /** Whether the session's records are encrypted (false before the Hellos, and on a plaintext devnet). */
  get encrypted(): boolean {
    return this.sealer !== null;
  }

  /** The authenticated node id (the peer's public key); only valid once ready. */
  get nodeId(): Buffer {
    if (!this.hello) throw new Error("peer has no node id before its Hello");
    return this.hello.nodeId;
  }

  get nodeIdHex(): string {
    return this.hello ? this.hello.nodeId.toString("hex") : "";
  }

  /** The peer says it runs a masternode. Proven only when operatorPubkey is set. */
  get claimsMasternode(): boolean {
    return ((this.hello?.services ?? 0) & SERVICE_MASTERNODE) !== 0;
  }

  get addr(): string {
    return this.ip.includes(":") ? `[${this.ip}]:${this.port}` : `${this.ip}:${this.port}`;
  }

  get sendQueueBytes(): number {
    return this.conn.pendingBytes;
  }

  /** The remote has sent its whole Hello (a connection past this point is not a slow-drip slot holder). */
  get helloReceived(): boolean {
    return this.hello !== null;
  }

  /** Records that the remote has `hash` (a hash, or its inventoryKey when the caller has one). */
  markKnown(hash: Buffer | number): void {
    this.known.set(typeof hash === "number" ? hash : inventoryKey(hash), true);
  }

  knows(hash: Buffer | number): boolean {
    return this.known.has(typeof hash === "number" ? hash : inventoryKey(hash));
  }

  send(msg: Message): void {
    if (this.state === "closed") return;
    this.sendFrame(this.encode(msg));
  }

  /** `msg` encoded once: a broadcast encodes it once and hands it to every peer. */
  encode(msg: Message): WireMessage {
    const framed = encodeMessageAfter(FRAME_HEADER_SIZE, msg);
    return { type: msg.type, payload: framed.subarray(FRAME_HEADER_SIZE), framed };
  }

  /**
   * The bytes of `w` on this connection: a sealed record (which takes the next sequence number,
   * so the bytes must be written, in order), or a plaintext frame.
   */
  wireBytes(w: WireMessage): Buffer {
    if (this.sealer) return this.sealer.seal(w.type, w.payload);
    return (w.frame ??= fillFrameHeader(this.local.magic, w.type, w.framed));
  }

  /** Sends a message made by encode(). */
  sendFrame(w: WireMessage): void {
    if (this.state === "closed") return;
    // One record is kept back for the Goodbye (the limit is 2^48: no connection lives that long).
    if (this.sealer && this.sealer.sequence >= MAX_RECORDS_PER_DIRECTION - 1) {
      this.close(GoodbyeReason.SHUTDOWN, "record sequence limit reached");
      return;
    }
    const frame = this.wireBytes(w);
    this.bytesOut += frame.length;
    this.conn.write(frame);
    if (this.conn.pendingBytes > MAX_SEND_QUEUE_BYTES) {
      this.close(GoodbyeReason.SEND_QUEUE_OVERFLOW, `send queue over ${MAX_SEND_QUEUE_BYTES} bytes`);
    }
  }

  /**
   * Sends a request and resolves with the response of one of the `expect` types carrying its
   * reqId. Rejects on timeout, on a NotFound answer, or when the peer closes.
   */
  request<T extends MsgType>(
    build: (reqId: number) => Message,
    expect: readonly T[],
    timeoutMs = REQUEST_TIMEOUT_MS,
  ): Promise<MessageOf<T>> {
    if (this.state !== "ready") return Promise.reject(new PeerError("CLOSED", "peer is not connected"));
    return this.requests.start((reqId) => this.send(build(reqId)), expect, timeoutMs, this.addr);
  }

  /** Ends the connection, telling the peer why. Idempotent. */
  close(reason: GoodbyeReason, message = ""): void {
    if (this.state === "closed") return;
    if (reason !== GoodbyeReason.CONNECTION_LOST) {
      try {
        this.conn.write(this.wireBytes(this.encode({ type: MsgType.Goodbye, reason, message })));
      } catch {
        // best effort
      }
      this.conn.end();
    } else {
      this.conn.destroy();
    }
    this.finish(reason, message, true);
  }

  private finish(reason: GoodbyeReason, message: string, byUs: boolean): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.closeReason = reason;
    this.handshakeTimer?.cancel();
    this.helloTimer?.cancel();
    this.pingTimer?.cancel();
    this.requests.rejectAll(`peer closed (${goodbyeReasonName(reason)})`);
    this.events.emit("closed", { peer: this, reason, message, byUs });
  }

  private onConnClosed(): void {
    if (this.state !== "closed") this.finish(GoodbyeReason.CONNECTION_LOST, "connection lost", false);
  }

  private misbehave(kind: MisbehaviourKind, score: number, detail: string, evidence = detail): void {
    this.events.emit("misbehaviour", { peer: this, kind, score, detail, evidence });
  }

  private onData(chunk: Buffer): void {
    if (this.state === "closed") return;
    this.bytesIn += chunk.length;
    this.lastBytesAt = this.modules.clock.monotonic();
    this.decoder.feed(chunk);
    // One frame at a time: the peer's Hello switches the decoder to records for what follows it.
    while ((this.state as Peer["state"]) !== "closed") {
      const f = this.nextFrame();
      if (!f || !this.onFrame(f)) return;
    }
  }

  /** The next frame, or null (none yet, or the framing failed and the peer is closed). */
  private nextFrame(): Frame | null {
    try {
      return this.decoder.next();
    } catch (e) {
      if (!(e instanceof FrameError)) {
        this.modules.logger.error("Frame decoder failed", { peer: this.addr }, e);
        this.close(GoodbyeReason.PROTOCOL_VIOLATION, "bad framing");
        return null;
      }
      // Close first, so the Goodbye and the reason counter say why; the score (and any ban) follows.
      const failure = framingFailure(e);
      this.close(failure.reason, e.message);
      if (failure.evidence) this.misbehave("MALFORMED_FRAME", PROOF_SCORE, e.message, failure.evidence);
      return null;
    }
  }

  /** Decodes and handles one frame; false once the peer is closed. */
  private onFrame(f: Frame): boolean {
    let msg: Message;
    try {
      msg = decodeMessage(f.type as MsgType, f.payload);
    } catch (e) {
      const detail = `undecodable ${MsgType[f.type] ?? f.type}: ${e instanceof CodecError ? e.message : String(e)}`;
      this.close(GoodbyeReason.PROTOCOL_VIOLATION, detail);
      const evidence = `type 0x${f.type.toString(16)}, ${f.payload.length} bytes, first bytes ${f.payload
        .subarray(0, 64)
        .toString("hex")}: ${detail}`;
      this.misbehave("UNDECODABLE", PROOF_SCORE, detail, evidence);
      return false;
    }
    this.lastMessageAt = this.modules.clock.now();
    this.lastFrameMono = this.modules.clock.monotonic();
    try {
      this.handle(msg, f.payload);
    } catch (e) {
      // A handler bug must never take the process down; drop this peer and log.
      this.modules.logger.error(
        "Peer message handler failed",
        { peer: this.addr, type: MsgType[msg.type] },
        e,
      );
      this.close(GoodbyeReason.PROTOCOL_VIOLATION, "internal error handling message");
      return false;
    }
    return this.state !== "closed";
  }

  /** `raw` is the payload as received (a Hello's bytes go into the transcript). */
  private handle(msg: Message, raw: Buffer): void {
    if (msg.type === MsgType.Goodbye) {
      this.modules.logger.debug("Peer said goodbye", {
        peer: this.addr,
        reason: goodbyeReasonName(msg.reason),
        message: msg.message,
      });
      this.conn.end();
      this.finish(msg.reason as GoodbyeReason, msg.message, false);
      return;
    }
    if (this.state === "handshaking") {
      this.handleHandshake(msg, raw);
      return;
    }
    const bucket = this.buckets.get(msg.type);
    if (bucket && !bucket.take(this.modules.clock.now())) {
      this.overLimit(msg.type);
      return;
    }
    switch (msg.type) {
      case MsgType.Hello:
      case MsgType.Auth:
        this.misbehave("PROTOCOL_VIOLATION", PROOF_SCORE, `${MsgType[msg.type]} after the handshake`);
        return;
      case MsgType.Ping: {
        this.lastPeerPingAt = this.modules.clock.monotonic();
        // A side that rarely pings still follows the peer's clock, by half the last RTT known.
        this.clockOffsetMs = msg.timestamp - (this.modules.clock.now() - (this.rttMs ?? 0) / 2);
        this.updateState(msg.height, msg.tipHash);
        const tip = this.local.tip();
        this.send({
          type: MsgType.Pong,
          nonce: msg.nonce,
          height: tip.height,
          tipHash: tip.hash,
          timestamp: this.modules.clock.now(),
        });
        return;
      }
      case MsgType.Pong: {
        const sentAt = this.pings.get(msg.nonce);
        if (sentAt !== undefined) {
          this.rttMs = this.modules.clock.monotonic() - sentAt;
          this.clockOffsetMs = msg.timestamp - (this.modules.clock.now() - this.rttMs / 2);
          // A pong answers this ping and every older one.
          for (const [nonce, at] of this.pings) if (at <= sentAt) this.pings.delete(nonce);
        }
        this.updateState(msg.height, msg.tipHash);
        return;
      }
      default:
        break;
    }
    const reqId = responseReqId(msg);
    if (reqId !== null) {
      const { violation } = this.requests.answer(reqId, msg);
      if (violation) this.misbehave("PROTOCOL_VIOLATION", PROOF_SCORE, violation);
      return;
    }
    this.events.emit("message", { peer: this, msg });
  }

  /** Updates the peer's advertised height/tip (also used for block announcements). */
  updateState(height: number, tipHash: Buffer): void {
    if (height === this.height && tipHash.equals(this.tipHash)) return;
    this.height = height;
    this.tipHash = tipHash;
    this.events.emit("state", this);
  }

  private handleHandshake(msg: Message, raw: Buffer): void {
    if (msg.type === MsgType.Hello) {
      if (this.session) {
        this.close(GoodbyeReason.PROTOCOL_VIOLATION, "second Hello");
        this.misbehave("PROTOCOL_VIOLATION", PROOF_SCORE, "second Hello in the handshake");
        return;
      }
      // An old version or another transport mode is refused in plaintext: there is no key yet.
      const session = keyRefusal(msg, this.local) ?? this.handshake.establish(msg, raw, this.local);
      if ("reason" in session) {
        this.close(session.reason, session.message);
        return;
      }
      // Everything after the Hellos is sealed, this side's refusals included.
      this.session = session;
      this.sealer = session.sealer;
      if (session.opener) this.decoder.setOpener(session.opener);
      const refusal = helloRefusal(msg, this.local);
      if (refusal) {
        this.close(refusal.reason, refusal.message);
        return;
      }
      this.hello = msg;
      this.clockOffsetMs = msg.timestamp - this.modules.clock.now();
      this.helloTimer?.cancel();
      this.helloTimer = null;
      this.height = msg.height;
      this.tipHash = msg.tipHash;
      this.send(authFor(session, this.local));
      this.sentAuth = true;
      this.maybeReady();
      return;
    }
    if (msg.type === MsgType.Auth) {
      if (!this.hello || this.gotAuth) {
        this.close(GoodbyeReason.PROTOCOL_VIOLATION, "Auth before Hello");
        this.misbehave("PROTOCOL_VIOLATION", PROOF_SCORE, this.hello ? "second Auth" : "Auth before Hello");
        return;
      }
      const checked = checkAuth(msg, this.hello.nodeId, this.session!);
      if ("reason" in checked) {
        this.close(checked.reason, checked.message);
        return;
      }
      if (checked.operator) this.operatorPubkey = checked.operator;
      this.gotAuth = true;
      this.maybeReady();
      return;
    }
    this.close(GoodbyeReason.PROTOCOL_VIOLATION, "message before handshake");
    this.misbehave("PROTOCOL_VIOLATION", PROOF_SCORE, `${MsgType[msg.type]} before the handshake finished`);
  }

  private maybeReady(): void {
    if (!this.sentAuth || !this.gotAuth || this.state !== "handshaking") return;
    this.state = "ready";
    this.handshakeTimer?.cancel();
    this.handshakeTimer = null;
    this.pingTimer = this.modules.clock.setInterval(() => this.pingTick(), this.opts.pingIntervalMs);
    this.events.emit("ready", this);
    this.events.emit("state", this);
    this.pingTick();
  }

  /**
   * A message over its rate limit. A request flood is a soft offence (scored toward a short ban);
   * anything else (liveness gossip, announcements, answers) is dropped unscored: a burst of it is
   * what a link delivers when it resumes after a stall. A peer that makes us drop more than
   * MAX_DROPPED_PER_INTERVAL messages in one ping interval is disconnected, never banned.
   */
  private overLimit(type: MsgType): void {
    if (REQUEST_TYPES.has(type)) {
      this.misbehave("REQUEST_FLOOD", FLOOD_SCORE, `${MsgType[type]} over its rate limit`);
      return;
    }
    this.droppedOverLimit++;
    if (++this.droppedThisInterval > MAX_DROPPED_PER_INTERVAL) {
      this.close(
        GoodbyeReason.RATE_LIMITED,
        `over ${MAX_DROPPED_PER_INTERVAL} messages over their rate limits within one ping interval`,
      );
    }
  }

  private pingTick(): void {
    if (this.state !== "ready") return;
    const now = this.modules.clock.monotonic();
    // A tick that comes late means our own event loop was blocked: bytes may be waiting unread,
    // so silence measured across it proves nothing about the link.
    const late = this.lastTickAt !== null && now - this.lastTickAt > 1.5 * this.opts.pingIntervalMs;
    this.lastTickAt = now;
    this.droppedThisInterval = 0;
    const stallMs = this.opts.stallTimeoutMs ?? STALL_PING_INTERVALS * this.opts.pingIntervalMs;
    if (!late && now - this.lastBytesAt > stallMs) {
      this.close(GoodbyeReason.STALLED, `nothing received for ${Math.round(now - this.lastBytesAt)} ms`);
      return;
    }
    const { timeoutMs, maxMissed } = pingPolicy(
      this.opts.pingIntervalMs,
      this.opts.isPrivileged?.() ?? false,
    );
    let missed = 0;
    // A ping counts as missed only once a whole frame has arrived after it: when nothing has (the
    // peer's pong may be queued behind a large frame still arriving), silence is the stall
    // detector's business, not this one's.
    for (const at of this.pings.values()) if (now - at > timeoutMs && this.lastFrameMono > at) missed++;
    if (missed >= maxMissed) {
      this.close(GoodbyeReason.PING_TIMEOUT, `${missed} pongs missed`);
      return;
    }
    // Keep enough unanswered pings for maxMissed of them to age past timeoutMs (the oldest are
    // what count as missed); keeping only maxMissed + 1 meant a silent peer was never dropped.
    if (this.pings.size > maxMissed + Math.ceil(timeoutMs / this.opts.pingIntervalMs)) {
      const oldest = this.pings.keys().next();
      if (!oldest.done) this.pings.delete(oldest.value);
    }
    if (this.pingsCovered(now)) return;
    this.lastPingSentAt = now;
    const nonce = this.modules.random.int(2 ** 48);
    this.pings.set(nonce, now);
    const tip = this.local.tip();
    this.send({
      type: MsgType.Ping,
      nonce,
      height: tip.height,
      tipHash: tip.hash,
      timestamp: this.modules.clock.now(),
    });
  }

  /**
   * Whether this tick's Ping can be left out: on a link we accepted, the dialer's Pings (each
   * answered with our Pong) already carry a frame each way every interval, so we ping only when
   * they stop coming or our own last Ping is PING_REFRESH_INTERVALS old.
   */
  private pingsCovered(now: number): boolean {
    if (this.direction !== "inbound" || this.lastPeerPingAt === null || this.lastPingSentAt === null)
      return false;
    const interval = this.opts.pingIntervalMs;
    return (
      now - this.lastPeerPingAt <= 1.5 * interval &&
      now - this.lastPingSentAt < PING_REFRESH_INTERVALS * interval
    );
  }
}
