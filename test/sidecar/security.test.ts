/** Who can reach the sidecar and how much it takes in: the 0700 ipc folder, loopback tcp, the per-frame size limit. */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { Dealer, Router } from 'zeromq';
import { Packr } from 'msgpackr';
import { isGradpromError, Sidecar, silentLogger, tensor } from 'gradprom';
import { decodeFrames, encodeFrames } from '../../src/protocol/frames.js';
import { Client } from '../../src/sidecar/client.js';

const packr = new Packr({ useRecords: false });
const started: Sidecar[] = [];
async function start(opts: Parameters<typeof Sidecar.start>[0]): Promise<Sidecar> {
  const sc = await Sidecar.start({ device: 'cpu', logger: silentLogger, ...opts });
  started.push(sc);
  return sc;
}
afterEach(async () => {
  for (const sc of started.splice(0)) await sc.stop();
});

describe('where the sidecar listens', () => {
  it('ipc: a socket in a folder only this user can enter, removed on stop; the token is not on the command line', async () => {
    const sc = await start({ transport: 'ipc' });
    const socket = sc.endpoint.slice('ipc://'.length);
    expect(statSync(dirname(socket)).mode & 0o777).toBe(0o700);
    expect(statSync(socket).isSocket()).toBe(true);
    // The session token travels in the environment, never on the command line.
    const cmdline = readFileSync(`/proc/${sc.pid}/cmdline`, 'utf8');
    expect(cmdline).toContain('gradprom_sidecar');
    expect(cmdline).not.toMatch(/[0-9a-f]{64}/);
    await sc.stop();
    expect(existsSync(dirname(socket))).toBe(false);
  });

  it('tcp: loopback by default; another address is refused before anything starts, unless allowRemote', async () => {
    expect((await start({ transport: 'tcp' })).endpoint).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
    for (const host of ['0.0.0.0', '192.168.1.10', 'example.org']) {
      const err = await Sidecar.start({ transport: 'tcp', host, logger: silentLogger }).catch((e: unknown) => e);
      expect(isGradpromError(err, 'SIDECAR_START')).toBe(true);
    }
    const open = await start({ transport: 'tcp', host: '0.0.0.0', allowRemote: true });
    expect(open.endpoint).toMatch(/^tcp:\/\/0\.0\.0\.0:\d+$/);
    expect((await open.call('ping')).result.pid).toBe(open.pid);
  });
});

describe('the message size limit', () => {
  // One sidecar with a 4 KiB limit for the two tests below: neither changes it, and the second checks it still serves.
  let sc: Sidecar;
  beforeAll(async () => {
    sc = await Sidecar.start({ device: 'cpu', logger: silentLogger, maxMessageBytes: 4096 });
  });
  afterAll(() => sc.stop());

  it('refuses an oversized request before sending it, naming the frame; smaller ones pass', async () => {
    const err = await sc.call('echo', {}, [tensor('uint8', new Uint8Array(8192))]).catch((e: unknown) => e);
    expect(isGradpromError(err, 'PROTOCOL')).toBe(true);
    expect((err as { field: string }).field).toBe('tensors[0]');
    const { tensors } = await sc.call('echo', {}, [tensor('uint8', new Uint8Array(1024).fill(3))]);
    expect(tensors[0]!.data.length).toBe(1024);
  });

  it('a peer that sends more is dropped by libzmq before allocation, and the sidecar keeps serving', async () => {
    const raw = new Dealer({ linger: 0, receiveTimeout: 1500 });
    raw.connect(sc.endpoint);
    await raw.send([
      packr.pack({ v: 1, token: 'x', id: 1, op: 'echo', args: {}, tensors: [{ dtype: 'uint8', shape: [8192] }] }),
      Buffer.alloc(8192),
    ]);
    await expect(raw.receive()).rejects.toThrow(); // no reply: the message was never read
    raw.close();
    expect((await sc.call('ping')).result.pid).toBe(sc.pid);
  });

  it('the client, too, drops an oversized reply before allocation: it is never delivered', async () => {
    const router = new Router({ linger: 0 });
    await router.bind('tcp://127.0.0.1:*');
    const client = new Client({
      endpoint: router.lastEndpoint!,
      token: 't',
      logger: silentLogger,
      maxMessageBytes: 4096,
      defaultTimeoutMs: () => 1500,
    });
    try {
      const call = client.call('op');
      const [peer, head] = await router.receive();
      const id = (decodeFrames([head!]).header as { id: number }).id;
      await router.send([peer!, ...encodeFrames({ v: 1, id, status: 'ok', result: {} }, [tensor('uint8', new Uint8Array(8192))])]);
      // libzmq refuses the frame from its size prefix and drops that connection (a sidecar never sends one: it checks first).
      expect(isGradpromError(await call.catch((e: unknown) => e), 'SIDECAR_TIMEOUT')).toBe(true);
    } finally {
      client.close();
      router.close();
    }
  });

  it('GRADPROM_MAX_MESSAGE_BYTES sets the default, and a bad value is a CONFIG error', async () => {
    process.env.GRADPROM_MAX_MESSAGE_BYTES = '2048';
    try {
      const sc = await start({});
      expect(readFileSync(`/proc/${sc.pid}/cmdline`, 'utf8')).toContain('--max-message\u00002048\u0000');
      expect(isGradpromError(await sc.call('echo', {}, [tensor('uint8', new Uint8Array(4096))]).catch((e: unknown) => e), 'PROTOCOL')).toBe(
        true,
      );
      process.env.GRADPROM_MAX_MESSAGE_BYTES = 'lots';
      expect(isGradpromError(await Sidecar.start({ logger: silentLogger }).catch((e: unknown) => e), 'CONFIG')).toBe(true);
    } finally {
      delete process.env.GRADPROM_MAX_MESSAGE_BYTES;
    }
  });
});
