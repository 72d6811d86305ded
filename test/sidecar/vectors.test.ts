/** Vectors transport through a shared region and through plain frames: same numbers, private, checked, stale views detected. */
import { existsSync, mkdtempSync, openSync, readdirSync, rmSync, statSync, writeSync, closeSync, ftruncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { definePolicy, makePolicy, RemoteSession, Sidecar, type Config, type Logger } from 'gradprom';
import { memoryMapper, SharedRegion } from '../../src/sidecar/region.js';
import { configOf } from '../helpers.js';

const LONG = 300_000;
const TINY = ['data.counts.train=64', 'data.counts.val=16', 'data.counts.test=16', 'ip.channels=8', 'ip.blocks=1', 'train.batch_size=8'];
const STEPS = 4;

function recorder(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const put = (m: string) => lines.push(m);
  return { logger: { debug: () => {}, info: put, warn: put, error: put }, lines };
}

/** A user policy that needs the vectors and returns a merged one: g = g_IP + 0.5·g_VR (made in TypeScript). */
const mergedPolicy = definePolicy({
  name: 'test-merged',
  input: 'vectors',
  granularities: ['global'],
  doc: 'θ.grad = g_IP + 0.5·g_VR',
  decide: ({ gIp, gVr }) => {
    const merged = new Float32Array(gIp!.length);
    for (let i = 0; i < merged.length; i++) merged[i] = gIp![i]! + 0.5 * gVr![i]!;
    return { kind: 'vector', merged, telemetry: { cos: 0, gate: null, gateRate: 0, ipNorm: 0, vrNorm: 0, lambdaEff: 0.5, skipped: false } };
  },
}).create({ lambda: 0.5, lambdaMode: 'plain', threshold: 0, granularity: 'global' });

/** STEPS steps with merged decisions; the vectors of each step (copied) and the last gradients' Gram. */
async function run(sc: Sidecar, config: Config): Promise<{ gIp: Float32Array[]; session: RemoteSession }> {
  const session = await RemoteSession.create(sc, config);
  const seen: Float32Array[] = [];
  let g = (await session.advance(null, true, 'vectors')).next!;
  for (let t = 0; t < STEPS; t++) {
    seen.push(Float32Array.from(g.gIp!));
    g = (await session.advance(mergedPolicy.decideFromVectors(session.layout, g.gIp!, g.gVr!), t < STEPS - 1, 'vectors')).next!;
  }
  return { gIp: seen, session };
}

describe('vectors transport', () => {
  let regionRoot: string;
  const saved = process.env.GRADPROM_REGION_DIR;
  beforeAll(() => {
    regionRoot = mkdtempSync(join(tmpdir(), 'gradprom-regions-'));
    process.env.GRADPROM_REGION_DIR = regionRoot;
  });
  afterAll(() => {
    if (saved === undefined) delete process.env.GRADPROM_REGION_DIR;
    else process.env.GRADPROM_REGION_DIR = saved;
    rmSync(regionRoot, { recursive: true, force: true });
  });

  it(
    'gives the same vectors and parameters through the shared region as through frames, logs the choice, and cleans up',
    async () => {
      const config = await configOf(TINY);
      const a = recorder();
      const b = recorder();
      const shared = await Sidecar.start({ device: 'cpu', logger: a.logger });
      const frames = await Sidecar.start({ device: 'cpu', logger: b.logger, sharedMemory: false });
      try {
        const viaRegion = await run(shared, config);
        const viaFrames = await run(frames, config);
        expect(a.lines.some((l) => /vectors transport: shared region .*region-\d+-\d+\.bin/.test(l))).toBe(true);
        expect(b.lines).toContain('vectors transport: plain ZeroMQ frames (sharedMemory: false)');
        // Steps 2.. start from the parameters the merged decisions made: equal vectors there mean equal updates.
        viaRegion.gIp.forEach((v, t) => expect(v).toEqual(viaFrames.gIp[t]));
        const [folder] = readdirSync(regionRoot);
        const [file] = readdirSync(join(regionRoot, folder!));
        expect(statSync(join(regionRoot, folder!)).mode & 0o777).toBe(0o700);
        expect(statSync(join(regionRoot, folder!, file!)).mode & 0o777).toBe(0o600);
      } finally {
        await shared.stop();
        await frames.stop();
      }
      expect(readdirSync(regionRoot).filter((f) => f.startsWith('gradprom-region-'))).toEqual([]);
    },
    LONG,
  );

  describe('on one sidecar, a session each (the second session gets a region too)', () => {
    let sc: Sidecar;
    beforeAll(async () => {
      sc = await Sidecar.start({ device: 'cpu' });
    }, LONG);
    afterAll(() => sc.stop());

    it(
      'detaches the views of a step once the next step arrives, and the policy entry points name them',
      async () => {
        const session = await RemoteSession.create(sc, await configOf(TINY));
        const g1 = (await session.advance(null, true, 'vectors')).next!;
        expect(g1.gIp!.length).toBe(session.info.layout.numel);
        const policy = makePolicy({ ...(await configOf(TINY)).policy });
        const g2 = (await session.advance(policy.decideFromVectors(session.layout, g1.gIp!, g1.gVr!), true, 'vectors')).next!;
        expect(g1.gIp!.length).toBe(0); // detached: it cannot show step 2's numbers as if they were step 1's
        expect(() => policy.decideFromVectors(session.layout, g1.gIp!, g1.gVr!)).toThrow(/gIp: a view of step 1's gradient vectors/);
        expect(() => policy.decide({ layout: session.layout, gram: g2.gram, gIp: g1.gIp!, gVr: g1.gVr! })).toThrow(
          expect.objectContaining({ code: 'STALE_VIEW' }),
        );
        expect(g2.gIp!.length).toBe(session.info.layout.numel);
      },
      LONG,
    );

    it(
      'makes a damaged region an error naming it, on either side',
      async () => {
        {
          const session = await RemoteSession.create(sc, await configOf(TINY));
          await session.advance(null, true, 'vectors');
          const folder = join(
            regionRoot,
            readdirSync(regionRoot).find((f) => f.startsWith('gradprom-region-'))!,
          );
          const path = join(folder, readdirSync(folder)[0]!);
          const fd = openSync(path, 'r+');
          writeSync(fd, Buffer.from('XXXXXXXX'), 0, 8, 0);
          closeSync(fd);
          await expect(session.advance('skip', true, 'vectors')).rejects.toThrow(`region ${path}: header corrupted`);
        }
        // This side's checks, on a file made here: a truncated region and a foreign header are REGION errors naming it.
        const mapper = await memoryMapper();
        if (typeof mapper === 'string') throw new Error(mapper);
        const dir = mkdtempSync(join(regionRoot, 'own-'));
        const path = join(dir, 'r.bin');
        const fd = openSync(path, 'w+', 0o600);
        ftruncateSync(fd, 4096 + 3 * 4096);
        closeSync(fd);
        const info = { path, bytes: 4096 + 3 * 4096, numel: 10, header: 4096, slot: 4096 };
        expect(() => SharedRegion.open(info, new Uint8Array(16), mapper)).toThrow(`region ${path}: header corrupted`);
        expect(() => SharedRegion.open({ ...info, bytes: 99 }, new Uint8Array(16), mapper)).toThrow(
          expect.objectContaining({ code: 'REGION', message: expect.stringContaining(`region ${path}: truncated or resized`) }),
        );
        expect(SharedRegion.open({ ...info, path: join(dir, 'elsewhere.bin') }, new Uint8Array(16), mapper)).toBeNull();
        expect(existsSync(path)).toBe(true);
      },
      LONG,
    );
  });
});
