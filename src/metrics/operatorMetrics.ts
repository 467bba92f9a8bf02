import { Counter, Gauge, type Registry } from "prom-client";

/** What the operator-tool metrics read (the node's ClockWatch and EventStream fit these). */
export interface OperatorMetricsSources {
  clock: { offsetMs(): number | null };
  events: { readonly clientCount: number; readonly dropped: number };
}

/**
 * Metrics of the operator tools: the peers' median clock offset (p2p/clockOffset.ts) and the
 * event stream's clients (rpc/eventStream.ts). Read at scrape time.
 */
export function registerOperatorMetrics(registry: Registry, src: OperatorMetricsSources): void {
  const registers = [registry];
  new Gauge({
    name: "p2p_time_offset_seconds",
    help: "Median over ready peers of their clock minus ours (0 with no peer); a warning is logged past a third of the allowed drift",
    registers,
    collect() {
      this.set((src.clock.offsetMs() ?? 0) / 1000);
    },
  });
  new Gauge({
    name: "rpc_event_clients",
    help: "Clients reading the event stream (GET /events)",
    registers,
    collect() {
      this.set(src.events.clientCount);
    },
  });
  let droppedSeen = 0;
  new Counter({
    name: "rpc_event_clients_dropped_total",
    help: "Event-stream clients dropped because they read too slowly (their buffer passed 1 MiB)",
    registers,
    collect() {
      if (src.events.dropped > droppedSeen) this.inc(src.events.dropped - droppedSeen);
      droppedSeen = src.events.dropped;
    },
  });
}
