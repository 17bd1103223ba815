/**
 * The Tier 2 fixture itself (spec §7): hosts as network namespaces on a bridge, etcd members in their
 * own namespaces, the load generator in `cl`. Needs root, util-linux and etcd; touches nothing in the
 * root network namespace, and after stop() leaves no namespace, process, dir or link.
 */
import path from 'node:path';
import t from 'tap';
import type { Etcd3 } from 'etcd3';
import { createEtcdClient } from '../../src/cluster/etcd-client';
import { etcdMissing, processesMentioning } from './helpers/etcd-cluster';
import { fabricMissing, FABRIC_PREFIX, nsInode, serveIn, startFabric, type Fabric } from './helpers/fabric';
import { startLoad } from './helpers/load';

const ETCD_CLIENT_JS = path.join(__dirname, '..', '..', 'src', 'cluster', 'etcd-client.js');

// A TCP server that answers "pong:<data>" and says "ready" once listening.
const TCP_SERVER = `
const [host, port] = process.argv.slice(1);
require('node:net').createServer((s) => s.on('data', (d) => s.end('pong:' + d))).listen(Number(port), host, () => console.log('ready'));
`;
// Connects, sends "ping", prints the answer; exits 1 on error or after 1.5 s.
const TCP_CLIENT = `
const [host, port] = process.argv.slice(1);
const s = require('node:net').connect(Number(port), host, () => s.write('ping'));
let got = '';
s.on('data', (d) => (got += d)).on('end', () => { console.log(got); process.exit(0); });
s.on('error', (e) => { console.log(e.code); process.exit(1); });
setTimeout(() => { console.log('timeout'); process.exit(1); }, 1500);
`;
// An HTTP server naming its host in the body, like examples/hello names its dyno.
const HTTP_SERVER = `
const [host, port, name] = process.argv.slice(1);
const srv = require('node:http').createServer((_q, r) => r.end('Hello from ' + name + '\\n'));
srv.keepAliveTimeout = 60000;
srv.listen(Number(port), host, () => console.log('ready'));
`;

const missing = fabricMissing() ?? etcdMissing();
if (missing) {
  t.plan(0, missing);
} else {
  main();
}


async function tcpPing(fabric: Fabric, from: string, to: string, port: number): Promise<string> {
  const r = await fabric.run(from, process.execPath, ['-e', TCP_CLIENT, fabric.address(to), String(port)]);
  return r.stdout.trim();
}

