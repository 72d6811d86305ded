/** The manager: start, call, heartbeat, restart and stop one sidecar. */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GradpromError, ProtocolVersionError, SidecarError, SidecarExitedError } from '../errors.js';
import type { Tensor } from '../protocol/dtypes.js';
import { DEFAULT_MAX_HEADER, DEFAULT_MAX_MESSAGE } from '../protocol/frames.js';
import { OPS, type OpArgs, type OpName, type OpResult } from '../protocol/ops.js';
import { isAdvanceResult } from '../protocol/checks.js';
import { parseOrThrow } from '../protocol/schema.js';
import { PROTOCOL_VERSION } from '../protocol/version.js';
import { Client, type CallOptions, type Reply } from './client.js';
import { stderrLogger, type Logger } from './logger.js';
import { installExitHooks, removeNow, removeOnExit, SidecarProcess } from './process.js';
import { resolvePython } from './python.js';
import { RankGroup, type DistributedOptions } from './ranks.js';

export interface SidecarOptions {
  /** Torch device: 'auto' (CUDA when present), 'cpu', 'cuda' or 'cuda:N'. */
  device?: string;
  /** Run as several ranks under torch.distributed (rank 0 answers; every rank computes its share). */
  distributed?: DistributedOptions;
  /** `ipc` (a socket in a private 0700 folder, the default) or `tcp` on 127.0.0.1. */
  transport?: 'ipc' | 'tcp';
  /** tcp port; 0 lets the sidecar pick a free one. */
  port?: number;
  /** tcp address to bind; default 127.0.0.1. Anything but loopback is refused unless `allowRemote` is set. */
  host?: string;
  /** Allow a non-loopback `host` (anyone who can reach it and holds the token can drive the sidecar). */
  allowRemote?: boolean;
  /** Interpreter; default GRADPROM_PYTHON, else python/.venv. */
  python?: string;
  logger?: Logger;
  /** ms to wait for the sidecar to come up (torch import included). */
  startTimeoutMs?: number;
  /** ms between heartbeats, and ms without an answer before the sidecar counts as hung. */
  heartbeatIntervalMs?: number;
  heartbeatTimeoutMs?: number;
  /** ms `stop()` waits after each step (shutdown request, SIGTERM) before the next. */
  stopGraceMs?: number;
  /** restarts allowed over this object's life before it is marked dead. */
  maxRestarts?: number;
  maxHeaderBytes?: number;
  /** Per-frame byte limit, both directions, enforced by libzmq before allocation; -1 = none. Default GRADPROM_MAX_MESSAGE_BYTES, else 1 GiB. */
  maxMessageBytes?: number;
  /** Per-operation deadlines in ms, overriding the defaults. */
  timeouts?: Record<string, number>;
  /**
   * Vectors transport through a shared memory region when the sidecar runs on this machine (default true); false
   * sends them as plain ZeroMQ frames. Either way the choice is logged (info) when a session first asks for vectors.
   */
  sharedMemory?: boolean;
  /** Extra environment variables for the sidecar (e.g. OMP_NUM_THREADS when several run side by side). */
  env?: Record<string, string>;
}

const DEFAULT_TIMEOUTS: Record<string, number> = {
  hello: 30_000,
  ping: 5_000,
  cancel: 5_000,
  shutdown: 5_000,
  echo: 120_000,
};
const DEFAULT_TIMEOUT = 30 * 60_000; // compute ops: a long evaluation is legitimate

export type HelloInfo = OpResult<'hello'>;

export type StoppedBy = 'request' | 'SIGTERM' | 'SIGKILL' | 'already-exited';

/** `call`'s arguments after the op name: args (optional when the op needs none), tensors, options. */
export type CallRest<K extends OpName> =
  Record<string, never> extends OpArgs<K>
    ? [args?: OpArgs<K>, tensors?: readonly Tensor[], options?: CallOptions]
    : [args: OpArgs<K>, tensors?: readonly Tensor[], options?: CallOptions];

export class Sidecar {
  private proc!: SidecarProcess;
  private client!: Client;
  private dir: string | null = null;
  private regionFolder: string | null = null;
  private readonly mapped = new Set<{ close(): void }>();
  private heartbeat: NodeJS.Timeout | null = null;
  private hung = false;
  private stopping = false;
  private restarts = 0;
  private exitListeners: ((e: SidecarExitedError) => void)[] = [];
  private ranks: RankGroup | null = null;
  private readonly opts: Required<Omit<SidecarOptions, 'python' | 'port' | 'host' | 'distributed' | 'env'>> &
    Pick<SidecarOptions, 'python' | 'port' | 'host' | 'distributed' | 'env'>;
  info!: HelloInfo;

