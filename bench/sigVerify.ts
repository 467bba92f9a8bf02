/**
 * sig_verify_per_s: ed25519 verifications per second on one core, public KeyObjects cached
 * (verifySignature from src/crypto/ed25519.ts), over distinct (key, message, signature) triples.
 */
import { txSigMessage } from "../src/primitives/tx.js";
import { verifySignature } from "../src/crypto/ed25519.js";
import { sha256 } from "../src/crypto/hash.js";
import { testKeys } from "../test/helpers/chainFixture.js";
import { measureRate, round, type BenchContext, type BenchGroup, type Figure } from "./lib.js";

export const SIG_VERIFY = "sig_verify_per_s";

const TRIPLES = 2_000;
const SECONDS = 2;

let triplesCache: Array<{ pub: Buffer; msg: Buffer; sig: Buffer }> | null = null;

/** TRIPLES distinct (key, message, signature) triples, made once per run. */
function triples(): Array<{ pub: Buffer; msg: Buffer; sig: Buffer }> {
  triplesCache ??= testKeys("bench-sig", TRIPLES).map((k, i) => {
    const msg = txSigMessage(sha256(Buffer.from(`bench/msg/${i}`)));
    return { pub: k.publicKey, msg, sig: k.sign(msg) };
  });
  return triplesCache;
}

/** Verifications per second on one core for about `seconds` (after a warm-up pass). */
export function measureSigRate(seconds: number): { rate: number; ops: number; seconds: number } {
  const ts = triples();
  // The warm-up pass also fills the KeyObject cache, so the timed loop measures cached keys.
  return measureRate(
    (i) => {
      const t = ts[i % TRIPLES]!;
      if (!verifySignature(t.pub, t.msg, t.sig)) throw new Error("benchmark signature does not verify");
    },
    { seconds, warmupOps: TRIPLES },
  );
}

/** Measures the figure, or returns it when this run already measured it. */
export function sigVerifyFigure(ctx: BenchContext): Figure {
  const done = ctx.results.get(SIG_VERIFY);
  if (done) return done;
  ctx.log(`${SIG_VERIFY}: signing ${TRIPLES} messages with ${TRIPLES} keys`);
  triples();
  ctx.log(`${SIG_VERIFY}: verifying for ~${SECONDS} s`);
  const r = measureSigRate(SECONDS);
  return {
    name: SIG_VERIFY,
    value: Math.round(r.rate),
    unit: "verify/s",
    note: `${TRIPLES} distinct triples, KeyObject cached, ${r.ops} ops in ${round(r.seconds, 2)} s`,
  };
}

export const sigVerifyBench: BenchGroup = {
  name: "signatures",
  figures: [SIG_VERIFY],
  run: (ctx) => [sigVerifyFigure(ctx)],
};
