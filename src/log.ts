/** One JSON line per event on stdout: `{"level","msg",...fields}`, the log format of every component. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type Logger = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;

export const jsonLogger =
  (component: string, write: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Logger =>
  (level, msg, fields = {}) =>
    write(JSON.stringify({ level, msg, component, time: new Date().toISOString(), ...fields }));

/** Error with its cause chain, for log fields. */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err; e !== undefined && parts.length < 5; e = (e as { cause?: unknown }).cause) {
    parts.push(e instanceof Error ? `${e.name}: ${e.message}` : String(e));
    if (!(e instanceof Error)) break;
  }
  return parts.join(' <- ');
}
