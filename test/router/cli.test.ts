/**
 * `manifold router` as a process: routes file loaded, log lines on stdout, reload on file change
 * and on SIGHUP without dropping the client connection, a bad file keeps the old table.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { RawClient } from './helpers/client';
import { FakeDyno, okResponse } from './helpers/fake-dyno';

const CLI = path.join(__dirname, 'helpers', 'run-router-cli.js');

interface Proc {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  waitErr(re: RegExp, ms?: number): Promise<RegExpMatchArray>;
  waitOut(re: RegExp, ms?: number): Promise<RegExpMatchArray>;
}

function run(args: string[]): Proc {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const p: Proc = {
    child,
    stdout: '',
    stderr: '',
    waitErr: (re, ms = 5000) => waitText(() => p.stderr, re, ms),
    waitOut: (re, ms = 5000) => waitText(() => p.stdout, re, ms),
  };
  child.stdout!.on('data', (d: Buffer) => (p.stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (p.stderr += d.toString()));
  return p;
}

async function waitText(get: () => string, re: RegExp, ms: number): Promise<RegExpMatchArray> {
  const deadline = Date.now() + ms;
  for (;;) {
    const m = get().match(re);
    if (m) return m;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${re}; got: ${get()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const routes = (address: string): string => JSON.stringify({ apps: { a: { hosts: ['a.test'], backends: [{ dyno: 'web.1', address }] } } });

t.test('routes reload on change and SIGHUP without dropping connections', async (t) => {
  const one = await FakeDyno.start(() => okResponse('one'));
  const two = await FakeDyno.start(() => okResponse('two'));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'router-cli-'));
  const file = path.join(dir, 'routes.json');
  fs.writeFileSync(file, routes(one.address));
  const p = run(['router', '--listen', '127.0.0.1:0', '--routes', file, '--timeouts', 'first-byte=2s,idle=10s']);
  t.teardown(async () => {
    p.child.kill('SIGKILL');
    await one.close();
    await two.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const port = Number((await p.waitErr(/listening on 127\.0\.0\.1:(\d+)/))[1]);
  const c = await RawClient.connect(port);
  c.write('GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n');
  t.equal((await c.readResponse()).body.toString(), 'one');
  const line = (await p.waitOut(/.*status=200.*\n/))[0];
  t.match(line, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z heroku\[router\]: at=info method=GET path="\/x" host=a\.test request_id=[0-9a-f-]{36} fwd="127\.0\.0\.1" dyno=web\.1 connect=\d+ms service=\d+ms status=200 bytes=\d+ protocol=http\n$/);

  // Atomic replace (write + rename), as editors and config tools do.
  fs.writeFileSync(`${file}.tmp`, routes(two.address));
  fs.renameSync(`${file}.tmp`, file);
  await p.waitErr(/routes reloaded/);
  c.write('GET /y HTTP/1.1\r\nHost: a.test\r\n\r\n');
  t.equal((await c.readResponse()).body.toString(), 'two', 'same client connection, new table');

  fs.writeFileSync(file, '{ not json');
  await p.waitErr(/routes not reloaded, keeping the previous table: .*not valid JSON/);
  c.write('GET /z HTTP/1.1\r\nHost: a.test\r\n\r\n');
  t.equal((await c.readResponse()).body.toString(), 'two', 'bad file: old table kept');

  fs.writeFileSync(file, routes(one.address));
  await p.waitErr(/routes reloaded[^]*routes reloaded/);
  const reloads = (p.stderr.match(/routes reloaded/g) ?? []).length;
  p.child.kill('SIGHUP');
  await waitText(() => String((p.stderr.match(/routes reloaded/g) ?? []).length), new RegExp(`^${reloads + 1}$`), 3000);
  t.pass('SIGHUP reloads');
  c.write('GET /w HTTP/1.1\r\nHost: a.test\r\n\r\n');
  t.equal((await c.readResponse()).body.toString(), 'one');
  t.notOk(c.closed, 'client connection survived every reload');
  c.close();

  const exited = new Promise<number | null>((resolve) => p.child.once('exit', (code) => resolve(code)));
  p.child.kill('SIGTERM');
  t.equal(await exited, 0, 'SIGTERM: clean exit');
});

t.test('bad arguments exit 2 with one line on stderr', async (t) => {
  const p = run(['router', '--listen', '127.0.0.1:0', '--routes', '/nonexistent/routes.json']);
  const code = await new Promise<number | null>((resolve) => p.child.once('exit', resolve));
  t.equal(code, 2);
  t.match(p.stderr, /manifold router: cannot read \/nonexistent\/routes\.json/);
  const q = run(['router', '--listen', '127.0.0.1:0', '--routes', '/dev/null', '--timeouts', 'first-byte=soon']);
  t.equal(await new Promise<number | null>((resolve) => q.child.once('exit', resolve)), 2);
  t.match(q.stderr, /bad timeout "first-byte=soon"/);
});

/** Routes files the router must refuse (issue 12), with the line it must print. */
const BAD_FILES: readonly [string, string, RegExp][] = [
  ['apps is an array', '{"apps": []}', /routes file: apps: expected an object of app name → route, got an array/],
  ['crashed is a string', JSON.stringify({ apps: { a: { hosts: ['a.test'], crashed: 'false' } } }), /routes file: apps\.a\.crashed: expected a boolean or \{"message": "\.\.\."\}, got "false"/],
  ['maintenance is "yes"', JSON.stringify({ apps: { a: { hosts: ['a.test'], maintenance: 'yes' } } }), /routes file: apps\.a\.maintenance: expected a boolean, got "yes"/],
  ['host with a path', JSON.stringify({ apps: { a: { hosts: ['a.example.com/x'] } } }), /routes file: apps\.a\.hosts\[0\]: bad hostname "a\.example\.com\/x"/],
  ['backends is a string', JSON.stringify({ apps: { a: { hosts: ['a.test'], backends: 'x' } } }), /routes file: apps\.a\.backends: expected an array, got "x"/],
  ['negative port', JSON.stringify({ apps: { a: { hosts: ['a.test'], backends: [{ dyno: 'web.1', address: '127.0.0.1:-80' }] } } }), /routes file: apps\.a\.backends\[0\]\.address: bad address "127\.0\.0\.1:-80"/],
  ['non-integer port', JSON.stringify({ apps: { a: { hosts: ['a.test'], backends: [{ dyno: 'web.1', address: '127.0.0.1:80.5' }] } } }), /routes file: apps\.a\.backends\[0\]\.address: bad address "127\.0\.0\.1:80\.5"/],
  ['bad address', JSON.stringify({ apps: { a: { hosts: ['a.test'], backends: [{ dyno: 'web.1', address: 'http://10.0.0.1' }] } } }), /routes file: apps\.a\.backends\[0\]\.address: bad address "http:\/\/10\.0\.0\.1"/],
  ['host claimed twice', JSON.stringify({ apps: { a: { hosts: ['a.test'] }, b: { hosts: ['A.test'] } } }), /routes file: apps\.b\.hosts\[0\]: host a\.test is claimed by both a and b/],
];

