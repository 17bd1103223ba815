/** The runtime-metrics parsers, line formats and load damping, table-driven (no dynos). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { countRunnable, formatLoadLine, formatMemoryLine, MetricsError, parseFlatKeyed, sampleMemory, parseIds, parseProcIo, parseProcStatus, parseStatState } from '../../src/manifold/metrics/dyno-sample';
import { dampLoad, ZERO_LOAD } from '../../src/manifold/metrics/load-average';

const MB = 1024 * 1024;

t.test("lines in Heroku's format", async (t) => {
  const cases: { load: [number, number, number]; want: string }[] = [
    { load: [0, 0, 0], want: 'source=web.1 dyno=web.1-ab12 sample#load_avg_1m=0.00 sample#load_avg_5m=0.00 sample#load_avg_15m=0.00' },
    { load: [2.456, 1.0649, 0.994], want: 'source=web.1 dyno=web.1-ab12 sample#load_avg_1m=2.46 sample#load_avg_5m=1.06 sample#load_avg_15m=0.99' },
  ];
  for (const c of cases) t.equal(formatLoadLine('web.1', 'web.1-ab12', { avg1m: c.load[0], avg5m: c.load[1], avg15m: c.load[2] }), c.want);
  t.equal(
    formatMemoryLine('worker.2', 'worker.2-ff', { total: 21 * MB, rss: 18.5 * MB, cache: 2.5 * MB, swap: 0, pgpgin: 1234, pgpgout: 567 }, 512 * MB),
    'source=worker.2 dyno=worker.2-ff sample#memory_total=21.00MB sample#memory_rss=18.50MB sample#memory_cache=2.50MB sample#memory_swap=0.00MB sample#memory_pgpgin=1234pages sample#memory_pgpgout=567pages sample#memory_quota=512.00MB',
  );
  // MB are 2^20 bytes, two decimals, rounded
  t.match(formatMemoryLine('web.1', 'x', { total: 1_000_000, rss: 5243, cache: 0, swap: 0, pgpgin: 0, pgpgout: 0 }, 1024 * MB), /memory_total=0\.95MB sample#memory_rss=0\.01MB .*memory_quota=1024\.00MB$/);
});

t.test('parsers', async (t) => {
  const stat = parseFlatKeyed('anon 1048576\nfile 4096\npgfault 12\nbogus line here\n\n');
  t.same([...stat], [['anon', 1048576], ['file', 4096], ['pgfault', 12]]);
  const status = parseProcStatus('Name:\tdd\nVmRSS:\t   52000 kB\nRssAnon:\t   51200 kB\nRssFile:\t     700 kB\nRssShmem:\t     100 kB\nVmSwap:\t      8 kB\n');
  t.same(status, { rssAnon: 51200 * 1024, rssFile: 700 * 1024, rssShmem: 100 * 1024, swap: 8 * 1024 });
  t.same(parseProcStatus('Name:\tkthreadd\n'), { rssAnon: 0, rssFile: 0, rssShmem: 0, swap: 0 }, 'kernel threads have no memory fields');
  t.same(parseProcIo('rchar: 99\nwchar: 5\nread_bytes: 8192\nwrite_bytes: 4096\ncancelled_write_bytes: 0\n'), { readBytes: 8192, writeBytes: 4096 });
  const states: [string, string | undefined][] = [
    ['123 (sh) S 1 123 123 0', 'S'],
    ['9 (a) b) R 1 9', 'R'],
    ['77 (node (x)) D 1', 'D'],
    ['garbage', undefined],
  ];
  for (const [text, want] of states) t.equal(parseStatState(text), want, text);
  t.same(parseIds('12\n13\n\nx\n14\n'), [12, 13, 14]);
});

t.test('load damping follows the kernel', async (t) => {
  // one runnable task for a minute of 5 s samples: the 1-minute average reaches 1 − 1/e
  let l = ZERO_LOAD;
  for (let i = 0; i < 12; i++) l = dampLoad(l, 1, 5000);
  t.ok(Math.abs(l.avg1m - (1 - Math.exp(-1))) < 1e-9, `1m after 60 s of load 1: ${l.avg1m}`);
  t.ok(Math.abs(l.avg5m - (1 - Math.exp(-0.2))) < 1e-9, `5m: ${l.avg5m}`);
  t.ok(l.avg1m > l.avg5m && l.avg5m > l.avg15m, 'shorter averages move faster');
  // the kernel's fixed-point EXP_1 is 1884/2048 for one 5 s step: the same factor to 3 digits
  t.ok(Math.abs(dampLoad({ avg1m: 1, avg5m: 1, avg15m: 1 }, 0, 5000).avg1m - 1884 / 2048) < 1e-3);
  // one sample over a slipped 10 s equals two of 5 s
  const a = dampLoad(dampLoad(ZERO_LOAD, 3, 5000), 3, 5000);
  const b = dampLoad(ZERO_LOAD, 3, 10_000);
  t.ok(Math.abs(a.avg15m - b.avg15m) < 1e-12);
  t.same(dampLoad(l, 4, 0), l, 'no time passed: unchanged');
  t.same(dampLoad(l, Number.NaN, 5000), l, 'a bad count changes nothing');
});

t.test('readers: which file each field comes from (a directory shaped like a cgroup, this process in it)', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtm-cg-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const write = (f: string, c: string): void => fs.writeFileSync(path.join(dir, f), c);
  t.throws(() => sampleMemory(path.join(dir, 'gone')), new MetricsError('ENOCGROUP', `dyno cgroup ${path.join(dir, 'gone')} is gone`));
  write('cgroup.procs', '');
  t.throws(() => sampleMemory(dir), { code: 'ENOPROCS' }, 'an empty cgroup: the dyno is ending, no zero sample');
  write('cgroup.procs', `${process.pid}\n`);
  write('cgroup.threads', `${process.pid}\n`);
  // no memory.stat: this process's own /proc/PID/status
  const own = parseProcStatus(fs.readFileSync('/proc/self/status', 'utf8'));
  const p = sampleMemory(dir);
  t.equal(p.source, 'proc');
  t.same(p.notes, ['no-memory-controller', 'pgpg-from-proc-io']);
  t.ok(Math.abs(p.memory.rss - own.rssAnon) < 16 * MB, `rss ${p.memory.rss} is this process's RssAnon (${own.rssAnon})`);
  t.equal(p.memory.total, p.memory.rss + p.memory.cache + p.memory.swap);
  // the memory controller's files win
  write('memory.stat', 'anon 1048576\nfile 2097152\npgfault 9\npgpgin 10\npgpgout 5\n');
  write('memory.current', '4194304\n');
  write('memory.swap.current', '1048576\n');
  t.same(sampleMemory(dir), { source: 'cgroup', memory: { total: 5 * MB, rss: MB, cache: 2 * MB, swap: MB, pgpgin: 10, pgpgout: 5 }, notes: [] });
  // v2's memory.stat without pgpgin/pgpgout, and swap accounting off
  write('memory.stat', 'anon 1048576\nfile 2097152\n');
  fs.rmSync(path.join(dir, 'memory.swap.current'));
  const c = sampleMemory(dir);
  t.same(c.notes, ['no-swap-accounting', 'pgpg-from-proc-io']);
  t.equal(c.memory.swap, own.swap, "swap is the processes' VmSwap");
  t.equal(c.memory.total, 4 * MB + own.swap);
  // this thread is running while it counts itself
  t.equal(countRunnable(dir), 1);
});
