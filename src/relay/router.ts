/**
 * The one table from each application message type to its handler (docs/ARCHITECTURE.md,
 * "Routing"). Peer answers Ping and Pong and matches answers to requests, PeerManager keeps
 * GetPeers and Peers; every other message of a ready peer comes here, through the single
 * function seam PeerManager is given at construction.
 *
 * `Routes` has one key per RoutedType (p2p/messages.ts), so a new message type without a route
 * does not compile; rateLimitsFor does the same for its rate limit.
 */
import { isRouted, MsgType, type Message, type MessageOf, type RoutedType } from "../p2p/messages.js";
import type { Peer } from "../p2p/peer.js";

/** One handler per application message type. */
export type Routes = { readonly [T in RoutedType]: (peer: Peer, msg: MessageOf<T>) => void };

/** What PeerManager calls for every message of a ready peer that it does not handle itself. */
export type MessageRoute = (peer: Peer, msg: Message) => void;

export interface RouterModules {
  /** A handler threw: logged, and that message is dropped (the peer stays). */
  onHandlerError(peer: Peer, type: string, err: unknown): void;
  /** A message that is not an application type reached the router (a bug below it). */
  onUnrouted(peer: Peer, type: string): void;
}

export function makeRouter(routes: Routes, modules: RouterModules): MessageRoute {
  return (peer, msg) => {
    if (!isRouted(msg)) {
      modules.onUnrouted(peer, MsgType[msg.type] ?? String(msg.type));
      return;
    }
    // TypeScript cannot correlate routes[msg.type] with msg's own type; the table's type does.
    const handler = routes[msg.type] as (peer: Peer, msg: MessageOf<RoutedType>) => void;
    try {
      handler(peer, msg);
    } catch (e) {
      modules.onHandlerError(peer, MsgType[msg.type] ?? String(msg.type), e);
    }
  };
}