t.test('a bad routes file at start: exit 2, one line on stderr naming the JSON path', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'router-cli-bad-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  await Promise.all(
    BAD_FILES.map(async ([what, text, re], i) => {
      const file = path.join(dir, `routes-${i}.json`);
      fs.writeFileSync(file, text);
      const p = run(['router', '--listen', '127.0.0.1:0', '--routes', file]);
      const code = await new Promise<number | null>((resolve) => p.child.once('exit', resolve));
      t.equal(code, 2, `${what}: exit 2`);
      t.match(p.stderr, re, `${what}: the message`);
      t.equal(p.stderr.trim().split('\n').length, 1, `${what}: one line`);
      t.notMatch(p.stderr, /listening/, `${what}: never listened`);
    }),
  );
});

t.test('a bad routes file at reload: error logged, the old table keeps routing', async (t) => {
  const one = await FakeDyno.start(() => okResponse('one'));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'router-cli-bad-reload-'));
  const file = path.join(dir, 'routes.json');
  fs.writeFileSync(file, routes(one.address));
  const p = run(['router', '--listen', '127.0.0.1:0', '--routes', file]);
  t.teardown(async () => {
    p.child.kill('SIGKILL');
    await one.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const port = Number((await p.waitErr(/listening on 127\.0\.0\.1:(\d+)/))[1]);
  const c = await RawClient.connect(port);
  t.teardown(() => c.close());
  for (const [what, text, re] of BAD_FILES) {
    const refusals = (p.stderr.match(/routes not reloaded/g) ?? []).length;
    fs.writeFileSync(`${file}.tmp`, text);
    fs.renameSync(`${file}.tmp`, file);
    await waitText(() => String((p.stderr.match(/routes not reloaded/g) ?? []).length), new RegExp(`^${refusals + 1}$`), 5000);
    const line = p.stderr.trim().split('\n').pop()!;
    t.match(line, /^manifold router: routes not reloaded, keeping the previous table: routes file: /, `${what}: logged`);
    t.match(line, re, `${what}: the message`);
    c.write('GET / HTTP/1.1\r\nHost: a.test\r\n\r\n');
    t.equal((await c.readResponse()).body.toString(), 'one', `${what}: old table still routes`);
  }
  t.notMatch(p.stderr, /routes reloaded/, 'no bad file was applied');
});

