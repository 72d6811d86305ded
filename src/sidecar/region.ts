/**
 * TypeScript's half of the shared region of vectors transport (python/gradprom_sidecar/wire/region.py has the layout).
 *
 * The sidecar makes the file in a private folder this process made; this side maps it (mmap through koffi's FFI:
 * Node has no mmap of its own) and checks it before every read: size, header, and the sequence number the reply
 * names. Node cannot detach a view of foreign memory, so the policy never sees the mapping itself: each step's
 * vectors are copied from it into warm receive buffers (`StepViews`), whose views the next step detaches.
 */
import { closeSync, fstatSync, openSync } from 'node:fs';
import { GradpromError } from '../errors.js';

const MAGIC = 'GPRMREG1';
const VERSION = 1;
const SEQ_VECTORS = 32;
const SEQ_MERGED = 40;
const NONCE = 48;

/** The region as the sidecar announces it (`vectors.region`'s result). */
export interface RegionInfo {
  path: string;
  bytes: number;
  numel: number;
  header: number;
  slot: number;
}

interface Mapper {
  map(fd: number, bytes: number): { address: unknown; memory: ArrayBuffer };
  unmap(address: unknown, bytes: number): void;
}

let mapper: Promise<Mapper | string> | undefined;

/** mmap/munmap from libc through koffi, or why they are not available here (then vectors go as frames). */
export function memoryMapper(): Promise<Mapper | string> {
  mapper ??= (async (): Promise<Mapper | string> => {
    if (process.platform !== 'linux') return `shared regions need Linux (this is ${process.platform})`;
    try {
      const koffi = (await import('koffi')).default;
      const libc = koffi.load('libc.so.6');
      const mmap = libc.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, intptr_t off)');
      const munmap = libc.func('int munmap(void *addr, size_t len)');
      const PROT_RW = 3; // PROT_READ | PROT_WRITE
      const MAP_SHARED = 1;
      return {
        map(fd, bytes) {
          const address: unknown = mmap(null, bytes, PROT_RW, MAP_SHARED, fd, 0);
          if (address === null || address === -1n || address === 0xffffffffffffffffn)
            throw new Error(`mmap failed (errno ${koffi.errno()})`);
          return { address, memory: koffi.view(address, bytes) };
        },
        unmap(address, bytes) {
          munmap(address, bytes);
        },
      };
    } catch (e) {
      return `memory mapping is not available (koffi: ${(e as Error).message})`;
    }
  })();
  return mapper;
}

/** One session's shared region, mapped. Every problem with it is a REGION error naming its path. */
export class SharedRegion {
  private mergedSeq = 0;
  private closed = false;

  private constructor(
    readonly info: RegionInfo,
    private readonly fd: number,
    private readonly mapper: Mapper,
    private readonly address: unknown,
    private readonly header: DataView,
    private readonly gIp: Float32Array, // over the mapping: never handed out (a view of it cannot be detached)
    private readonly gVr: Float32Array,
    private readonly merged: Float32Array,
  ) {}

  /**
   * Map the region the sidecar made, and check it is the one announced: this user's, mode 0600, of the announced size,
   * its header holding `nonce` (what this process sent). ENOENT means the sidecar is not on this machine's memory
   * (`null`: use frames); anything else wrong is an error.
   */
  static open(info: RegionInfo, nonce: Uint8Array, mapper: Mapper): SharedRegion | null {
    const fail = (why: string) => new GradpromError('REGION', `region ${info.path}: ${why}`);
    let fd: number;
    try {
      fd = openSync(info.path, 'r+');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw fail((e as Error).message);
    }
    let region: SharedRegion | null = null;
    try {
      const st = fstatSync(fd);
      if (!st.isFile() || st.uid !== process.getuid?.() || (st.mode & 0o077) !== 0)
        throw fail(`must be a file of this user with mode 0600 (it is ${(st.mode & 0o777).toString(8)})`);
      const expected = info.header + 3 * info.slot;
      if (info.slot < info.numel * 4 || info.bytes !== expected || st.size !== info.bytes)
        throw fail(`truncated or resized (${st.size} bytes; announced ${info.bytes}, the layout needs ${expected})`);
      const { address, memory } = mapper.map(fd, info.bytes);
      const slot = (i: number) => new Float32Array(memory, info.header + i * info.slot, info.numel);
      region = new SharedRegion(info, fd, mapper, address, new DataView(memory, 0, info.header), slot(0), slot(1), slot(2));
      region.checkHeader();
      const got = new Uint8Array(memory, NONCE, 16);
      if (!got.every((b, i) => b === nonce[i])) throw fail('header corrupted (not the nonce this process sent)');
      return region;
    } catch (e) {
      if (region) region.close();
      else closeSync(fd);
      throw e;
    }
  }

  /** The vectors the sidecar published as `seq` (valid until the next request: copy them out before it). */
  vectors(seq: number): [Float32Array, Float32Array] {
    this.check();
    const found = Number(this.header.getBigUint64(SEQ_VECTORS, true));
    if (found !== seq) throw new GradpromError('REGION', `region ${this.info.path}: holds vectors ${found}, the reply names ${seq}`);
    return [this.gIp, this.gVr];
  }

  /** Write a merged decision into its slot and number it in the header; the number goes with the request. */
  writeMerged(v: Float32Array): number {
    this.check();
    this.merged.set(v);
    this.header.setBigUint64(SEQ_MERGED, BigInt(++this.mergedSeq), true);
    return this.mergedSeq;
  }

  /** Unmap and close (the sidecar removes the file). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.mapper.unmap(this.address, this.info.bytes);
    closeSync(this.fd);
  }

  /** Size and header as made: run before every access, so a truncated file is an error here, not a SIGBUS. */
  private check(): void {
    if (this.closed) throw new GradpromError('REGION', `region ${this.info.path}: already closed`);
    const size = fstatSync(this.fd).size;
    if (size !== this.info.bytes)
      throw new GradpromError('REGION', `region ${this.info.path}: truncated or resized (${size} bytes, expected ${this.info.bytes})`);
    this.checkHeader();
  }

  private checkHeader(): void {
    const h = this.header;
    const magic = String.fromCharCode(...new Uint8Array(h.buffer, 0, 8));
    const ok =
      magic === MAGIC &&
      h.getUint32(8, true) === VERSION &&
      h.getUint32(12, true) === this.info.header &&
      Number(h.getBigUint64(16, true)) === this.info.numel &&
      Number(h.getBigUint64(24, true)) === this.info.slot;
    if (!ok) throw new GradpromError('REGION', `region ${this.info.path}: header corrupted (magic ${JSON.stringify(magic)})`);
  }
}
