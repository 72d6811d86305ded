/** Scale-out: the sidecar as N ranks under torch.distributed; rank 0 serves TypeScript, the others follow it. */
import { createServer } from 'node:net';
import { availableParallelism } from 'node:os';
import type { Config } from '../config/index.js';
import { GradpromError, RankExitedError, SidecarError, type RankOpFailure } from '../errors.js';
import type { Logger } from './logger.js';
import { SidecarProcess, streamsDone, type Exit } from './process.js';

/** How to run the sidecar as several ranks (torchrun's vocabulary). */
export interface DistributedOptions {
  /** Ranks on this machine (torchrun's nproc-per-node); rank r uses cuda:r on a GPU machine. */
  nproc: number;
  /** `gloo` (CPU, or GPU without NCCL) or `nccl` (GPUs). */
  backend: 'gloo' | 'nccl';
  /** Machines; beyond 1, this machine is node 0 of a torchrun static rendezvous that the others join. */
  nnodes?: number;
  /** Rendezvous address: loopback on one machine, an address of this machine the others reach on several. */
  masterAddr?: string;
  /** Rendezvous port; null: a free one (one machine only). */
  masterPort?: number | null;
  /** Seconds a collective, or the start-up rendezvous, waits for a peer. */
  timeoutS?: number;
}

/** The options for a config's `distributed` section, or undefined for a single process. */
export function distributedOptions(section: Config['distributed'] | undefined): DistributedOptions | undefined {
  if (!section || section.nproc * section.nnodes <= 1) return undefined;
  return {
    nproc: section.nproc,
    backend: section.backend,
    nnodes: section.nnodes,
    masterAddr: section.master_addr,
    masterPort: section.master_port,
    timeoutS: section.timeout_s,
  };
}

const RANK_FAILED = 'GRADPROM_RANK_FAILED '; // a worker's last stderr line when its op raised (distributed.py)
const LOOPBACK = /^(127(\.\d{1,3}){3}|::1)$/;

/** The ranks of one sidecar launch: their environment, the workers this machine starts, and their failures. */
export class RankGroup {
  readonly worldSize: number;
  /** Settles with the first rank that ends unasked. */
  readonly failed: Promise<RankExitedError>;
  private readonly workers: SidecarProcess[] = [];
  private first: RankExitedError | null = null;
  private settleFailed!: (e: RankExitedError) => void;
  private listeners: ((e: RankExitedError) => void)[] = [];
  private stopping = false;

  private constructor(private readonly opts: Required<DistributedOptions> & { masterPort: number }) {
    this.worldSize = opts.nproc * opts.nnodes;
    this.failed = new Promise((resolve) => (this.settleFailed = resolve));
  }

  /** The group for `options`, with a free port when none is given; null when it is one process. */
  static async create(options: DistributedOptions): Promise<RankGroup | null> {
    const o = { nnodes: 1, masterAddr: '127.0.0.1', masterPort: null, timeoutS: 1800, ...options };
    if (o.nproc * o.nnodes <= 1) return null;
    if (o.nnodes > 1 && o.masterPort === null) {
      throw new GradpromError('CONFIG', 'distributed.master_port: required with several machines (the others join the rendezvous on it)');
    }
    return new RankGroup({ ...o, masterPort: o.masterPort ?? (await freePort(o.masterAddr)) });
  }

  /** True when torchrun starts this machine's ranks (several machines). */
  get torchrun(): boolean {
    return this.opts.nnodes > 1;
  }

  /** Sidecar flags for every rank. */
  get args(): string[] {
    return ['--dist-backend', this.opts.backend, '--dist-timeout', String(this.opts.timeoutS)];
  }

  /** How to start rank 0's process: its environment and, on several machines, torchrun in front of it. */
  rank0(): { env: Record<string, string>; launcher: string[] } {
    const o = this.opts;
    if (!this.torchrun) return { env: this.env(0), launcher: [] };
    // Static rendezvous: node 0 is this machine, so global rank 0 (the one that serves us) is local rank 0 here.
    const launcher = ['-m', 'torch.distributed.run', '--nnodes', String(o.nnodes), '--node-rank', '0', '--nproc-per-node', String(o.nproc)];
    launcher.push('--master-addr', o.masterAddr, '--master-port', String(o.masterPort));
    return { env: this.threads(), launcher };
  }

