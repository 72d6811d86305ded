#!/usr/bin/env node
// `npm run gen:pins`: writes test/fixtures/policy-pins.json from the Python oracle (scripts/gen-pins.py), formatted by prettier.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { root } from './python-env.mjs';

const file = join(root, 'test', 'fixtures', 'policy-pins.json');
const run = (cmd, args) => {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root });
  if (r.status !== 0) process.exit(r.status ?? 1);
};
run(process.execPath, [join(root, 'scripts', 'run-python.mjs'), join(root, 'scripts', 'gen-pins.py'), file]);
run(process.execPath, [join(root, 'node_modules', 'prettier', 'bin', 'prettier.cjs'), '--write', '--log-level', 'warn', file]);
process.stdout.write('wrote test/fixtures/policy-pins.json\n');
