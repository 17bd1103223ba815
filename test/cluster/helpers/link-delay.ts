/**
 * A constant delay on the fabric link towards one host: spec §7's "200 ms netem delay" fault
 * (`tc qdisc add dev up3 root netem delay 200ms`) without netem, which this kernel lacks.
 *
 * In `fab`, the host's port upN leaves fab0 and a veth pair dlN/dlNb takes its place on the bridge;
 * link-delay.py (in `fab`, tied to the test like every fabric child) copies frames between dlNb and upN,
 * those towards the host `ms` late:
 *
 *   fab0 ── dlN ═ dlNb ──[link-delay.py: +ms]── upN ═ eth0 (hN)
 *
 * stop() puts upN back on fab0 and removes the pair; the fabric's own stop() also frees everything
 * (the forwarder is its child, the veths die with `fab`).
 */
import { type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import type { Fabric } from './fabric';

export interface LinkDelay {
  /** The forwarder's pid (for leak checks). */
  readonly pid: number;
  /** Ends the delay: upN back on fab0, the forwarder stopped, the veth pair deleted. Idempotent. */
  stop(): Promise<void>;
}

/** link-delay.py sits next to this file in the source tree; tsc does not copy it to dist/. */
function forwarderScript(): string {
  const beside = path.join(__dirname, 'link-delay.py');
  if (fs.existsSync(beside)) return beside;
  const inSource = path.join(__dirname, '..', '..', '..', '..', 'test', 'cluster', 'helpers', 'link-delay.py');
  if (fs.existsSync(inSource)) return inSource;
  throw new Error(`link-delay.py not found beside ${__dirname} or in the source tree`);
}

/** Waits for the forwarder's "ready" (both sockets bound) or its exit. */
function ready(child: ChildProcess, stderr: () => string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const lines = readline.createInterface({ input: child.stdout as NodeJS.ReadableStream });
    const timer = setTimeout(() => done(new Error(`link-delay.py not ready after ${timeoutMs} ms: ${stderr()}`)), timeoutMs);
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void =>
      done(new Error(`link-delay.py exited (${code ?? signal}): ${stderr().trim()}`));
    function done(err?: Error): void {
      clearTimeout(timer);
      child.off('exit', onExit);
      lines.close();
      if (err) reject(err);
      else resolve();
    }
    lines.on('line', (l) => {
      if (l.trim() === 'ready') done();
    });
    child.once('exit', onExit);
  });
}

function exited(child: ChildProcess, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Delays every frame the fabric delivers to `host` by `ms` (the host's own frames go out undelayed). */
export async function delayLink(fabric: Fabric, host: string, ms: number): Promise<LinkDelay> {
  if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`delay must be >= 0 ms, got ${ms}`);
  const port = fabric.ns(host).port;
  if (port === undefined || !port.startsWith('up')) throw new Error(`${host} has no port on fab0`);
  // up3 -> dl3/dl3b, upe1 -> dle1/dle1b, upcl -> dlcl/dlclb: at most 6 characters, far under IFNAMSIZ.
  const bridgeEnd = `dl${port.slice(2)}`;
  const wireEnd = `${bridgeEnd}b`;
  const master = /\bmaster (\S+)/.exec(fabric.execOk('fab', 'ip', ['-o', 'link', 'show', port]))?.[1];
  if (master !== 'fab0') throw new Error(`${port} is not on fab0 (a delay already on ${host}?)`);

  fabric.execOk('fab', 'ip', ['-batch', '-'], {
    input: [`link add ${bridgeEnd} type veth peer name ${wireEnd}`, `link set ${wireEnd} up`, `link set ${bridgeEnd} up`, ''].join('\n'),
  });
  let child: ChildProcess | undefined;
  let stderr = '';
  try {
    // The forwarder starts while upN is still bridged: what it copies meanwhile ends at dlN, which is
    // on no bridge yet, so nothing is doubled; then one batch swaps the ports with the shortest gap.
    child = fabric.spawn('fab', 'python3', [forwarderScript(), wireEnd, port, String(ms)], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-2000)));
    await ready(child, () => stderr, 5000);
    // Same port settings as Fabric.attach (master fab0, up; the bridge has STP off, so it forwards at once).
    fabric.execOk('fab', 'ip', ['-batch', '-'], { input: `link set ${port} nomaster\nlink set ${bridgeEnd} master fab0\n` });
  } catch (err) {
    if (child) {
      child.kill('SIGKILL');
      await exited(child, 1000);
    }
    fabric.exec('fab', 'ip', ['link', 'del', bridgeEnd]);
    fabric.exec('fab', 'ip', ['-batch', '-'], { input: `link set ${port} master fab0\nlink set ${port} up\n` });
    throw err;
  }

  const forwarder = child;
  let stopping: Promise<void> | undefined;
  return {
    pid: forwarder.pid ?? -1,
    stop() {
      stopping ??= (async () => {
        // Swap back first (one batch, shortest gap). Frames still queued in the forwarder go out late
        // behind newer ones, or are lost at SIGTERM: what a cable being re-plugged does to frames in flight.
        fabric.execOk('fab', 'ip', ['-batch', '-'], {
          input: `link set ${bridgeEnd} nomaster\nlink set ${port} master fab0\nlink set ${port} up\n`,
        });
        forwarder.kill('SIGTERM');
        await exited(forwarder, 2000);
        fabric.execOk('fab', 'ip', ['link', 'del', bridgeEnd]); // deletes its peer too
        // It exits 0 on SIGTERM; anything else means it died during the delay (the host was cut off
        // meanwhile) or hung: the link is healed all the same, but the fault was not what it claimed.
        if (forwarder.exitCode !== 0) {
          throw new Error(`link-delay.py ${wireEnd} ${port} ended with ${forwarder.exitCode ?? forwarder.signalCode}, not 0 on SIGTERM: ${stderr.trim()}`);
        }
      })();
      return stopping;
    },
  };
}