  private constructor(options: SidecarOptions) {
    this.opts = {
      device: 'auto',
      transport: 'ipc',
      logger: stderrLogger(),
      startTimeoutMs: 120_000,
      heartbeatIntervalMs: 1_000,
      heartbeatTimeoutMs: 10_000,
      stopGraceMs: 3_000,
      maxRestarts: 3,
      maxHeaderBytes: DEFAULT_MAX_HEADER,
      allowRemote: false,
      sharedMemory: true,
      timeouts: {},
      ...options,
      maxMessageBytes: options.maxMessageBytes ?? defaultMaxMessage(), // the environment is read (and checked) only when needed
    };
  }

  /** Start a sidecar and complete the handshake. */
  static async start(options: SidecarOptions = {}): Promise<Sidecar> {
    const sc = new Sidecar(options);
    await sc.launch();
    return sc;
  }

  /** The sidecar's pid. */
  get pid(): number {
    return this.info.pid;
  }

  /** Where the sidecar listens (diagnostics and tests). */
  get endpoint(): string {
    return this.client.endpoint;
  }

  get alive(): boolean {
    return !this.proc.exit && !this.ranks?.failure;
  }

  /** Every process this sidecar started on this machine: rank 0 (or torchrun) first, then the other ranks. */
  get pids(): number[] {
    return [this.proc.pid, ...(this.ranks?.workerPids ?? [])].filter((p): p is number => p !== undefined);
  }

  /**
   * Call an operation of the op map (src/protocol/ops.ts); its reply's result comes back parsed by the op's schema.
   * Rejects with SidecarError, SidecarTimeoutError, SidecarCancelledError, SidecarExitedError or ProtocolError.
   */
  async call<K extends OpName>(op: K, ...[args, tensors = [], options = {}]: CallRest<K>): Promise<Reply<OpResult<K>>> {
    const ranks = this.ranks;
    try {
      return await this.request(op, args ?? ({} as OpArgs<K>), tensors, options); // args may be left out only where {} will do
    } catch (e) {
      if (ranks) return ranks.explain(e); // several ranks: name the one that died
      throw e;
    }
  }

  get logger(): Logger {
    return this.opts.logger;
  }

  /**
   * Whether vectors may go through a shared region with this sidecar, and if not why: it must run on this machine
   * (ipc, or tcp on loopback), as one rank (several ranks each need the merged decision as a frame), and not be
   * told otherwise (`sharedMemory: false`). The sidecar and the region file itself have the last word.
   */
  get sharedMemory(): { ok: true } | { ok: false; reason: string } {
    if (!this.opts.sharedMemory) return { ok: false, reason: 'sharedMemory: false' };
    if (this.opts.distributed) return { ok: false, reason: 'several ranks' };
    const host = this.opts.host ?? '127.0.0.1';
    if (this.opts.transport === 'tcp' && !isLoopback(host))
      return { ok: false, reason: `the sidecar listens on ${host}: it may be on another machine` };
    return { ok: true };
  }

  /** A private folder (0700) for shared regions, on a memory file system when there is one; made once, removed on stop. */
  regionDir(): string {
    if (!this.regionFolder) {
      const root = process.env.GRADPROM_REGION_DIR || (existsSync('/dev/shm') ? '/dev/shm' : tmpdir());
      this.regionFolder = mkdtempSync(join(root, 'gradprom-region-')); // mkdtemp makes it 0700
      removeOnExit(this.regionFolder);
    }
    return this.regionFolder;
  }

  /** Keep `region` mapped until the session is replaced (`closeRegions`) or the sidecar stops. */
  trackRegion(region: { close(): void }): void {
    this.mapped.add(region);
  }

  /** Unmap every shared region (a new session replaces the old one's, and the sidecar has removed its file). */
  closeRegions(): void {
    for (const r of this.mapped) r.close();
    this.mapped.clear();
  }

  /** Called when the sidecar exits without being asked to. */
  onExit(listener: (e: SidecarExitedError) => void): () => void {
    this.exitListeners.push(listener);
    return () => (this.exitListeners = this.exitListeners.filter((l) => l !== listener));
  }

