/**
 * `[node] blocknotify` and `finalizednotify` (docs/OPERATIONS.md): run an operator's command
 * with a block hash, as bitcoind's notification hooks do, but never through a shell. The command
 * is a list, program then arguments; every "%s" inside an argument becomes the hash (64 hex
 * characters, so nothing a shell or the program could misread), and the program is started
 * directly with that argument vector. Bounded: at most MAX_RUNNING at once, a queue of at most
 * MAX_QUEUED (the oldest waiting hash gives way, counted), and each run killed after
 * RUN_TIMEOUT_MS. A failing command is logged, never fatal.
 */
import { spawn } from "node:child_process";
import type { ChainEvents } from "../chain/chainReader.js";
import type { Logger } from "../logging/index.js";
import type { TypedEmitter } from "../util/typedEmitter.js";
import type { Clock } from "../util/clock.js";

export const MAX_RUNNING = 4;
export const MAX_QUEUED = 64;
export const RUN_TIMEOUT_MS = 10_000;

export class Notifier {
  private running = 0;
  private readonly queue: string[] = [];
  /** Hashes dropped because the queue was full. */
  dropped = 0;
  /** Runs that ended: by exit 0, by another exit or a start failure, by the timeout. */
  readonly outcomes = { ok: 0, failed: 0, timedOut: 0 };

  constructor(
    /** What the hook is called in logs ("blocknotify"). */
    private readonly name: string,
    private readonly command: readonly string[],
    private readonly modules: { clock: Clock; logger: Logger },
    private readonly timeoutMs = RUN_TIMEOUT_MS,
  ) {
    if (command.length === 0) throw new Error(`${name}: the command list is empty`);
  }

  /** Queues a run for `hash` (a block hash in hex). */
  fire(hash: string): void {
    if (this.queue.length >= MAX_QUEUED) {
      this.queue.shift();
      this.dropped++;
    }
    this.queue.push(hash);
    this.pump();
  }

  /** The argument vector for one hash: every "%s" replaced, nothing else touched. */
  argv(hash: string): string[] {
    return this.command.map((a) => a.split("%s").join(hash));
  }

  private pump(): void {
    while (this.running < MAX_RUNNING && this.queue.length > 0) this.run(this.queue.shift()!);
  }

  private run(hash: string): void {
    const [program, ...args] = this.argv(hash);
    const { clock, logger } = this.modules;
    this.running++;
    let settled = false;
    const done = (outcome: keyof Notifier["outcomes"], detail: Record<string, unknown>): void => {
      if (settled) return;
      settled = true;
      timer.cancel();
      this.outcomes[outcome]++;
      this.running--;
      if (outcome !== "ok") logger.warn(`${this.name} command did not succeed`, { hash, outcome, ...detail });
      this.pump();
    };
    const child = spawn(program!, args, { shell: false, stdio: "ignore", windowsHide: true });
    const timer = clock.setTimeout(() => {
      child.kill("SIGKILL");
      done("timedOut", { afterMs: this.timeoutMs });
    }, this.timeoutMs);
    child.once("error", (e) => done("failed", { error: e.message }));
    child.once("exit", (code, signal) => (code === 0 ? done("ok", {}) : done("failed", { code, signal })));
  }
}

/**
 * [node] blocknotify (every new tip) and finalizednotify (every final block), when set. Returns
 * the unsubscribe functions.
 */
export function startNotifiers(
  node: { blocknotify?: string[] | undefined; finalizednotify?: string[] | undefined },
  events: Pick<TypedEmitter<ChainEvents>, "on">,
  modules: { clock: Clock; logger: Logger },
): Array<() => void> {
  const out: Array<() => void> = [];
  if (node.blocknotify) {
    const n = new Notifier("blocknotify", node.blocknotify, modules);
    out.push(events.on("tip", (e) => n.fire(e.hash.toString("hex"))));
  }
  if (node.finalizednotify) {
    const n = new Notifier("finalizednotify", node.finalizednotify, modules);
    out.push(events.on("finalized", (e) => n.fire(e.checkpoint.hash.toString("hex"))));
  }
  return out;
}
