import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { formatAge, formatPs, formatReleases, formatScale, joinCommand } from '../../src/cli/format';
import { formatLine, formatTimestamp, LineSplitter, LogBuffer, splitChunks } from '../../src/manifold/logs/log-buffer';
import { parseDuration, restartDelay, restartSchedule, cycleDelay, DEFAULT_POLICY } from '../../src/manifold/policy';
import { parseProcfile, ProcfileError } from '../../src/manifold/procfile';
import { applyScale, parseScaleArgs, ScaleSyntaxError } from '../../src/manifold/scale-syntax';
import { appNameFromDir, checkAppName, checkConfigKey, parseConfigPairs } from '../../src/manifold/validate';
import type { PsResult } from '../../src/manifold/api/protocol';
import { userNameOf } from '../../src/manifold/author';

t.test('Procfile: accepted lines', async (t) => {
  const cases: [string, Record<string, string>][] = [
    ['web: node server.js', { web: 'node server.js' }],
    ['web:node server.js\n', { web: 'node server.js' }],
    ['# comment\n\nweb: a\r\nworker_2: b -p $PORT\n', { web: 'a', worker_2: 'b -p $PORT' }],
    ['urgent-worker:   bundle exec x: y', { 'urgent-worker': 'bundle exec x: y' }],
    ['\uFEFFweb: a', { web: 'a' }],
    ['', {}],
  ];
  for (const [text, want] of cases) t.same(parseProcfile(text), want, JSON.stringify(text));
});

t.test('Procfile: every bad line is a one-line error naming the line', async (t) => {
  const cases: [string, RegExp][] = [
    ['web node server.js', /line 1: expected 'TYPE: COMMAND'/],
    ['web: a\nweb: b', /line 2: process type 'web' is defined twice/],
    ['we b: a', /line 1: expected/],
    ['web.1: a', /line 1: invalid process type 'web.1'/],
    [': a', /line 1: missing process type/],
    ['web:   ', /line 1: process type 'web' has no command/],
    ['run: a', /reserved for one-off dynos/],
    [`${'x'.repeat(31)}: a`, /longer than 30/],
  ];
  for (const [text, re] of cases) {
    t.throws(() => parseProcfile(text), re, JSON.stringify(text));
    t.throws(() => parseProcfile(text), ProcfileError);
  }
});

t.test('scale syntax', async (t) => {
  t.same(parseScaleArgs(['web=2']), [{ type: 'web', op: '=', quantity: 2, size: null }]);
  t.same(parseScaleArgs(['web+1', 'worker-2']), [
    { type: 'web', op: '+', quantity: 1, size: null },
    { type: 'worker', op: '-', quantity: 2, size: null },
  ]);
  t.same(parseScaleArgs(['web=2:standard-2x']), [{ type: 'web', op: '=', quantity: 2, size: 'standard-2x' }]);
  t.same(parseScaleArgs(['web=1:2X']), [{ type: 'web', op: '=', quantity: 1, size: 'standard-2x' }]);
  t.same(parseScaleArgs(['web:performance-m']), [{ type: 'web', op: null, quantity: null, size: 'performance-m' }]);
  t.same(parseScaleArgs(['my-worker=3']), [{ type: 'my-worker', op: '=', quantity: 3, size: null }]);
  for (const bad of [[], ['web'], ['web=two'], ['=2'], ['web=2:huge'], ['web==2'], ['web=2', 'web=3'], ['web=-1']]) {
    t.throws(() => parseScaleArgs(bad), ScaleSyntaxError, JSON.stringify(bad));
  }
  const cur = { web: { quantity: 2, size: 'standard-2x' } };
  t.same(applyScale(cur, parseScaleArgs(['web=3']), ['web', 'worker']), { web: { quantity: 3, size: 'standard-2x' } }, 'bare count keeps the size');
  t.same(applyScale(cur, parseScaleArgs(['web+1', 'worker=1']), ['web', 'worker']), {
    web: { quantity: 3, size: 'standard-2x' },
    worker: { quantity: 1, size: 'standard-1x' },
  });
  t.throws(() => applyScale(cur, parseScaleArgs(['web-3']), ['web']), /below 0/);
  t.throws(() => applyScale(cur, parseScaleArgs(['clock=1']), ['web']), /no process type 'clock'/);
  t.throws(() => applyScale(cur, parseScaleArgs(['web=101']), ['web']), /at most 100/);
});