for (const workers of ['1', '2']) {
  t.test(`--workers ${workers}: a burst of requests gives one whole, prefixed stdout line each`, async (t) => {
    const dyno = await FakeDyno.start(() => okResponse('ok'));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'router-cli-'));
    const file = path.join(dir, 'routes.json');
    fs.writeFileSync(file, routes(dyno.address));
    const p = run(['router', '--listen', '127.0.0.1:0', '--routes', file, '--workers', workers]);
    t.teardown(async () => {
      p.child.kill('SIGKILL');
      await dyno.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    const port = Number((await p.waitErr(/listening on 127\.0\.0\.1:(\d+)/))[1]);
    const n = 300;
    const clients = await Promise.all(Array.from({ length: 20 }, () => RawClient.connect(port)));
    await Promise.all(
      clients.map(async (c, ci) => {
        for (let i = ci; i < n; i += clients.length) {
          c.write(`GET /burst/${i}/${'x'.repeat(i % 7 === 0 ? 3000 : 10)} HTTP/1.1\r\nHost: a.test\r\n\r\n`);
          await c.readResponse();
        }
        c.close();
      }),
    );
    await waitText(() => String(p.stdout.split('\n').filter((l) => l.includes('path="/burst/')).length), new RegExp(`^${n}$`), 5000);
    const lines = p.stdout.split('\n').filter((l) => l.length > 0);
    const whole = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z heroku\[router\]: at=info method=GET path="\/burst\/(\d+)\/x+" host=a\.test request_id=[0-9a-f-]{36} fwd="127\.0\.0\.1" dyno=web\.1 connect=\d+ms service=\d+ms status=200 bytes=\d+ protocol=http$/;
    const seen = lines.map((l) => l.match(whole)?.[1]);
    t.equal(lines.length, n, 'one line per request, nothing else on stdout');
    t.ok(seen.every((s) => s !== undefined), 'every line whole and well-formed');
    t.equal(new Set(seen).size, n, 'every request logged once');
    const exited = new Promise<number | null>((resolve) => p.child.once('exit', (code) => resolve(code)));
    p.child.kill('SIGTERM');
    t.equal(await exited, 0, 'SIGTERM: clean exit');
  });
}