  /** Stop the current process (if alive) and start a fresh one with the same options. */
  async restart(): Promise<void> {
    if (this.restarts >= this.opts.maxRestarts) {
      throw new GradpromError(
        'SIDECAR_DEAD',
        `sidecar restarted ${this.restarts} times; limit ${this.opts.maxRestarts} reached, giving up`,
      );
    }
    this.restarts++;
    await this.stop();
    await this.launch();
  }

  /** Shutdown request, then SIGTERM, then SIGKILL; returns which step ended it. */
  async stop(): Promise<StoppedBy> {
    this.stopping = true;
    this.ranks?.expectExit();
    this.stopHeartbeat();
    let by: StoppedBy = 'already-exited';
    if (!this.proc.exit) {
      by = 'request';
      await this.client.call('shutdown', {}, [], { timeoutMs: this.opts.stopGraceMs }).catch(() => {});
      if (!(await this.proc.waitExit(this.opts.stopGraceMs))) {
        by = 'SIGTERM';
        this.proc.signal('SIGTERM');
        if (!(await this.proc.waitExit(this.opts.stopGraceMs))) {
          by = 'SIGKILL';
          this.proc.signal('SIGKILL');
          await this.proc.exited;
        }
      }
    }
    await this.ranks?.stop(this.opts.stopGraceMs); // rank 0 has told them to exit
    this.client.close();
    this.closeRegions();
    this.removeDir();
    this.opts.logger.debug(`sidecar stopped (${by})`);
    return by;
  }

  /** Send one op and parse its reply's result with the op's schema. */
  private async request<K extends OpName>(
    op: K,
    args: OpArgs<K>,
    tensors: readonly Tensor[],
    options: CallOptions,
  ): Promise<Reply<OpResult<K>>> {
    const reply = await this.client.call(op, args, tensors, options);
    // The step's op (one per step): its plain check first; what it does not pass gets the schema and its named errors.
    const fast = op === 'train.advance' && isAdvanceResult(reply.result);
    const result = fast ? reply.result : parseOrThrow(OPS[op].result, reply.result, `${op}.result`);
    return { result: result as OpResult<K>, tensors: reply.tensors };
  }

