/**
 * The shared environment's bookkeeping without pip: the library's lookup agrees with the setup script's, the lock
 * serialises two setups and takes over a stale one, a half-made environment is refused with the one command to run,
 * GRADPROM_PYTHON without torch names what is missing, and a typed config with a wrong field is refused by path.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isGradpromError, locatePython, parseConfig, sharedEnvLocation } from 'gradprom';
import { root } from '../helpers.js';
import { tempDir } from '../reliability/harness.js';

interface EnvScript {
  basePython(env?: NodeJS.ProcessEnv): { python: string; version: string } | null;
  envLocation(version: string, env?: NodeJS.ProcessEnv): { dir: string; python: string; marker: string; lock: string };
  acquireLock(lock: string, log: (line: string) => void, opts?: { waitMs?: number; pollMs?: number }): Promise<() => void>;
}

const script = (await import(join(root, 'scripts', 'python-env.mjs'))) as EnvScript;
let tmp: ReturnType<typeof tempDir>;
beforeEach(() => (tmp = tempDir('gradprom-env-')));
afterEach(() => tmp.remove());

/** An environment with the clone's venv out of the way is what an installed package sees; only the cache moves. */
const cacheEnv = () => ({ ...process.env, XDG_CACHE_HOME: join(tmp.dir, 'cache'), GRADPROM_PYTHON: '' });

describe('the shared environment', () => {
  it('is found where the setup script makes it', () => {
    const base = script.basePython();
    expect(base).not.toBeNull();
    const env = cacheEnv();
    expect(sharedEnvLocation(base!.version, env)).toEqual(script.envLocation(base!.version, env));
    expect(script.envLocation(base!.version, env).dir.startsWith(join(tmp.dir, 'cache', 'gradprom', 'envs'))).toBe(true);
  });

  it('lets one setup at a time hold the lock, and takes over a stale one', async () => {
    const lock = join(tmp.dir, 'envs', 'x.lock');
    const lines: string[] = [];
    const release = await script.acquireLock(lock, (l) => lines.push(l), { pollMs: 20 });
    let second = false;
    const waiting = script
      .acquireLock(lock, (l) => lines.push(l), { pollMs: 20 })
      .then((r) => {
        second = true;
        return r;
      });
    await new Promise((r) => setTimeout(r, 200));
    expect(second).toBe(false);
    expect(lines.some((l) => l.includes('another setup'))).toBe(true);
    release();
    (await waiting)();
    expect(second).toBe(true);

    // A lock whose owner has exited (a setup killed mid-way) is removed.
    const dead = spawnSync(process.execPath, ['-e', 'process.exit(0)']).pid!;
    mkdirSync(lock, { recursive: true });
    writeFileSync(join(lock, 'owner.json'), JSON.stringify({ pid: dead, host: (await import('node:os')).hostname(), started: Date.now() }));
    const taken = await script.acquireLock(lock, (l) => lines.push(l), { pollMs: 20, waitMs: 5000 });
    expect(lines.some((l) => l.includes('stale lock'))).toBe(true);
    taken();
  });
});

describe('locatePython', () => {
  it('refuses a half-made shared environment with the one command to run', () => {
    const env = cacheEnv();
    const loc = sharedEnvLocation(script.basePython()!.version, env);
    mkdirSync(join(loc.dir, 'bin'), { recursive: true }); // setup killed before the marker
    writeFileSync(loc.python, '');
    // A clone's python/.venv comes first: the lookup is asked what an installed package (which has none) would say.
    let error: unknown;
    try {
      locateShared(env);
    } catch (e) {
      error = e;
    }
    expect(isGradpromError(error, 'PYTHON_ENV')).toBe(true);
    expect((error as Error).message).toMatch(/half-made.*npx gradprom setup/);
  });

  it('names what GRADPROM_PYTHON lacks and the command that fixes it', () => {
    const bare = join(tmp.dir, 'bare');
    expect(spawnSync('python3', ['-m', 'venv', '--without-pip', bare]).status).toBe(0);
    const python = join(bare, 'bin', 'python');
    let error: unknown;
    try {
      locatePython({ ...process.env, XDG_CACHE_HOME: join(tmp.dir, 'cache'), GRADPROM_PYTHON: python });
    } catch (e) {
      error = e;
    }
    expect(isGradpromError(error, 'PYTHON_ENV')).toBe(true);
    expect((error as Error).message).toContain('lacks torch');
    expect((error as Error).message).toContain(`${python} -m pip install torch`);
  });
});

describe('a typed config', () => {
  it('with a wrong field is refused by its path before any work', () => {
    const wrong: unknown = { train: { stpes: 3 } };
    const r = parseConfig(wrong);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issues.map((i) => i.path)).toContain('train.stpes');
  });
});

/** locatePython as an installed package runs it: the clone's python/.venv not looked at. */
function locateShared(env: NodeJS.ProcessEnv) {
  return locatePython(env, { clone: false });
}
