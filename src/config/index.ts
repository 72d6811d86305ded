/**
 * The experiment config: defaults, schema, parsing and loading.
 */
export { DEFAULTS, DEGRADATION_DEFAULTS, withDefaults } from './defaults.js';
export {
  ConfigSchema,
  IP_ARCHS,
  VR_ARCHS,
  configSchema,
  parseConfig,
  toConfigIssues,
  type Config,
  type ConfigIssue,
  type ConfigResult,
  type SchemaOptions,
} from './schema.js';
export { applySet, loadConfig, readConfigFile } from './load.js';
