/**
 * Bridge networking: each dyno gets its own address on a host bridge, reachable from the host at
 * address:PORT; dynos cannot reach each other (isolated bridge ports) nor the host (the bridge's
 * input filter answers them with a refusal: host-firewall.test.ts tests it at length);
 * addresses never collide; the veth pair and the lease vanish with the dyno; cleanup removes the
 * bridge. Uses a bridge and subnet of its own so it never disturbs a running manifold0.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import t from 'tap';
import { BridgeNetwork } from '../../src/runtime/network';
import { Runtime } from '../../src/runtime';
import { checked, leakWatch } from './helpers/leaks';
import { makeAppDir, removeAtEndIfNew, requireRoot, runDyno, sh, startCaptured, TEST_RUN_DIR, testSpec } from './helpers/run';

const BRIDGE = `mfbrt${process.pid % 100000}`;
const SUBNET = '10.214.0.0/24';
const GATEWAY = '10.214.0.1';

/** Host ends of the veth pairs on this test's bridge (other processes' dynos use other bridges). */
function bridgePorts(): string[] {
  return fs.readdirSync(`/sys/class/net/${BRIDGE}/brif`);
}

function request(host: string, port: number, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, timeout: timeoutMs });
    let data = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (data += d));
    s.on('end', () => resolve(data));
    s.on('timeout', () => {
      s.destroy();
      reject(new Error('timeout'));
    });
    s.on('error', reject);
  });
}