t.test('restart policy: immediate, then 20 s doubling up to 20 min', async (t) => {
  const p = DEFAULT_POLICY.restart;
  t.same(restartSchedule(9, p), [0, 20_000, 40_000, 80_000, 160_000, 320_000, 640_000, 1_200_000, 1_200_000]);
  t.equal(restartDelay(1000, p), 1_200_000);
  t.same(restartSchedule(4, { initialMs: 100, factor: 3, maxMs: 500, stableMs: 0 }), [0, 100, 300, 500]);
  t.equal(cycleDelay(DEFAULT_POLICY, () => 0), 24 * 3600_000);
  t.equal(cycleDelay(DEFAULT_POLICY, () => 0.999999), 24 * 3600_000 + Math.floor(0.999999 * 216 * 60_000));
  t.equal(cycleDelay({ ...DEFAULT_POLICY, cycleMs: 0 }), null);
  t.equal(parseDuration('500ms'), 500);
  t.equal(parseDuration('20s'), 20_000);
  t.equal(parseDuration('1.5m'), 90_000);
  t.equal(parseDuration('24h'), 86_400_000);
  t.throws(() => parseDuration('soon'));
});

t.test('log buffer: format, ring of 1500, filters, subscribers', async (t) => {
  t.equal(formatTimestamp(Date.UTC(2010, 8, 16, 15, 13, 46, 677) * 1000 + 20), '2010-09-16T15:13:46.677020+00:00');
  const b = new LogBuffer();
  const seen: string[] = [];
  const off = b.subscribe((l) => seen.push(l.message));
  for (let i = 0; i < 1600; i++) b.push(i % 2 ? 'app' : 'manifold', i % 3 ? 'web.1' : 'worker.2', `m${i}`);
  off();
  b.push('app', 'web.1', 'after');
  t.equal(b.size, 1500);
  t.equal(seen.length, 1600);
  const all = b.tail(1500);
  t.equal(all[0]!.message, 'm101');
  t.equal(all.at(-1)!.message, 'after');
  t.ok(all.every((l, i) => i === 0 || l.seq > all[i - 1]!.seq && l.time >= all[i - 1]!.time), 'ordered');
  t.same(b.tail(2, { dyno: 'worker' }).map((l) => l.dyno), ['worker.2', 'worker.2']);
  t.same(b.tail(3, { source: 'app', dyno: 'web.1' }).map((l) => `${l.source}[${l.dyno}]`), ['app[web.1]', 'app[web.1]', 'app[web.1]']);
  t.match(formatLine(b.tail(1)[0]!), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00 app\[web\.1\]: after$/);
});

t.test('log lines over 10 000 bytes are split; stream splitting', async (t) => {
  t.same(splitChunks('abc'), ['abc']);
  const long = 'x'.repeat(25_000);
  t.same(splitChunks(long).map((c) => c.length), [10_000, 10_000, 5_000]);
  const utf = 'é'.repeat(6000); // 12 000 bytes
  const parts = splitChunks(utf);
  t.ok(parts.every((p) => Buffer.byteLength(p) <= 10_000), 'chunks within limit');
  t.equal(parts.join(''), utf, 'no character cut');
  const lines: string[] = [];
  const s = new LineSplitter((l) => lines.push(l));
  s.write(Buffer.from('one\r\ntw'));
  s.write(Buffer.from('o\nthree'));
  s.write(Buffer.from('x'.repeat(20_005)));
  s.write(Buffer.from('\n'));
  s.write(Buffer.from('tail'));
  s.end();
  t.same(lines.map((l) => (l.length > 20 ? `${l.slice(0, 5)}…${l.length}` : l)), ['one', 'two', 'three…10000', 'xxxxx…10000', 'x'.repeat(10), 'tail']);
});

