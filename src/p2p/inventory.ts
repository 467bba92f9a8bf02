// What a peer is known to have, keyed cheaply (Peer.markKnown / Peer.knows).

/**
 * The key of a hash in the per-peer inventories: 31 of its bits, a small integer. A Map of small
 * integers costs the collector almost nothing to keep, where one of strings cost it one object per
 * entry (a 1,000-node simulation held 16,000 such maps). Two hashes sharing a key make us think a
 * peer has a message it lacks, so we skip announcing that one message to that one peer, which
 * still hears of it from its other peers: at 4,096 keys a peer, about 2 in a million checks. On
 * purpose, a peer can only make us skip telling itself (by announcing a colliding hash); to make
 * us skip an honest peer it must get us to relay a valid signed message with a colliding key,
 * about 2^31 signed tries, to hide one message on one link.
 */
export function inventoryKey(hash: Buffer): number {
  return hash.readInt32LE(0) >> 1;
}
