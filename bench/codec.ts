/**
 * codec_block_roundtrip_per_s: one block of 200 transfer transactions, encodeBlock then
 * decodeBlock, round trips per second.
 */
import { decodeBlock, encodeBlock } from "../src/primitives/block.js";
import { buildBlock } from "../src/consensus/blockBuilder.js";
import { genesisRegistry } from "../src/consensus/genesis.js";
import { txid } from "../src/primitives/tx.js";
import { pubkeyHash } from "../src/crypto/address.js";
import { sha256 } from "../src/crypto/hash.js";
import { COIN, GENESIS_TIME, makeTransfer, testGenesis, testKeys } from "../test/helpers/chainFixture.js";
import { measureRate, type BenchGroup } from "./lib.js";

const TXS = 200;
const SECONDS = 2;

export const codecBench: BenchGroup = {
  name: "codec",
  figures: ["codec_block_roundtrip_per_s"],
  run(ctx) {
    ctx.log(`codec: building a block of ${TXS} transfers`);
    const mns = testKeys("bench-codec-mn", 3);
    const owners = testKeys("bench-codec-owner", TXS);
    const spec = testGenesis({ masternodes: mns });
    const registry = genesisRegistry(spec);
    const txs = owners.map((k, i) =>
      makeTransfer(
        k,
        [{ txid: sha256(Buffer.from(`bench/prev/${i}`)), index: i % 3 }],
        [
          { to: pubkeyHash(owners[(i + 1) % TXS]!.publicKey), amount: 40n * COIN + BigInt(i) },
          { to: pubkeyHash(k.publicKey), amount: 59n * COIN },
        ],
      ),
    );
    const producer = mns.find((k) => k.publicKey.equals(registry[0]!.operatorPubkey))!;
    const block = buildBlock({
      parentHash: sha256(Buffer.from("bench/parent")),
      parentHeight: 41,
      registry,
      producer,
      round: 0,
      timestamp: GENESIS_TIME + 42_000,
      txs,
      fees: BigInt(TXS) * COIN,
    });
    const size = encodeBlock(block).length;
    const again = decodeBlock(encodeBlock(block));
    if (!txid(again.txs[TXS]!).equals(txid(block.txs[TXS]!)))
      throw new Error("codec round trip changed a transaction");
    ctx.log(`codec: ${size}-byte block, round trips for ~${SECONDS} s`);
    let sink = 0;
    const r = measureRate(
      () => {
        sink += decodeBlock(encodeBlock(block)).txs.length;
      },
      { seconds: SECONDS, warmupOps: 200 },
    );
    if (sink === 0) throw new Error("unreachable");
    return [
      {
        name: "codec_block_roundtrip_per_s",
        value: Math.round(r.rate),
        unit: "roundtrip/s",
        note: `${TXS + 1} txs, ${size} bytes, encode+decode`,
      },
    ];
  },
};
