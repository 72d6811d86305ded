/** One partial config file, two readers: `gradprom train` (loadConfig, then session.create) and `python -m gradprom_sidecar.tools.reference --describe`. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, RemoteSession, Sidecar, silentLogger } from 'gradprom';
import { realPython, root } from '../helpers.js';

const LONG = 300_000;
const counts = { train: 16, val: 4, test: 4 };

/** Partial configs, each leaving most sections (ip always, or most of it) to the defaults. */
const PARTIALS: Record<string, Record<string, unknown>> = {
  'resnet18 VR, everything else default': { vr: { arch: 'resnet18' }, data: { counts }, device: 'cpu' },
  'no ip section, a degradation entry without its clip': {
    data: { counts, size: 24 },
    degradation: [{ kind: 'gaussian', sigma: 0.1 }],
    vr: { kwargs: { widths: [8, 16] } },
    device: 'cpu',
  },
  'dncnn IP with only its depth given': { ip: { arch: 'dncnn', depth: 5 }, data: { counts }, device: 'cpu' },
  'unet IP with only its arch given': { ip: { arch: 'unet' }, data: { counts }, device: 'cpu' },
};

interface Described {
  blocks: string[];
  ip_params: number;
  vr_params: number;
  config: unknown;
}

/**
 * `python -m gradprom_sidecar.tools.reference FILE --describe` for each of `files`, run as its main() in one Python
 * process (torch is imported once): one JSON line each, in order.
 */
function referenceDescribe(files: string[]): Described[] {
  const script = `
import sys
from gradprom_sidecar.tools.reference import main
for f in sys.argv[1:]:
    if main([f, "--describe"]) != 0:
        sys.exit(f"reference --describe {f} failed")
    sys.stdout.flush()`;
  const r = spawnSync(realPython, ['-c', script, ...files], {
    cwd: root,
    env: { ...process.env, PYTHONPATH: join(root, 'python'), OMP_NUM_THREADS: '1' },
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (r.status !== 0) throw new Error(`reference --describe failed:\n${r.stderr}`);
  const out = r.stdout.trim().split('\n');
  expect(out).toHaveLength(files.length);
  return out.map((l) => JSON.parse(l) as Described);
}

const fileOf = (label: string) => join(dir, `${label.replace(/[^a-z0-9]+/gi, '-')}.json`);

let dir: string;
let sidecar: Sidecar | undefined;
let described: Map<string, Described>;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'gradprom-refcfg-'));
  const labels = Object.keys(PARTIALS);
  for (const label of labels) writeFileSync(fileOf(label), JSON.stringify(PARTIALS[label]));
  const all = referenceDescribe(labels.map(fileOf));
  described = new Map(labels.map((label, i) => [label, all[i]!]));
}, LONG);
afterAll(async () => {
  await sidecar?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('a partial config file', () => {
  it.each(Object.keys(PARTIALS))(
    '%s: resolves to the same config and builds the same networks in TypeScript and in the Python reference',
    async (label) => {
      const loaded = await loadConfig(fileOf(label), []);
      if (!loaded.ok) throw new Error(loaded.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));

      const py = described.get(label)!;
      expect(py.config).toEqual(loaded.config);

      sidecar ??= await Sidecar.start({ device: 'cpu', logger: silentLogger });
      const session = await RemoteSession.create(sidecar, loaded.config);
      expect(session.info.layout.blocks.map((b) => b.name)).toEqual(py.blocks);
      expect(session.info.ip_params).toBe(py.ip_params);
      expect(session.info.vr_params).toBe(py.vr_params);
      expect(py.blocks.length).toBeGreaterThan(2);
    },
    LONG,
  );

  it(
    "`gradprom train --set ip.arch=unet` builds a UNet of ip.levels resolution levels (not ip.depth, dncnn's 17 layers)",
    async () => {
      const file = join(dir, 'data-only.json');
      writeFileSync(file, JSON.stringify({ data: { counts }, device: 'cpu' }));
      sidecar ??= await Sidecar.start({ device: 'cpu', logger: silentLogger });
      for (const [sets, levels] of [
        [['ip.arch=unet'], 3],
        [['ip.arch=unet', 'ip.levels=2'], 2],
      ] as const) {
        const loaded = await loadConfig(file, [...sets]);
        if (!loaded.ok) throw new Error(loaded.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
        expect(loaded.config.ip.depth).toBe(17);
        const names = (await RemoteSession.create(sidecar, loaded.config)).info.layout.blocks.map((b) => b.name);
        const down = new Set(names.filter((n) => n.startsWith('unet.down.')).map((n) => n.split('.')[2]));
        expect(down.size).toBe(levels);
      }
    },
    LONG,
  );
});
