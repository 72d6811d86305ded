/** The control plane: small interactive Python calls through pythonia (never tensors in the training loop). */
import { SidecarError } from '../errors.js';
import { pythonEnv, resolvePython } from '../sidecar/python.js';

/** A pythonia proxy: awaiting a call gives another proxy; `valueOf()` brings the value across as plain data. */
export type PyProxy = { valueOf(): Promise<unknown> } & Record<string, (...args: unknown[]) => Promise<PyProxy>>;

/** pythonia's `python(module)`: imports a module in the bridge's interpreter. */
export type PythonImport = (module: string) => Promise<PyProxy>;

type Pythonia = { python: PythonImport & { exit(): void } };

/** What gradprom_sidecar.wire.control.invoke returns: the value, or the exception whole. */
type Wrapped = { status: 'ok'; value: unknown } | { status: 'error'; type: string; message: string; traceback: string };

/** Run `fn` with a pythonia bridge on the sidecar's interpreter, then close the bridge. */
export async function withPython<T>(fn: (python: PythonImport) => Promise<T>): Promise<T> {
  const env = pythonEnv();
  // pythonia spawns its interpreter when first imported, from PYTHON_BIN and the inherited environment.
  process.env.PYTHON_BIN = resolvePython();
  process.env.PYTHONPATH = env.PYTHONPATH;
  const { python } = (await import('pythonia')) as unknown as Pythonia;
  try {
    return await fn(python);
  } finally {
    python.exit();
  }
}

/**
 * Call `module.fn(...args)` in Python and return the result as plain data. A Python exception becomes a
 * SidecarError (code SIDECAR_ERROR) carrying its type, message and traceback: pythonia's own errors arrive empty.
 */
export async function callPython(module: string, fn: string, ...args: unknown[]): Promise<unknown> {
  return withPython(async (python) => {
    const control = await python('gradprom_sidecar.wire.control');
    const reply = (await (await control.invoke!(module, fn, args)).valueOf()) as Wrapped;
    if (reply.status === 'error') throw new SidecarError(`${module}.${fn}`, reply.type, reply.message, reply.traceback);
    return reply.value;
  });
}
