/** zod schemas for every header TypeScript receives; a malformed reply is a ProtocolError naming the field. */
import { z } from 'zod';
import { ProtocolError } from '../errors.js';
import { DTYPE_NAMES } from './dtypes.js';

export const tensorDescSchema = z.object({
  dtype: z.enum(DTYPE_NAMES as [string, ...string[]]),
  shape: z.array(z.number().int().nonnegative()),
});

const base = { v: z.number().int(), id: z.number().int().nullable(), tensors: z.array(tensorDescSchema).default([]) };

export const replyHeaderSchema = z.discriminatedUnion('status', [
  z.object({ ...base, status: z.literal('ok'), result: z.record(z.string(), z.unknown()).default({}) }),
  z.object({
    ...base,
    status: z.literal('error'),
    error: z.object({ type: z.string(), message: z.string(), traceback: z.string().default('') }),
  }),
]);

export type ReplyHeader = z.infer<typeof replyHeaderSchema>;

/** Parse `value` with `schema`, or throw a ProtocolError naming the first bad field under `where`. */
export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown, where: string): z.infer<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const path = [where, ...issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : String(p)))].join('.').replace(/\.\[/g, '[');
  throw new ProtocolError(path, issue.message);
}
