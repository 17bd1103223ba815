/**
 * Outbound NAT (`nat: true`): a dyno on a NAT bridge reaches a network beyond the host and is seen
 * there with the host's address (nftables masquerade); a dyno on a bridge without NAT is not.
 *
 * The "outside world" is owned by the test: a network namespace joined to the host by a veth pair
 * (host end OUT_HOST/30, namespace end OUT_PEER/30), with no route back to any dyno subnet, and a
 * TCP server in it that answers each connection with the peer address it sees. Nothing is sent
 * anywhere else. Two bridges and subnets of its own (one plain, one with NAT) keep it away from a
 * running manifold0.
 *
 * Host state it changes and restores: /proc/sys/net/ipv4/ip_forward (NAT turns it on; the value
 * found is written back at the end) and nftables tables of its own bridges (`inet
 * manifold-BRIDGE`: every bridge has one, for its input filter; NAT adds a postrouting chain). The
 * default bridge's table `inet manifold`, a running daemon's, is never touched: the last test
 * checks it is as it was.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import t from 'tap';
import { BridgeNetwork, natTable } from '../../src/runtime/network';
import { Runtime } from '../../src/runtime';
import { checked, leakWatch } from './helpers/leaks';
import { makeAppDir, removeAtEndIfNew, requireRoot, runDyno, sh, TEST_RUN_DIR, testSpec } from './helpers/run';

const ID = process.pid % 100000;
const NS = `mfnat${ID}`;
const HOST_VETH = `mfnh${ID}`; // host end of the pair to the outside namespace
const PEER_VETH = `mfnp${ID}`; // its end inside the namespace
const OUT_HOST = '10.213.250.1';
const OUT_PEER = '10.213.250.2';
const PORT = 7070;
const PLAIN = { name: `mfnb${ID}`, subnet: '10.213.1.0/24' };
const NATTED = { name: `mfnn${ID}`, subnet: '10.213.2.0/24', nat: true };
const OTHER = { name: `mfno${ID}`, subnet: '10.213.3.0/24', nat: true };
const IP_FORWARD = '/proc/sys/net/ipv4/ip_forward';

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function tryRun(cmd: string, args: string[]): string | undefined {
  try {
    return run(cmd, args);
  } catch {
    return undefined;
  }
}

function hasNft(): boolean {
  return tryRun('nft', ['--version']) !== undefined;
}

function tableExists(name: string): boolean {
  return run('nft', ['list', 'tables']).split('\n').includes(`table inet ${name}`);
}

/** The default bridge's table as it is now (a running daemon's), or '' when there is none. */
function defaultTable(): string {
  return tryRun('nft', ['list', 'table', 'inet', natTable('manifold0')]) ?? '';
}

/** Why this host's forward path drops forwarded packets whatever our table says, if it does. */
function forwardDropReason(): string | undefined {
  // nftables (and iptables-nft): a base chain on the forward hook with policy drop
  const ruleset = JSON.parse(run('nft', ['-j', 'list', 'ruleset'])) as { nftables: { chain?: { family: string; table: string; name: string; hook?: string; policy?: string } }[] };
  for (const o of ruleset.nftables) {
    const c = o.chain;
    if (c && c.hook === 'forward' && c.policy === 'drop' && (c.family === 'ip' || c.family === 'inet')) {
      return `the host's nftables chain ${c.family} ${c.table} ${c.name} drops forwarded packets by policy`;
    }
  }
  // legacy iptables keeps its rules outside nftables
  let legacy = '';
  try {
    legacy = fs.readFileSync('/proc/net/ip_tables_names', 'utf8');
  } catch {
    /* ip_tables not loaded */
  }
  if (/^filter$/m.test(legacy)) {
    const rules = tryRun('iptables-legacy', ['-S', 'FORWARD']) ?? tryRun('iptables', ['-S', 'FORWARD']) ?? '';
    if (/^-P FORWARD DROP/m.test(rules)) return `the host's (legacy) iptables FORWARD policy is DROP`;
  }
  return undefined;
}

