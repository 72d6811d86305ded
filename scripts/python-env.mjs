// Where the sidecar's Python lives, and how the shared environment is made.
// Plain JavaScript so that `postinstall` runs it before (or without) a build; src/sidecar/python.ts mirrors the
// lookup half (envLocation, the marker) for the library, and test/package/env.test.ts checks that both agree.
//
// Order: GRADPROM_PYTHON, else the clone's python/.venv (a clone only), else the shared environment
// $XDG_CACHE_HOME/gradprom/envs/<requirements hash>-py<X.Y>, made once per user by `gradprom setup`.
import { spawn, spawnSync } from 'node:child_process';
import { clearInterval, setInterval, setTimeout } from 'node:timers';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir, hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const requirementsFile = join(root, 'python', 'requirements.txt');
export const devRequirementsFile = join(root, 'python', 'requirements-dev.txt');
/** The clone's development environment (runtime packages through a .pth link to the shared one, plus test tools). */
export const venvDir = join(root, 'python', '.venv');
export const venvPython = join(venvDir, 'bin', 'python');
/** Written last into a shared environment: its absence means a half-made one. */
export const MARKER = '.gradprom-complete';
/** Modules the sidecar cannot start without. */
export const NEEDED = ['torch', 'numpy', 'zmq', 'msgpack'];
/** pip names of NEEDED, for the fixing command. */
const PIP_NAME = { torch: 'torch', numpy: 'numpy', zmq: 'pyzmq', msgpack: 'msgpack' };
/** A lock older than this is taken to be left by a crashed setup even when its owner cannot be checked. */
const STALE_LOCK_MS = 3 * 3600_000;

/** True in a development clone (its tests are there), false in an installed package. */
export function isClone() {
  return existsSync(join(root, 'python', 'tests')) && existsSync(devRequirementsFile);
}

/** $XDG_CACHE_HOME/gradprom, or ~/.cache/gradprom. */
export function cacheRoot(env = process.env) {
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'gradprom');
}

/** The interpreter a new environment is made from: GRADPROM_BASE_PYTHON, else python3 or python (3.9+). */
export function basePython(env = process.env) {
  const candidates = env.GRADPROM_BASE_PYTHON ? [env.GRADPROM_BASE_PYTHON] : ['python3', 'python'];
  for (const p of candidates) {
    const r = spawnSync(p, ['-c', 'import sys; assert sys.version_info >= (3, 9); print("%d.%d" % sys.version_info[:2])'], {
      encoding: 'utf8',
    });
    if (r.status === 0) return { python: p, version: r.stdout.trim() };
  }
  return null;
}

/** The shared environment for these requirements and this Python version (it may not exist yet). */
export function envLocation(version, env = process.env) {
  const hash = createHash('sha256').update(readFileSync(requirementsFile)).digest('hex').slice(0, 12);
  const dir = join(cacheRoot(env), 'envs', `${hash}-py${version}`);
  return { dir, python: join(dir, 'bin', 'python'), marker: join(dir, MARKER), lock: `${dir}.lock` };
}

/** What an interpreter lacks: {runs, missing (module names), protocol}; `runs` false when it does not start. */
export function probe(python) {
  const sep = process.env.PYTHONPATH ? `:${process.env.PYTHONPATH}` : '';
  const r = spawnSync(python, [join(root, 'python', 'probe.py')], {
    encoding: 'utf8',
    env: { ...process.env, PYTHONPATH: join(root, 'python') + sep, OMP_NUM_THREADS: '1' },
  });
  if (r.status !== 0) return { runs: false, missing: [...NEEDED], protocol: null, error: (r.stderr || String(r.error ?? '')).trim() };
  const last = r.stdout.trim().split('\n').pop() ?? '{}';
  return { runs: true, ...JSON.parse(last) };
}

/** The pip command that installs what `probe` found missing into `python`. */
export function fixCommand(python, missing) {
  const names = missing.map((m) => PIP_NAME[m] ?? m);
  return `${python} -m pip install ${names.join(' ')}`;
}

