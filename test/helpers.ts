/** Test helpers shared by the integration tests. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { loadConfig, Sidecar, silentLogger, type Config, type SidecarOptions } from 'gradprom';
import type { StepRecord } from '../src/report/index.js';

/** The repository: the nearest folder above this file with a package.json (the tests run compiled, from dist/test). */
export const root = ((dir: string): string => {
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
})(dirname(fileURLToPath(import.meta.url)));
export const realPython = process.env.GRADPROM_PYTHON ?? join(root, 'python', '.venv', 'bin', 'python');
export const fakePython = join(root, 'test', 'fixtures', 'fake-python.sh');

/** `gradprom ARGS` run to its end in `cwd` (240 s at most): exit code and output. */
export function runGradprom(cwd: string, ...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(root, 'bin', 'gradprom.js'), ...args], {
    encoding: 'utf8',
    timeout: 240_000,
    cwd,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** What the runner's Python side does with each request: run the script with its argv, answer on fd 3. */
const RUNNER = `
import contextlib, io, json, os, sys, traceback
replies = os.fdopen(3, "w")
for line in sys.stdin:
    req, out = json.loads(line), io.StringIO()
    sys.argv = ["-c", *req["argv"]]
    error = None
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(req["script"], "<test script>", "exec"), {"__name__": "__main__"})
    except SystemExit as exc:
        if exc.code not in (None, 0):
            error = f"exit {exc.code}"
    except BaseException:
        error = traceback.format_exc()
    replies.write(json.dumps({"stdout": out.getvalue(), "error": error}) + "\\n")
    replies.flush()
`;

/**
 * One real Python process (python/ on its path) that runs the scripts sent to it one after another, each with its own
 * argv and namespace, and answers with what it printed: torch is imported once for many small checks, where a
 * process per check would import it each time (seconds of CPU apiece).
 */
export class PythonRunner {
  private readonly proc: ChildProcess;
  private readonly waiting: Array<(reply: { stdout: string; error: string | null }) => void> = [];
  private stderr = '';

  constructor() {
    this.proc = spawn(realPython, ['-c', RUNNER], { cwd: join(root, 'python'), stdio: ['pipe', 'inherit', 'pipe', 'pipe'] });
    this.proc.stderr!.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-4000)));
    createInterface({ input: this.proc.stdio[3] as NodeJS.ReadableStream }).on('line', (l) => this.waiting.shift()?.(JSON.parse(l)));
    this.proc.once('exit', (code, signal) => {
      for (const answer of this.waiting.splice(0)) answer({ stdout: '', error: `the Python runner exited (${code ?? signal})` });
    });
  }

  /** What `script` printed, run as `python -c script ...argv`; throws with the traceback (and stderr) when it fails. */
  async run(script: string, argv: string[] = []): Promise<string> {
    const reply = await new Promise<{ stdout: string; error: string | null }>((resolve) => {
      if (this.proc.exitCode !== null) return resolve({ stdout: '', error: 'the Python runner has exited' });
      this.waiting.push(resolve);
      this.proc.stdin!.write(`${JSON.stringify({ script, argv })}\n`);
    });
    if (reply.error !== null) throw new Error(`python -c ... ${argv.join(' ')} failed:\n${reply.error}\n${this.stderr}`);
    return reply.stdout;
  }

  async close(): Promise<void> {
    if (this.proc.exitCode !== null) return;
    const exited = new Promise((r) => this.proc.once('exit', r));
    this.proc.stdin!.end();
    await exited;
  }
}

/**
 * Writes `script` to `dir`/writer.py and runs it with `dir` as its argument (the sidecar package on its path): the
 * fixture writers of the CLI tests. Throws with its stderr when it fails.
 */
export function writeFixtures(dir: string, script: string): void {
  writeFileSync(join(dir, 'writer.py'), script);
  const r = spawnSync(realPython, [join(dir, 'writer.py'), dir], {
    encoding: 'utf8',
    env: { ...process.env, PYTHONPATH: join(root, 'python') },
  });
  if (r.status !== 0) throw new Error(`the fixture writer failed:\n${r.stderr}`);
}

/** True while a process with this pid exists (and is not a zombie). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = `/proc/${pid}/stat`;
  if (existsSync(stat)) {
    try {
      const state = readFileSync(stat, 'utf8').split(') ')[1]?.[0];
      return state !== 'Z';
    } catch {
      return false;
    }
  }
  return true;
}

/**
 * Poll `cond` every 50 ms until true or `ms` passes; returns the elapsed ms or -1. Tests wait for a condition this
 * way, never for a fixed time: a loaded machine then makes them slower, not wrong.
 */
export async function waitFor(cond: () => boolean | Promise<boolean>, ms: number): Promise<number> {
  const start = Date.now();
  while (Date.now() - start < ms) {
    if (await cond()) return Date.now() - start;
    await new Promise((r) => setTimeout(r, 50));
  }
  return (await cond()) ? Date.now() - start : -1;
}

/** A sidecar started through the fake interpreter with the given FAKE_* faults. */
export async function startFake(faults: Record<string, string>, opts: SidecarOptions = {}): Promise<Sidecar> {
  const saved = { ...process.env };
  Object.assign(process.env, faults, { GRADPROM_REAL_PYTHON: realPython });
  try {
    return await Sidecar.start({ device: 'cpu', python: fakePython, logger: silentLogger, stopGraceMs: 500, ...opts });
  } finally {
    for (const k of Object.keys(faults)) if (!(k in saved)) delete process.env[k];
  }
}

/** The resolved config of `--set` style overrides (throws with every issue when they do not resolve). */
export async function configOf(sets: readonly string[]): Promise<Config> {
  const r = await loadConfig(null, [...sets]);
  if (!r.ok) throw new Error(r.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
  return r.config;
}

/** A step record of metrics.jsonl with plausible values, `over` replacing some. */
export function stepRecord(n: number, over: Partial<StepRecord> = {}): StepRecord {
  return {
    type: 'step',
    step: n,
    loss_ip: 0.1,
    loss_vr: 1,
    cos: 0.1,
    gate: true,
    gate_rate: 1,
    ip_norm: 1,
    vr_norm: 100,
    lambda_eff: 0.003,
    lr_ip: 1e-3,
    lr_vr: 1e-3,
    skipped: false,
    time_ms: 100,
    ...over,
  };
}

/** Path → content hash of every file under `dir`: to prove that nothing in it was changed. */
export function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(dir, { recursive: true }) as string[]) {
    const p = join(dir, name);
    if (statSync(p).isFile()) out[name] = createHash('sha256').update(readFileSync(p)).digest('hex');
  }
  return out;
}