/** Why the file cannot run here (beyond root), if it cannot. */
function skipReason(): string | undefined {
  if (!hasNft()) return 'needs nft (nftables) for the NAT table; CI has it';
  for (const b of [PLAIN, NATTED, OTHER]) {
    if (tableExists(natTable(b.name))) return `nftables table inet ${natTable(b.name)} already exists (a crashed run of this file?)`;
    if (fs.existsSync(`/sys/class/net/${b.name}`)) return `bridge ${b.name} already exists (a crashed run of this file?)`;
  }
  const taken = run('ip', ['-4', '-o', 'addr', 'show']).split('\n').filter((l) => / inet 10\.213\./.test(l));
  if (taken.length > 0) return `10.213.0.0/16 is in use on this host (${taken[0]!.split(/\s+/)[1]}): the test needs it for its own networks`;
  if (fs.existsSync(`/run/netns/${NS}`)) return `network namespace ${NS} already exists`;
  return undefined;
}

/** The outside namespace's TCP server: one line per connection on stdout, the peer address as the answer. */
function startOutsideServer(): { child: ChildProcess; log: () => string; ready: Promise<void> } {
  const script = `
    const net = require('net');
    net.createServer((s) => { console.log('CONN ' + s.remoteAddress); s.end('SEEN ' + s.remoteAddress + '\\n'); })
      .listen(${PORT}, '${OUT_PEER}', () => console.log('LISTENING'));
    process.stdin.resume();
    process.stdin.on('end', () => process.exit(0)); // the test process is gone: so is the server
  `;
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (k !== 'NODE_OPTIONS' && !k.startsWith('TAP')) env[k] = v;
  const child = spawn('ip', ['netns', 'exec', NS, process.execPath, '-e', script], { stdio: ['pipe', 'pipe', 'pipe'], env });
  let out = '';
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('LISTENING')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`outside server exited (${code}): ${err}`)));
    setTimeout(() => reject(new Error(`outside server not listening after 10 s: ${err}`)), 10_000).unref();
  });
  return { child, log: () => out, ready };
}

