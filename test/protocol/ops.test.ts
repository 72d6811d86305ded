/** The typed op map: op names and args checked at compile time, replies parsed by each op's schema, one list on both sides. */
import { OPS, ProtocolError, Sidecar, SidecarError, isGradpromError, silentLogger, type OpName, type OpResult } from 'gradprom';
import { startFake } from '../helpers.js';

/** Compile-only: `npm run build` fails if any line marked @ts-expect-error type-checks. Never called. */
export async function compileChecks(sc: Sidecar): Promise<void> {
  // @ts-expect-error: not an op
  await sc.call('train.stepp');
  // @ts-expect-error: `sleep` needs its `seconds`
  await sc.call('sleep');
  // @ts-expect-error: `eval` takes a split name, not a number
  await sc.call('eval', { split: 1 });
  // @ts-expect-error: results are typed: `ping` has no `slept`
  void (await sc.call('ping')).result.slept;
  // @ts-expect-error: the step's parts on their own are the Python tests' own ops, not production's
  await sc.call('train.grads', { transport: 'gram' });
  const pid: number = (await sc.call('ping')).result.pid;
  const advanced: OpResult<'train.advance'> = (await sc.call('train.advance', { next: true, transport: 'gram' })).result;
  void [pid, advanced.next?.gram.ip_ip, advanced.ip_descent_actual];
}

describe('the op map', () => {
  it('lists exactly the ops the sidecar registers (bench-only ops included when asked for)', async () => {
    process.env.GRADPROM_BENCH_OPS = '1';
    const sc = await Sidecar.start({ device: 'cpu', logger: silentLogger });
    try {
      // An unknown op is refused with the list of known ones: the sidecar's own registry, whatever its layout.
      const err = await sc.call('no.such.op' as OpName).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SidecarError);
      expect((err as SidecarError).type).toBe('UnknownOp');
      const known = /\(known: ([^)]*)\)/.exec((err as SidecarError).detail)?.[1]?.split(', ');
      expect(known?.sort()).toEqual(Object.keys(OPS).sort());
    } finally {
      delete process.env.GRADPROM_BENCH_OPS;
      await sc.stop();
    }
  });

  it('parses every reply: a result that breaks its schema is a PROTOCOL error naming the op and field', async () => {
    const sc = await startFake({ FAKE_BAD_PING: '1' });
    try {
      const err = await sc.call('ping').catch((e: unknown) => e);
      expect(isGradpromError(err, 'PROTOCOL')).toBe(true);
      expect((err as ProtocolError).field).toBe('ping.result.pid');
      // The sidecar itself is fine: the next request is served.
      expect((await sc.call('echo')).result).toEqual({});
    } finally {
      await sc.stop();
    }
  });
});
