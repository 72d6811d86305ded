/**
 * Locating the sidecar's interpreter: GRADPROM_PYTHON, else a clone's python/.venv, else the shared environment
 * `gradprom setup` made under $XDG_CACHE_HOME/gradprom/envs. The lookup mirrors scripts/python-env.mjs, which makes it.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PythonEnvError } from '../errors.js';
import { PROTOCOL_VERSION } from '../protocol/version.js';

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

/** The one command that makes the shared environment. */
export const SETUP_COMMAND = 'npx gradprom setup';

/** Which interpreter the sidecar runs on, and why that one. */
export interface PythonChoice {
  python: string;
  source: 'GRADPROM_PYTHON' | 'clone' | 'shared';
  /** One sentence: why this interpreter was chosen. */
  why: string;
  /** The shared environment's folder (source `shared`). */
  envDir?: string;
}

/** Where a shared environment for these requirements and Python version lives, made or not. */
export interface SharedEnvLocation {
  dir: string;
  python: string;
  marker: string;
  lock: string;
}

/** $XDG_CACHE_HOME/gradprom, or ~/.cache/gradprom. */
export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'gradprom');
}

const baseVersions = new Map<string, string | null>();

/** The X.Y version of the interpreter new environments are made from (GRADPROM_BASE_PYTHON, python3, python). */
function baseVersion(env: NodeJS.ProcessEnv): string | null {
  const candidates = env.GRADPROM_BASE_PYTHON ? [env.GRADPROM_BASE_PYTHON] : ['python3', 'python'];
  const key = candidates.join('\0');
  if (!baseVersions.has(key)) {
    let found: string | null = null;
    for (const p of candidates) {
      const code = 'import sys; assert sys.version_info >= (3, 9); print("%d.%d" % sys.version_info[:2])';
      const r = spawnSync(p, ['-c', code], { encoding: 'utf8' });
      if (r.status === 0) {
        found = r.stdout.trim();
        break;
      }
    }
    baseVersions.set(key, found);
  }
  return baseVersions.get(key)!;
}

/** The shared environment for this package's requirements and the given Python version. */
export function sharedEnvLocation(version: string, env: NodeJS.ProcessEnv = process.env): SharedEnvLocation {
  const hash = createHash('sha256')
    .update(readFileSync(join(pythonSourceDir, 'requirements.txt')))
    .digest('hex')
    .slice(0, 12);
  const dir = join(cacheRoot(env), 'envs', `${hash}-py${version}`);
  return { dir, python: join(dir, 'bin', 'python'), marker: join(dir, '.gradprom-complete'), lock: `${dir}.lock` };
}

/** What an interpreter lacks for the sidecar. */
export interface PythonProbe {
  runs: boolean;
  missing: string[];
  protocol: number | null;
  error?: string;
}

const PIP_NAME: Record<string, string> = { torch: 'torch', numpy: 'numpy', zmq: 'pyzmq', msgpack: 'msgpack' };

/** Imports torch, numpy, zmq, msgpack and reads the sidecar's protocol version in `python` (a few seconds: torch). */
export function probePython(python: string): PythonProbe {
  // python/probe.py: the same check the setup script makes (scripts/python-env.mjs).
  const r = spawnSync(python, [join(pythonSourceDir, 'probe.py')], { encoding: 'utf8', env: pythonEnv({ OMP_NUM_THREADS: '1' }) });
  if (r.status !== 0) {
    const error = (r.stderr || String(r.error ?? '')).trim().split('\n').pop() ?? '';
    return { runs: false, missing: Object.keys(PIP_NAME), protocol: null, error };
  }
  const parsed = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { missing: string[]; protocol: number | null };
  return { runs: true, ...parsed };
}

