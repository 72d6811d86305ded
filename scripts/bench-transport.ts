/** Sections 2 and 3 of `npm run bench`: vector round trips through the shared region and over plain ZeroMQ frames, and pythonia. */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Request } from 'zeromq';
import { withPython } from '../src/control/pythonia.js';
import { tensor } from '../src/protocol/dtypes.js';
import { StepViews } from '../src/protocol/views.js';
import { memoryMapper, SharedRegion, type RegionInfo } from '../src/sidecar/region.js';
import { Sidecar } from '../src/sidecar/sidecar.js';
import { median } from '../src/report/stats.js';
import { PyWorker, randomVector, timeIt } from './bench-util.js';

/** Seeds of the test vectors, one per size, so that a child process makes the same ones. */
function testVectors(sizes: number[]): Map<number, Float32Array> {
  return new Map(sizes.map((b, i) => [b, randomVector(b / 4, 17 + i)] as const));
}

/** Round-trip and one-way times (ms) of one payload size over one path. */
export interface TransportRow {
  /** ipc, tcp: plain frames (the fallback); ipc-thp: the same with glibc's huge-page tunable in both processes; region: the shared region. */
  path: 'ipc' | 'tcp' | 'ipc-thp' | 'region';
  bytes: number;
  roundTrip: number[];
  /** TypeScript → sidecar only (the `sleep` op takes the tensor and returns none). */
  oneWay?: number[];
}

export interface TransportResult {
  rows: TransportRow[];
  /** In-process copies of the same bytes between warm, preallocated buffers (ms), per size. */
  memcpyNode: Map<number, number[]>;
  memcpyPython: Map<number, number[]>;
  /** Node: allocate a fresh buffer and copy into it (first-touch page faults included), as a receiver of a new message does. */
  memcpyFresh: Map<number, number[]>;
  /** Round trips of an `echo` with no tensor over ipc (ms): the bridge's fixed cost per call. */
  empty: number[];
}

/** Reps per payload size: enough samples for a median, bounded time for the big ones. */
function repsFor(bytes: number, quick: boolean): number {
  const r = bytes >= 1e8 ? 8 : bytes >= 1e7 ? 20 : 50;
  return quick ? Math.max(3, Math.floor(r / 4)) : r;
}

async function zmqRows(
  path: 'ipc' | 'tcp' | 'ipc-thp',
  sizes: number[],
  vectors: Map<number, Float32Array>,
  quick: boolean,
): Promise<TransportRow[]> {
  const sc = await Sidecar.start({ device: 'cpu', transport: path === 'tcp' ? 'tcp' : 'ipc' });
  try {
    const rows: TransportRow[] = [];
    for (const bytes of sizes) {
      const v = vectors.get(bytes)!;
      const t = tensor('float32', v);
      const back = await sc.call('echo', {}, [t]);
      const got = back.tensors[0]?.data;
      if (!(got instanceof Float32Array) || got.length !== v.length || got[v.length - 1] !== v[v.length - 1]) {
        throw new Error(`echo of ${bytes} bytes over ${path} did not return the vector`);
      }
      const reps = repsFor(bytes, quick);
      const roundTrip = await timeIt(() => sc.call('echo', {}, [t]), reps, 2);
      const oneWay = await timeIt(() => sc.call('sleep', { seconds: 0 }, [t]), reps, 2);
      rows.push({ path, bytes, roundTrip, oneWay });
    }
    return rows;
  } finally {
    await sc.stop();
  }
}

/**
 * The shared region of vectors transport, through its real code on both sides (src/sidecar/region.ts, the receive
 * buffers of src/protocol/views.ts, python/gradprom_sidecar/wire/region.py) with ZeroMQ REQ/REP control messages to the
 * Python worker: TypeScript writes the vector into the merged slot (copy 1), the worker checks the header and
 * publishes the g_IP slot, and TypeScript copies it into its warm receive buffer (copy 2), detaching the last round's
 * view. As in training the worker copies nothing (autograd writes g_IP there, the optimiser reads the merged slot
 * where it lies), except in one untimed echo that checks the bytes come back. No page is new to either process.
 * One vector each way, like the frames' echo: g_VR's receive buffer is left out.
 */
