/** Integration: the real sidecar over ipc and tcp. */
import { Dealer } from 'zeromq';
import { Packr } from 'msgpackr';
import { Sidecar, SidecarError, silentLogger, tensor, isGradpromError, type Tensor } from 'gradprom';
import { waitFor } from '../helpers.js';

const packr = new Packr({ useRecords: false });

describe.each(['ipc', 'tcp'] as const)('sidecar over %s', (transport) => {
  let sc: Sidecar;
  beforeAll(async () => {
    sc = await Sidecar.start({ device: 'cpu', transport, logger: silentLogger });
  });
  afterAll(async () => {
    await sc.stop();
  });

  it('says hello with versions and devices', () => {
    expect(sc.info.protocol).toBe(1);
    expect(sc.info.torch).toMatch(/^\d+\.\d+/);
    expect(sc.info.devices).toContain('cpu');
    expect(sc.endpoint.startsWith(transport === 'ipc' ? 'ipc://' : 'tcp://127.0.0.1:')).toBe(true);
  });

  it('round-trips every dtype with its shape', async () => {
    const ts: Tensor[] = [
      tensor('float32', Float32Array.from([1.5, -2, 3.25, 1e-30, 5, 6]), [2, 3]),
      tensor('float64', Float64Array.from([Math.PI, -1e300]), [2, 1]),
      tensor('float16', Uint16Array.from([0x3c00, 0xc000, 0x7bff]), [3]),
      tensor('bfloat16', Uint16Array.from([0x3f80, 0xc040]), [1, 2]),
      tensor('int64', BigInt64Array.from([-(2n ** 63n), 2n ** 63n - 1n]), [2]),
      tensor('int32', Int32Array.from([-7, 2 ** 31 - 1]), [2]),
      tensor('uint8', Uint8Array.from([0, 255, 7]), [3]),
      tensor('bool', Uint8Array.from([1, 0, 1, 1]), [2, 2]),
      tensor('float32', new Float32Array(0), [0, 5]),
    ];
    const { tensors } = await sc.call('echo', {}, ts);
    expect(tensors.map((t) => [t.dtype, t.shape])).toEqual(ts.map((t) => [t.dtype, t.shape]));
    tensors.forEach((t, i) => expect(Array.from(t.data as ArrayLike<unknown>)).toEqual(Array.from(ts[i]!.data as ArrayLike<unknown>)));
  });

  it('matches 3 concurrent requests to their own replies', async () => {
    const calls = [0, 1, 2].map((k) => sc.call('echo', { k }, [tensor('int32', Int32Array.from([k, k * 10]))]));
    const replies = await Promise.all(calls);
    replies.forEach((r, k) => expect(Array.from(r.tensors[0]!.data as Int32Array)).toEqual([k, k * 10]));
  });

  it('turns a Python exception into a SidecarError with the traceback', async () => {
    // @ts-expect-error: a wrong type on purpose (args are typed at compile time; the sidecar checks them at run time)
    const err = await sc.call('sleep', { seconds: 'long' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SidecarError);
    expect(isGradpromError(err, 'SIDECAR_ERROR')).toBe(true);
    expect((err as SidecarError).op).toBe('sleep');
    expect((err as SidecarError).type).toBe('ValueError');
    expect((err as SidecarError).traceback).toMatch(/Traceback \(most recent call last\)/);
  });

  it('times out past the deadline and still serves the next request', async () => {
    // An hour's sleep: only a timeout that really stops it lets the echo below through before jest gives up.
    const err = await sc.call('sleep', { seconds: 3600 }, [], { timeoutMs: 200 }).catch((e: unknown) => e);
    expect(isGradpromError(err, 'SIDECAR_TIMEOUT')).toBe(true);
    // One compute thread runs one op at a time: this reply can only come once the sleep has stopped.
    const { tensors } = await sc.call('echo', {}, [tensor('uint8', Uint8Array.from([9]))]);
    expect(tensors[0]!.data[0]).toBe(9);
    expect((await sc.call('ping')).result).toMatchObject({ busy: false, op: null });
  });

  it('cancels a request through an AbortSignal: the work stops and the next request is served', async () => {
    const ac = new AbortController();
    // An hour's sleep: only a cancellation that really stops it lets the requests below through before jest gives up.
    const p = sc.call('sleep', { seconds: 3600 }, [], { signal: ac.signal });
    // Abort once the sidecar itself reports the sleep running, so the cancel reaches a running op, not a queued one.
    expect(await waitFor(async () => (await sc.call('ping')).result.op === 'sleep', 30_000)).toBeGreaterThanOrEqual(0);
    ac.abort();
    expect(isGradpromError(await p.catch((e: unknown) => e), 'SIDECAR_CANCELLED')).toBe(true);
    // One compute thread runs one op at a time: this reply can only come once the sleep has stopped.
    const { tensors } = await sc.call('echo', {}, [tensor('uint8', Uint8Array.from([7]))]);
    expect(tensors[0]!.data[0]).toBe(7);
    expect((await sc.call('ping')).result).toEqual({ pid: sc.pid, busy: false, op: null, progress: null });
  });

  it('answers heartbeats while a long computation runs', async () => {
    const ac = new AbortController();
    const long = sc.call('sleep', { seconds: 3600 }, [], { signal: ac.signal }).catch((e: unknown) => e);
    // A ping queued behind the sleep would be answered only once it ended, and so never find it running.
    const pingResult = async () => (await sc.call('ping')).result;
    expect(await waitFor(async () => (await pingResult()).op === 'sleep', 30_000)).toBeGreaterThanOrEqual(0);
    expect(await pingResult()).toMatchObject({ busy: true, op: 'sleep' });
    ac.abort();
    expect(isGradpromError(await long, 'SIDECAR_CANCELLED')).toBe(true);
  });

  describe('refuses bad messages and keeps serving', () => {
    let raw: Dealer;
    beforeEach(() => {
      raw = new Dealer({ linger: 0 });
      raw.connect(sc.endpoint);
    });
    afterEach(() => raw.close());

    async function replyTo(frames: Buffer[]): Promise<Record<string, unknown>> {
      await raw.send(frames);
      const [head] = await raw.receive();
      return packr.unpack(head!) as Record<string, unknown>;
    }

    it.each([
      ['garbage frames', [Buffer.from([0xc1, 0xff, 0x00]), Buffer.from('junk')], 'FrameError'],
      ['a wrong token', [packr.pack({ v: 1, token: 'nope', id: 5, op: 'ping', args: {} })], 'AuthError'],
      ['a missing token', [packr.pack({ v: 1, id: 6, op: 'ping', args: {} })], 'AuthError'],
      ['an oversized header', [Buffer.concat([packr.pack({ v: 1, id: 7 }), Buffer.alloc(2 << 20)])], 'FrameError'],
      ['a descriptor without its frame', [packr.pack({ v: 1, id: 8, tensors: [{ dtype: 'float32', shape: [4] }] })], 'FrameError'],
    ])('%s', async (_what, frames, type) => {
      const reply = await replyTo(frames as Buffer[]);
      expect(reply.status).toBe('error');
      expect((reply.error as { type: string }).type).toBe(type);
      expect((await sc.call('ping')).result.pid).toBe(sc.pid);
    });
  });
});

describe('a 100 MB vector', () => {
  it('round-trips bit-exact', async () => {
    const sc = await Sidecar.start({ device: 'cpu', logger: silentLogger });
    try {
      const n = 25 * 1024 * 1024; // 100 MiB of float32
      const a = new Float32Array(n);
      // Loops over typed arrays are slow inside jest's VM: fill 1 Mi values, then replicate them.
      for (let i = 0; i < 1 << 20; i++) a[i] = Math.sin(i) * 1e3 + i;
      for (let off = 1 << 20; off < n; off *= 2) a.copyWithin(off, 0, Math.min(off, n - off));
      const { tensors } = await sc.call('echo', {}, [tensor('float32', a)]);
      const b = tensors[0]!.data as Float32Array;
      expect(b.length).toBe(n);
      expect(Buffer.compare(Buffer.from(a.buffer), Buffer.from(b.buffer, b.byteOffset, b.byteLength))).toBe(0);
    } finally {
      await sc.stop();
    }
  });
});
