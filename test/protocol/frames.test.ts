import { Packr } from 'msgpackr';
import { DTYPE_NAMES, isGradpromError, tensor, type DType, type Tensor } from 'gradprom';
import { decodeFrames, encodeFrames } from '../../src/protocol/frames.js';

const packr = new Packr({ useRecords: false });

function sample(dtype: DType): Tensor {
  switch (dtype) {
    case 'float32':
      return tensor(dtype, Float32Array.from([1.5, -2, 3e-8, 4, 5, 6]), [2, 3]);
    case 'float64':
      return tensor(dtype, Float64Array.from([1e300, -2, 3, 4, 5, 6]), [3, 2]);
    case 'int64':
      return tensor(dtype, BigInt64Array.from([1n, -(2n ** 62n), 3n, 4n, 5n, 6n]), [6]);
    case 'int32':
      return tensor(dtype, Int32Array.from([1, -2, 3, 4, 5, 6]), [1, 6]);
    default:
      return tensor(dtype, Uint8Array.from([1, 0, 1, 1, 0, 1]) as never, [2, 3]);
  }
}

describe('frames', () => {
  it.each(DTYPE_NAMES.filter((d) => d !== 'float16' && d !== 'bfloat16'))('round-trips %s with its shape', (dtype) => {
    const t = sample(dtype);
    const { header, tensors } = decodeFrames(encodeFrames({ id: 1 }, [t]));
    expect((header as { id: number }).id).toBe(1);
    expect(tensors[0]!.dtype).toBe(dtype);
    expect(tensors[0]!.shape).toEqual(t.shape);
    expect(Array.from(tensors[0]!.data as ArrayLike<unknown>)).toEqual(Array.from(t.data as ArrayLike<unknown>));
  });

  it('exposes a view over the received frame, not a copy, when aligned', () => {
    const frames = encodeFrames({}, [tensor('float32', new Float32Array(16))]);
    const { tensors } = decodeFrames(frames);
    expect(tensors[0]!.data.buffer).toBe(frames[1]!.buffer);
  });

  it('copies only when the frame is misaligned', () => {
    const backing = Buffer.alloc(17);
    const frame = backing.subarray(1);
    const { tensors } = decodeFrames([packr.pack({ tensors: [{ dtype: 'float32', shape: [4] }] }), frame]);
    expect(tensors[0]!.data.buffer).not.toBe(backing.buffer);
    expect(tensors[0]!.data.length).toBe(4);
  });

  it.each([
    ['no frames', [], 'message'],
    ['garbage header', [Buffer.from([0xc1])], 'header'],
    ['a header that is not a map', [packr.pack([1, 2])], 'header'],
    ['too few frames', [packr.pack({ tensors: [{ dtype: 'float32', shape: [2] }] })], 'header.tensors'],
    ['unknown dtype', [packr.pack({ tensors: [{ dtype: 'complex64', shape: [1] }] }), Buffer.alloc(8)], 'header.tensors[0].dtype'],
    ['bad shape', [packr.pack({ tensors: [{ dtype: 'float32', shape: [-1] }] }), Buffer.alloc(0)], 'header.tensors[0].shape[0]'],
    ['wrong byte length', [packr.pack({ tensors: [{ dtype: 'float32', shape: [3] }] }), Buffer.alloc(8)], 'tensors[0]'],
  ])('refuses %s, naming the field', (_what, frames, field) => {
    let caught: unknown;
    try {
      decodeFrames(frames as Buffer[]);
    } catch (e) {
      caught = e;
    }
    expect(isGradpromError(caught, 'PROTOCOL')).toBe(true);
    expect((caught as { field: string }).field).toBe(field);
  });

  it('refuses an oversized header before decoding it', () => {
    expect(() => decodeFrames([Buffer.alloc(2048)], 1024)).toThrow(/exceeds the limit/);
  });

  it('refuses to encode a tensor whose shape does not match its data', () => {
    expect(() => encodeFrames({}, [{ dtype: 'float32', shape: [3], data: new Float32Array(2) }])).toThrow(/tensors\[0\]\.shape/);
  });
});