async function waitForAnswer(host: string, port: number, deadlineMs = 10_000): Promise<string> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    try {
      return await request(host, port);
    } catch (err) {
      if (Date.now() > until) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

if (requireRoot(t)) {
  removeAtEndIfNew(t, TEST_RUN_DIR);
  const runtime = Runtime.open({ runDir: TEST_RUN_DIR, cgroupName: `manifold-test-${process.pid}`, bridge: { name: BRIDGE, subnet: SUBNET } });
  const leaks = leakWatch(runtime);
  t.teardown(() => {
    BridgeNetwork.cleanup(TEST_RUN_DIR, BRIDGE);
    try {
      fs.rmdirSync(runtime.cgroups.root);
    } catch {
      /* leftovers are reported by the leak checks */
    }
  });
  const server = `exec node -e "require('net').createServer((s) => s.end('hello from ' + process.env.DYNO)).listen(process.env.PORT)"`;

  t.test('the host reaches a server in a dyno at address:PORT; a second dyno cannot', checked(leaks, async (t) => {
    const appDir = makeAppDir(t);
    const web = startCaptured(runtime, testSpec({ name: 'web.1', appDir, port: 5000, net: { mode: 'bridge' }, command: sh(server) }));
    const dyno = await web.started;
    t.match(dyno.address, /^10\.214\.0\.[0-9]+$/, `dyno has an address in the subnet: ${dyno.address}`);
    t.equal(await waitForAnswer(dyno.address!, 5000), 'hello from web.1', 'host → dyno works');

    // The host answers the second dyno with a refusal (its input filter: no route to host), so a
    // silence from web.1 cannot be a dead network.
    const hostServer = net.createServer((s) => s.end('host here'));
    await new Promise<void>((r) => hostServer.listen(0, GATEWAY, r));
    const hostPort = (hostServer.address() as net.AddressInfo).port;
    t.teardown(() => hostServer.close());
    const probe = await runDyno(runtime, testSpec({
      name: 'web.2', appDir, net: { mode: 'bridge' },
      command: sh(`ip -br addr; ip route; (exec 3<>/dev/tcp/${GATEWAY}/${hostPort} && cat <&3 && echo) 2>&1 ; ` +
        `if timeout 3 bash -c 'exec 3<>/dev/tcp/${dyno.address}/5000' 2>/dev/null; then echo PEER-REACHABLE; else echo PEER-BLOCKED; fi`),
    }));
    t.match(probe.stdout, /^lo\s+UNKNOWN\s+127\.0\.0\.1\/8/m, 'lo is up');
    t.match(probe.stdout, /^eth0@\S+\s+UP\s+10\.214\.0\.[0-9]+\/24/m, 'eth0 is up with its /24 address');
    t.match(probe.stdout, new RegExp(`^default via ${GATEWAY.replace(/\./g, '\\.')} dev eth0`, 'm'), 'default route via the bridge');
    t.notMatch(probe.stdout, /host here/, 'dyno → host service is refused');
    t.match(probe.stdout, /No route to host/, 'by the host, which answers (the link works)');
    t.match(probe.stdout, /PEER-BLOCKED/, 'dyno → other dyno is blocked');
    t.notMatch(probe.stdout, /PEER-REACHABLE/, 'not reachable');
    await dyno.stop(2000);
    await web.done;
  }));

  t.test('parallel dynos get distinct addresses; veths and leases vanish with them', checked(leaks, async (t) => {
    const appDir = makeAppDir(t);
    const dynos = await Promise.all(
      [1, 2, 3, 4, 5, 6].map((n) => runtime.start(testSpec({ name: `worker.${n}`, appDir, net: { mode: 'bridge' }, command: { argv: ['sleep', '30'] } }))),
    );
    const addresses = dynos.map((d) => d.address);
    t.equal(new Set(addresses).size, dynos.length, `distinct addresses: ${addresses.join(' ')}`);
    const leaseDir = `${TEST_RUN_DIR}/net/${BRIDGE}`;
    t.same(fs.readdirSync(leaseDir).sort(), [...addresses].sort(), 'one lease file per live dyno');
    t.equal(bridgePorts().length, dynos.length, 'one host veth per dyno on the bridge');
    await Promise.all(dynos.map((d) => d.stop(1000)));
    await Promise.all(dynos.map((d) => d.exited));
    // the runtime deletes each veth itself (no waiting for the kernel's netns cleanup), right after exit
    await runtime.settled();
    t.same(bridgePorts(), [], 'no veth left on the bridge once the runtime has settled');
    t.same(fs.readdirSync(leaseDir), [], 'no lease left');
  }));

  t.test('the bridge keeps its MAC while dynos come and go: the other dynos still reach the host', checked(leaks, async (t) => {
    const appDir = makeAppDir(t);
    const mac = (): string => fs.readFileSync(`/sys/class/net/${BRIDGE}/address`, 'utf8').trim();
    // 3 = NET_ADDR_SET: the kernel no longer gives the bridge the lowest MAC of its ports
    t.equal(fs.readFileSync(`/sys/class/net/${BRIDGE}/addr_assign_type`, 'utf8').trim(), '3', 'the bridge address is pinned');
    const before = mac();
    const web1 = startCaptured(runtime, testSpec({ name: 'web.1', appDir, port: 5000, net: { mode: 'bridge' }, command: sh(server) }));
    const d1 = await web1.started;
    const web2 = startCaptured(runtime, testSpec({ name: 'web.2', appDir, port: 5000, net: { mode: 'bridge' }, command: sh(server) }));
    const d2 = await web2.started;
    t.equal(await waitForAnswer(d1.address!, 5000), 'hello from web.1');
    // web.2 answers the host: it now holds the gateway's MAC in its neighbour table
    t.equal(await waitForAnswer(d2.address!, 5000), 'hello from web.2');
    t.equal(mac(), before, 'ports joining left the address alone');
    // web.1's veth leaves the bridge (a dyno replaced): unpinned, the bridge would take another port's MAC
    await d1.stop(2000);
    await d1.exited;
    await runtime.settled();
    t.equal(mac(), before, 'a port leaving left the address alone');
    const neigh = execFileSync('nsenter', ['-t', String(d2.pid), '-n', 'ip', 'neigh', 'show', GATEWAY], { encoding: 'utf8' });
    t.match(neigh, new RegExp(`lladdr ${before}`), `web.2's neighbour entry for the gateway is the bridge's address: ${neigh.trim()}`);
    // at once, not after an ARP probe seconds later (request() gives up after 3 s)
    t.equal(await request(d2.address!, 5000), 'hello from web.2', 'web.2 still answers the host');
    await d2.stop(2000);
    await web1.done.catch(() => undefined);
    await web2.done.catch(() => undefined);
  }));

  t.test("a new dyno on a released address is reached at once: the host forgets the old dyno's MAC", checked(leaks, async (t) => {
    const appDir = makeAppDir(t);
    const leaseDir = `${TEST_RUN_DIR}/net/${BRIDGE}`;
    const neighbour = (address: string): string => execFileSync('ip', ['-4', 'neigh', 'show', address, 'dev', BRIDGE], { encoding: 'utf8' }).trim();
    // another port keeps the bridge's carrier up: the last port leaving flushes the table by itself
    const keeper = await runtime.start(testSpec({ name: 'worker.1', appDir, net: { mode: 'bridge' }, command: { argv: ['sleep', '60'] } }));
    const web1 = startCaptured(runtime, testSpec({ name: 'web.1', appDir, port: 5000, net: { mode: 'bridge' }, command: sh(server) }));
    const d1 = await web1.started;
    const address = d1.address!;
    t.equal(await waitForAnswer(address, 5000), 'hello from web.1');
    t.match(neighbour(address), /lladdr/, `the host has web.1's MAC for ${address}: ${neighbour(address)}`);
    await d1.stop(2000);
    await web1.done.catch(() => undefined);
    await runtime.settled();
    t.equal(neighbour(address), '', 'its neighbour entry went with its veth');
    // every other address taken (leases held by this live process), so web.2 must lease web.1's
    const held: string[] = [];
    const [a, b, c] = address.split('.');
    for (let host = 2; host < 255; host++) {
      const other = `${a}.${b}.${c}.${host}`;
      if (other === address || fs.existsSync(`${leaseDir}/${other}`)) continue;
      fs.writeFileSync(`${leaseDir}/${other}`, String(process.pid), { flag: 'wx' });
      held.push(other);
    }
    t.teardown(() => held.forEach((h) => fs.rmSync(`${leaseDir}/${h}`, { force: true })));
    const web2 = startCaptured(runtime, testSpec({ name: 'web.2', appDir, port: 5000, net: { mode: 'bridge' }, command: sh(server) }));
    const d2 = await web2.started;
    held.forEach((h) => fs.rmSync(`${leaseDir}/${h}`, { force: true }));
    t.equal(d2.address, address, 'web.2 got the released address');
    // with the old entry kept, the host sent to web.1's MAC: nothing for about a minute
    t.equal(await waitForAnswer(address, 5000, 3000), 'hello from web.2', 'the host reaches web.2 at once');
    await d2.stop(2000);
    await web2.done.catch(() => undefined);
    await keeper.stop(1000);
    await keeper.exited;
  }));

  t.test('net none shows only lo', checked(leaks, async (t) => {
    const r = await runDyno(runtime, testSpec({ appDir: makeAppDir(t), command: { argv: ['cat', '/proc/net/dev'] } }));
    const ifaces = r.stdout.split('\n').slice(2).map((l) => l.split(':')[0]?.trim()).filter(Boolean);
    t.same(ifaces, ['lo'], 'only lo');
  }));

  t.test('an existing bridge with another subnet is refused (its leases would be routed off the host)', async (t) => {
    t.throws(() => BridgeNetwork.ensure(TEST_RUN_DIR, { name: BRIDGE, subnet: '10.216.0.0/24' }), /exists with 10\.214\.0\.1\/24, not 10\.216\.0\.1\/24/);
    t.doesNotThrow(() => BridgeNetwork.ensure(TEST_RUN_DIR, { name: BRIDGE, subnet: SUBNET }), 'the same subnet is fine');
    const other = `mfbru${process.pid % 100000}`;
    t.throws(() => BridgeNetwork.ensure(TEST_RUN_DIR, { name: other, subnet: '10.214.0.128/25' }), /overlaps 10\.214\.0\.1\/24 on mfbrt/, 'a new bridge may not overlap another interface');
    t.notOk(fs.existsSync(`/sys/class/net/${other}`), 'and nothing was created');
  });

  t.test('cleanup removes the bridge', async (t) => {
    t.ok(fs.existsSync(`/sys/class/net/${BRIDGE}`), 'bridge exists while in use');
    BridgeNetwork.cleanup(TEST_RUN_DIR, BRIDGE);
    t.notOk(fs.existsSync(`/sys/class/net/${BRIDGE}`), 'bridge removed');
  });
}
