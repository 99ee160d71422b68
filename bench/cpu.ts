/**
 * CPU time of server processes, from /proc/<pid>/stat (utime + stime): the cost of an operation
 * that other load on the machine barely moves, unlike its rate.
 */
import { readFileSync } from 'node:fs';
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

/**
 * How this machine's idle CPUs wait: the cpuidle driver, and for a virtual machine's haltpoll
 * driver how long an idle CPU polls before it halts. A response to a load generator on a halted
 * CPU wakes it through an inter-processor interrupt, a VM exit the server's system time pays for:
 * on the bench's 2-core VM, halt-polling off against 200 µs moved a manifest GET's CPU from
 * 81–86 to 57–60 µs (bench/README.md). Undefined where /sys does not say.
 */
export function cpuIdlePolicy(): string | undefined {
  const read = (path: string) => {
    try {
      return readFileSync(path, 'utf8').trim();
    } catch {
      return undefined;
    }
  };
  const driver = read('/sys/devices/system/cpu/cpuidle/current_driver');
  if (driver === undefined) return undefined;
  if (driver !== 'haltpoll') return `cpuidle ${driver}`;
  const pollNs = Number(read('/sys/module/haltpoll/parameters/guest_halt_poll_ns'));
  if (!Number.isFinite(pollNs)) return 'cpuidle haltpoll';
  return pollNs > 0 ? `cpuidle haltpoll, polling up to ${pollNs / 1000} µs before halting` : 'cpuidle haltpoll, halt-polling off (guest_halt_poll_ns=0)';
}
