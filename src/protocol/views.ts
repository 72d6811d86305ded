/**
 * The view-lifetime contract of gradient vectors: the g_IP/g_VR a step hands out are valid until the next step's
 * vectors arrive (the way a ZeroMQ frame is valid until the next receive), and a view kept past that is detected.
 *
 * The vectors land in two receive buffers made once and reused every step (warm memory: no page is faulted in per
 * step). Before a step's vectors are copied in, the buffers are moved to new ArrayBuffer objects (a transfer, no
 * copy), which detaches every view of the step before: such a view reads as empty, its methods throw, and
 * `assertLive` (which the policy entry points call) names it. Copy what must outlive the step (`Float32Array.from`).
 */
import { GradpromError } from '../errors.js';

const retired = new WeakMap<ArrayBufferLike, number>(); // a detached buffer → the step its views belonged to

/** Throw a STALE_VIEW error when `v` is a view of an earlier step's vectors. */
export function assertLive(v: Float32Array, what: string): void {
  const step = v.byteLength === 0 ? retired.get(v.buffer) : undefined;
  if (step !== undefined) {
    throw new GradpromError(
      'STALE_VIEW',
      `${what}: a view of step ${step}'s gradient vectors used after the next step's arrived (views are valid until then; copy what you keep with Float32Array.from)`,
    );
  }
}

/** Two warm receive buffers of `numel` float32 each, and the views of the current step. */
export class StepViews {
  private buffers: [ArrayBuffer, ArrayBuffer];
  private step = 0;

  constructor(readonly numel: number) {
    this.buffers = [new ArrayBuffer(numel * 4), new ArrayBuffer(numel * 4)];
    for (const b of this.buffers) new Uint8Array(b).fill(0); // touch every page once, now
  }

  /** Retire the last step's views, copy step `step`'s `gIp` and `gVr` into the buffers and return views of them. */
  take(gIp: Float32Array, gVr: Float32Array, step: number): [Float32Array, Float32Array] {
    this.retire();
    this.step = step;
    const [a, b] = this.buffers.map((buf) => new Float32Array(buf)) as [Float32Array, Float32Array];
    a.set(gIp);
    b.set(gVr);
    return [a, b];
  }

  /** Detach every view handed out so far (the buffers themselves move on to new ArrayBuffer objects). */
  retire(): void {
    this.buffers = this.buffers.map((buf) => {
      const moved = structuredClone(buf, { transfer: [buf] });
      retired.set(buf, this.step);
      return moved;
    }) as [ArrayBuffer, ArrayBuffer];
  }
}
