/**
 * Cluster mode's fan-out, slugs and isolation (issue 10, "What must work" 4, 5 and 8) on three netns
 * hosts: logs and ps through any API host gather every host, restart reaches the dyno wherever it
 * runs, one-offs (detached and attached: stdin, stdout, exit status) run through an API host, slugs
 * go to a second API host before deploy returns and never into etcd, and dynos reach neither other
 * hosts' dynos nor their cluster ports while the routers reach every dyno.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import type { Etcd3 } from 'etcd3';
import { fabricMissing, startFabric, type Fabric } from './helpers/fabric';
import { ClusterHosts, type HostDaemon } from './helpers/cluster-hosts';
import { etcdClient, hostLeftovers } from './helpers/cluster-checks';
import { startLoad } from './helpers/load';
import { keys, PREFIX } from '../../src/cluster/keys';
import { BIN, ROOT, runCli, sleep, waitFor } from '../manifold/helpers/daemon';

const HELLO = path.join(ROOT, 'examples/hello');
const HOST = 'hello.example.test';
const skip = process.getuid?.() !== 0 ? 'needs root (network namespaces, dynos)' : fabricMissing();

interface PsDyno {
  name: string;
  type: string;
  state: string;
  since: number;
  pid: number | null;
  address: string | null;
  oneoff: boolean;
  host?: string;
}

/** Every regular file under `dir` (relative path → size and sha256). */
function treeOf(dir: string): Record<string, { bytes: number; sha: string }> {
  const out: Record<string, { bytes: number; sha: string }> = {};
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        const b = fs.readFileSync(p);
        out[path.relative(dir, p)] = { bytes: b.length, sha: createHash('sha256').update(b).digest('hex') };
      }
    }
  };
  walk(dir);
  return out;
}