function createOutsideWorld(): void {
  run('ip', ['netns', 'add', NS]);
  run('ip', ['link', 'add', HOST_VETH, 'type', 'veth', 'peer', 'name', PEER_VETH, 'netns', NS]);
  run('ip', ['addr', 'add', `${OUT_HOST}/30`, 'dev', HOST_VETH]);
  run('ip', ['link', 'set', HOST_VETH, 'up']);
  run('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
  run('ip', ['-n', NS, 'addr', 'add', `${OUT_PEER}/30`, 'dev', PEER_VETH]);
  run('ip', ['-n', NS, 'link', 'set', PEER_VETH, 'up']);
}

/** What is left of this file's networking on the host (empty = clean). */
function networkLeftovers(originalForward: string, originalDefaultTable: string): string[] {
  const found: string[] = [];
  if ((tryRun('ip', ['netns', 'list']) ?? '').split('\n').some((l) => l.split(' ')[0] === NS)) found.push(`netns ${NS}`);
  for (const link of [HOST_VETH, PLAIN.name, NATTED.name, OTHER.name]) if (fs.existsSync(`/sys/class/net/${link}`)) found.push(`link ${link}`);
  for (const b of [PLAIN, NATTED, OTHER]) if (tableExists(natTable(b.name))) found.push(`nft table inet ${natTable(b.name)}`);
  if (defaultTable() !== originalDefaultTable) found.push(`nft table inet ${natTable('manifold0')} changed`);
  const forward = fs.readFileSync(IP_FORWARD, 'utf8').trim();
  if (forward !== originalForward) found.push(`ip_forward is ${forward}, was ${originalForward}`);
  for (const b of [PLAIN.name, NATTED.name, OTHER.name]) if (fs.existsSync(`${TEST_RUN_DIR}/net/${b}`)) found.push(`lease dir of ${b}`);
  return found;
}

/** Shell for a dyno: one connection attempt to the outside server, ANSWER <what it said> or NO-ANSWER. */
const CONNECT = sh(
  `if out=$(timeout 3 bash -c 'exec 3<>/dev/tcp/${OUT_PEER}/${PORT} && cat <&3' 2>&1); ` +
    `then echo "ANSWER $out"; else echo "NO-ANSWER $out"; fi; ip -4 -br addr show dev eth0`,
);

function main(): void {
  const originalForward = fs.readFileSync(IP_FORWARD, 'utf8').trim();
  const originalDefaultTable = defaultTable();
  const dropReason = forwardDropReason();
  let server: ReturnType<typeof startOutsideServer> | undefined;
  removeAtEndIfNew(t, TEST_RUN_DIR);
  const plain = Runtime.open({ runDir: TEST_RUN_DIR, cgroupName: `manifold-test-${process.pid}`, bridge: PLAIN });
  const natted = Runtime.open({ runDir: TEST_RUN_DIR, cgroupName: `manifold-test-${process.pid}-nat`, bridge: NATTED });

  const cleanupAll = (): void => {
    server?.child.kill('SIGKILL');
    for (const b of [PLAIN, NATTED, OTHER]) BridgeNetwork.cleanup(TEST_RUN_DIR, b.name); // and their own NAT tables
    if (fs.existsSync(`/sys/class/net/${HOST_VETH}`)) tryRun('ip', ['link', 'del', HOST_VETH]);
    tryRun('ip', ['netns', 'del', NS]);
    fs.writeFileSync(IP_FORWARD, originalForward);
  };
  t.teardown(() => {
    cleanupAll(); // a no-op when the last test already did it; restores the host when a test failed
    for (const r of [plain, natted]) {
      try {
        fs.rmdirSync(r.cgroups.root);
      } catch {
        /* leftovers are reported by the leak checks */
      }
    }
  });

  // before the leak baselines: `ip netns add` pins the namespace with an nsfs mount on the host
  createOutsideWorld();
  const plainLeaks = leakWatch(plain);
  const nattedLeaks = leakWatch(natted);

  t.before(async () => {
    server = startOutsideServer();
    await server.ready;
  });

  t.test(`without NAT a dyno gets no answer from the outside (ip_forward=${originalForward} as found)`, checked(plainLeaks, async (t) => {
    const r = await runDyno(plain, testSpec({ name: 'run.1', appDir: makeAppDir(t), net: { mode: 'bridge' }, command: CONNECT }));
    t.match(r.stdout, /^eth0@\S+\s+UP\s+10\.213\.1\.[0-9]+\/24/m, 'the dyno is on the plain bridge');
    t.match(r.stdout, /^NO-ANSWER/m, 'no answer from the outside server');
    t.notMatch(r.stdout, /ANSWER SEEN/, 'not reached');
    t.notMatch(server!.log(), /CONN/, 'the outside server saw no connection');
    t.notMatch(run('nft', ['list', 'table', 'inet', natTable(PLAIN.name)]), /masquerade|postrouting/, 'a bridge without NAT has no NAT chain in its table');
  }));

  t.test('with NAT the dyno reaches the outside and is seen with the host\'s address', { skip: dropReason ? `${dropReason}: manifold's NAT table cannot open the forward path, the host's policy decides (not changed by this test)` : false }, checked(nattedLeaks, async (t) => {
    const r = await runDyno(natted, testSpec({ name: 'run.2', appDir: makeAppDir(t), net: { mode: 'bridge' }, command: CONNECT }));
    const dynoAddress = /^eth0@\S+\s+UP\s+(10\.213\.2\.[0-9]+)\/24/m.exec(r.stdout)?.[1];
    t.ok(dynoAddress, `the dyno is on the NAT bridge: ${r.stdout.trim().split('\n').pop()}`);
    t.equal(fs.readFileSync(IP_FORWARD, 'utf8').trim(), '1', 'NAT turned forwarding on');
    const table = run('nft', ['list', 'table', 'inet', natTable(NATTED.name)]);
    t.match(table, new RegExp(`ip saddr 10\\.213\\.2\\.0/24 oifname != "${NATTED.name}" masquerade`), 'the bridge\'s own table masquerades its subnet');
    t.match(r.stdout, new RegExp(`^ANSWER SEEN ${OUT_HOST.replace(/\./g, '\\.')}$`, 'm'), `the outside saw the host's ${OUT_HOST}`);
    t.notMatch(r.stdout, new RegExp(`SEEN ${dynoAddress ?? '10.213.2.'}`), 'not the dyno\'s address');
    t.match(server!.log(), new RegExp(`^CONN ${OUT_HOST.replace(/\./g, '\\.')}$`, 'm'), 'the server logged the host\'s address');
  }));

  t.test('with forwarding on, a dyno on the bridge without NAT still gets no answer (no route back to it)', { skip: dropReason ?? false }, checked(plainLeaks, async (t) => {
    t.equal(fs.readFileSync(IP_FORWARD, 'utf8').trim(), '1', 'forwarding is on now');
    const before = server!.log();
    const r = await runDyno(plain, testSpec({ name: 'run.3', appDir: makeAppDir(t), net: { mode: 'bridge' }, command: CONNECT }));
    t.match(r.stdout, /^NO-ANSWER/m, 'no answer: masquerade covers the NAT bridge\'s subnet only');
    t.equal(server!.log(), before, 'the outside server saw no new connection');
  }));

  // The table bookkeeping needs no forwarding: it runs on hosts with a forward DROP policy too.
  t.test('NAT on another bridge, and that bridge\'s cleanup, leave this bridge\'s NAT alone', checked(nattedLeaks, async (t) => {
    t.ok(natted.bridge().index > 0, `first NAT bridge ${NATTED.name} is up`);
    const other = BridgeNetwork.ensure(TEST_RUN_DIR, OTHER);
    t.ok(other.index > 0, `second NAT bridge ${OTHER.name} is up`);
    t.match(run('nft', ['list', 'table', 'inet', natTable(OTHER.name)]), /ip saddr 10\.213\.3\.0\/24 .*masquerade/, 'its masquerade rule is loaded, in a table of its own');
    t.match(run('nft', ['list', 'table', 'inet', natTable(NATTED.name)]), /ip saddr 10\.213\.2\.0\/24 .*masquerade/, 'and the first bridge\'s rule is still there');
    BridgeNetwork.cleanup(TEST_RUN_DIR, OTHER.name);
    t.notOk(fs.existsSync(`/sys/class/net/${OTHER.name}`), 'second bridge removed');
    t.notOk(tableExists(natTable(OTHER.name)), 'its table is gone');
    t.notMatch(run('nft', ['list', 'ruleset']), /10\.213\.3\.0\/24/, 'and its rule with it');
    t.match(run('nft', ['list', 'table', 'inet', natTable(NATTED.name)]), /ip saddr 10\.213\.2\.0\/24 .*masquerade/, 'the first bridge\'s rule survived its cleanup');
    if (dropReason) return; // going out needs the forward path the host's policy closes
    const r = await runDyno(natted, testSpec({ name: 'run.4', appDir: makeAppDir(t), net: { mode: 'bridge' }, command: CONNECT }));
    t.match(r.stdout, new RegExp(`^ANSWER SEEN ${OUT_HOST.replace(/\./g, '\\.')}$`, 'm'), 'a dyno of the first bridge still goes out masqueraded');
  }));

  t.test('cleanup leaves nothing: bridges, nft tables, namespace, veth; ip_forward restored; inet manifold untouched', async (t) => {
    t.ok(fs.existsSync(`/run/netns/${NS}`), 'the outside namespace existed until now');
    cleanupAll();
    await new Promise<void>((resolve) => {
      if (server!.child.exitCode !== null || server!.child.signalCode !== null) resolve();
      else server!.child.once('exit', () => resolve());
    });
    t.same(networkLeftovers(originalForward, originalDefaultTable), [], 'nothing of the test\'s networking is left');
    t.equal(fs.readFileSync(IP_FORWARD, 'utf8').trim(), originalForward, `ip_forward is back to ${originalForward}`);
  });
}

if (requireRoot(t)) {
  const reason = skipReason();
  if (reason !== undefined) t.plan(0, `skip: ${reason}`);
  else main();
}