  /** Start ranks 1..nproc-1 on this machine (one machine only; torchrun starts them otherwise). */
  startWorkers(python: string, args: string[], logger: Logger): void {
    if (this.torchrun) return;
    for (let rank = 1; rank < this.opts.nproc; rank++) {
      const proc = new SidecarProcess({
        python,
        args: [...args, ...this.args],
        token: '',
        logger,
        env: this.env(rank),
        label: `sidecar[rank ${rank}]`,
      });
      proc.child.unref();
      this.workers.push(proc);
      void proc.exited.then(async (exit) => {
        await streamsDone(proc.child); // its last stderr lines name what went wrong
        if (!this.stopping) this.fail(this.rankError(rank, proc, exit));
      });
    }
  }

  /** Record a rank's unasked end; only the first counts (the others usually follow from it). */
  fail(e: RankExitedError): void {
    if (this.first) return;
    this.first = e;
    this.settleFailed(e);
    for (const l of this.listeners) l(e);
  }

  /** The first rank failure, if any. */
  get failure(): RankExitedError | null {
    return this.first;
  }

  /** Called once, with the first rank failure. */
  onFailure(listener: (e: RankExitedError) => void): void {
    this.listeners.push(listener);
  }

  /** The error for a rank's process having ended (`rank` null: the torchrun agent). */
  rankError(rank: number | null, proc: SidecarProcess, exit: Exit): RankExitedError {
    const tail = proc.stderrTail();
    let failure: RankOpFailure | undefined;
    const line = [...tail].reverse().find((l) => l.startsWith(RANK_FAILED));
    if (line) {
      try {
        failure = JSON.parse(line.slice(RANK_FAILED.length)) as RankOpFailure;
      } catch {
        failure = undefined;
      }
    }
    return new RankExitedError(rank, this.worldSize, exit.code, exit.signal, tail, failure);
  }

  /**
   * Rank 0's error for an op, or the rank failure behind it: a dead peer shows on rank 0 as a
   * collective's error, and the rank that died is the news. Waits up to `ms` for that failure.
   */
  async explain(e: unknown, ms = 2000): Promise<never> {
    if (!(e instanceof SidecarError) || this.torchrun) throw e;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<null>((r) => (timer = setTimeout(() => r(null), ms)));
    const failure = await Promise.race([this.failed, late]);
    clearTimeout(timer);
    throw failure ?? e;
  }

  /** From now on the ranks are expected to exit: no failure is reported. */
  expectExit(): void {
    this.stopping = true;
  }

  /** Wait up to `graceMs` for the workers to exit (rank 0 tells them to), then SIGTERM, then SIGKILL. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    for (const sig of [null, 'SIGTERM', 'SIGKILL'] as const) {
      if (sig) for (const w of this.workers) w.signal(sig);
      const done = await Promise.all(this.workers.map((w) => w.waitExit(sig === 'SIGKILL' ? 10 * graceMs : graceMs)));
      if (done.every(Boolean)) return;
    }
  }

  /** Kill every worker at once (a start that failed). */
  kill(): void {
    this.stopping = true;
    for (const w of this.workers) w.signal('SIGKILL');
  }

  /** SIGTERM every worker still running (the group lost a rank: the rest cannot go on). */
  terminate(): void {
    this.stopping = true;
    for (const w of this.workers) w.signal('SIGTERM');
  }

  /** The workers' pids (rank 1 first). */
  get workerPids(): number[] {
    return this.workers.map((w) => w.pid).filter((p): p is number => p !== undefined);
  }

  /** torchrun's environment for `rank` on this machine. */
  private env(rank: number): Record<string, string> {
    const o = this.opts;
    const env: Record<string, string> = {
      ...this.threads(),
      RANK: String(rank),
      LOCAL_RANK: String(rank),
      WORLD_SIZE: String(this.worldSize),
      LOCAL_WORLD_SIZE: String(o.nproc),
      MASTER_ADDR: o.masterAddr,
      MASTER_PORT: String(o.masterPort),
    };
    // gloo connects the ranks over the interface the host name resolves to; on one machine, keep it on loopback.
    if (o.backend === 'gloo' && LOOPBACK.test(o.masterAddr) && process.platform === 'linux' && !process.env.GLOO_SOCKET_IFNAME) {
      env.GLOO_SOCKET_IFNAME = 'lo';
    }
    return env;
  }

  /** The machine's cores shared out between its ranks (as torchrun does, but not down to 1 each), unless set. */
  private threads(): Record<string, string> {
    if (process.env.OMP_NUM_THREADS) return {};
    return { OMP_NUM_THREADS: String(Math.max(1, Math.floor(availableParallelism() / this.opts.nproc))) };
  }
}

/** A port nobody listens on now (the rendezvous binds it a moment later). */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const addr = server.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      server.close(() => resolve(port));
    });
  });
}
