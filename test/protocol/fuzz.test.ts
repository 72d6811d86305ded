/**
 * Fuzzing the TypeScript decoder (10,000 random or mutated frame sets), the client's reply path behind it, and the
 * real sidecar's decoder over its socket, which must keep serving valid requests throughout.
 */
import { Dealer, Router } from 'zeromq';
import { pack } from 'msgpackr';
import { isGradpromError, ProtocolError, Sidecar, silentLogger, DTYPE_NAMES, type ErrorCode } from 'gradprom';
import { decodeFrames, encodeFrames } from '../../src/protocol/frames.js';
import { replyHeaderSchema } from '../../src/protocol/schema.js';
import { Client } from '../../src/sidecar/client.js';
import { fuzzMessage, mutate, Rng, validMessage } from './fuzz-frames.js';

const SEED = 20250106;
const DECODER_FRAMES = 10_000;
const CONTROLS = 1_000;

/** A message built to be refused, and the field its refusal must name. */
function broken(rng: Rng): { frames: Buffer[]; field: string } {
  const frames = validMessage(rng);
  switch (rng.int(3)) {
    case 0: // a header that is msgpack but not a map
      return { frames: [pack(rng.pick([[1, 2], 7, 'header', null, true])), ...frames.slice(1)], field: 'header' };
    case 1: // a tensor frame the header does not describe
      return { frames: [...frames, rng.bytes(rng.int(16))], field: 'header.tensors' };
    default: {
      if (frames.length < 2) return { frames: [...frames, rng.bytes(1)], field: 'header.tensors' };
      const i = 1 + rng.int(frames.length - 1); // a tensor body one byte longer than its dtype and shape say
      frames[i] = Buffer.concat([frames[i]!, Buffer.alloc(1)]);
      return { frames, field: `tensors[${i - 1}]` };
    }
  }
}

describe('TypeScript decoder fuzz', () => {
  it(`${DECODER_FRAMES} random and mutated frame sets: a typed result or a ProtocolError, never anything else`, () => {
    const rng = new Rng(SEED);
    let accepted = 0;
    let refused = 0;
    for (let k = 0; k < DECODER_FRAMES; k++) {
      const frames = fuzzMessage(rng, k);
      let decoded;
      try {
        decoded = decodeFrames(frames);
      } catch (e) {
        if (!(e instanceof ProtocolError) || !e.field) throw new Error(`frame set ${k} (seed ${SEED}): ${String(e)}`);
        refused++;
        continue;
      }
      accepted++;
      // What decodes is coherent: one typed view per tensor frame, of exactly its bytes.
      const incoherent =
        decoded.tensors.length !== frames.length - 1 ||
        decoded.tensors.some((t, i) => !DTYPE_NAMES.includes(t.dtype) || t.data.byteLength !== frames[i + 1]!.length);
      if (incoherent) throw new Error(`frame set ${k} (seed ${SEED}) decoded incoherently`);
      replyHeaderSchema.safeParse(decoded.header); // a schema never throws, whatever the decoder let through
    }
    expect(refused).toBeGreaterThan(DECODER_FRAMES / 2);
    expect(accepted).toBeGreaterThan(0);
  });

  it(`${CONTROLS} valid and ${CONTROLS} broken messages: each gets the verdict it was built for`, () => {
    const rng = new Rng(SEED + 3);
    const wrong: string[] = [];
    for (let k = 0; k < CONTROLS; k++) {
      const id = rng.int(1000);
      const valid = validMessage(rng, id);
      try {
        const { header, tensors } = decodeFrames(valid);
        const same = tensors.every((t, i) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).equals(valid[i + 1]!));
        if ((header as { id?: unknown }).id !== id || tensors.length !== valid.length - 1 || !same) wrong.push(`valid ${k}: misread`);
      } catch (e) {
        wrong.push(`valid ${k}: refused (${String(e)})`);
      }
      const { frames, field } = broken(rng);
      try {
        decodeFrames(frames);
        wrong.push(`broken ${k}: accepted`);
      } catch (e) {
        if (!(e instanceof ProtocolError) || e.field !== field) wrong.push(`broken ${k}: ${String(e)}, not about ${field}`);
      }
    }
    expect(wrong).toEqual([]);
  });
});

