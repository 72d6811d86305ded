/** Locating the sidecar's interpreter: GRADPROM_PYTHON, else the venv `npm install` made. */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PythonEnvError } from '../errors.js';

/** The package root (the folder holding package.json and python/). */
export const packageRoot = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('gradprom: package root not found');
    dir = up;
  }
  return dir;
})();

/** The folder put on PYTHONPATH so `python -m gradprom_sidecar` imports. */
export const pythonSourceDir = join(packageRoot, 'python');

/** The interpreter to run, or a PythonEnvError that says how to get one. */
export function resolvePython(env: NodeJS.ProcessEnv = process.env): string {
  const chosen = env.GRADPROM_PYTHON;
  if (chosen) {
    if (chosen.includes('/') && !existsSync(chosen)) {
      throw new PythonEnvError(
        `GRADPROM_PYTHON=${chosen} does not exist. Point it at a Python with torch, or unset it and run \`npm install\`.`,
      );
    }
    return chosen;
  }
  const venv = join(pythonSourceDir, '.venv', 'bin', 'python');
  if (!existsSync(venv)) {
    throw new PythonEnvError(
      `no Python environment at ${venv}. Run \`npm install\` in ${packageRoot} (it creates python/.venv), or set GRADPROM_PYTHON to an interpreter with torch, pyzmq and msgpack.`,
    );
  }
  return venv;
}

/** Environment for a Python child: our sources on PYTHONPATH, unbuffered output. */
export function pythonEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const pp = process.env.PYTHONPATH ? `${pythonSourceDir}:${process.env.PYTHONPATH}` : pythonSourceDir;
  return { ...process.env, PYTHONPATH: pp, PYTHONUNBUFFERED: '1', ...extra };
}
