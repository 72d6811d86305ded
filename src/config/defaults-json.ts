/** python/gradprom_sidecar/defaults.json: the defaults below as JSON, so that the sidecar has none of its own. */
import { DEFAULTS, DEGRADATION_DEFAULTS } from './defaults.js';

/** Where the file lives, relative to the package root. */
export const DEFAULTS_JSON_PATH = 'python/gradprom_sidecar/defaults.json';

/**
 * The file's text: 2-space JSON and a newline. `npm run gen:defaults` writes it and a test checks the committed copy;
 * the build does not write it, because a GPU machine with Python and no Node reads the committed file.
 */
export function defaultsJson(): string {
  const about =
    'Generated from src/config/defaults.ts by `npm run gen:defaults`; do not edit (a test checks it). ' +
    'The sidecar resolves partial configs with it and has no defaults of its own.';
  return `${JSON.stringify({ about, defaults: DEFAULTS, degradation: DEGRADATION_DEFAULTS }, null, 2)}\n`;
}
