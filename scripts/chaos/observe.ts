/**
 * What the controller measures: tips, links and bans over RPC, and the lines of the node logs
 * that RPC cannot show afterwards (reorgs, and bans a node made before it was killed: bans are
 * saved to banlist.json only at a clean stop).
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import type { NodeHandle } from "./nodes.js";

export interface LinkSnapshot {
  /** Unordered node pairs with a connection, "a-b" with a < b, either side reporting it. */
  pairs: string[];
  possible: number;
  /** Nodes whose getpeerinfo did not answer. */
  unanswered: number[];
}

export interface BanRecord {
  /** The node that holds the ban. */
  node: number;
  /** The banned subject as listbanned gives it (an IP or a node id). */
  address: string;
  /** Which chaos node that subject is, if it is one. */
  subjectNode: number | null;
  reason: string;
  source: string;
  /** Every other field listbanned returned. */
  extra: Record<string, unknown>;
}

export interface ReorgRecord {
  node: number;
  depth: number;
  fork: number | null;
  newHeight: number | null;
  time: string;
}

export interface LogBanRecord {
  node: number;
  msg: string;
  /** The banned IP or node id, as the line names it. */
  subject: string;
  /** The line's fields besides level, time, module and msg. */
  fields: Record<string, unknown>;
}

export const pairKey = (a: number, b: number): string => (a < b ? `${a}-${b}` : `${b}-${a}`);

/** Maps an IP, IP:port or node id to the chaos node it names. */
export function subjectResolver(nodes: readonly NodeHandle[]): (s: string) => number | null {
  const byKey = new Map<string, number>();
  for (const n of nodes) {
    byKey.set(n.info.nodeId.toLowerCase(), n.index);
    byKey.set(`10.77.0.${n.index}`, n.index);
    byKey.set(`10.78.0.${n.index}`, n.index);
  }
  return (s) => {
    const host = s.replace(/^::ffff:/, "").replace(/:\d+$/, "");
    return byKey.get(s.toLowerCase()) ?? byKey.get(host) ?? null;
  };
}

export function tips(nodes: readonly NodeHandle[]): Promise<Array<string | undefined>> {
  return Promise.all(nodes.map((n) => n.tryCall<string>("getbestblockhash")));
}

export function heights(nodes: readonly NodeHandle[]): Promise<Array<number | undefined>> {
  return Promise.all(nodes.map((n) => n.tryCall<number>("getblockcount")));
}

interface PeerInfo {
  nodeid?: unknown;
}

export async function links(nodes: readonly NodeHandle[]): Promise<LinkSnapshot> {
  const resolve = subjectResolver(nodes);
  const answers = await Promise.all(nodes.map((n) => n.tryCall<PeerInfo[]>("getpeerinfo")));
  const pairs = new Set<string>();
  const unanswered: number[] = [];
  answers.forEach((peers, k) => {
    const me = nodes[k]!.index;
    if (!Array.isArray(peers)) {
      unanswered.push(me);
      return;
    }
    for (const p of peers) {
      const other = typeof p.nodeid === "string" ? resolve(p.nodeid) : null;
      if (other !== null && other !== me) pairs.add(pairKey(me, other));
    }
  });
  return {
    pairs: [...pairs].sort(),
    possible: (nodes.length * (nodes.length - 1)) / 2,
    unanswered,
  };
}

export interface BanSnapshot {
  bans: BanRecord[];
  unanswered: number[];
}

export async function bans(nodes: readonly NodeHandle[]): Promise<BanSnapshot> {
  const resolve = subjectResolver(nodes);
  const answers = await Promise.all(
    nodes.map((n) => n.tryCall<Array<Record<string, unknown>>>("listbanned")),
  );
  const out: BanRecord[] = [];
  const unanswered: number[] = [];
  answers.forEach((list, k) => {
    const me = nodes[k]!.index;
    if (!Array.isArray(list)) {
      unanswered.push(me);
      return;
    }
    for (const b of list) {
      const { address, reason, source, ...extra } = b;
      const addr = typeof address === "string" ? address : JSON.stringify(address);
      out.push({
        node: me,
        address: addr,
        subjectNode: resolve(addr),
        reason: typeof reason === "string" ? reason : JSON.stringify(reason),
        source: typeof source === "string" ? source : JSON.stringify(source),
        extra,
      });
    }
  });
  return { bans: out, unanswered };
}