async function regionRows(worker: PyWorker, sizes: number[], vectors: Map<number, Float32Array>, quick: boolean): Promise<TransportRow[]> {
  const mapper = await memoryMapper();
  if (typeof mapper === 'string') {
    process.stderr.write(`  transport: no shared region here (${mapper})\n`);
    return [];
  }
  const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'gradprom-bench-'));
  const endpoint = `ipc://${join(dir, 'control.sock')}`;
  const rows: TransportRow[] = [];
  try {
    for (const bytes of sizes) {
      const v = vectors.get(bytes)!;
      const nonce = randomBytes(16);
      const reps = repsFor(bytes, quick);
      const served = worker.request('region_echo', { endpoint, dir, numel: v.length, nonce: nonce.toString('hex'), count: reps + 3 });
      const sock = new Request({ linger: 0 });
      sock.connect(endpoint);
      const ask = async (head: object) => {
        await sock.send(JSON.stringify(head));
        const [reply] = await sock.receive();
        return JSON.parse(reply!.toString()) as unknown;
      };
      const region = SharedRegion.open((await ask({})) as RegionInfo, nonce, mapper);
      if (!region) throw new Error('the bench worker made its region where this process cannot see it');
      const views = new StepViews(v.length);
      let out: Float32Array = new Float32Array(0);
      const echo = async (copy = false) => {
        const { seq } = (await ask({ seq: region.writeMerged(v), copy })) as { seq: number };
        const [gIp] = region.vectors(seq);
        [out] = views.take(gIp, gIp.subarray(0, 0), seq);
      };
      try {
        await echo(true);
        if (out.length !== v.length || out[v.length - 1] !== v[v.length - 1]) throw new Error('region echo did not return the vector');
        rows.push({ path: 'region', bytes, roundTrip: await timeIt(() => echo(), reps, 2) });
        await served;
      } finally {
        region.close();
        sock.close();
      }
    }
    return rows;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The ipc rows again in a child Node process started with GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (its sidecar inherits it):
 * glibc then asks for transparent huge pages for the large blocks libzmq allocates per received frame, so faulting
 * in a fresh 100 MB message takes ~50 faults instead of ~25 000. glibc reads tunables at process start, hence the child.
 */
function thpRows(sizes: number[], quick: boolean): Promise<TransportRow[]> {
  const tunables = [process.env.GLIBC_TUNABLES, 'glibc.malloc.hugetlb=1'].filter(Boolean).join(':');
  const args = [fileURLToPath(import.meta.url), '--thp-rows', JSON.stringify({ sizes, quick })];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      env: { ...process.env, GLIBC_TUNABLES: tunables },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) =>
      code === 0 ? resolve(JSON.parse(out) as TransportRow[]) : reject(new Error(`transport child exited with ${code}`)),
    );
  });
}

/** Section 2: round trips of 1, 10, 100 MB through the shared region and over ipc and tcp frames, with memcpy in the same run. */
export async function transport(worker: PyWorker, sizes: number[], quick: boolean): Promise<TransportResult> {
  const vectors = testVectors(sizes);
  const memcpyNode = new Map<number, number[]>();
  const memcpyPython = new Map<number, number[]>();
  const memcpyFresh = new Map<number, number[]>();
  const rows: TransportRow[] = [];
  const sc = await Sidecar.start({ device: 'cpu' });
  const empty = await timeIt(() => sc.call('echo', {}, []), quick ? 50 : 300, 20).finally(() => sc.stop());
  for (const path of ['ipc', 'tcp'] as const) {
    process.stderr.write(`  transport: ${path}\n`);
    rows.push(...(await zmqRows(path, sizes, vectors, quick)));
  }
  process.stderr.write('  transport: ipc, glibc.malloc.hugetlb=1\n');
  rows.push(...(await thpRows(sizes, quick)));
  process.stderr.write('  transport: shared region\n');
  rows.push(...(await regionRows(worker, sizes, vectors, quick)));
  for (const bytes of sizes) {
    const src = vectors.get(bytes)!;
    const dst = new Float32Array(src.length);
    memcpyNode.set(bytes, await timeIt(() => dst.set(src), repsFor(bytes, quick), 2));
    memcpyFresh.set(bytes, await timeIt(() => new Float32Array(src.length).set(src), repsFor(bytes, quick), 2));
    memcpyPython.set(bytes, ((await worker.request('memcpy', { bytes, reps: repsFor(bytes, quick) })) as { ms: number[] }).ms);
  }
  return { rows, memcpyNode, memcpyPython, memcpyFresh, empty };
}

/** Section 3: the same vector through pythonia, as base64 text and as a list of numbers. */
export async function pythonia(bytes: number, reps: number, listReps: number): Promise<{ b64: number[]; list: number[] }> {
  const v = randomVector(bytes / 4, 99);
  return withPython(async (python) => {
    const mod = await python('gradprom_sidecar.tools.bench');
    const viaB64 = async () => {
      const s = (await mod.echo_b64!(Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64'))) as unknown as string;
      const buf = Buffer.from(s, 'base64');
      return new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
    };
    const viaList = async () => Float32Array.from((await (await mod.echo_list!(Array.from(v))).valueOf()) as number[]);
    const check = await viaB64();
    if (check.length !== v.length || check[v.length - 1] !== v[v.length - 1])
      throw new Error('pythonia base64 echo did not return the vector');
    const b64 = await timeIt(viaB64, reps, 1);
    const list = await timeIt(viaList, listReps, 0);
    return { b64, list };
  });
}

/** Throughput in GB/s of `bytes` moved in `ms` (median). */
export function gbps(bytes: number, ms: readonly number[]): number {
  return bytes / 1e9 / (median(ms) / 1000);
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === '--thp-rows') {
  const { sizes, quick } = JSON.parse(process.argv[3] ?? '{}') as { sizes: number[]; quick: boolean };
  zmqRows('ipc-thp', sizes, testVectors(sizes), quick)
    .then((rows) => process.stdout.write(JSON.stringify(rows)))
    .catch((e: unknown) => {
      process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
      process.exit(1);
    });
}
