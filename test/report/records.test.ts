import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isGradpromError } from '../../src/errors.js';
import { latestRecords, parseRecords, readRecords, type MetricRecord, type StepRecord } from '../../src/report/index.js';
import { stepRecord } from '../helpers.js';

const step = stepRecord;

const jsonl = (rs: object[]): string => rs.map((r) => JSON.stringify(r)).join('\n');

describe('readRecords', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gradprom-records-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('ignores a truncated last line', async () => {
    const file = join(dir, 'metrics.jsonl');
    await writeFile(file, `${jsonl([step(0), step(1)])}\n{"type":"step","step":2,"loss_`);
    const rs = await readRecords(file);
    expect(rs.map((r) => (r as StepRecord).step)).toEqual([0, 1]);
  });

  test('accepts a trailing newline and blank lines', () => {
    expect(parseRecords(`${jsonl([step(0)])}\n\n${jsonl([step(1)])}\n`)).toHaveLength(2);
  });

  test('a malformed middle line is an error naming the file and line', async () => {
    const file = join(dir, 'metrics.jsonl');
    await writeFile(file, `${JSON.stringify(step(0))}\n{oops\n${JSON.stringify(step(1))}\n`);
    const err = await readRecords(file).catch((e: unknown) => e);
    expect(isGradpromError(err, 'RUN')).toBe(true);
    expect((err as Error).message).toContain(`${file}:2`);
  });

  test('a record without a type is malformed', () => {
    expect(() => parseRecords('{"step": 1}\n{"type":"resume","step":0}', 'm.jsonl')).toThrow('m.jsonl:1');
  });

  test('records of unknown type are skipped', () => {
    expect(parseRecords('{"type":"future","x":1}\n{"type":"resume","step":0}')).toEqual([{ type: 'resume', step: 0 }]);
  });
});

describe('latestRecords', () => {
  test('a resume supersedes earlier records of the same step and drops the abandoned ones past it', () => {
    const rs: MetricRecord[] = [
      { type: 'pretrain', loss: 0.2, accuracy: 0.9 },
      ...[0, 1, 2, 3, 4, 5].map((n) => step(n, { loss_ip: 1 })),
      { type: 'eval', step: 2, split: 'val', psnr: 20 },
      { type: 'eval', step: 4, split: 'val', psnr: 21 },
      { type: 'resume', step: 3 },
      ...[3, 4].map((n) => step(n, { loss_ip: 2 })),
      { type: 'eval', step: 4, split: 'val', psnr: 22 },
      { type: 'eval', step: 4, split: 'test', psnr: 23 },
    ];
    const live = latestRecords(rs);
    const steps = live.filter((r): r is StepRecord => r.type === 'step');
    expect(steps.map((s) => [s.step, s.loss_ip])).toEqual([
      [0, 1],
      [1, 1],
      [2, 1],
      [3, 2],
      [4, 2],
    ]);
    const evals = live.filter((r) => r.type === 'eval').map((r) => [r.type === 'eval' && r.split, r.type === 'eval' && r.psnr]);
    expect(evals).toEqual([
      ['val', 20],
      ['val', 22],
      ['test', 23],
    ]);
    expect(live.filter((r) => r.type === 'resume')).toHaveLength(1);
    expect(live[0]).toEqual({ type: 'pretrain', loss: 0.2, accuracy: 0.9 });
  });

  test('without a resume the last record per (type, split, step) wins', () => {
    const live = latestRecords([step(0, { cos: 0.1 }), step(0, { cos: 0.2 }), step(1)]);
    expect(live.map((r) => (r as StepRecord).cos)).toEqual([0.2, 0.1]);
  });

  test('is idempotent', () => {
    const rs: MetricRecord[] = [step(0), step(1), { type: 'resume', step: 1 }, step(1), step(2)];
    expect(latestRecords(latestRecords(rs))).toEqual(latestRecords(rs));
  });
});
