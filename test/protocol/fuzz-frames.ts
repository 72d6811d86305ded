/** Seeded generators of random and mutated multipart messages, for the decoder fuzz tests. */
import { Packr } from 'msgpackr';
import { DTYPE_NAMES, tensor, type Tensor } from 'gradprom';
import { encodeFrames } from '../../src/protocol/frames.js';

const packr = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true });

/** A small fast PRNG (mulberry32): the same seed gives the same frames. */
export class Rng {
  constructor(private state: number) {}
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

/** A random msgpack-able value, nested at most `depth` deep, with the awkward cases weighted in. */
export function randomValue(rng: Rng, depth = 3): unknown {
  const leaves: (() => unknown)[] = [
    () => null,
    () => rng.next() < 0.5,
    () => rng.int(2 ** 31) - 2 ** 30,
    () => rng.pick([0, -1, 2 ** 53, -(2 ** 63), 2 ** 64, NaN, Infinity, -Infinity, 1e308, 5e-324]),
    () => rng.next() * 1e6,
    () => 'x'.repeat(rng.int(40)),
    () => rng.pick(['', 'float32', 'int64', 'bool', 'complex64', 'ok', 'error', '__proto__', 'constructor', '\u0000', '\ud800']),
    () => rng.bytes(rng.int(32)),
  ];
  if (depth <= 0 || rng.next() < 0.5) return rng.pick(leaves)();
  if (rng.next() < 0.5) return Array.from({ length: rng.int(5) }, () => randomValue(rng, depth - 1));
  const o: Record<string, unknown> = {};
  for (let i = rng.int(5); i > 0; i--)
    o[rng.pick(['v', 'id', 'op', 'args', 'token', 'status', 'result', 'error', 'tensors', 'dtype', 'shape', 'k'])] = randomValue(
      rng,
      depth - 1,
    );
  return o;
}

/** A well-formed message: a request- or reply-like header and 0-3 tensors of any wire dtype. */
export function validMessage(rng: Rng, id = rng.int(1000)): Buffer[] {
  const tensors: Tensor[] = [];
  for (let i = rng.int(4); i > 0; i--) {
    const n = rng.int(6);
    const dtype = rng.pick(DTYPE_NAMES);
    const data =
      dtype === 'float32'
        ? new Float32Array(n)
        : dtype === 'float64'
          ? new Float64Array(n)
          : dtype === 'int64'
            ? new BigInt64Array(n)
            : dtype === 'int32'
              ? new Int32Array(n)
              : dtype === 'float16' || dtype === 'bfloat16'
                ? new Uint16Array(n)
                : new Uint8Array(n);
    tensors.push(tensor(dtype, data as never, rng.next() < 0.5 ? [n] : [1, n]));
  }
  const header =
    rng.next() < 0.5
      ? { v: 1, token: 'tok', id, op: rng.pick(['ping', 'echo', 'train.grads', 'eval']), args: { k: rng.int(9) } }
      : rng.next() < 0.7
        ? { v: 1, id, status: 'ok', result: { step: rng.int(9), loss: rng.next() } }
        : { v: 1, id, status: 'error', error: { type: 'ValueError', message: 'x', traceback: '' } };
  return encodeFrames(header, tensors).map((f) => Buffer.from(f)); // own copies, so mutations stay local
}

/** Frame 0 read back as a map, or null when an earlier mutation broke it. */
function headerOf(frame: Buffer | undefined): Record<string, unknown> | null {
  try {
    const h: unknown = frame ? packr.unpack(frame) : null;
    return typeof h === 'object' && h !== null && !Array.isArray(h) ? (h as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** One mutation of a message: flipped, cut, grown, reordered or re-described frames. */
export function mutate(rng: Rng, frames: Buffer[]): Buffer[] {
  const out: Buffer[] = frames.map((f) => Buffer.from(f));
  const i = rng.int(out.length);
  const f = out[i]!;
  switch (rng.int(9)) {
    case 0: // flip a few bits
      for (let k = 1 + rng.int(4); k > 0 && f.length; k--) f[rng.int(f.length)]! ^= 1 << rng.int(8);
      return out;
    case 1: // truncate
      out[i] = f.subarray(0, rng.int(f.length + 1));
      return out;
    case 2: // append junk
      out[i] = Buffer.concat([f, rng.bytes(1 + rng.int(16))]);
      return out;
    case 3: // drop a frame
      out.splice(i, 1);
      return out;
    case 4: // an extra frame
      out.splice(rng.int(out.length + 1), 0, rng.bytes(rng.int(64)));
      return out;
    case 5: // swap two frames
      if (out.length > 1) {
        const j = rng.int(out.length);
        [out[i], out[j]] = [out[j]!, out[i]!];
      }
      return out;
    case 6: {
      // re-describe the tensors with random dtypes and shapes over the same bodies
      const header = headerOf(out[0]);
      if (!header) return out;
      header.tensors = Array.from({ length: rng.int(4) }, () => ({
        dtype: rng.next() < 0.8 ? rng.pick(DTYPE_NAMES) : randomValue(rng, 0),
        shape: Array.from({ length: rng.int(4) }, () => rng.pick([0, 1, 2, 3, 4, 8, -1, 2 ** 40, 1.5])),
      }));
      out[0] = packr.pack(header);
      return out;
    }
    case 7: {
      // replace one header field with a random value
      const header = headerOf(out[0]);
      if (!header) return out;
      header[rng.pick(['v', 'id', 'op', 'args', 'token', 'status', 'result', 'error', 'tensors'])] = randomValue(rng);
      out[0] = packr.pack(header);
      return out;
    }
    default: // overwrite a byte run
      if (f.length) rng.bytes(1 + rng.int(8)).copy(f, rng.int(f.length));
      return out;
  }
}

/** The `k`-th fuzz message: random bytes, a random msgpack value, or a valid message with 1-3 mutations. */
export function fuzzMessage(rng: Rng, k: number): Buffer[] {
  switch (k % 4) {
    case 0:
      return Array.from({ length: 1 + rng.int(3) }, () => rng.bytes(rng.int(200)));
    case 1:
      return [packr.pack(randomValue(rng)), ...(rng.next() < 0.3 ? [rng.bytes(rng.int(16))] : [])];
    default: {
      let frames = validMessage(rng);
      for (let m = 1 + rng.int(3); m > 0; m--) frames = mutate(rng, frames.length ? frames : [Buffer.alloc(0)]);
      return frames;
    }
  }
}
