/** Reading a child process's output line by line (emulators.ts, supervisor.ts). */

/**
 * Calls `onLine` for each newline-terminated line of `stream` (utf8, split across chunks correctly). With
 * `unterminatedLast`, text after the last newline is passed on too when the stream ends.
 */
export function onLines(
  stream: NodeJS.ReadableStream | null,
  onLine: (line: string) => void,
  options: { unterminatedLast?: boolean } = {},
): void {
  let buffered = '';
  stream?.setEncoding('utf8');
  stream?.on('data', (chunk: string) => {
    buffered += chunk;
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) onLine(line);
  });
  if (options.unterminatedLast) stream?.on('end', () => buffered && onLine(buffered));
}
