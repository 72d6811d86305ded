/** Field validators the config schema's sections share. */
import * as z from 'zod';

export const posInt = z.int().positive();
export const nonNegInt = z.int().nonnegative();
export const posNum = z.number().positive();
export const fraction = z.number().min(0).max(1);
export const nullableName = z.string().min(1).nullable();
export const kwargs = z.record(z.string(), z.json());
