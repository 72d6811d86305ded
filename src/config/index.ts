/**
 * The experiment config: defaults, schema, parsing and loading.
 */
import { GradpromError } from '../errors.js';
import { withDefaults, type Obj } from './defaults.js';
import { applySet, loadConfig } from './load.js';
import { parseConfig as parseRaw, type Config, type ConfigResult, type SchemaOptions } from './schema.js';

export { DEFAULTS, DEGRADATION_DEFAULTS, withDefaults } from './defaults.js';
export {
  ConfigSchema,
  IP_ARCHS,
  VR_ARCHS,
  configSchema,
  toConfigIssues,
  type Config,
  type ConfigIssue,
  type ConfigResult,
  type SchemaOptions,
} from './schema.js';
export { applySet, loadConfig, readConfigFile } from './load.js';

/** Every field optional, at every depth; lists keep their element type, each element partial. */
export type DeepPartial<T> = T extends readonly (infer E)[]
  ? DeepPartial<E>[]
  : T extends object
    ? { [K in keyof T]?: DeepPartial<T[K]> }
    : T;

/** A config as a script writes it: any subset of the fields, the defaults fill the rest. */
export type ConfigInput = DeepPartial<Config>;

/** Validates a config object over the defaults; problems come back as issues with their dotted paths (never throws). */
export function parseConfig(input: ConfigInput, options?: SchemaOptions): ConfigResult;
/** A value of unknown shape (read from elsewhere) is accepted as is; an object literal must fit ConfigInput. */
export function parseConfig<T>(input: unknown extends T ? T : never, options?: SchemaOptions): ConfigResult;
export function parseConfig(input: unknown, options: SchemaOptions = {}): ConfigResult {
  return parseRaw(input, options);
}

/** A config given as a file path, a typed object or an already resolved config. */
export type ConfigSource = string | ConfigInput;

/** The config from a file (with `path=value` overrides) or an object; throws a GradpromError (code CONFIG) listing every issue. */
export async function resolveConfig(source: ConfigSource, sets: readonly string[] = []): Promise<Config> {
  const r = typeof source === 'string' ? await loadConfig(source, sets) : loadConfigObject(source, sets);
  if (r.ok) return r.config;
  throw new GradpromError('CONFIG', r.issues.map((i) => `config${i.path ? ` ${i.path}` : ''}: ${i.message}`).join('\n'));
}

/** An object config with overrides applied over its merged defaults, as `loadConfig` does for a file. */
export function loadConfigObject(source: ConfigInput, sets: readonly string[]): ConfigResult {
  const merged = withDefaults(structuredClone(source)) as Obj;
  const issues = sets.map((s) => applySet(merged, s)).filter((i) => i !== null);
  return issues.length ? { ok: false, issues } : parseRaw(merged);
}
