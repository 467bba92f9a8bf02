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

/** Measures the figure, or returns it when this run already measured it. */
export function sigVerifyFigure(ctx: BenchContext): Figure {
  const done = ctx.results.get(SIG_VERIFY);
  if (done) return done;
  ctx.log(`${SIG_VERIFY}: signing ${TRIPLES} messages with ${TRIPLES} keys`);
  const keys = testKeys("bench-sig", TRIPLES);
  const triples = keys.map((k, i) => {
    const msg = txSigMessage(sha256(Buffer.from(`bench/msg/${i}`)));
    return { pub: k.publicKey, msg, sig: k.sign(msg) };
  });
  ctx.log(`${SIG_VERIFY}: verifying for ~${SECONDS} s`);
  // The warm-up pass also fills the KeyObject cache, so the timed loop measures cached keys.
  const r = measureRate(
    (i) => {
      const t = triples[i % TRIPLES]!;
      if (!verifySignature(t.pub, t.msg, t.sig)) throw new Error("benchmark signature does not verify");
    },
    { seconds: SECONDS, warmupOps: TRIPLES },
  );
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
