/** Kernel log records from /dev/kmsg, whose timestamps are CLOCK_MONOTONIC µs (as process.hrtime). */
import fs from 'node:fs';

/** Monotonic µs timestamps of every OOM-kill record currently in the kernel log. */
export function oomKillTimestampsUs(): number[] {
  let fd: number;
  try {
    fd = fs.openSync('/dev/kmsg', fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch {
    return [];
  }
  const found: number[] = [];
  const buf = Buffer.alloc(8192);
  for (;;) {
    let n: number;
    try {
      n = fs.readSync(fd, buf, 0, buf.length, null);
    } catch {
      break; // EAGAIN: end of the log
    }
    const rec = buf.toString('utf8', 0, n);
    if (/Memory cgroup out of memory: Killed process|oom-kill:/.test(rec) && /Killed process/.test(rec)) {
      found.push(Number(rec.split(';')[0]!.split(',')[2]));
    }
  }
  fs.closeSync(fd);
  return found;
}