async function ps(d: HostDaemon): Promise<PsDyno[]> {
  const r = await d.cli('ps', '-a', 'hello', '--json');
  if (r.code !== 0) throw new Error(`ps failed: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { dynos: PsDyno[] }).dynos;
}

/** `manifold logs --tail` through one host, its output collected until stop(). */
function tailLogs(d: HostDaemon): { out: () => string; stop: () => void } {
  const child = spawn(process.execPath, [BIN, 'logs', '-a', 'hello', '--tail', '-n', '0'], { env: { ...process.env, MANIFOLD_SOCKET: d.socket }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (out += s));
  return { out: () => out, stop: () => child.kill('SIGTERM') };
}

/** Code run inside a dyno: one TCP connect per target, `ok` or the error code, within 2 s each. */
const CONNECT_SCRIPT = `
const net = require('node:net');
const targets = JSON.parse(process.argv[1]);
Promise.all(targets.map((t) => new Promise((resolve) => {
  const [host, port] = t.split(':');
  const s = net.connect({ host, port: Number(port) });
  const done = (r) => { s.destroy(); resolve([t, r]); };
  s.setTimeout(2000, () => done('timeout'));
  s.once('connect', () => done('ok'));
  s.once('error', (e) => done(e.code || e.message));
}))).then((r) => console.log('RESULT ' + JSON.stringify(Object.fromEntries(r))));
`;

t.test('fan-out, slugs and isolation on three netns hosts', { skip, timeout: 300_000 }, async (t) => {
  const fabric: Fabric = await startFabric(t, { hosts: 3 });
  const cluster = new ClusterHosts(fabric);
  t.teardown(() => cluster.stop());
  const client: Etcd3 = etcdClient(fabric);
  t.teardown(() => client.close());
  // the default TTL (10 s): this test is about placement staying put, not about detecting a lost host
  const h1 = cluster.add('h1', { hostTtl: '10s' });
  const h2 = cluster.add('h2', { hostTtl: '10s' });
  const h3 = cluster.add('h3', { roles: 'dynos,scheduler', hostTtl: '10s' });
  await Promise.all([h1.start(), h2.start(), h3.start()]);
  let sha = '';

  await t.test('deploy through h1: the slug is on h2 when it returns, never in etcd', async (t) => {
    t.equal((await h1.cli('apps:create', 'hello')).code, 0);
    const dep = await h1.cli('deploy', HELLO, '-a', 'hello');
    t.equal(dep.code, 0, dep.stderr);
    const slugs = await client.getAll().prefix(`${PREFIX}slugs/`).strings();
    const names = Object.keys(slugs);
    t.equal(names.length, 1, 'one slug key');
    sha = names[0]!.slice(`${PREFIX}slugs/`.length);
    t.match(sha, /^[0-9a-f]{64}$/);
    t.ok(fs.existsSync(path.join(h2.stateDir, 'slugs', sha)), 'h2 (the second API host) holds the slug already');
    t.ok(fs.existsSync(path.join(h1.stateDir, 'slugs', sha)), 'h1 holds it');
    t.notOk(fs.existsSync(path.join(h3.stateDir, 'slugs', sha)), 'h3 has no copy before it runs a dyno');
    const rec = JSON.parse(slugs[keys.slug(sha)]!) as { bytes: number; holders: string[] };
    t.same([...rec.holders].sort(), ['h1', 'h2'], 'holders h1 and h2');
    const onH1 = treeOf(path.join(h1.stateDir, 'slugs', sha));
    t.same(treeOf(path.join(h2.stateDir, 'slugs', sha)), onH1, 'h2\'s copy has the same files, byte for byte');
    const slugBytes = Object.values(onH1).reduce((n, f) => n + f.bytes, 0);
    t.ok(Object.keys(onH1).some((k) => k.endsWith('server.js')) && slugBytes > 1000, `the slug holds the app (${Object.keys(onH1).length} files, ${slugBytes} bytes)`);
    // no value in etcd is anywhere near a slug's size
    const all = await client.getAll().prefix(PREFIX).buffers();
    const biggest = Math.max(...Object.values(all).map((b) => b.length));
    t.ok(biggest < Math.min(slugBytes, 16 * 1024), `largest etcd value ${biggest} bytes`);
  });

  let dynos: PsDyno[] = [];
  await t.test('scale through h2 spreads over the hosts; h3 fetches the slug to run its dyno', async (t) => {
    const sc = await h2.cli('ps:scale', 'web=3', 'worker=2', '-a', 'hello');
    t.equal(sc.code, 0, sc.stderr);
    dynos = await waitFor('5 dynos up', async () => {
      const list = await ps(h2);
      return list.length === 5 && list.every((d) => d.state === 'up') ? list : undefined;
    }, 60_000, 250);
    t.equal(new Set(dynos.filter((d) => d.type === 'web').map((d) => d.host)).size, 3, 'a web dyno on each host');
    t.ok(fs.existsSync(path.join(h3.stateDir, 'slugs', sha)), 'h3 holds the slug now');
  });

  await t.test('ps through h2 lists every host', async (t) => {
    const list = await ps(h2);
    t.same(new Set(list.map((d) => d.host)), new Set(['h1', 'h2', 'h3']), 'host field on every dyno, all three hosts');
    const text = await h2.cli('ps', '-a', 'hello');
    t.equal(text.code, 0, text.stderr);
    for (const d of list) t.match(text.stdout, new RegExp(`${d.name.replace('.', '\\.')}: up .* on ${d.host ?? '?'}`), `${d.name} on ${d.host ?? '?'}`);
    const through3 = await h3.cli('ps', '-a', 'hello');
    t.not(through3.code, 0, 'h3 has no api role: its socket refuses or is absent');
  });

  await t.test('logs through h1 gather every host', async (t) => {
    // workers beat every 5 s; the web dynos said "listening" when they started
    await sleep(5500);
    const r = await h1.cli('logs', '-a', 'hello', '-n', '500');
    t.equal(r.code, 0, r.stderr);
    for (const d of dynos) {
      const what = d.type === 'web' ? 'listening on port' : 'heartbeat';
      t.match(r.stdout, new RegExp(`app\\[${d.name.replace('.', '\\.')}\\]: .*${what}`), `${d.name} (on ${d.host ?? '?'}): ${what}`);
    }
  });

  await t.test('logs --tail through h2 streams a line of a dyno on h3', async (t) => {
    const onH3 = dynos.find((d) => d.host === 'h3' && d.type === 'web');
    if (!onH3) return t.fail('no web dyno on h3');
    const tail = tailLogs(h2);
    t.teardown(tail.stop);
    await sleep(1000); // the tail's streams to every host are open
    const r = await h1.cli('restart', onH3.name, '-a', 'hello');
    t.equal(r.code, 0, r.stderr);
    const re = new RegExp(`app\\[${onH3.name.replace('.', '\\.')}\\]: .*listening on port`);
    await waitFor(`a "listening" line of ${onH3.name} in the tail`, async () => re.test(tail.out()), 20_000, 100).catch(() => undefined);
    t.match(tail.out(), re, `the tail through h2 shows ${onH3.name} (on h3) starting again`);
    tail.stop();
    await waitFor('all up again', async () => ((await ps(h1)).every((d) => d.state === 'up') ? true : undefined), 30_000, 250);
  });

  await t.test('restart web.2 through h1 restarts it wherever it runs, nothing else', async (t) => {
    const before = await ps(h1);
    const w2 = before.find((d) => d.name === 'web.2');
    if (!w2) return t.fail('no web.2');
    const r = await h1.cli('restart', 'web.2', '-a', 'hello');
    t.equal(r.code, 0, r.stderr);
    const after = await waitFor('web.2 replaced and up', async () => {
      const now = await ps(h1);
      const n = now.find((d) => d.name === 'web.2');
      return n && n.state === 'up' && n.pid !== w2.pid && n.since !== w2.since ? now : undefined;
    }, 30_000, 250);
    t.equal(after.find((d) => d.name === 'web.2')?.host, w2.host, `web.2 restarted on its host ${w2.host ?? '?'}`);
    for (const d of before.filter((x) => x.name !== 'web.2')) {
      const n = after.find((x) => x.name === d.name);
      t.same([n?.pid, n?.since, n?.host], [d.pid, d.since, d.host], `${d.name} untouched`);
    }
  });

  await t.test('ps:stop through h2 reaches the dyno on h3; unknown dynos are refused', async (t) => {
    const before = await ps(h2);
    const target = before.find((d) => d.host === 'h3' && !d.oneoff);
    if (!target) return t.fail('no dyno on h3');
    const r = await h2.cli('ps:stop', target.name, '-a', 'hello');
    t.equal(r.code, 0, r.stderr);
    const after = await waitFor(`${target.name} started again`, async () => {
      const now = await ps(h2);
      const n = now.find((d) => d.name === target.name);
      return n && n.state === 'up' && n.pid !== target.pid ? now : undefined;
    }, 30_000, 250);
    for (const d of before.filter((x) => x.name !== target.name)) {
      const n = after.find((x) => x.name === d.name);
      t.same([n?.pid, n?.host], [d.pid, d.host], `${d.name} untouched`);
    }
    for (const [cmd, re] of [[['restart', 'web.9'], /no such dyno: web\.9/], [['ps:stop', 'clock'], /no such process type: clock/]] as const) {
      const bad = await h1.cli(...cmd, '-a', 'hello');
      t.not(bad.code, 0, `${cmd.join(' ')} refused`);
      t.match(bad.stderr, re);
    }
  });

  await t.test('one-off dynos through an API host', async (t) => {
    const att = await h2.cli('run', '-a', 'hello', '--', 'sh', '-c', 'echo hi; exit 3');
    t.equal(att.code, 3, `attached: exit status 3 (${att.stderr.trim()})`);
    t.equal(att.stdout.replace(/\r/g, '').trim(), 'hi', 'attached: stdout');
    const cat = await runCli(['run', '-a', 'hello', '--', 'cat'], { MANIFOLD_SOCKET: h1.socket }, { input: 'through stdin\nand back\n' });
    t.equal(cat.code, 0, cat.stderr);
    t.equal(cat.stdout.replace(/\r/g, ''), 'through stdin\nand back\n', 'stdin passes through');
    const det = await h1.cli('run:detached', '-a', 'hello', '--', 'sh', '-c', 'echo detached-marker-$((6*7))');
    t.equal(det.code, 0, det.stderr);
    const name = /up, (run\.\d+)/.exec(det.stdout)?.[1];
    t.ok(name, `detached: ${det.stdout.trim()}`);
    if (!name) return;
    const seen = await waitFor('the detached one-off\'s output in the logs through h2', async () => {
      const r = await h2.cli('logs', '-a', 'hello', '--dyno', name);
      return /detached-marker-42/.test(r.stdout) ? r.stdout : undefined;
    }, 20_000, 250).catch(() => '');
    t.match(seen, new RegExp(`app\\[${name.replace('.', '\\.')}\\]: detached-marker-42`));
  });

  await t.test('isolation: a dyno reaches no other dyno nor host, the routers reach every dyno', async (t) => {
    const list = await ps(h1);
    // the one-off runs on h1 (its own agent); the target is a web dyno of another host
    const onH2 = list.find((d) => d.host !== 'h1' && d.type === 'web' && d.address);
    if (!onH2?.address || !onH2.host) return t.fail(`no web dyno with an address off h1: ${JSON.stringify(list)}`);
    const other = onH2.host;
    const dynoAddr = onH2.address.includes(':') ? onH2.address : `${onH2.address}:5000`;
    t.match(dynoAddr, /^10\.200\.\d+\.\d+:\d+$/, `${other}'s web dyno at ${dynoAddr}`);
    // h2 has the router role (its published port is open to dynos), h3 has not
    const local = list.find((d) => d.host === 'h1' && d.type === 'web' && d.address);
    const localAddr = local?.address ? (local.address.includes(':') ? local.address : `${local.address}:5000`) : '10.200.255.1:5000';
    const targets = [dynoAddr, `${fabric.address(other)}:7946`, `${fabric.address('h2')}:8080`, localAddr, `${fabric.address('h1')}:7946`, fabric.etcdEndpoints[0]!.replace(/^https?:\/\//, '')];
    const r = await h1.cli('run', '-a', 'hello', '--', 'node', '-e', CONNECT_SCRIPT, JSON.stringify(targets));
    t.equal(r.code, 0, r.stderr);
    const m = /RESULT (\{.*\})/.exec(r.stdout);
    t.ok(m, `results: ${r.stdout.trim()}`);
    const res = m ? (JSON.parse(m[1]!) as Record<string, string>) : {};
    t.not(res[targets[0]!], 'ok', `dyno → dyno on ${other} fails (${res[targets[0]!] ?? '?'})`);
    t.not(res[targets[1]!], 'ok', `dyno → ${other}'s cluster port fails (${res[targets[1]!] ?? '?'})`);
    t.equal(res[targets[2]!], 'ok', 'dyno → h2\'s router port (published) works');
    t.not(res[targets[3]!], 'ok', `dyno → a dyno on its own host fails (${res[targets[3]!] ?? '?'})`);
    t.not(res[targets[4]!], 'ok', `dyno → its own host's cluster port fails (${res[targets[4]!] ?? '?'})`);
    t.not(res[targets[5]!], 'ok', `dyno → an etcd member fails (${res[targets[5]!] ?? '?'})`);
    const run = startLoad(fabric, { targets: [h1.router], host: HOST, connections: 2, maxRequests: 30, durationMs: 20_000, dynoBodyRegex: 'Hello from (\\S+)' });
    const lr = await run.done;
    t.equal(lr.failed, 0, `${lr.failed} failed of ${lr.total}`);
    t.ok(lr.records.some((x) => x.dyno === onH2.name), `the router on h1 reached ${onH2.name} on ${other}`);
  });

  await t.test('stopping the daemons and the fabric leaves nothing', async (t) => {
    await cluster.stop();
    // hostLeftovers rather than cluster.leftovers(): that one goes through CgroupTree.open, which makes the directory it checks
    t.same([...cluster.daemons.values()].flatMap(hostLeftovers), [], 'no cgroup subtree or run dir left');
    t.notOk(fs.existsSync(cluster.dir), 'no state dir left');
    client.close();
    await fabric.stop();
    const leak = fabric.leakCheck();
    t.same(leak.dirs, [], 'no fabric dir');
    t.same(leak.processesInNamespaces, [], 'no process (daemon, dyno, etcd) left in the namespaces');
    t.same(leak.ourLinksInRoot, [], 'no fabric veth or bridge in the root namespace');
    t.same(leak.rootLinksRemoved, [], 'no root interface removed');
  });
});
