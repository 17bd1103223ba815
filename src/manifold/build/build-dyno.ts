/**
 * Running the builder's dynos (the build dyno and the release-phase dyno) through the runtime's
 * launcher: stderr relayed line by line (remembering the reason of a failure), stdout optionally a
 * tar unpacked as the build user with a bound on its bytes, a timeout, and the set of dynos running
 * now so that a daemon shutdown can kill them. Apart from the builder because it is the part that
 * juggles file descriptors, sockets and child processes, not build policy.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import type { DynoSpec, ExitStatus } from '../../runtime';
import { ManifoldError } from '../errors';
import { LineSplitter } from '../logs/log-buffer';
import type { LaunchedDyno, Launcher } from '../supervisor/types';
import { BUILD_USER, exited } from './proc';

export interface DynoRunOptions {
  timeoutMs: number;
  onLine: (line: string) => void;
  /** Unpack the dyno's stdout (a tar) here as the build user; without it stdout is relayed like stderr. */
  extractTo?: string;
  /** With `extractTo`: the dyno is killed once its stdout exceeds this many bytes. */
  maxStreamBytes?: number;
}

export interface DynoRun {
  status: ExitStatus;
  timedOut: boolean;
  tooBig: boolean;
  /** The first ` !` line of the last run of them in the output. */
  lastError: string | undefined;
  extractError: string | undefined;
}

export class BuildDynos {
  /** Build and release-phase dynos running now (killAll() kills them). */
  private readonly active = new Set<LaunchedDyno>();
  private stopping = false;

  constructor(private readonly launcher: Launcher) {}

  /** Whether killAll() was called: no dyno starts any more. */
  get closing(): boolean {
    return this.stopping;
  }

  /** Daemon shutdown: no dyno starts from now on, and those running are killed. */
  async killAll(): Promise<void> {
    this.stopping = true;
    await Promise.all([...this.active].map((d) => d.kill().catch(() => undefined)));
  }

  /**
   * Starts a dyno, relays its stderr (and stdout, without `extractTo`) line by line, and with
   * `extractTo` unpacks its stdout (a tar) there as the build user. Kills it at `timeoutMs`.
   */
  async run(spec: Omit<DynoSpec, 'stdio'>, o: DynoRunOptions): Promise<DynoRun> {
    const launcher = this.launcher;
    const [errR, errW] = launcher.pipe();
    let outR = -1;
    let outW = -1;
    if (o.extractTo) [outR, outW] = launcher.pipe();
    let dyno: LaunchedDyno | undefined;
    let startError: unknown;
    try {
      if (this.stopping) throw new Error('the daemon is stopping');
      dyno = await launcher.start({ ...spec, stdio: { stdout: o.extractTo ? outW : errW, stderr: errW } });
      this.active.add(dyno);
      const d = dyno;
      void d.exited.then(() => this.active.delete(d), () => this.active.delete(d));
      // stopped while it was starting
      if (this.stopping) void d.kill();
    } catch (err) {
      startError = err;
    } finally {
      fs.closeSync(errW);
      if (outW >= 0) fs.closeSync(outW);
    }
    let lastError: string | undefined;
    const errSock = new net.Socket({ fd: errR, readable: true, writable: false });
    // the reason of a failure: the first ` !` line of the last run of them
    let inErrors = false;
    const split = new LineSplitter((line) => {
      const isError = /^ ! /.test(line);
      if (isError && !inErrors) lastError = line;
      inErrors = isError;
      o.onLine(line);
    });
    const errDone = new Promise<void>((resolve) => {
      errSock.on('data', (d: Buffer) => split.write(d));
      errSock.on('error', () => undefined);
      errSock.on('close', () => {
        split.end();
        resolve();
      });
    });
    let tooBig = false;
    let extractError: string | undefined;
    let extractDone: Promise<unknown> = Promise.resolve();
    let extractor: ChildProcess | undefined;
    let outSock: net.Socket | undefined;
    if (o.extractTo) {
      outSock = new net.Socket({ fd: outR, readable: true, writable: false });
      // cwd first, then the user: the tar writes only below a directory it could not reach by name
      extractor = spawn('tar', ['-xf', '-', '--no-same-owner', '--delay-directory-restore'], { cwd: o.extractTo, uid: BUILD_USER.uid, gid: BUILD_USER.gid, stdio: ['pipe', 'ignore', 'pipe'], env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8' } });
      let err = '';
      extractor.stderr!.setEncoding('utf8').on('data', (d: string) => (err.length < 2000 ? (err += d) : undefined));
      extractor.stdin!.on('error', () => undefined);
      extractor.once('error', (e) => (extractError = e.message));
      let bytes = 0;
      outSock.on('data', (d: Buffer) => {
        bytes += d.length;
        if (bytes > (o.maxStreamBytes ?? Infinity)) {
          if (!tooBig) {
            tooBig = true;
            void dyno?.kill();
            extractor?.kill('SIGKILL');
            outSock?.destroy();
          }
          return;
        }
        if (!extractor!.stdin!.write(d)) {
          outSock!.pause();
          extractor!.stdin!.once('drain', () => outSock!.resume());
        }
      });
      outSock.on('error', () => undefined);
      outSock.on('close', () => extractor?.stdin?.end());
      const ex = extractor;
      extractDone = exited(ex).then((code) => {
        if (code !== 0 && !tooBig && extractError === undefined) extractError = err.trim().split('\n')[0] || `tar exited with ${code ?? 'a signal'}`;
      });
    }
    if (!dyno) {
      errSock.destroy();
      outSock?.destroy();
      extractor?.kill('SIGKILL');
      await extractDone;
      throw new ManifoldError('EINTERNAL', `cannot start the ${spec.name.split('.')[0]} dyno: ${startError instanceof Error ? startError.message : String(startError)}`);
    }
    let timedOut = false;
    const started = dyno;
    const timer = setTimeout(() => {
      timedOut = true;
      void started.kill();
      extractor?.kill('SIGKILL');
    }, Math.max(0, o.timeoutMs));
    try {
      const status = await started.exited;
      // output still in the pipes is read; a grandchild that kept them open is gone with the dyno
      await Promise.race([Promise.all([errDone, extractDone]), new Promise((r) => setTimeout(r, 5000))]);
      errSock.destroy();
      outSock?.destroy();
      if (extractor && extractor.exitCode === null && extractor.signalCode === null) {
        extractor.kill('SIGKILL');
        await extractDone;
      }
      return { status, timedOut, tooBig, lastError, extractError };
    } finally {
      clearTimeout(timer);
    }
  }
}
