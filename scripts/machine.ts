/** The machine while a script runs (bench and study alike): how busy its cores are, and its load. */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';

/** When and how busy: the command, its wall time, and the machine's load before and after (bench and study alike). */
export interface MachineRun {
  command: string;
  started: Date;
  wallSeconds: number;
  loadStart: number[];
  loadEnd: number[];
  /** Share of all cores busy (0–1) over a short sample before the run started and after it ended; null where /proc/stat is missing. */
  busyStart: number | null;
  busyEnd: number | null;
}

/** How long `cpuBusy` samples /proc/stat. */
export const BUSY_SAMPLE_MS = 2000;

/** Busy and total jiffies of all cores from /proc/stat's first line, or null. */
function cpuTimes(): { busy: number; total: number } | null {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = f.reduce((a, b) => a + b, 0);
    return { busy: total - (f[3] ?? 0) - (f[4] ?? 0), total }; // idle and iowait are not busy
  } catch {
    return null;
  }
}

/** Share of all cores busy (0–1) over the next BUSY_SAMPLE_MS; null where /proc/stat cannot be read. */
export async function cpuBusy(): Promise<number | null> {
  const a = cpuTimes();
  await new Promise((r) => setTimeout(r, BUSY_SAMPLE_MS));
  const b = cpuTimes();
  if (!a || !b || b.total === a.total) return null;
  return (b.busy - a.busy) / (b.total - a.total);
}

/** Load averages now (1, 5, 15 min). */
export function loadNow(): number[] {
  return loadavg();
}
