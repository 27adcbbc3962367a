/**
 * The processes a benchmark measures — the emulators and components the supervisor runs as children of the
 * bench (or of a `quotewatch start` it spawned) — and their CPU and memory, read from /proc (Linux).
 */
import { readdirSync, readFileSync } from 'node:fs';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface ChildProcessInfo {
  pid: number;
  /** The command line, arguments separated by spaces. */
  args: string;
}

/** The live children of `ppid` (default: this process). */
export function children(ppid: number = process.pid): ChildProcessInfo[] {
  const out: ChildProcessInfo[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (parent !== ppid) continue;
      const args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ').trim();
      out.push({ pid: Number(entry), args });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/**
 * The child of `ppid` running `file` (the components are spawned with their entry file as an argument), with
 * `env` in its environment when given (two components of one program differ there: WORKER_ID).
 */
export function childPid(file: string, ppid: number = process.pid, env: Record<string, string> = {}): number {
  const wanted = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  const found = children(ppid).find((c) => {
    if (!c.args.includes(file)) return false;
    if (wanted.length === 0) return true;
    try {
      const environ = readFileSync(`/proc/${c.pid}/environ`, 'utf8').split('\0');
      return wanted.every((w) => environ.includes(w));
    } catch {
      return false;
    }
  });
  if (!found)
    throw new Error(`no ${file} process under ${ppid}${wanted.length ? ` with ${wanted.join(' ')}` : ''}`);
  return found.pid;
}

/** CPU seconds (user + system) a process has used: utime and stime in clock ticks (100 a second on Linux). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Resident memory (MB). */
export function rssMb(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb) / 1024;
}

/**
 * Resident memory (MB) after a full GC in the process: SIGUSR2 collects in components started with --expose-gc
 * (src/local/gcSignal.ts).
 */
export async function rssAfterGc(pid: number): Promise<number> {
  process.kill(pid, 'SIGUSR2');
  await sleep(1500);
  return rssMb(pid);
}

/** CPU seconds so far of the children whose command line matches each label's pattern, summed per label. */
export function cpuByLabel(
  labels: readonly (readonly [RegExp, string])[],
  ppid?: number,
): Record<string, number> {
  const cpu: Record<string, number> = {};
  for (const c of children(ppid)) {
    const label = labels.find(([re]) => re.test(c.args))?.[1];
    if (!label) continue;
    try {
      cpu[label] = (cpu[label] ?? 0) + cpuSeconds(c.pid);
    } catch {
      // exited meanwhile
    }
  }
  return cpu;
}