/** True when the shared environment at `loc` was finished (marker written last) and its interpreter is there. */
export function isComplete(loc) {
  return existsSync(loc.marker) && existsSync(loc.python);
}

/**
 * The interpreter for the clone's scripts and tests: GRADPROM_PYTHON, else python/.venv (clone), else a complete
 * shared environment; null when none is set up.
 */
export function sidecarPython(env = process.env) {
  if (env.GRADPROM_PYTHON) return env.GRADPROM_PYTHON;
  if (existsSync(venvPython)) return venvPython;
  const base = basePython(env);
  if (!base) return null;
  const loc = envLocation(base.version, env);
  return isComplete(loc) ? loc.python : null;
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

/** Why the lock at `lock` may be taken over, or null while its owner still works. */
function staleReason(lock) {
  let owner = null;
  try {
    owner = JSON.parse(readFileSync(join(lock, 'owner.json'), 'utf8'));
  } catch {
    // A lock without its owner file was left between mkdir and write: old enough, it is stale.
    const age = Date.now() - statSync(lock).mtimeMs;
    return age > 60_000 ? 'it names no owner' : null;
  }
  if (owner.host === hostname() && !alive(owner.pid)) return `its owner (pid ${owner.pid}) has exited`;
  if (Date.now() - owner.started > STALE_LOCK_MS) return `it is older than ${STALE_LOCK_MS / 3600_000} h`;
  return null;
}

/** Take the lock (a directory: mkdir is atomic), waiting for another setup; returns the release function. */
export async function acquireLock(lock, log, { waitMs = 2 * 3600_000, pollMs = 2000 } = {}) {
  mkdirSync(dirname(lock), { recursive: true });
  const until = Date.now() + waitMs;
  let said = false;
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, 'owner.json'), JSON.stringify({ pid: process.pid, host: hostname(), started: Date.now() }));
      return () => rmSync(lock, { recursive: true, force: true });
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
    }
    const stale = staleReason(lock);
    if (stale) {
      log(`removing a stale lock ${lock} (${stale})`);
      rmSync(lock, { recursive: true, force: true });
      continue;
    }
    if (!said) log(`another setup is making this environment (lock ${lock}); waiting for it`);
    said = true;
    if (Date.now() > until) throw new Error(`gave up waiting for the lock ${lock}; remove it if no setup is running`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/** Run pip, printing one progress line per package step and a heartbeat while it works; resolves with its exit code. */
function pipWithProgress(python, args, log) {
  return new Promise((resolve) => {
    const child = spawn(python, ['-m', 'pip', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const started = Date.now();
    let tail = [];
    const onLine = (line) => {
      tail = [...tail.slice(-20), line];
      if (/^(Collecting|Processing|Installing collected|Successfully installed|ERROR)/.test(line.trim())) log(`pip: ${line.trim()}`);
    };
    for (const stream of [child.stdout, child.stderr]) {
      let buf = '';
      stream.setEncoding('utf8');
      stream.on('data', (d) => {
        buf += d;
        const lines = buf.split('\n');
        buf = lines.pop();
        lines.forEach(onLine);
      });
    }
    const beat = setInterval(() => log(`pip still working (${Math.round((Date.now() - started) / 1000)} s)`), 30_000);
    child.on('close', (code) => {
      clearInterval(beat);
      if (code !== 0) for (const l of tail) log(`pip| ${l}`);
      resolve(code ?? 1);
    });
  });
}

/** Split GRADPROM_PIP_ARGS like a shell would, for the simple cases (spaces, no quoting). */
export function pipArgsFromEnv(env = process.env) {
  return (env.GRADPROM_PIP_ARGS ?? '').split(/\s+/).filter(Boolean);
}

/**
 * Make (or verify) the shared environment: under a lock, a complete and healthy one is kept; a half-made or broken
 * one is removed and made again; the marker is written last. Resolves with its location; throws with the reason.
 */
export async function ensureSharedEnv({ log = console.log, pipArgs = [], force = false, env = process.env } = {}) {
  const base = basePython(env);
  if (!base) throw new Error('no python3 (3.9 or newer) on PATH: install one, or set GRADPROM_PYTHON to an interpreter with torch');
  const loc = envLocation(base.version, env);
  const release = await acquireLock(loc.lock, log);
  try {
    if (!force && isComplete(loc)) {
      const p = probe(loc.python);
      if (p.runs && p.missing.length === 0) {
        log(`environment ready: ${loc.dir}`);
        return loc;
      }
      log(`environment ${loc.dir} is broken (${p.runs ? `lacks ${p.missing.join(', ')}` : 'its Python does not run'}); making it again`);
    } else if (existsSync(loc.dir)) {
      log(force ? `making ${loc.dir} again (--force)` : `environment ${loc.dir} is half-made (an earlier setup stopped); making it again`);
    }
    rmSync(loc.dir, { recursive: true, force: true });
    log(`creating ${loc.dir} with ${base.python} (Python ${base.version}); pip takes a few minutes (torch is large)`);
    const venv = spawnSync(base.python, ['-m', 'venv', loc.dir], { encoding: 'utf8' });
    if (venv.status !== 0)
      throw new Error(`${base.python} -m venv failed: ${venv.stderr.trim()} (on Debian/Ubuntu: apt-get install python3-venv)`);
    const code = await pipWithProgress(
      loc.python,
      ['install', '--disable-pip-version-check', '--progress-bar', 'off', '-r', requirementsFile, ...pipArgs],
      log,
    );
    if (code !== 0) throw new Error(`pip could not install ${requirementsFile} (see above); check your pip sources or GRADPROM_PIP_ARGS`);
    const p = probe(loc.python);
    if (!p.runs || p.missing.length) throw new Error(`the new environment still lacks ${p.missing.join(', ')}`);
    writeFileSync(
      loc.marker,
      `${JSON.stringify({ python: base.version, requirements: requirementsFile, pipArgs, made: new Date().toISOString() })}\n`,
    );
    log(`environment ready: ${loc.dir}`);
    return loc;
  } finally {
    release();
  }
}

/** The site-packages folder of a venv. */
function sitePackages(venv) {
  const lib = join(venv, 'lib');
  const py = readdirSync(lib).find((d) => d.startsWith('python'));
  return join(lib, py, 'site-packages');
}

/**
 * The clone's python/.venv: a small venv that sees the shared environment's packages through a .pth file and adds
 * the test tools of requirements-dev.txt, so tests never install pytest into a user's environment.
 */
export async function ensureDevEnv(shared, { log = console.log, pipArgs = [] } = {}) {
  if (existsSync(venvPython)) {
    const r = spawnSync(venvPython, ['-c', 'import pytest, ruff, torch, zmq, msgpack'], { encoding: 'utf8' });
    if (r.status === 0) {
      log('python/.venv is up to date');
      return;
    }
    // A linked python/.venv (a worktree sharing one) is someone else's: report, never replace.
    if (lstatSync(venvDir).isSymbolicLink()) throw new Error(`python/.venv (a link) lacks packages: ${r.stderr.trim().split('\n').pop()}`);
    log('python/.venv lacks packages; making it again');
    rmSync(venvDir, { recursive: true, force: true });
  }
  const base = basePython();
  if (spawnSync(base.python, ['-m', 'venv', venvDir]).status !== 0) throw new Error(`${base.python} -m venv ${venvDir} failed`);
  writeFileSync(join(sitePackages(venvDir), 'gradprom-shared-env.pth'), `${sitePackages(shared.dir)}\n`);
  const code = await pipWithProgress(
    venvPython,
    ['install', '--disable-pip-version-check', '--progress-bar', 'off', '-r', devRequirementsFile, ...pipArgs],
    log,
  );
  if (code !== 0) throw new Error(`pip could not install ${devRequirementsFile} (see above)`);
  log('python/.venv ready (test tools; runtime packages from the shared environment)');
}
