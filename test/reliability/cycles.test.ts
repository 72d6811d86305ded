/**
 * Start/stop cycles of the real sidecar leave no process, socket file, shared region, temporary folder or descriptor
 * behind. 8 cycles in `npm test`, every kind of cycle (tcp, a restart, a shared region, a crash with its region open)
 * once in each half; the soak of 100 or more: GRADPROM_TEST_CYCLES=100.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RemoteSession, Sidecar, silentLogger, type Config } from 'gradprom';
import { liveProcesses } from '../../src/sidecar/process.js';
import { alive, configOf, waitFor } from '../helpers.js';

const CYCLES = Number(process.env.GRADPROM_TEST_CYCLES ?? 8);
/** Cycle i's kind comes from i % 4: every kind in any 4 cycles in a row, so once in each half of 8. */
const kind = (i: number) => ({
  region: i % 4 === 0 || i % 4 === 1,
  crash: i % 4 === 1, // dies of SIGKILL with its region open
  restart: i % 4 === 2,
  tcp: i % 4 === 3,
});
const PARALLEL = 3; // three at a time: torch imports keep two cores busy while a third sidecar waits out its shutdown

/** Pids of this process's live (non-zombie) children. */
function children(): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const rest = readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1]!.split(' ');
      if (Number(rest[1]) === process.pid && rest[0] !== 'Z') out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

const openFds = () => readdirSync('/proc/self/fd').length;

let privateTmp: string;
let inductorCache: string; // torch makes a compile cache folder under TMPDIR when a session is built: not ours to count
let tiny: Config;
const saved = { TMPDIR: process.env.TMPDIR, GRADPROM_REGION_DIR: process.env.GRADPROM_REGION_DIR };

beforeAll(async () => {
  // Every sidecar folder (Node's mkdtemp), shared region and anything Python puts in its temp dir lands here, and only ours.
  privateTmp = mkdtempSync(join(tmpdir(), 'gradprom-cycles-'));
  inductorCache = mkdtempSync(join(tmpdir(), 'gradprom-cycles-inductor-'));
  process.env.TMPDIR = privateTmp;
  process.env.GRADPROM_REGION_DIR = privateTmp;
  tiny = await configOf(['data.counts.train=16', 'data.counts.val=8', 'data.counts.test=8', 'ip.channels=4', 'ip.blocks=1', 'device=cpu']);
});

afterAll(() => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  rmSync(privateTmp, { recursive: true, force: true });
  rmSync(inductorCache, { recursive: true, force: true });
});

it(`${CYCLES} start/stop cycles leave nothing behind`, async () => {
  const before = { children: children().length, fds: openFds() };
  const pids: number[] = [];
  const endpoints: string[] = [];
  let next = 0;
  let regions = 0;
  async function worker(until: number): Promise<void> {
    while (next < until) {
      const i = next++;
      const k = kind(i);
      const sc = await Sidecar.start({
        device: 'cpu',
        transport: k.tcp ? 'tcp' : 'ipc',
        logger: silentLogger,
        stopGraceMs: 2000,
        env: { TORCHINDUCTOR_CACHE_DIR: inductorCache },
      });
      pids.push(sc.pid);
      endpoints.push(sc.endpoint);
      expect((await sc.call('ping')).result.pid).toBe(sc.pid);
      if (k.region) {
        // A session whose vectors go through a shared region.
        const session = await RemoteSession.create(sc, tiny);
        expect((await session.advance(null, true, 'vectors')).next?.gIp?.length).toBe(session.info.layout.numel);
        regions++;
      }
      if (k.crash) {
        process.kill(sc.pid, 'SIGKILL'); // a crash, then the usual stop
        await waitFor(() => !sc.alive, 5000);
      }
      if (k.restart) {
        await sc.restart(); // the old process and folder go, a new pair comes
        pids.push(sc.pid);
        endpoints.push(sc.endpoint);
      }
      await sc.stop();
    }
  }
  const half = async (until: number) => {
    await Promise.all(Array.from({ length: PARALLEL }, () => worker(until)));
    return openFds();
  };
  // The first half opens whatever Node and ZeroMQ open once (every kind of cycle has run in it); from there on, no
  // cycle may leave a descriptor behind, which a leak in one kind of cycle (a quarter of them) would.
  const warm = await half(Math.ceil(CYCLES / 2));
  await half(CYCLES);
  expect(pids.length).toBeGreaterThanOrEqual(CYCLES);
  expect(new Set(pids).size).toBe(pids.length);
  expect(pids.filter(alive)).toEqual([]);
  expect(liveProcesses()).toBe(0);
  expect(children().length).toBe(before.children);
  expect(endpoints.filter((e) => e.startsWith('ipc://')).length).toBeGreaterThan(CYCLES / 2);
  expect(regions).toBe(Array.from({ length: CYCLES }, (_, i) => kind(i).region).filter(Boolean).length);
  expect(readdirSync(privateTmp)).toEqual([]); // no sidecar folder, no socket file, no region, nothing Python left
  expect(warm).toBeLessThanOrEqual(before.fds + 8); // zeromq's context may open a few once; not one per cycle
  // A stopped sidecar's output pipes may close a moment after its exit (stop waits 200 ms for them): under load the
  // last cycle's can still be open here, so the count is given until it settles; a leaked descriptor never goes.
  await waitFor(() => openFds() <= warm, 10_000);
  expect(openFds()).toBeLessThanOrEqual(warm);
}, 600_000);
