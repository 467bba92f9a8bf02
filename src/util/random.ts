import { randomBytes } from "node:crypto";

/**
 * Randomness is injected (DESIGN.md). Production uses the OS CSPRNG; tests and the simulator
 * use a seeded generator so runs repeat exactly.
 */
export interface Random {
  bytes(n: number): Buffer;
  /** A uniform float in [0, 1). */
  float(): number;
  /** A uniform integer in [0, n). */
  int(n: number): number;
}

export class CryptoRandom implements Random {
  bytes(n: number): Buffer {
    return randomBytes(n);
  }
  float(): number {
    return randomBytes(6).readUIntBE(0, 6) / 2 ** 48;
  }
  int(n: number): number {
    return Math.floor(this.float() * n);
  }
}

/** xorshift128+-style deterministic generator for tests and simulations. Not for keys. */
export class SeededRandom implements Random {
  private s0: bigint;
  private s1: bigint;
  constructor(seed: number) {
    this.s0 = BigInt(seed >>> 0) * 0x9e3779b97f4a7c15n + 1n;
    this.s1 = (BigInt(seed >>> 0) ^ 0xdeadbeefn) * 0xbf58476d1ce4e5b9n + 1n;
    for (let i = 0; i < 8; i++) this.next();
  }
  private next(): bigint {
    const mask = (1n << 64n) - 1n;
    let x = this.s0;
    const y = this.s1;
    this.s0 = y;
    x = (x ^ (x << 23n)) & mask;
    this.s1 = x ^ y ^ (x >> 17n) ^ (y >> 26n);
    return (this.s1 + y) & mask;
  }
  bytes(n: number): Buffer {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i += 8) {
      const v = this.next();
      for (let j = 0; j < 8 && i + j < n; j++) out[i + j] = Number((v >> BigInt(8 * j)) & 0xffn);
    }
    return out;
  }
  float(): number {
    return Number(this.next() >> 11n) / 2 ** 53;
  }
  int(n: number): number {
    return Math.floor(this.float() * n);
  }
}
