/**
 * The requests one peer has in flight (Peer.request): their reqIds, timeouts and the types each
 * may be answered with. An answer is matched by reqId; a late one (its request timed out) is
 * dropped, never scored.
 */
import type { Clock, TimerHandle } from "../util/clock.js";
import { MAX_PENDING_REQUESTS } from "./constants.js";
import { PeerError } from "./errors.js";
import { MsgType, type Message, type MessageOf } from "./messages.js";

interface Pending {
  expect: readonly MsgType[];
  resolve: (m: Message) => void;
  reject: (e: Error) => void;
  timer: TimerHandle;
}

/** What an answer did: nothing (late or fine), or broke the protocol (the detail says how). */
export type AnswerOutcome = { violation: null } | { violation: string };

export class PendingRequests {
  private readonly pending = new Map<number, Pending>();
  private nextReqId = 1;

  constructor(private readonly clock: Clock) {}

  get size(): number {
    return this.pending.size;
  }

  /**
   * Registers a request, sends it with `send(reqId)`, and resolves with its answer. Rejects on
   * timeout, on a NotFound answer (unless expected), or when the peer closes (rejectAll).
   */
  start<T extends MsgType>(
    send: (reqId: number) => void,
    expect: readonly T[],
    timeoutMs: number,
    addr: string,
  ): Promise<MessageOf<T>> {
    if (this.pending.size >= MAX_PENDING_REQUESTS) {
      return Promise.reject(new PeerError("TOO_MANY_REQUESTS", "too many requests in flight to this peer"));
    }
    const reqId = this.nextReqId;
    this.nextReqId = this.nextReqId >= 0xffffffff ? 1 : this.nextReqId + 1;
    return new Promise<MessageOf<T>>((resolve, reject) => {
      const timer = this.clock.setTimeout(() => {
        this.pending.delete(reqId);
        reject(new PeerError("TIMEOUT", `request ${reqId} to ${addr} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(reqId, { expect, resolve: resolve as (m: Message) => void, reject, timer });
      send(reqId);
    });
  }

  /** Settles the request `msg` answers. An answer of a type the request does not expect is a violation. */
  answer(reqId: number, msg: Message): AnswerOutcome {
    const p = this.pending.get(reqId);
    // A late answer to a timed-out request: normal after a stall (the whole backlog arrives at
    // once), so it is dropped and never scored.
    if (!p) return { violation: null };
    this.pending.delete(reqId);
    p.timer.cancel();
    const expected = p.expect.map((t) => MsgType[t]).join("/");
    if (msg.type === MsgType.NotFound && !p.expect.includes(MsgType.NotFound)) {
      p.reject(new PeerError("NOT_FOUND", msg.message || "not found"));
    } else if (!p.expect.includes(msg.type)) {
      p.reject(new PeerError("UNEXPECTED_RESPONSE", `expected ${expected}, got ${MsgType[msg.type]}`));
      return { violation: `${MsgType[msg.type]} answering request ${reqId}, which expects ${expected}` };
    } else {
      p.resolve(msg);
    }
    return { violation: null };
  }

  /** Rejects every request in flight (the peer closed). */
  rejectAll(why: string): void {
    for (const p of this.pending.values()) {
      p.timer.cancel();
      p.reject(new PeerError("CLOSED", why));
    }
    this.pending.clear();
  }
}