/** One ban's identity across snapshots: who banned whom, and when the ban was made. */
export const banKey = (b: BanRecord): string =>
  `${b.node}|${b.address}|${JSON.stringify(b.extra.ban_created)}`;

/** Reads a node's JSON log from where it last stopped; a partial last line waits for the next read. */
export class LogCursor {
  private offset = 0;
  private rest = "";

  constructor(private readonly file: string) {}

  /** Skips everything written so far. */
  skipToEnd(): void {
    this.read();
  }

  read(): Array<Record<string, unknown>> {
    let fd: number;
    try {
      fd = openSync(this.file, "r");
    } catch {
      return [];
    }
    let text = "";
    try {
      const size = fstatSync(fd).size;
      // Bounded chunks: a log grows by a few kB per second.
      const buf = Buffer.alloc(1 << 20);
      while (this.offset < size) {
        const n = readSync(fd, buf, 0, Math.min(buf.length, size - this.offset), this.offset);
        if (n <= 0) break;
        this.offset += n;
        text += buf.toString("utf8", 0, n);
      }
    } finally {
      closeSync(fd);
    }
    const lines = (this.rest + text).split("\n");
    this.rest = lines.pop() ?? "";
    const out: Array<Record<string, unknown>> = [];
    for (const line of lines) {
      if (!line.startsWith("{")) continue;
      try {
        const v: unknown = JSON.parse(line);
        if (typeof v === "object" && v !== null) out.push(v as Record<string, unknown>);
      } catch {
        // a line cut by kill -9 and continued by the restart: not JSON, skip it
      }
    }
    return out;
  }
}

export interface LogFindings {
  reorgs: ReorgRecord[];
  logBans: LogBanRecord[];
  /** "Peer disconnected" reasons, counted. */
  disconnects: Record<string, number>;
}

function logBanSubject(fields: Record<string, unknown>): string {
  const v = fields.subject ?? fields.ip ?? fields.address ?? fields.nodeId;
  return typeof v === "string" ? v : JSON.stringify(v ?? null);
}

const num = (v: unknown): number | null => (typeof v === "number" ? v : null);

/** Picks the lines a cycle reports out of one node's new log lines. */
export function scanLog(
  node: number,
  lines: ReadonlyArray<Record<string, unknown>>,
  into: LogFindings,
): void {
  for (const l of lines) {
    const msg = typeof l.msg === "string" ? l.msg : "";
    if (msg === "Reorganised to a better branch") {
      into.reorgs.push({
        node,
        depth: num(l.depth) ?? -1,
        fork: num(l.fork),
        newHeight: num(l.newHeight),
        time: typeof l.time === "string" ? l.time : String(l.time),
      });
    } else if (msg.startsWith("Banned")) {
      const { level: _l, module: _m, msg: _msg, pid: _p, hostname: _h, name: _n, ...fields } = l;
      const subject = logBanSubject(fields);
      // One ban can be logged twice (the ban list's line and the peer manager's): merge them.
      const same = into.logBans.find(
        (b) => b.node === node && b.subject === subject && b.fields.until === fields.until,
      );
      if (same) Object.assign(same.fields, { ...fields, ...same.fields });
      else into.logBans.push({ node, msg, subject, fields });
    } else if (msg === "Peer disconnected") {
      const reason = typeof l.reason === "string" ? l.reason : String(l.reason);
      into.disconnects[reason] = (into.disconnects[reason] ?? 0) + 1;
    }
  }
}
