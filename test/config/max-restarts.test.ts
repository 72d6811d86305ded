/** train.max_restarts: how many sidecar restarts a run survives (default 3); like every field, checked with its path. */
import { DEFAULTS, parseConfig, type ConfigIssue } from 'gradprom';

function issuesOf(raw: unknown): ConfigIssue[] {
  const r = parseConfig(raw);
  if (r.ok) throw new Error('expected issues');
  return r.issues;
}

test('defaults to 3 and accepts 0 (no restart: the first crash ends the run)', () => {
  expect(DEFAULTS.train.max_restarts).toBe(3);
  const r = parseConfig({ train: { max_restarts: 0 } });
  expect(r.ok && r.config.train.max_restarts).toBe(0);
});

test.each([
  [-1, 'too_small', 'expected number >= 0, got -1'],
  [1.5, 'invalid_type', 'expected integer, got 1.5'],
  ['3', 'invalid_type', 'expected number, got "3"'],
])('refuses %j, naming train.max_restarts', (value, code, message) => {
  expect(issuesOf({ train: { max_restarts: value } })).toEqual([{ code, path: 'train.max_restarts', message }]);
});

test('a misspelling is an unknown key with a hint', () => {
  expect(issuesOf({ train: { max_restart: 2 } })[0]).toMatchObject({
    code: 'unrecognized_key',
    path: 'train.max_restart',
    message: 'unknown key "max_restart" (did you mean "max_restarts"?)',
  });
});