function main(): void {
  let fabric: Fabric;
  let client: Etcd3 | undefined;

  t.before(async () => {
    const t0 = Date.now();
    fabric = await startFabric(t, { hosts: 3 });
    t.comment(`fabric with 3 hosts and 3 etcd members up in ${Date.now() - t0} ms (${fabric.dir})`);
  });
  t.teardown(() => client?.close());

  t.test('namespaces: held by live processes, none is the root netns, addresses on eth0', async (t) => {
    t.same(fabric.names().sort(), ['cl', 'e1', 'e2', 'e3', 'fab', 'h1', 'h2', 'h3']);
    const root = nsInode('self');
    for (const name of fabric.names()) {
      const ns = fabric.ns(name);
      t.not(ns.inode, root, `${name} is its own netns`);
      t.equal(nsInode(ns.pid), ns.inode, `${name} holder alive`);
    }
    t.match(fabric.execOk('h2', 'ip', ['-o', '-4', 'addr', 'show', 'dev', 'eth0']), /10\.99\.0\.2\/24/);
    t.match(fabric.execOk('cl', 'ip', ['-o', '-4', 'addr', 'show', 'dev', 'eth0']), /10\.99\.0\.100\/24/);
    t.match(fabric.execOk('fab', 'ip', ['-o', 'link', 'show', 'master', 'fab0']), /up3@/);
    t.same(fabric.leakCheck().ourLinksInRoot, [], 'no fabric link in the root netns');
  });

  t.test('TCP h1 → h2 over the bridge', async (t) => {
    const server = await serveIn(fabric, 'h2', TCP_SERVER, [fabric.address('h2'), '7000']);
    t.equal(await tcpPing(fabric, 'h1', 'h2', 7000), 'pong:ping');
    t.equal(await tcpPing(fabric, 'cl', 'h2', 7000), 'pong:ping');
    server.kill('SIGKILL');
  });

  t.test('etcd: healthy from the root netns (unix sockets) and from inside cl (fabric addresses)', async (t) => {
    client = createEtcdClient(fabric.etcdLocalEndpoints);
    const members = await client.cluster.memberList({});
    t.equal(members.members.length, 3);
    t.same(members.members.map((m) => m.clientURLs[0]).sort(), fabric.etcdEndpoints);
    await client.put('/fabric-test/k').value('v');
    const script = `
      const c = require(${JSON.stringify(ETCD_CLIENT_JS)}).createEtcdClient(process.argv.slice(1));
      c.get('/fabric-test/k').string().then((v) => { console.log(v); c.close(); }, (e) => { console.log('error ' + e.message); process.exit(1); });
    `;
    const r = await fabric.run('cl', process.execPath, ['-e', script, ...fabric.etcdEndpoints]);
    t.equal(r.stdout.trim(), 'v', r.stderr);
  });

  t.test('etcd: one member frozen, the other two still commit', async (t) => {
    const leader = await fabric.leaderMember();
    t.ok(leader >= 1 && leader <= 3, `leader is e${leader}`);
    fabric.stopMember(3);
    try {
      const c = createEtcdClient(fabric.etcdLocalEndpoints.slice(0, 2));
      try {
        await c.put('/fabric-test/frozen').value('ok');
        t.equal(await c.get('/fabric-test/frozen').string(), 'ok');
      } finally {
        c.close();
      }
    } finally {
      fabric.contMember(3);
    }
  });

  t.test('etcd: a killed member restarts on its data dir and serves again', async (t) => {
    await fabric.killMember(2);
    const c = createEtcdClient([fabric.etcdLocalEndpoints[0] as string]);
    try {
      await c.put('/fabric-test/while-e2-dead').value('1');
    } finally {
      c.close();
    }
    await fabric.startMember(2);
    const c2 = createEtcdClient([fabric.etcdLocalEndpoints[1] as string]);
    try {
      t.equal(await c2.get('/fabric-test/while-e2-dead').string(), '1', 'e2 caught up');
    } finally {
      c2.close();
    }
  });

  t.test('linkDown / dropTo cut h3 off, linkUp / undrop restore it', async (t) => {
    const server = await serveIn(fabric, 'h3', TCP_SERVER, [fabric.address('h3'), '7000']);
    t.equal(await tcpPing(fabric, 'h1', 'h3', 7000), 'pong:ping', 'reachable before');
    fabric.linkDown('h3');
    t.not(await tcpPing(fabric, 'h1', 'h3', 7000), 'pong:ping', 'unreachable while cut');
    fabric.linkUp('h3');
    t.equal(await tcpPing(fabric, 'h1', 'h3', 7000), 'pong:ping', 'reachable after linkUp');
    fabric.dropTo('h3');
    t.not(await tcpPing(fabric, 'h1', 'h3', 7000), 'pong:ping', 'unreachable while fab drops frames to h3');
    fabric.undrop('h3');
    t.equal(await tcpPing(fabric, 'h1', 'h3', 7000), 'pong:ping', 'reachable after undrop');
    server.kill('SIGKILL');
  });

  t.test('load: closed loop from cl against an HTTP server in h1', async (t) => {
    const server = await serveIn(fabric, 'h1', HTTP_SERVER, [fabric.address('h1'), '8080', 'h1']);
    const target = `${fabric.address('h1')}:8080`;
    const timed = await startLoad(fabric, {
      targets: [target],
      host: 'hello.fabric.test',
      connections: 4,
      durationMs: 1500,
      dynoBodyRegex: 'Hello from (\\S+)',
    }).done;
    t.comment(`timed run: ${timed.total} requests, p50 ${timed.p50.toFixed(2)} ms, p99 ${timed.p99.toFixed(2)} ms`);
    t.ok(timed.ok > 0, 'requests succeeded');
    t.equal(timed.failed, 0, 'none failed');
    t.equal(timed.records.length, timed.total, 'one record per request');
    t.ok(timed.records.every((r) => r.dyno === 'h1' && r.target === target && r.id.length >= 20));
    t.same(new Set(timed.records.map((r) => r.worker)), new Set([0, 1, 2, 3]), 'all 4 connections used');

    // A long run ended early by stop(): still a summary, in-flight requests finished.
    const run = startLoad(fabric, { targets: [target], host: 'hello.fabric.test', connections: 2, durationMs: 60_000 });
    await new Promise((r) => setTimeout(r, 700));
    const stopped = await run.stop();
    t.ok(stopped.ok > 0);
    t.equal(stopped.failed, 0);
    t.ok(stopped.durationMs < 10_000, 'stopped early');

    // Count bound.
    const counted = await startLoad(fabric, { targets: [target], host: 'hello.fabric.test', connections: 3, maxRequests: 50 }).done;
    t.equal(counted.total, 50);
    server.kill('SIGKILL');
  });

  t.test('stop() leaves nothing: no namespace, process, dir, etcd or root link', async (t) => {
    client?.close();
    client = undefined;
    const dir = fabric.dir;
    await fabric.stop();
    const leak = fabric.leakCheck();
    t.same(leak.dirs, [], 'data dir removed');
    t.same(leak.processesInNamespaces, [], 'no process left in any fabric namespace (so the namespaces are gone)');
    t.same(leak.ourLinksInRoot, [], 'no fabric link in the root netns');
    t.same(leak.rootLinksRemoved, [], 'no root link removed');
    if (leak.rootLinksAdded.length > 0) t.comment(`root links added meanwhile by others: ${leak.rootLinksAdded.join(' ')}`);
    t.same(processesMentioning(dir), [], 'no etcd of this fabric');
    t.ok(dir.includes(FABRIC_PREFIX));
  });
}
