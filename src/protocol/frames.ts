/** Framing: a msgpack header plus raw tensor frames, and back; knows no operation names. */
import { Packr } from 'msgpackr';
import { ProtocolError } from '../errors.js';
import { DTYPES, numel, type DType, type Tensor, type TypedArray } from './dtypes.js';
import { tensorDescs } from './checks.js';
import { tensorDescSchema, parseOrThrow } from './schema.js';
import { z } from 'zod';

// Plain msgpack maps (no records extension) so Python's msgpack reads every header.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true });

export const DEFAULT_MAX_HEADER = 1 << 20;
/** Bytes per frame, either direction, unless configured otherwise (1 GiB: far above any IP gradient). */
export const DEFAULT_MAX_MESSAGE = 1 << 30;

/** Refuse frames over `maxBytes` (-1: no limit) before they are sent; names the frame. */
export function checkFrameSizes(frames: readonly Buffer[], maxBytes: number): void {
  if (maxBytes < 0) return;
  frames.forEach((f, i) => {
    if (f.length > maxBytes) {
      throw new ProtocolError(
        i === 0 ? 'header' : `tensors[${i - 1}]`,
        `${f.length} bytes exceeds the message limit of ${maxBytes} bytes per frame`,
      );
    }
  });
}

/** Frames for a header and its tensors; `tensors` descriptors are added to the header here. */
export function encodeFrames(header: Record<string, unknown>, tensors: readonly Tensor[] = []): Buffer[] {
  const descs = tensors.map((t, i) => {
    if (!(t.dtype in DTYPES)) throw new ProtocolError(`tensors[${i}].dtype`, `'${t.dtype}' is not a wire dtype`);
    if (numel(t.shape) !== t.data.length)
      throw new ProtocolError(`tensors[${i}].shape`, `[${t.shape}] does not match ${t.data.length} elements`);
    return { dtype: t.dtype, shape: t.shape };
  });
  const head = packr.pack({ ...header, tensors: descs });
  // Buffer views over the typed arrays' memory: no copy on this side.
  return [head, ...tensors.map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength))];
}

/** A decoded message: the raw header (to be parsed by a schema) and typed views over the frames. */
export interface Decoded {
  header: unknown;
  tensors: Tensor[];
}

const descsSchema = z.object({ tensors: z.array(tensorDescSchema).default([]) }).loose();

/** Header and tensors from frames; checks frame count, dtype and byte length against shape. */
export function decodeFrames(frames: readonly Buffer[], maxHeader = DEFAULT_MAX_HEADER): Decoded {
  const [raw, ...bodies] = frames;
  if (!raw) throw new ProtocolError('message', 'no frames');
  if (raw.length > maxHeader) throw new ProtocolError('header', `${raw.length} bytes exceeds the limit of ${maxHeader}`);
  let header: unknown;
  try {
    header = packr.unpack(raw);
  } catch (e) {
    throw new ProtocolError('header', `not valid msgpack (${(e as Error).message})`);
  }
  // msgpackr decodes some invalid bytes (0xc1) to marker objects: only a plain map is a header.
  if (typeof header !== 'object' || header === null || Object.getPrototypeOf(header) !== Object.prototype) {
    throw new ProtocolError('header', 'expected a map');
  }
  const descs = tensorDescs(header as Record<string, unknown>) ?? parseOrThrow(descsSchema, header, 'header').tensors;
  if (descs.length !== bodies.length) {
    throw new ProtocolError('header.tensors', `${descs.length} descriptors for ${bodies.length} tensor frames`);
  }
  const tensors = descs.map((d, i) => view(d.dtype as DType, d.shape, bodies[i]!, `tensors[${i}]`));
  return { header, tensors };
}

/** The header of a frame set that failed validation, if it can be read at all (for error routing). */
export function peekHeader(raw: Buffer | undefined, maxHeader = DEFAULT_MAX_HEADER): unknown {
  if (!raw || raw.length > maxHeader) return null;
  try {
    return packr.unpack(raw);
  } catch {
    return null;
  }
}

/** A typed-array view over a frame; copies only when the frame's offset is misaligned for the dtype. */
export function view(dtype: DType, shape: number[], frame: Buffer, where = 'tensor'): Tensor {
  const { bytes, array } = DTYPES[dtype];
  const n = numel(shape);
  if (frame.length !== n * bytes) {
    throw new ProtocolError(where, `${n * bytes} bytes expected for ${dtype}[${shape}], got ${frame.length}`);
  }
  let buf = frame;
  if (frame.byteOffset % bytes !== 0) buf = Buffer.from(frame); // fresh allocation: aligned
  const data = new array(buf.buffer as ArrayBuffer, buf.byteOffset, n) as TypedArray;
  return { dtype, shape, data } as Tensor;
}
