/**
 * CPU time of server processes, from /proc/<pid>/stat (utime + stime): the cost of an operation
 * that other load on the machine barely moves, unlike its rate.
 */
import { readFile } from 'node:fs/promises';
import type { CpuProbe } from './figures.js';

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ, 100 on Linux). */
const TICKS = 100;

/** CPU seconds the process has used, or undefined when it is gone or unreadable. */
export async function cpuSeconds(pid: number): Promise<number | undefined> {
  try {
    // The command name (field 2) may hold spaces; fields after ") " start at field 3 (state).
    const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS;
  } catch {
    return undefined;
  }
}

/** CPU seconds of a set of processes over one bracketed interval (a CpuProbe). */
export class CpuMeter implements CpuProbe {
  private start: number | undefined;
  /** CPU seconds between begin() and end(); undefined until then or when a process was unreadable. */
  seconds: number | undefined;

  constructor(private readonly pids: number[]) {}

  private async total(): Promise<number | undefined> {
    let sum = 0;
    for (const pid of this.pids) {
      const s = await cpuSeconds(pid);
      if (s === undefined) return undefined;
      sum += s;
    }
    return sum;
  }

  async begin(): Promise<void> {
    this.seconds = undefined;
    this.start = await this.total();
  }

  async end(): Promise<void> {
    const stop = await this.total();
    this.seconds = this.start === undefined || stop === undefined ? undefined : stop - this.start;
  }
}

/** Several probes bracketing the same interval. */
export function probes(...all: CpuProbe[]): CpuProbe {
  return {
    begin: async () => void (await Promise.all(all.map((p) => p.begin()))),
    end: async () => void (await Promise.all(all.map((p) => p.end()))),
  };
}
