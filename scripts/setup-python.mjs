#!/usr/bin/env node
// Creates python/.venv from python/requirements.txt, or checks GRADPROM_PYTHON.
// A stamp (hash of requirements + interpreter version) makes a second install a no-op.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { root, venvDir, venvPython } from './python-env.mjs';

const requirements = join(root, 'python', 'requirements.txt');
const stampFile = join(venvDir, '.gradprom-stamp');
const needed = ['torch', 'numpy', 'zmq', 'msgpack'];

function run(cmd, args, opts = {}) {
  return spawnSync(cmd, args, { encoding: 'utf8', ...opts });
}

function fail(lines) {
  console.error(['gradprom: Python environment not ready.', ...lines].join('\n  '));
  process.exit(1);
}

/** Modules from `needed` that the interpreter cannot import. */
function missingModules(python) {
  const probe = `import importlib.util as u; print(",".join(m for m in ${JSON.stringify(needed)} if u.find_spec(m) is None))`;
  const r = run(python, ['-c', probe]);
  if (r.status !== 0) return null;
  return r.stdout.trim().split(',').filter(Boolean);
}

if (process.env.GRADPROM_PYTHON) {
  const python = process.env.GRADPROM_PYTHON;
  const missing = missingModules(python);
  if (missing === null)
    fail([
      `GRADPROM_PYTHON=${python} does not run.`,
      'Point it at a Python 3.9+ interpreter, or unset it to let npm install create python/.venv.',
    ]);
  if (missing.length)
    fail([`GRADPROM_PYTHON=${python} lacks: ${missing.join(', ')}.`, `Fix: ${python} -m pip install -r python/requirements.txt`]);
  console.log(`gradprom: using GRADPROM_PYTHON=${python}`);
  process.exit(0);
}

const base = ['python3', 'python'].find((p) => run(p, ['-c', 'import sys; assert sys.version_info >= (3, 9)']).status === 0);
if (!base) fail(['No python3 (3.9 or newer) on PATH.', 'Install Python 3.9+, or set GRADPROM_PYTHON to an interpreter that has torch.']);

const version = run(base, ['-c', 'import sys; print(sys.version)']).stdout.trim();
const stamp = createHash('sha256').update(readFileSync(requirements)).update(version).digest('hex');
if (existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp && existsSync(venvPython)) {
  console.log('gradprom: python/.venv is up to date');
  process.exit(0);
}

console.log(`gradprom: creating python/.venv with ${base} (${version.split(' ')[0]}) ...`);
rmSync(venvDir, { recursive: true, force: true });
if (run(base, ['-m', 'venv', venvDir], { stdio: 'inherit' }).status !== 0) {
  fail([`${base} -m venv failed.`, 'On Debian/Ubuntu: apt-get install python3-venv. Or set GRADPROM_PYTHON.']);
}
const pip = run(venvPython, ['-m', 'pip', 'install', '--retries', '0', '--disable-pip-version-check', '-q', '-r', requirements], {
  stdio: 'inherit',
});
if (pip.status !== 0)
  fail([
    'pip could not install python/requirements.txt (see above).',
    'Check your pip sources, or set GRADPROM_PYTHON to an interpreter that has them.',
  ]);
const missing = missingModules(venvPython);
if (missing?.length) fail([`python/.venv still lacks: ${missing.join(', ')}.`]);
writeFileSync(stampFile, stamp);
console.log('gradprom: python/.venv ready');
