/** A levelled logger; the sidecar's stdout/stderr lines are forwarded to one. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type Logger = Record<LogLevel, (message: string) => void>;

const ORDER: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** A logger writing to stderr at or above `level` (default: GRADPROM_LOG_LEVEL, else 'warn'). */
export function stderrLogger(level: LogLevel = (process.env.GRADPROM_LOG_LEVEL as LogLevel) ?? 'warn'): Logger {
  const min = ORDER[level] ?? ORDER.warn;
  const at = (l: LogLevel) => (m: string) => {
    if (ORDER[l] >= min) process.stderr.write(`[gradprom ${l}] ${m}\n`);
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** A logger that drops everything. */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** The level of one line of sidecar output (Python logging prints `LEVEL name: message`). */
export function levelOfLine(line: string, stream: 'stdout' | 'stderr'): LogLevel {
  const m = /^(DEBUG|INFO|WARNING|ERROR|CRITICAL) /.exec(line);
  if (!m) return stream === 'stdout' ? 'info' : 'warn';
  return ({ DEBUG: 'debug', INFO: 'info', WARNING: 'warn', ERROR: 'error', CRITICAL: 'error' } as const)[m[1] as 'DEBUG'];
}
