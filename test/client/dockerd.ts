/**
 * A private Docker engine for a test: Debian's `dockerd` (package docker.io, installed by
 * .ci/run) with its own data, exec root and socket under a temporary directory, and no networking
 * of its own (no iptables, no bridge), so it needs nothing from the machine but the binaries.
 * Stopped by the PID the test started it with.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { access, mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

// The package's binaries by path: another `docker` earlier on PATH (a static client from
// elsewhere) is not what CI installed. DOCKERD and DOCKER override them.
export const DOCKERD = process.env.DOCKERD ?? '/usr/sbin/dockerd';
export const DOCKER = process.env.DOCKER ?? '/usr/bin/docker';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
  command: string;
}

export interface Dockerd {
  /** Environment for the docker CLI: this daemon, and a config directory of its own (credentials). */
  env: NodeJS.ProcessEnv;
  docker(args: string[], options?: { input?: string; timeoutMs?: number }): Promise<Run>;
  /** The daemon's log so far (for failure messages). */
  log(): Promise<string>;
  stop(): Promise<void>;
}

/** Starts dockerd in `dir` and waits until it answers; rejects with its log when it cannot start. */
export async function startDockerd(dir: string): Promise<Dockerd> {
  for (const binary of [DOCKERD, DOCKER]) {
    await access(binary).catch(() => {
      throw new Error(`${binary} is not installed (apt-get install docker.io; .ci/run does)`);
    });
  }
  await mkdir(join(dir, 'config'), { recursive: true });
  // An empty daemon configuration: nothing from /etc/docker/daemon.json applies.
  await writeFile(join(dir, 'daemon.json'), '{}');
  const socket = join(dir, 'docker.sock');
  const logPath = join(dir, 'dockerd.log');
  const logFile = await open(logPath, 'w');
  const child: ChildProcess = spawn(
    DOCKERD,
    [
      '--iptables=false',
      '--ip6tables=false',
      '--bridge=none',
      '--storage-driver=vfs',
      '--config-file', join(dir, 'daemon.json'),
      '--data-root', join(dir, 'data'),
      '--exec-root', join(dir, 'exec'),
      '--pidfile', join(dir, 'dockerd.pid'),
      '--host', `unix://${socket}`,
    ],
    { stdio: ['ignore', logFile.fd, logFile.fd] },
  );
  await logFile.close();
  const exited = new Promise<string>((resolve) => child.once('exit', (code, signal) => resolve(`dockerd exited (${signal ?? code})`)));
  child.once('error', () => {});
  const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: join(dir, 'config') };
  const log = () => readFile(logPath, 'utf8').catch(() => '');

  const docker = (args: string[], options: { input?: string; timeoutMs?: number } = {}): Promise<Run> =>
    new Promise((resolve) => {
      const command = `docker ${args.join(' ')}`;
      const run = execFile(DOCKER, args, { env, timeout: options.timeoutMs ?? 60_000, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout, stderr: stderr + (error && typeof error.code !== 'number' ? `\n(${error.message})` : ''), command });
      });
      if (options.input !== undefined) run.stdin!.end(options.input);
    });

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + 30_000;
  for (;;) {
    const why = await Promise.race([exited, new Promise<null>((r) => setTimeout(() => r(null), 250))]);
    if (why) {
      const text = await log();
      await stop();
      throw new Error(`${why}; its log:\n${text.slice(-4000)}`);
    }
    const probe = await docker(['version', '--format', '{{.Server.Version}}'], { timeoutMs: 10_000 });
    if (probe.code === 0) break;
    if (Date.now() > deadline) {
      const text = await log();
      await stop();
      throw new Error(`dockerd did not answer within 30 s (${probe.stderr.trim()}); its log:\n${text.slice(-4000)}`);
    }
  }
  return { env, docker, log, stop };
}
