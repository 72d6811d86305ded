/** Wire dtypes and the typed arrays that view them (bfloat16 travels as raw 16-bit words). */
export const DTYPES = {
  float32: { bytes: 4, array: Float32Array },
  float64: { bytes: 8, array: Float64Array },
  float16: { bytes: 2, array: Uint16Array },
  bfloat16: { bytes: 2, array: Uint16Array },
  int64: { bytes: 8, array: BigInt64Array },
  int32: { bytes: 4, array: Int32Array },
  uint8: { bytes: 1, array: Uint8Array },
  bool: { bytes: 1, array: Uint8Array },
} as const;

export type DType = keyof typeof DTYPES;
export const DTYPE_NAMES = Object.keys(DTYPES) as DType[];

interface ArrayMap {
  float32: Float32Array;
  float64: Float64Array;
  float16: Uint16Array;
  bfloat16: Uint16Array;
  int64: BigInt64Array;
  int32: Int32Array;
  uint8: Uint8Array;
  bool: Uint8Array;
}

/** The typed array a dtype is viewed as. */
export type ArrayOf<D extends DType> = ArrayMap[D];
export type TypedArray = ArrayOf<DType>;

/** A tensor on the wire: dtype, shape and a typed-array view of its bytes. */
export interface Tensor<D extends DType = DType> {
  dtype: D;
  shape: number[];
  data: ArrayOf<D>;
}

/** Number of elements of a shape. */
export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** A tensor from a typed array; the shape defaults to 1-D. */
export function tensor<D extends DType>(dtype: D, data: ArrayOf<D>, shape: number[] = [data.length]): Tensor<D> {
  if (numel(shape) !== data.length) throw new RangeError(`shape [${shape}] holds ${numel(shape)} elements, data has ${data.length}`);
  return { dtype, shape, data };
}
