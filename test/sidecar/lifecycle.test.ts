/** Lifecycle: exits noticed, restarts, stop escalation, no orphans. Faults come from the fake sidecar. */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { Sidecar, SidecarExitedError, silentLogger, isGradpromError } from 'gradprom';
import { alive, root, startFake, waitFor } from '../helpers.js';

describe('sidecar lifecycle', () => {
  it('rejects a pending request with SidecarExitedError on SIGKILL, and restarts', async () => {
    const sc = await Sidecar.start({ device: 'cpu', logger: silentLogger });
    const oldPid = sc.pid;
    const exits: SidecarExitedError[] = [];
    sc.onExit((e) => exits.push(e));
    // An hour's sleep: the request ends only if the exit is noticed (a missed one would end in a timeout error).
    const pending = sc.call('sleep', { seconds: 3600 }).catch((e: unknown) => e);
    expect(await waitFor(async () => (await sc.call('ping')).result.op === 'sleep', 30_000)).toBeGreaterThanOrEqual(0);
    process.kill(oldPid, 'SIGKILL');
    const err = await pending;
    expect(err).toBeInstanceOf(SidecarExitedError);
    expect((err as SidecarExitedError).signal).toBe('SIGKILL');
    expect(exits).toHaveLength(1);
    await sc.restart();
    expect(sc.pid).not.toBe(oldPid);
    expect((await sc.call('ping')).result.pid).toBe(sc.pid);
    expect(await sc.stop()).toBe('request');
    expect(alive(sc.pid)).toBe(false);
  });

  it('reports a failed start with the last stderr lines', async () => {
    const err = await startFake({ FAKE_FAIL_START: '1' }).catch((e: unknown) => e);
    expect(isGradpromError(err, 'SIDECAR_START')).toBe(true);
    expect((err as Error).message).toMatch(/failing on start as asked/);
    expect((err as Error).message).toMatch(/exit code 3/);
  });

  it('gives up on a start that takes too long', async () => {
    const err = await startFake({ FAKE_SLOW_START: '30' }, { startTimeoutMs: 1000 }).catch((e: unknown) => e);
    expect(isGradpromError(err, 'SIDECAR_START')).toBe(true);
  });

  it('names the missing interpreter and how to fix it', async () => {
    const err = await Sidecar.start({ python: '/nonexistent/python3', logger: silentLogger }).catch((e: unknown) => e);
    expect(isGradpromError(err, 'SIDECAR_START')).toBe(true);
    expect((err as Error).message).toMatch(/nonexistent/);
  });

  it('escalates to SIGTERM when shutdown is ignored, and to SIGKILL when SIGTERM is too', async () => {
    const a = await startFake({ FAKE_IGNORE_SHUTDOWN: '1' });
    expect(await a.stop()).toBe('SIGTERM');
    const b = await startFake({ FAKE_IGNORE_SHUTDOWN: '1', FAKE_IGNORE_SIGTERM: '1' });
    expect(await b.stop()).toBe('SIGKILL');
    expect(alive(a.pid) || alive(b.pid)).toBe(false);
  });

  it('kills a hung sidecar when heartbeats go unanswered', async () => {
    const sc = await startFake({ FAKE_HANG_AFTER: '1' }, { heartbeatIntervalMs: 100, heartbeatTimeoutMs: 500 });
    const exited = new Promise<SidecarExitedError>((r) => sc.onExit(r));
    const err = await exited;
    expect(err.message).toMatch(/heartbeat unanswered/);
    expect(alive(sc.pid)).toBe(false);
    await sc.stop();
  });

  it('marks the sidecar dead after too many restarts', async () => {
    const sc = await Sidecar.start({ device: 'cpu', logger: silentLogger, maxRestarts: 1 });
    await sc.restart();
    expect(isGradpromError(await sc.restart().catch((e: unknown) => e), 'SIDECAR_DEAD')).toBe(true);
    await sc.stop();
  });
});

describe('no orphans', () => {
  /** The child's TMPDIR, where its sidecar's ipc folder (gradprom-*) goes. */
  let tmp: string;
  beforeEach(() => (tmp = mkdtempSync(join(tmpdir(), 'orphan-test-'))));
  afterEach(() => rmSync(tmp, { recursive: true, force: true }));
  const leftBehind = () => readdirSync(tmp).filter((f) => f.startsWith('gradprom-'));

  /** Start test/fixtures/child-sidecar.mjs in `mode`; resolves with the child and its sidecar's pid. */
  async function child(mode: string) {
    const proc = spawn(process.execPath, [join(root, 'test', 'fixtures', 'child-sidecar.mjs'), mode], {
      stdio: ['ignore', 'pipe', 'ignore'],
      env: { ...process.env, TMPDIR: tmp },
    });
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: proc.stdout }).once('line', resolve);
      proc.once('exit', (c) => reject(new Error(`child exited ${c} before starting its sidecar`)));
    });
    return { proc, sidecarPid: (JSON.parse(line) as { sidecarPid: number }).sidecarPid };
  }

  it('ends the sidecar within 5 s when its Node parent is SIGKILLed, and its ipc folder goes with it', async () => {
    const { proc, sidecarPid } = await child('wait');
    expect(alive(sidecarPid)).toBe(true);
    expect(leftBehind()).toHaveLength(1);
    proc.kill('SIGKILL');
    expect(await waitFor(() => !alive(sidecarPid), 5000)).toBeGreaterThanOrEqual(0);
    await waitFor(() => leftBehind().length === 0, 5000);
    expect(leftBehind()).toEqual([]);
  });

  it.each(['exit', 'throw'])('ends the sidecar when Node ends by %s, leaving no ipc folder', async (mode) => {
    const { sidecarPid } = await child(mode);
    expect(await waitFor(() => !alive(sidecarPid), 5000)).toBeGreaterThanOrEqual(0);
    await waitFor(() => leftBehind().length === 0, 5000);
    expect(leftBehind()).toEqual([]);
  });

  it('ends the sidecar when Node gets SIGTERM', async () => {
    const { proc, sidecarPid } = await child('wait');
    proc.kill('SIGTERM');
    expect(await waitFor(() => !alive(sidecarPid), 5000)).toBeGreaterThanOrEqual(0);
  });
});
