/** StepLoop's states against a scripted session: what each request asks for, and which counts come from where. */
import type { Decision, RemoteSession } from 'gradprom';
import { GradpromError, isGradpromError } from 'gradprom';
import { countsOf, StepLoop } from '../../src/train/step-loop.js';

const grads = (lossIp: number) => ({
  lossIp,
  lossVr: 1,
  finite: true,
  gram: { ipIp: Float64Array.of(1), vrVr: Float64Array.of(1), ipVr: Float64Array.of(0) },
});

/** A stand-in session: records each advance and answers as the sidecar would (it owns step and skipped). */
function fakeSession() {
  const calls: [string, boolean][] = [];
  let step = 3;
  let skipped = 4;
  const session = {
    calls,
    async advance(action: Decision | 'skip' | null, next: boolean) {
      calls.push([action === null ? 'none' : action === 'skip' ? 'skip' : 'decision', next]);
      if (action === 'skip') skipped++;
      else if (action !== null) step++;
      return { step, skipped, lrIp: 0.1, lrVr: 0.2, ipDescentActual: NaN, next: next ? grads(step) : null };
    },
  };
  return session;
}

const weights = { kind: 'weights' } as unknown as Decision;

test('idle → pending → pending → idle, the counts read from each reply, skips in a row counted here', async () => {
  const fake = fakeSession();
  const loop = new StepLoop(fake as unknown as RemoteSession, 'gram', { step: 3, skipped: 4, consecutiveSkips: 0 }, 2);
  expect(loop.pending).toBeNull();
  expect((await loop.gradients()).lossIp).toBe(3);
  expect(await loop.gradients()).toBe(loop.pending); // pending: no second request
  await loop.send('skip', true);
  await loop.send('skip', true);
  expect([loop.step, loop.skipped, loop.consecutiveSkips]).toEqual([3, 6, 2]);
  expect(loop.extra()).toEqual({ consecutiveSkips: 2 });
  await loop.send(weights, false);
  expect([loop.step, loop.skipped, loop.consecutiveSkips, loop.pending]).toEqual([4, 6, 0, null]);
  expect(fake.calls).toEqual([
    ['none', true],
    ['skip', true],
    ['skip', true],
    ['decision', false],
  ]);
});

test('a decision with nothing pending is refused before any request', async () => {
  const fake = fakeSession();
  const loop = new StepLoop(fake as unknown as RemoteSession, 'gram', { step: 0, skipped: 0, consecutiveSkips: 0 }, 1);
  const err = await loop.send(weights, true).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(GradpromError);
  expect(isGradpromError(err, 'RUN')).toBe(true);
  expect(fake.calls).toEqual([]);
});

test('restarts are counted up to the limit; a resume takes the checkpoint counts and drops what was pending', async () => {
  const loop = new StepLoop(fakeSession() as unknown as RemoteSession, 'gram', { step: 0, skipped: 0, consecutiveSkips: 0 }, 1);
  await loop.gradients();
  expect([loop.countRestart(), loop.countRestart(), loop.restarts]).toEqual([true, false, 1]);
  const fresh = fakeSession() as unknown as RemoteSession;
  loop.resume(fresh, { step: 8, skipped: 1, extra: { consecutiveSkips: 2, skips: 99 } });
  expect([loop.session, loop.step, loop.skipped, loop.consecutiveSkips, loop.pending]).toEqual([fresh, 8, 1, 2, null]);
  expect(countsOf({ step: 2, skipped: 0, extra: null })).toEqual({ step: 2, skipped: 0, consecutiveSkips: 0 });
});
