// Where the sidecar's Python lives: GRADPROM_PYTHON, else the project's own venv.
// Shared by the install step and the test runner (src/sidecar/python.ts mirrors it for the library).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const venvDir = join(root, 'python', '.venv');
export const venvPython = join(venvDir, 'bin', 'python');

/** The interpreter the sidecar runs on, or null if none is set up yet. */
export function sidecarPython() {
  if (process.env.GRADPROM_PYTHON) return process.env.GRADPROM_PYTHON;
  return existsSync(venvPython) ? venvPython : null;
}
