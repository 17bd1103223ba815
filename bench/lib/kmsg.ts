/**
 * Kernel log records from /dev/kmsg. Their timestamps are the kernel's local clock in µs, which is
 * not always CLOCK_MONOTONIC (in the TCG guest it was off by a constant −30..+54 ms per boot), so
 * kmsgOffsetUs() calibrates it against process.hrtime by logging a marker line.
 */
import fs from 'node:fs';

function readRecords(fd: number, onRecord: (rec: string) => void): void {
  const buf = Buffer.alloc(8192);
  for (;;) {
    let n: number;
    try {
      n = fs.readSync(fd, buf, 0, buf.length, null);
    } catch {
      return; // EAGAIN: end of the log
    }
    onRecord(buf.toString('utf8', 0, n));
  }
}

/** kmsg clock − CLOCK_MONOTONIC, in µs (accurate to about the duration of one write). */
export function kmsgOffsetUs(): number {
  const marker = `manifold-clock-probe-${process.pid}-${Date.now()}`;
  const fd = fs.openSync('/dev/kmsg', fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
  try {
    const before = process.hrtime.bigint();
    fs.writeSync(fd, `<7>${marker}\n`);
    const after = process.hrtime.bigint();
    let stamp: number | undefined;
    readRecords(fd, (rec) => {
      if (rec.includes(marker)) stamp = Number(rec.split(';')[0]!.split(',')[2]);
    });
    if (stamp === undefined) throw new Error('kmsg marker not found');
    return stamp - Number((before + after) / 2n / 1000n);
  } finally {
    fs.closeSync(fd);
  }
}

/** kmsg-clock µs timestamps of every OOM-kill record in the kernel log (subtract kmsgOffsetUs()). */
export function oomKillTimestampsUs(): number[] {
  let fd: number;
  try {
    fd = fs.openSync('/dev/kmsg', fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch {
    return [];
  }
  const found: number[] = [];
  readRecords(fd, (rec) => {
    if (/Killed process/.test(rec)) found.push(Number(rec.split(';')[0]!.split(',')[2]));
  });
  fs.closeSync(fd);
  return found;
}
