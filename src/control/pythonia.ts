/** The control plane: small interactive Python calls through pythonia (never tensors in the training loop). */
import { pythonEnv, resolvePython } from '../sidecar/python.js';

type PyProxy = { valueOf(): Promise<unknown> } & Record<string, (...args: unknown[]) => Promise<PyProxy>>;
type Pythonia = { python: ((module: string) => Promise<PyProxy>) & { exit(): void } };

/** Run `fn` with a pythonia bridge on the sidecar's interpreter, then close the bridge. */
export async function withPython<T>(fn: (python: Pythonia['python']) => Promise<T>): Promise<T> {
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

/** Call `module.fn(...args)` in Python and return the result as plain data. */
export async function callPython(module: string, fn: string, ...args: unknown[]): Promise<unknown> {
  return withPython(async (python) => {
    const mod = await python(module);
    const result = await mod[fn]!(...args);
    return result.valueOf();
  });
}
