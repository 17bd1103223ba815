/**
 * Issue 12, defect 5: unfinished request heads cannot make the router hold memory. 100 connections
 * each send 1 MiB of a head that never ends (one endless header line, or many complete header
 * lines) to a router in its own process; each must get its 4xx and be closed, and the router's RSS
 * (VmRSS / VmHWM from /proc/PID/status) must stay within a bound far below 100 × 1 MiB.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import t from 'tap';
import { startChildRouter } from './helpers/child';

const CONNECTIONS = 100;
const MIB = 1024 * 1024;
const GROWTH_LIMIT = 40 * MIB;

/** A field of /proc/PID/status in bytes (kB there), or null if absent. */
function procStatus(pid: number, field: 'VmRSS' | 'VmHWM'): number | null {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'latin1'));
  return m === null ? null : Number(m[1]) * 1024;
}

/** Resets VmHWM to the current RSS (clear_refs 5); false where that is not allowed. */
function resetPeak(pid: number): boolean {
  try {
    fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/**
 * 1 MiB of head that never ends: an endless header line, or 999 header lines of 1049 bytes without
 * the empty line (each line, and their count with Host, within Heroku's per-line and count limits).
 */
function unfinishedHead(kind: 'endless-line' | 'many-lines'): Buffer {
  const start = 'GET / HTTP/1.1\r\nHost: a.test\r\n';
  if (kind === 'endless-line') return Buffer.from(start + 'X-Endless: ' + 'v'.repeat(MIB - start.length - 11), 'latin1');
  const line = `X-Field: ${'v'.repeat(1038)}\r\n`;
  return Buffer.from(start + line.repeat(Math.min(999, Math.floor((MIB - start.length) / line.length))), 'latin1');
}

interface Outcome {
  status: number;
  closed: boolean;
}

/** Sends `payload`, then waits for the router's answer and its close (or `ms`). */
function attack(port: number, payload: Buffer, ms: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let got = '';
    const done = (closed: boolean): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3}) /.exec(got)?.[1] ?? 0), closed });
    };
    const timer = setTimeout(() => done(false), ms);
    sock.on('data', (d: Buffer) => (got += d.toString('latin1')));
    sock.on('end', () => done(true));
    sock.on('close', () => done(true));
    sock.on('error', () => undefined);
    sock.write(payload);
  });
}

for (const kind of ['endless-line', 'many-lines'] as const) {
  t.test(`${CONNECTIONS} connections × 1 MiB of unfinished head (${kind}): each refused, router RSS bounded`, async (t) => {
    const router = await startChildRouter({ a: { hosts: ['a.test'], backends: [{ dyno: 'web.1', address: '127.0.0.1:1' }] } }, {});
    t.teardown(() => router.close());
    const payload = unfinishedHead(kind);
    await new Promise((r) => setTimeout(r, 300)); // let the child settle after start-up
    const baseline = procStatus(router.pid, 'VmRSS')!;
    const hwm = resetPeak(router.pid);
    let peak = baseline;
    const sampler = setInterval(() => {
      const v = procStatus(router.pid, 'VmRSS');
      if (v !== null) peak = Math.max(peak, v);
    }, 20);
    const started = Date.now();
    const outcomes = await Promise.all(Array.from({ length: CONNECTIONS }, () => attack(router.port, payload, 20_000)));
    clearInterval(sampler);
    const seconds = (Date.now() - started) / 1000;
    if (hwm) peak = Math.max(peak, procStatus(router.pid, 'VmHWM')!);
    const after = procStatus(router.pid, 'VmRSS')!;

    const statuses = new Map<number, number>();
    for (const o of outcomes) statuses.set(o.status, (statuses.get(o.status) ?? 0) + 1);
    t.same([...statuses.keys()], [431], `every connection got 431 (${JSON.stringify(Object.fromEntries(statuses))}) in ${seconds.toFixed(1)} s`);
    t.equal(outcomes.filter((o) => o.closed).length, CONNECTIONS, 'every connection was closed by the router');
    const growth = peak - baseline;
    t.ok(
      growth < GROWTH_LIMIT,
      `router RSS peak grew by ${(growth / MIB).toFixed(1)} MiB (baseline ${(baseline / MIB).toFixed(0)} MiB, ${hwm ? 'VmHWM' : 'sampled VmRSS'}; ${((after - baseline) / MIB).toFixed(1)} MiB above baseline after)`,
    );
    const logged = (): number => router.logs.filter((l) => / status=431 /.test(l)).length;
    for (let waited = 0; logged() < CONNECTIONS && waited < 2000; waited += 50) await new Promise((r) => setTimeout(r, 50));
    t.equal(logged(), CONNECTIONS, 'one H26 line each');
  });
}