  private async launch(): Promise<void> {
    installExitHooks();
    this.stopping = false;
    this.hung = false;
    const python = this.opts.python ?? resolvePython();
    const token = randomBytes(32).toString('hex');
    let endpoint: string;
    if (this.opts.transport === 'tcp') {
      const host = this.opts.host ?? '127.0.0.1';
      if (!isLoopback(host) && !this.opts.allowRemote) {
        throw new GradpromError(
          'SIDECAR_START',
          `refusing to bind the sidecar to ${host}: only loopback (127.0.0.1, localhost) unless allowRemote is set`,
        );
      }
      endpoint = `tcp://${host}:${this.opts.port ?? 0}`;
    } else {
      this.dir = mkdtempSync(join(tmpdir(), 'gradprom-')); // mkdtemp makes it 0700
      removeOnExit(this.dir); // the sidecar removes it when it outlives Node; this covers Node killing it on exit
      endpoint = `ipc://${join(this.dir, 'sidecar.sock')}`;
    }
    const args = ['--endpoint', endpoint, '--device', this.opts.device, '--parent-pid', String(process.pid)];
    args.push('--max-header', String(this.opts.maxHeaderBytes), '--max-message', String(this.opts.maxMessageBytes));
    if (this.opts.allowRemote) args.push('--allow-remote');
    const ranks = this.opts.distributed ? await RankGroup.create(this.opts.distributed) : null;
    this.ranks = ranks;
    const rank0 = ranks?.rank0();
    const env = { ...this.opts.env, ...rank0?.env };
    const proc = new SidecarProcess({ python, args: [...args, ...(ranks?.args ?? [])], token, logger: this.opts.logger, ...rank0, env });
    this.proc = proc;
    proc.child.unref();
    ranks?.startWorkers(python, args, this.opts.logger);
    let ready: { endpoint: string };
    try {
      // Rank 0 is ready once every rank has joined; a rank that dies first fails the start at once.
      const up = ranks ? Promise.race([proc.ready, ranks.failed.then((e) => Promise.reject(e))]) : proc.ready;
      ready = await withTimeout(up, this.opts.startTimeoutMs, () => {
        proc.signal('SIGKILL');
        return new GradpromError(
          'SIDECAR_START',
          `sidecar did not come up within ${this.opts.startTimeoutMs} ms\n${proc.stderrTail().join('\n')}`,
        );
      });
    } catch (e) {
      ranks?.kill();
      proc.signal('SIGKILL');
      this.removeDir();
      if (e instanceof SidecarExitedError) {
        throw new GradpromError('SIDECAR_START', `sidecar failed to start with ${python}: ${e.message}`, { cause: e });
      }
      throw e;
    }
    this.client = new Client({
      endpoint: ready.endpoint,
      token,
      logger: this.opts.logger,
      maxHeader: this.opts.maxHeaderBytes,
      maxMessageBytes: this.opts.maxMessageBytes,
      defaultTimeoutMs: (op) => this.opts.timeouts[op] ?? DEFAULT_TIMEOUTS[op] ?? DEFAULT_TIMEOUT,
    });
    const client = this.client;
    ranks?.onFailure((err) => {
      // Without one rank the others cannot go on; the client now refuses calls (a shutdown request too): end them.
      client.failAll(err);
      proc.signal('SIGTERM');
      ranks.terminate();
      if (!this.stopping && this.ranks === ranks) {
        this.stopHeartbeat();
        for (const l of this.exitListeners) l(err);
      }
    });
    void proc.exited.then(async (exit) => {
      await new Promise((r) => setTimeout(r, 20)); // let the stderr reader catch the last lines
      const rankErr = ranks?.rankError(ranks.torchrun ? null : 0, proc, exit);
      const err = rankErr ?? proc.exitedError(exit);
      // On the first line: the CLI prints only that one.
      if (this.hung) err.message = err.message.replace(/^[^\n]*/, (first) => `${first} (killed: heartbeat unanswered)`);
      if (ranks && rankErr && !this.stopping) return ranks.fail(rankErr); // reported once for the group, by onFailure above
      client.failAll(err);
      if (!this.stopping && this.proc === proc) {
        this.stopHeartbeat();
        for (const l of this.exitListeners) l(err);
      }
    });
    try {
      const hello = await this.client.call('hello');
      const protocol = (hello.result as { protocol?: unknown }).protocol;
      if (protocol !== PROTOCOL_VERSION) {
        throw new ProtocolVersionError(`sidecar speaks protocol ${String(protocol)}, this gradprom speaks ${PROTOCOL_VERSION}`);
      }
      this.info = parseOrThrow(OPS.hello.result, hello.result, 'hello.result');
    } catch (e) {
      await this.stop();
      if (e instanceof SidecarError && e.type === 'ProtocolVersionError') throw new ProtocolVersionError(e.detail);
      throw e;
    }
    this.startHeartbeat();
  }

  private startHeartbeat(): void {
    let inFlight = false;
    this.heartbeat = setInterval(() => {
      if (inFlight || this.proc.exit) return;
      inFlight = true;
      // Any answer will do: the heartbeat asks only whether the I/O thread is alive.
      this.client
        .call('ping', {}, [], { timeoutMs: this.opts.heartbeatTimeoutMs })
        .catch((e: unknown) => {
          if (this.stopping || this.proc.exit) return;
          this.hung = true;
          this.opts.logger.error(`sidecar unresponsive (${(e as Error).message}); killing it`);
          this.proc.signal('SIGKILL');
        })
        .finally(() => (inFlight = false));
    }, this.opts.heartbeatIntervalMs);
    this.heartbeat.unref();
  }

  private stopHeartbeat(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
  }

  private removeDir(): void {
    for (const d of [this.dir, this.regionFolder]) if (d) removeNow(d);
    this.dir = this.regionFolder = null;
  }
}

/** 1 GiB per frame, or GRADPROM_MAX_MESSAGE_BYTES (-1 lifts the limit). */
function defaultMaxMessage(): number {
  const env = process.env.GRADPROM_MAX_MESSAGE_BYTES;
  if (env === undefined || env === '') return DEFAULT_MAX_MESSAGE;
  const n = Number(env);
  if (!Number.isInteger(n) || (n < 1 && n !== -1)) {
    throw new GradpromError('CONFIG', `GRADPROM_MAX_MESSAGE_BYTES: expected a positive integer or -1, got "${env}"`);
  }
  return n;
}

/** True for an address only this machine can reach. */
function isLoopback(host: string): boolean {
  return host === 'localhost' || /^127(\.\d{1,3}){3}$/.test(host);
}

function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => (timer = setTimeout(() => reject(onTimeout()), ms))),
  ]);
}
