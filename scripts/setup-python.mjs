#!/usr/bin/env node
// Makes the sidecar's Python environment (scripts/python-env.mjs), or checks GRADPROM_PYTHON.
//   node scripts/setup-python.mjs --postinstall      npm's postinstall: never fails an install as a dependency
//   node scripts/setup-python.mjs [--force] [-- PIP_ARGS...]   `gradprom setup`
// Extra pip options (the torch build, e.g. --index-url https://download.pytorch.org/whl/cpu) come after `--` or in
// GRADPROM_PIP_ARGS.
import { ensureDevEnv, ensureSharedEnv, fixCommand, isClone, pipArgsFromEnv, probe, venvPython } from './python-env.mjs';
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

const argv = process.argv.slice(2);
const dash = argv.indexOf('--');
const flags = dash < 0 ? argv : argv.slice(0, dash);
const pipArgs = [...pipArgsFromEnv(), ...(dash < 0 ? [] : argv.slice(dash + 1))];
const postinstall = flags.includes('--postinstall');
const log = (line) => console.log(`gradprom: ${line}`);

/** GRADPROM_PYTHON, checked once: what it lacks and the one command that fixes it. */
function checkChosen(python) {
  const p = probe(python);
  if (!p.runs)
    return [
      `GRADPROM_PYTHON=${python} does not run${p.error ? ` (${p.error.split('\n').pop()})` : ''}.`,
      'Point it at a Python 3.9+ with torch, or unset it and run: npx gradprom setup',
    ];
  if (p.missing.length) return [`GRADPROM_PYTHON=${python} lacks: ${p.missing.join(', ')}.`, `Fix: ${fixCommand(python, p.missing)}`];
  return [];
}

async function main() {
  if (process.env.GRADPROM_PYTHON) {
    const problems = checkChosen(process.env.GRADPROM_PYTHON);
    if (problems.length) throw new Error(problems.join('\n  '));
    log(`using GRADPROM_PYTHON=${process.env.GRADPROM_PYTHON} (torch, pyzmq, msgpack, numpy import)`);
    return;
  }
  if (postinstall && process.env.GRADPROM_SKIP_SETUP === '1') {
    log('GRADPROM_SKIP_SETUP=1: no Python environment made; run `npx gradprom setup` before the first experiment');
    return;
  }
  // A clone whose python/.venv already has everything (runtime and test tools) needs nothing more.
  if (postinstall && isClone() && existsSync(venvPython)) {
    if (spawnSync(venvPython, ['-c', 'import pytest, torch, zmq, msgpack'], { stdio: 'ignore' }).status === 0) {
      log('python/.venv is up to date');
      return;
    }
  }
  const shared = await ensureSharedEnv({ log, pipArgs, force: flags.includes('--force') });
  if (isClone() && (postinstall || flags.includes('--dev'))) await ensureDevEnv(shared, { log, pipArgs });
}

main().catch((e) => {
  const msg = e instanceof Error ? e.message : String(e);
  console.error(`gradprom: Python environment not ready.\n  ${msg}`);
  if (postinstall && !isClone()) {
    // An install must not fail for the sidecar's environment: the library says the same on first use.
    console.error('  The package is installed; make the environment with: npx gradprom setup');
    process.exit(0);
  }
  process.exit(1);
});
