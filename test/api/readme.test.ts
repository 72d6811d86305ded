/**
 * README's TypeScript API example, taken from README.md itself (the ```ts block after the `tested:` marker),
 * type-checked with --strict against the built package and run as a user's script with a tiny config.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ts from 'typescript';
import { root } from '../helpers.js';

const MARKER = '<!-- tested: test/api/readme.test.ts';
const CONFIG_NAME = "'my.yaml'";

/** The code of the first ```ts block after the marker in `markdown`; throws when either is missing. */
export function testedExample(markdown: string): string {
  const at = markdown.indexOf(MARKER);
  if (at < 0) throw new Error(`README.md: no "${MARKER}" marker before the API example`);
  const block = /```ts\n([\s\S]*?)\n```/.exec(markdown.slice(at));
  if (!block) throw new Error('README.md: no ```ts block after the tested marker');
  return block[1]!;
}

// Small enough for seconds per run; the example's own overrides (policy, λ) still apply on top.
const TINY_YAML = (outDir: string) => `
device: cpu
data: {size: 16, classes: 3, counts: {train: 64, val: 16, test: 32}}
ip: {channels: 8, blocks: 1}
vr: {pretrain_steps: 5, kwargs: {widths: [4, 8]}}
train: {steps: 6, batch_size: 8, eval_every: 0, checkpoint_every: 0, tensorboard: false}
eval: {limit: 32}
output: {dir: ${JSON.stringify(outDir)}, plots: false}
`;

let work: string; // the config and the runs
let scriptDir: string; // inside the package, so that `import 'gradprom'` resolves to it as for a user
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'gradprom-readme-'));
  mkdirSync(join(root, 'dist'), { recursive: true });
  scriptDir = mkdtempSync(join(root, 'dist', 'readme-example-'));
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
  rmSync(scriptDir, { recursive: true, force: true });
});

describe("README's TypeScript API example", () => {
  it('is found under its marker', () => {
    expect(() => testedExample('no marker here')).toThrow(/marker/);
    expect(testedExample(`${MARKER} -->\n\n\`\`\`ts\nconst x = 1;\n\`\`\`\n`)).toBe('const x = 1;');
  });

  it('type-checks with --strict and runs as written', () => {
    const code = testedExample(readFileSync(join(root, 'README.md'), 'utf8'));
    // The one substitution: the config file the example names becomes a tiny one.
    expect(code.split(CONFIG_NAME)).toHaveLength(2);
    const config = join(work, 'my.yaml');
    writeFileSync(config, TINY_YAML(join(work, 'runs')));
    const file = join(scriptDir, 'example.mts');
    writeFileSync(file, code.replace(CONFIG_NAME, JSON.stringify(config)));

    const program = ts.createProgram([file], {
      strict: true,
      noEmitOnError: true,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      types: ['node'],
      skipLibCheck: true,
    });
    const emitted = program.emit();
    const problems = [...ts.getPreEmitDiagnostics(program), ...emitted.diagnostics].map((d) =>
      ts.flattenDiagnosticMessageText(d.messageText, '\n'),
    );
    expect(problems).toEqual([]);

    const r = spawnSync(process.execPath, [join(scriptDir, 'example.mjs')], {
      cwd: work,
      encoding: 'utf8',
      timeout: 240_000,
      env: { ...process.env, OMP_NUM_THREADS: '1' },
    });
    if (r.status !== 0) throw new Error(`the example exited with ${r.status ?? r.signal}:\n${r.stderr}`);
    // Two runs: the built-in policy's default folder, then the user policy's.
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(new RegExp(`^${join(work, 'runs', 'gradprom-l0.003-s0')} \\d+(\\.\\d+)? (0|1|0\\.\\d+)$`));
    expect(lines[1]).toMatch(new RegExp(`^${join(work, 'runs', 'strict')} (0|1|0\\.\\d+)$`));
  }, 300_000);
});
