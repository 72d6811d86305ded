/**
 * Shared starts: every run of one seed begins from the same pretrained VR and initial IP (start-seed<k>.pt).
 *
 * Whoever needs a start first makes it: a session pretrains VR, saves to a private temporary name and
 * links it into place, which fails if another worker (or another machine on a shared filesystem) got
 * there first — then that file is used and the temporary one removed. Pretraining is deterministic
 * given the seed, so a worker that lost the race made the same start; within one process, workers
 * wait for the one already making it.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, linkSync, unlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import type { Config } from '../config/index.js';
import type { Sidecar } from '../sidecar/sidecar.js';
import { RemoteSession } from './remote.js';

/** The start file of `seed` in a comparison folder. */
export function startFile(dir: string, seed: number): string {
  return join(dir, `start-seed${seed}.pt`);
}

/** Makes each seed's start at most once per process. */
export class Starts {
  private readonly making = new Map<number, Promise<string>>();

  constructor(private readonly dir: string) {}

  /** The start of `seed` (`config` with that seed), made in `sidecar` if nobody has made it yet. */
  get(seed: number, config: Config, sidecar: Sidecar): Promise<string> {
    const file = startFile(this.dir, seed);
    if (existsSync(file)) return Promise.resolve(file);
    let p = this.making.get(seed);
    if (!p) {
      p = make(file, { ...config, seed }, sidecar);
      // A failed attempt is not remembered: the next run of that seed tries again.
      p.catch(() => this.making.delete(seed));
      this.making.set(seed, p);
    }
    return p;
  }
}

async function make(file: string, config: Config, sidecar: Sidecar): Promise<string> {
  const session = await RemoteSession.create(sidecar, config);
  const pretrain = await session.pretrain(config.vr.pretrain_steps);
  const tmp = join(dirname(file), `.start-seed${config.seed}.${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
  await session.save(tmp, { pretrain });
  try {
    linkSync(tmp, file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  } finally {
    unlinkSync(tmp);
  }
  return file;
}
