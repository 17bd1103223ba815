/**
 * A terminal of its own for a foreground dyno (`manifold dyno run` on a terminal), as `manifold run`
 * gets one from the daemon. The caller's terminal already controls the caller's session, so a dyno
 * handed it directly can use it as stdio but cannot make it its controlling terminal: no job
 * control, no ^C to the dyno's foreground job. Instead the dyno gets the slave of a new pty and
 * this relays the master to and from our stdio in raw mode, following the window size.
 */
import fs from 'node:fs';
import { ReadStream as TtyStream } from 'node:tty';
import { native } from '../runtime/native';

/** Output still in the pty when the dyno has exited is read for at most this long. */
const DRAIN_MS = 500;

export class TerminalRelay {
  /** The dyno's stdin, stdout and stderr; closed here once the dyno has its own copies. */
  readonly slave: number;
  private readonly masterFd: number;
  private readonly master: TtyStream;
  private readonly masterClosed: Promise<void>;
  private relaying = false;
  private slaveOpen = true;

  private readonly onInput = (data: Buffer): void => {
    this.master.write(data);
  };

  /** Our terminal went away (an ssh drop: EIO): stop relaying; SIGHUP stops the dyno meanwhile. */
  private readonly onTerminalError = (): void => {
    this.master.removeAllListeners('data');
    this.master.resume(); // keep draining the dyno's output so it never blocks on a full pty
    process.stdin.off('data', this.onInput);
  };

  private readonly onResize = (): void => {
    try {
      native().resizePty(this.masterFd, process.stdout.columns, process.stdout.rows);
    } catch {
      /* the dyno is gone */
    }
  };

  constructor() {
    const [master, slave] = native().openPty(process.stdout.columns, process.stdout.rows);
    this.slave = slave;
    this.masterFd = master;
    this.master = new TtyStream(master);
    // Once every process of the dyno has closed the slave, reading the master fails with EIO: the end.
    this.masterClosed = new Promise((resolve) => {
      this.master.on('close', () => resolve());
      this.master.on('error', () => this.master.destroy());
    });
  }

  /** After the dyno started (it holds the slave now): raw mode here, keys and resizes go through. */
  start(): void {
    this.closeSlave();
    this.relaying = true;
    process.stdout.on('error', this.onTerminalError);
    process.stdin.on('error', this.onTerminalError);
    this.master.on('data', (d: Buffer) => process.stdout.write(d));
    process.stdin.setRawMode(true);
    process.stdin.on('data', this.onInput);
    process.stdin.resume();
    process.stdout.on('resize', this.onResize);
    this.onResize(); // a resize while the dyno was starting
  }

  /** After the dyno exited (or failed to start): last output, then the caller's terminal as it was. */
  async finish(): Promise<void> {
    this.closeSlave();
    // only a master that was being read sees EIO; one never relayed has nothing to drain
    if (this.relaying) await Promise.race([this.masterClosed, new Promise((r) => setTimeout(r, DRAIN_MS).unref())]);
    this.master.destroy();
    process.stdout.off('resize', this.onResize);
    if (this.relaying) {
      process.stdin.off('data', this.onInput);
      try {
        process.stdin.setRawMode(false);
      } catch {
        /* the terminal is gone */
      }
      process.stdin.pause();
    }
  }

  private closeSlave(): void {
    if (this.slaveOpen) {
      this.slaveOpen = false;
      fs.closeSync(this.slave);
    }
  }
}
