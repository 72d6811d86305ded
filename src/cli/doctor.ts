/** `gradprom doctor`: versions on both sides of the bridge (the Python side through pythonia). */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as zmq from 'zeromq';
import { callPython } from '../control/pythonia.js';
import { PROTOCOL_VERSION } from '../protocol/version.js';
import { locatePython, packageRoot, type PythonChoice } from '../sidecar/python.js';

export interface DoctorReport {
  node: { node: string; gradprom: string; protocol: number; zeromq: string; libzmq: string; msgpackr: string; zod: string };
  /** Which interpreter the sidecar runs on, and why (null when none is usable). */
  environment: PythonChoice | null;
  python: Record<string, unknown> & { torch?: string | null };
  problems: string[];
}

const require = createRequire(import.meta.url);

/** The version in a package's package.json, found by walking up from its entry point (exports maps may hide it). */
function versionOf(pkg: string, from?: string): string {
  try {
    let dir = from ?? dirname(require.resolve(pkg));
    for (;;) {
      const file = join(dir, 'package.json');
      if (existsSync(file)) {
        const json = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
        if (json.name === pkg && json.version) return json.version;
      }
      const up = dirname(dir);
      if (up === dir) return '?';
      dir = up;
    }
  } catch {
    return '?';
  }
}

export async function doctor(): Promise<DoctorReport> {
  const problems: string[] = [];
  const node = {
    node: process.version,
    gradprom: versionOf('gradprom', packageRoot),
    protocol: PROTOCOL_VERSION,
    zeromq: versionOf('zeromq'),
    libzmq: zmq.version,
    msgpackr: versionOf('msgpackr'),
    zod: versionOf('zod'),
  };
  let python: DoctorReport['python'] = {};
  let environment: PythonChoice | null = null;
  try {
    environment = locatePython();
    python = (await callPython('gradprom_sidecar.tools.introspect', 'doctor')) as DoctorReport['python'];
    if (!python.torch) problems.push(String(python.problem ?? 'torch is missing'));
    if (python.protocol !== PROTOCOL_VERSION) problems.push(`sidecar protocol ${String(python.protocol)} ≠ ${PROTOCOL_VERSION}`);
  } catch (e) {
    problems.push((e as Error).message);
  }
  return { node, environment, python, problems };
}

export function formatDoctor(r: DoctorReport): string {
  const py = r.python;
  const lines = [
    `node       ${r.node.node}`,
    `gradprom   ${r.node.gradprom} (protocol ${r.node.protocol})`,
    `zeromq.js  ${r.node.zeromq} (libzmq ${r.node.libzmq}), msgpackr ${r.node.msgpackr}, zod ${r.node.zod}`,
    `env        ${r.environment ? `${r.environment.source}: ${r.environment.why}${r.environment.envDir ? ` (${r.environment.envDir})` : ''}` : 'none'}`,
    `python     ${String(py.python ?? '-')} (${String(py.executable ?? '-')})`,
    `torch      ${String(py.torch ?? 'MISSING')}${py.cuda ? ` (CUDA ${String(py.cuda)})` : ''}`,
    `devices    ${Array.isArray(py.devices) ? py.devices.join(', ') : '-'}`,
    `pyzmq      ${String(py.pyzmq ?? '-')} (libzmq ${String(py.libzmq ?? '-')}), msgpack ${String(py.msgpack ?? '-')}, numpy ${String(py.numpy ?? '-')}`,
    `sidecar    protocol ${String(py.protocol ?? '-')}`,
  ];
  for (const p of r.problems) lines.push(`PROBLEM    ${p}`);
  return lines.join('\n');
}
