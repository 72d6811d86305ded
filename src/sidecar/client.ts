/** The client: one DEALER, one reader loop, replies matched to requests by id, each with a deadline. */
import { Dealer } from 'zeromq';
import { GradpromError, ProtocolError, SidecarCancelledError, SidecarError, SidecarTimeoutError } from '../errors.js';
import type { Tensor } from '../protocol/dtypes.js';
import { checkFrameSizes, decodeFrames, encodeFrames, peekHeader, DEFAULT_MAX_HEADER } from '../protocol/frames.js';
import { isOkHeader } from '../protocol/checks.js';
import { parseOrThrow, replyHeaderSchema, type ReplyHeader } from '../protocol/schema.js';
import { PROTOCOL_VERSION } from '../protocol/version.js';
import type { Logger } from './logger.js';

/** A reply: its result (parsed by the op's schema when it comes through `Sidecar.call`) and its tensors. */
export interface Reply<R = Record<string, unknown>> {
  result: R;
  tensors: Tensor[];
}

export interface CallOptions {
  /** Deadline in ms; the default depends on the operation. */
  timeoutMs?: number;
  /** Cancels the request: it is rejected at once and the sidecar is told to stop it. */
  signal?: AbortSignal;
}

interface Pending {
  op: string;
  resolve: (r: Reply) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  cleanup: () => void;
}

export interface ClientOptions {
  endpoint: string;
  token: string;
  logger: Logger;
  maxHeader?: number;
  /** Per-frame byte limit, checked before sending and enforced by libzmq on receipt (before allocation); -1 = none. */
  maxMessageBytes?: number;
  /** Sent with every request whose caller gives none. */
  defaultTimeoutMs: (op: string) => number;
}

export class Client {
  private readonly socket: Dealer;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private sending: Promise<void> = Promise.resolve();
  private closedWith: Error | null = null;
  readonly readerDone: Promise<void>;

  constructor(private readonly opts: ClientOptions) {
    this.socket = new Dealer({ linger: 0, sendHighWaterMark: 0, receiveHighWaterMark: 0, maxMessageSize: opts.maxMessageBytes ?? -1 });
    this.socket.connect(opts.endpoint);
    this.readerDone = this.readLoop();
  }

  /** Send `op` with `args` and tensors; resolves with the reply or rejects with a typed error. */
  call(op: string, args: Record<string, unknown> = {}, tensors: readonly Tensor[] = [], options: CallOptions = {}): Promise<Reply> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    if (options.signal?.aborted) return Promise.reject(new SidecarCancelledError(op));
    const id = this.nextId++;
    let frames: Buffer[];
    try {
      frames = encodeFrames({ v: PROTOCOL_VERSION, token: this.opts.token, id, op, args }, tensors);
      checkFrameSizes(frames, this.opts.maxMessageBytes ?? -1);
    } catch (e) {
      return Promise.reject(e);
    }
    const timeoutMs = options.timeoutMs ?? this.opts.defaultTimeoutMs(op);
    return new Promise<Reply>((resolve, reject) => {
      const onAbort = () => this.abandon(id, new SidecarCancelledError(op));
      const timer = setTimeout(() => this.abandon(id, new SidecarTimeoutError(op, timeoutMs)), timeoutMs);
      options.signal?.addEventListener('abort', onAbort, { once: true });
      const cleanup = () => {
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
      };
      this.pending.set(id, { op, resolve, reject, timer, cleanup });
      this.send(frames).catch((e: unknown) => this.settle(id, (p) => p.reject(asError(e))));
    });
  }

  /** Reject every pending request with `error` and refuse new ones. */
  failAll(error: Error): void {
    this.closedWith ??= error;
    for (const id of [...this.pending.keys()]) this.settle(id, (p) => p.reject(error));
  }

  get endpoint(): string {
    return this.opts.endpoint;
  }

  get inFlight(): number {
    return this.pending.size;
  }

  close(): void {
    this.failAll(new GradpromError('SIDECAR_STOPPED', 'sidecar client closed'));
    this.socket.close();
  }

  // zeromq.js allows one pending send per socket: chain them.
  private send(frames: Buffer[]): Promise<void> {
    const next = this.sending.then(() => this.socket.send(frames));
    this.sending = next.catch(() => {});
    return next;
  }

  private abandon(id: number, error: Error): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.settle(id, (q) => q.reject(error));
    // Tell the sidecar to stop working on it; its late reply, if any, is dropped.
    this.send(encodeFrames({ v: PROTOCOL_VERSION, token: this.opts.token, id: this.nextId++, op: 'cancel', args: { id } })).catch(() => {});
  }

  private settle(id: number, how: (p: Pending) => void): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    p.cleanup();
    how(p);
  }

  private async readLoop(): Promise<void> {
    try {
      for await (const frames of this.socket) this.onReply(frames);
    } catch (e) {
      if (!this.socket.closed) this.failAll(asError(e));
    }
  }

  private onReply(frames: Buffer[]): void {
    let header;
    let tensors: Tensor[];
    try {
      const decoded = decodeFrames(frames, this.opts.maxHeader ?? DEFAULT_MAX_HEADER);
      const raw = decoded.header as Record<string, unknown>; // a plain map: decodeFrames checked it
      // Every step's reply: the plain check first; anything it does not pass gets the schema and its named errors.
      header = isOkHeader(raw) ? (raw as ReplyHeader) : parseOrThrow(replyHeaderSchema, raw, 'reply');
      tensors = decoded.tensors;
    } catch (e) {
      // A reply we cannot read: fail the request it names, if we can tell which.
      const id = peekId(frames);
      this.opts.logger.error(`malformed reply${id !== null ? ` to request ${id}` : ''}: ${(e as Error).message}`);
      if (id !== null) this.settle(id, (p) => p.reject(e as Error));
      return;
    }
    if (header.id === null || !this.pending.has(header.id)) {
      if (header.status === 'error' && header.error.type !== 'Cancelled')
        this.opts.logger.warn(`sidecar error without a pending request: ${header.error.type}: ${header.error.message}`);
      else this.opts.logger.debug(`late reply to request ${header.id} dropped`);
      return;
    }
    if (header.v !== PROTOCOL_VERSION) {
      const err = new ProtocolError('reply.v', `protocol version ${header.v}, expected ${PROTOCOL_VERSION}`);
      this.settle(header.id, (p) => p.reject(err));
      return;
    }
    if (header.status === 'ok') {
      const result = header.result;
      this.settle(header.id, (p) => p.resolve({ result, tensors }));
    } else {
      const { type, message, traceback } = header.error;
      this.settle(header.id, (p) => p.reject(new SidecarError(p.op, type, message, traceback)));
    }
  }
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

function peekId(frames: Buffer[]): number | null {
  const h = peekHeader(frames[0]) as { id?: unknown } | null;
  return typeof h?.id === 'number' ? h.id : null;
}