t.test('names and config vars', async (t) => {
  t.equal(checkAppName('hello'), 'hello');
  for (const bad of ['', 'Hello', '1app', 'a_b', 'a'.repeat(31), 'app-', 'a b']) t.throws(() => checkAppName(bad), /invalid app name/, bad);
  t.equal(appNameFromDir('Hello_World'), 'hello-world');
  t.equal(appNameFromDir('2fast'), 'fast');
  for (const bad of ['1A', 'A-B', '__X', 'HEROKU_X', 'PORT', 'DYNO', 'a b', '']) t.throws(() => checkConfigKey(bad), /config var/, bad);
  t.same(parseConfigPairs(['A=1', 'B=x=y', 'C=']), { A: '1', B: 'x=y', C: '' });
  t.throws(() => parseConfigPairs(['=1']));
  t.throws(() => parseConfigPairs(['A']));
});

t.test('CLI text output', async (t) => {
  const now = new Date(2026, 10, 26, 10, 3, 0).getTime();
  const since = new Date(2026, 10, 26, 10, 0, 0).getTime();
  const base = { command: 'node server.js', size: 'Standard-1X', release: 2, pid: 1, address: null, crashes: 0, restartAt: null, reason: null, oneoff: false, since };
  const ps: PsResult = {
    app: 'hello',
    now,
    types: { web: { command: 'node server.js', size: 'Standard-1X' }, worker: { command: 'node w.js', size: 'Standard-2X' } },
    dynos: [
      { ...base, name: 'web.1', type: 'web', state: 'up' },
      { ...base, name: 'web.2', type: 'web', state: 'crashed', crashes: 2, reason: 'exited with status 1', restartAt: now + 40_000 },
      { ...base, name: 'worker.1', type: 'worker', state: 'starting', command: 'node w.js', size: 'Standard-2X' },
      { ...base, name: 'run.1', type: 'run', state: 'up', command: 'bash', oneoff: true },
    ],
  };
  t.equal(
    formatPs(ps),
    [
      '=== web (Standard-1X): `node server.js`',
      'web.1: up 2026/11/26 10:00:00 (~ 3m ago)',
      'web.2: crashed 2026/11/26 10:00:00 (~ 3m ago): exited with status 1, next restart 2026/11/26 10:03:40 (in 40s)',
      '',
      '=== worker (Standard-2X): `node w.js`',
      'worker.1: starting 2026/11/26 10:00:00 (~ 3m ago)',
      '',
      '=== run: one-off processes',
      'run.1 (Standard-1X): up 2026/11/26 10:00:00 (~ 3m ago): `bash`',
    ].join('\n'),
  );
  t.equal(formatPs({ app: 'x', now, types: {}, dynos: [] }), 'No dynos on x');
  t.equal(formatScale([{ type: 'web', quantity: 2, size: 'Standard-1X' }]), 'Scaling dynos... done, now running web at 2:Standard-1X');
  t.equal(formatAge(8 * 3600_000 + 5), '8h');
  t.equal(joinCommand(['echo $HOME']), 'echo $HOME');
  t.equal(joinCommand(['echo', 'a b', "it's"]), `echo 'a b' 'it'\\''s'`);

  // the author column (Heroku's), `-` for a release stored before authors were kept
  const rel = (version: number, description: string, by?: string) => ({ version, description, createdAt: since, current: version === 3, ...(by ? { by } : {}) });
  t.equal(
    formatReleases('hello', [rel(3, 'Rollback to v1', 'key alice'), rel(2, 'Set A config vars', 'root'), rel(1, 'Initial release')], now),
    [
      '=== hello Releases',
      'v3  Rollback to v1     key alice  2026/11/26 10:00:00 (~ 3m ago)',
      'v2  Set A config vars  root       2026/11/26 10:00:00 (~ 3m ago)',
      'v1  Initial release    -          2026/11/26 10:00:00 (~ 3m ago)',
    ].join('\n'),
  );
});

t.test('release author: the uid\'s name in the passwd file, else `uid N`', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-passwd-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'passwd');
  fs.writeFileSync(file, 'root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\nbad\x1bname:x:1001:1001::/:/bin/sh\n');
  t.equal(userNameOf(0, file), 'root');
  t.equal(userNameOf(1000, file), 'alice');
  t.equal(userNameOf(10, file), 'uid 10', 'no entry');
  t.equal(userNameOf(1001, file), 'uid 1001', 'a name with a control character is not shown');
  t.equal(userNameOf(1000, path.join(dir, 'missing')), 'uid 1000', 'no file');
  t.equal(userNameOf(0), 'root', 'the real /etc/passwd');
});