describe('client reply path fuzz', () => {
  let router: Router;
  let client: Client;
  afterEach(() => {
    client?.close();
    router?.close();
  });

  it('1,000 fuzzed replies settle every request with a typed outcome, and a clean reply still resolves', async () => {
    router = new Router({ linger: 0 });
    await router.bind('tcp://127.0.0.1:*');
    client = new Client({ endpoint: router.lastEndpoint!, token: 't', logger: silentLogger, defaultTimeoutMs: () => 5000 });
    const rng = new Rng(SEED + 1);
    const outcomes = new Map<string, number>();
    const allowed: (ErrorCode | 'ok')[] = ['ok', 'PROTOCOL', 'SIDECAR_ERROR'];
    for (let round = 0; round < 100; round++) {
      const call = client.call('op', { round });
      const [identity, head] = await router.receive();
      const id = (decodeFrames([head!]).header as { id: number }).id;
      for (let k = 0; k < 10; k++) {
        // Half aimed at the pending id, half at random ids; all mangled.
        const frames = k % 2 ? mutate(rng, validMessage(rng, id)) : fuzzMessage(rng, round * 10 + k);
        await router.send([identity!, ...frames]);
      }
      await router.send([identity!, ...encodeFrames({ v: 1, id, status: 'ok', result: { round } })]);
      const outcome = await call.then(
        () => 'ok',
        (e: unknown) => (isGradpromError(e) ? e.code : `untyped: ${String(e)}`),
      );
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    }
    for (const o of outcomes.keys()) expect(allowed).toContain(o);
    expect(outcomes.get('ok')).toBeGreaterThan(0);
    const clean = client.call('op', {});
    const [identity, head] = await router.receive();
    await router.send([
      identity!,
      ...encodeFrames({ v: 1, id: (decodeFrames([head!]).header as { id: number }).id, status: 'ok', result: { fine: true } }),
    ]);
    expect((await clean).result).toEqual({ fine: true });
  });
});

describe('the sidecar under fuzz', () => {
  let sc: Sidecar;
  let raw: Dealer;
  afterEach(async () => {
    raw?.close();
    await sc?.stop();
  });

  it('answers 2,000 fuzzed messages with error replies and keeps serving valid requests throughout', async () => {
    sc = await Sidecar.start({ device: 'cpu', logger: silentLogger });
    raw = new Dealer({ linger: 0, receiveTimeout: 10_000 });
    raw.connect(sc.endpoint);
    const rng = new Rng(SEED + 2);
    let errors = 0;
    for (let batch = 0; batch < 20; batch++) {
      for (let k = 0; k < 100; k++) {
        const frames = fuzzMessage(rng, batch * 100 + k);
        await raw.send(frames.length ? frames : [Buffer.alloc(0)]); // zeromq sends no empty message
      }
      for (let k = 0; k < 100; k++) {
        const [head] = await raw.receive();
        // The sidecar echoes whatever integer id it could read, safe for JavaScript or not: read the status only.
        if ((decodeFrames([head!]).header as { status?: unknown }).status === 'error') errors++;
      }
      // A valid request from the real client, between every 100 bad ones.
      expect((await sc.call('ping', {}, [], { timeoutMs: 5000 })).result.pid).toBe(sc.pid);
    }
    expect(errors).toBe(2000); // none carries the session token, so none is served
    const { tensors } = await sc.call('echo', {}, [{ dtype: 'int32', shape: [2], data: Int32Array.from([7, 8]) }]);
    expect(Array.from(tensors[0]!.data as Int32Array)).toEqual([7, 8]);
    expect(sc.alive).toBe(true);
  });
});