/** The problems of GRADPROM_PYTHON, each with its fix; empty when it serves. */
export function interpreterProblems(python: string, probe: PythonProbe): string[] {
  if (!probe.runs)
    return [
      `GRADPROM_PYTHON=${python} does not run${probe.error ? ` (${probe.error})` : ''}; point it at a Python 3.9+ with torch, or unset it and run: ${SETUP_COMMAND}`,
    ];
  const out: string[] = [];
  if (probe.missing.length)
    out.push(
      `GRADPROM_PYTHON=${python} lacks ${probe.missing.join(', ')}; fix: ${python} -m pip install ${probe.missing.map((m) => PIP_NAME[m] ?? m).join(' ')}`,
    );
  if (probe.protocol !== PROTOCOL_VERSION)
    out.push(
      `GRADPROM_PYTHON=${python} serves sidecar protocol ${String(probe.protocol)}, this gradprom speaks ${PROTOCOL_VERSION}; unset PYTHONPATH entries holding another gradprom_sidecar`,
    );
  return out;
}

/** GRADPROM_PYTHON, checked once per interpreter (a stamp in the cache remembers a pass until the interpreter changes). */
function checkChosen(python: string, env: NodeJS.ProcessEnv): void {
  if (python.includes('/') && !existsSync(python)) {
    throw new PythonEnvError(
      `GRADPROM_PYTHON=${python} does not exist. Point it at a Python with torch, or unset it and run: ${SETUP_COMMAND}`,
    );
  }
  const mtime = python.includes('/') ? statSync(python).mtimeMs : 0;
  const stamp = createHash('sha256').update(`${python}\0${mtime}\0${PROTOCOL_VERSION}\0${pythonSourceDir}`).digest('hex').slice(0, 16);
  const stampFile = join(cacheRoot(env), 'checked', stamp);
  if (existsSync(stampFile)) return;
  const problems = interpreterProblems(python, probePython(python));
  if (problems.length) throw new PythonEnvError(problems.join('\n'));
  try {
    mkdirSync(dirname(stampFile), { recursive: true });
    writeFileSync(stampFile, `${python}\n`);
  } catch {
    // An unwritable cache only means the next process checks again.
  }
}

/** The interpreter to run and why, or a PythonEnvError that gives the one command to run (`clone: false` skips a clone's python/.venv). */
export function locatePython(env: NodeJS.ProcessEnv = process.env, options: { clone?: boolean } = {}): PythonChoice {
  const chosen = env.GRADPROM_PYTHON;
  if (chosen) {
    checkChosen(chosen, env);
    return { python: chosen, source: 'GRADPROM_PYTHON', why: 'GRADPROM_PYTHON is set' };
  }
  const venv = join(pythonSourceDir, '.venv', 'bin', 'python');
  if (options.clone !== false && existsSync(venv))
    return { python: venv, source: 'clone', why: `a development clone: ${join(pythonSourceDir, '.venv')} exists` };
  const version = baseVersion(env);
  if (version === null) {
    throw new PythonEnvError(
      'no python3 (3.9 or newer) on PATH to make the shared environment with: install one, or set GRADPROM_PYTHON to an interpreter with torch, pyzmq and msgpack.',
    );
  }
  const loc = sharedEnvLocation(version, env);
  if (existsSync(loc.marker) && existsSync(loc.python)) {
    return {
      python: loc.python,
      source: 'shared',
      why: `the shared environment for these requirements and Python ${version}`,
      envDir: loc.dir,
    };
  }
  if (existsSync(loc.dir)) {
    throw new PythonEnvError(
      `the shared Python environment ${loc.dir} is half-made (a setup stopped before it finished). Make it again with: ${SETUP_COMMAND}`,
    );
  }
  throw new PythonEnvError(
    `no Python environment for gradprom yet (expected at ${loc.dir}). Make it once per user with: ${SETUP_COMMAND}  (or set GRADPROM_PYTHON to an interpreter with torch, pyzmq and msgpack)`,
  );
}

/** The interpreter to run, or a PythonEnvError that says how to get one. */
export function resolvePython(env: NodeJS.ProcessEnv = process.env): string {
  return locatePython(env).python;
}

/** Environment for a Python child: our sources on PYTHONPATH, unbuffered output. */
export function pythonEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const pp = process.env.PYTHONPATH ? `${pythonSourceDir}:${process.env.PYTHONPATH}` : pythonSourceDir;
  return { ...process.env, PYTHONPATH: pp, PYTHONUNBUFFERED: '1', ...extra };
}
