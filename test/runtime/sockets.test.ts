/**
 * Socket families (issue 9, item 3): a dyno may open AF_UNIX, AF_INET, AF_INET6 and NETLINK_ROUTE
 * sockets, with --net none and on a bridge alike; every other family (AF_VSOCK, AF_PACKET, AF_ALG,
 * ...) gets EAFNOSUPPORT and other netlink protocols EPROTONOSUPPORT from the seccomp filter, while
 * ordinary programs (name resolution, ip(8), node) keep working.
 */
import fs from 'node:fs';
import t from 'tap';
import { BridgeNetwork } from '../../src/runtime/network';
import { Runtime } from '../../src/runtime';
import { checked, leakWatch } from './helpers/leaks';
import { kv, makeAppDir, probeBinary, removeAtEndIfNew, requireRoot, runDyno, sh, TEST_RUN_DIR, testSpec } from './helpers/run';

const BRIDGE = `mfbrs${process.pid % 100000}`;
const SUBNET = '10.217.0.0/24';

const EXPECTED: Record<string, string> = {
  unix: 'ok',
  inet: 'ok',
  inet6: 'ok',
  netlink_route: 'ok',
  netlink_audit: 'EPROTONOSUPPORT',
  netlink_uevent: 'EPROTONOSUPPORT',
  vsock: 'EAFNOSUPPORT',
  packet: 'EAFNOSUPPORT',
  alg: 'EAFNOSUPPORT',
  key: 'EAFNOSUPPORT',
  tipc: 'EAFNOSUPPORT',
  xdp: 'EAFNOSUPPORT',
  bluetooth: 'EAFNOSUPPORT',
  socketpair_unix: 'ok',
  socketpair_tipc: 'EAFNOSUPPORT',
  unix_high_bits: 'ok',
};

// ip(8) over NETLINK_ROUTE, getaddrinfo through glibc (AI_ADDRCONFIG asks NETLINK_ROUTE too) and
// node's resolver, then a TCP round trip over loopback
const REAL_PROGRAMS =
  'ip -o link show lo >/dev/null && echo "ip ok"; ' +
  'getent ahosts localhost >/dev/null && echo "getent ok"; ' +
  `node -e "require('dns').lookup('localhost', { all: true }, (e, a) => { if (e) throw e; ` +
  `const s = require('net').createServer((c) => c.end('pong')).listen(0, '127.0.0.1', () => ` +
  `require('net').connect(s.address().port, '127.0.0.1').on('data', (d) => { console.log('node ' + d + ' ' + a.length); s.close(); }).on('end', () => process.exit(0))); })"`;

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
  const probe = probeBinary();

  for (const mode of ['none', 'bridge'] as const) {
    t.test(`--net ${mode}: only AF_UNIX, AF_INET, AF_INET6 and NETLINK_ROUTE sockets open`, checked(leaks, async (t) => {
      const appDir = makeAppDir(t, { probe: { content: fs.readFileSync(probe), mode: 0o755 } });
      const r = await runDyno(runtime, testSpec({ appDir, net: { mode }, command: { argv: ['/app/probe', 'sockets'] } }));
      t.equal(r.status.code, 0, r.stderr);
      const got = kv(r.stdout);
      for (const [name, want] of Object.entries(EXPECTED)) t.equal(got[name], want, `${name}: ${want}`);
    }));

    t.test(`--net ${mode}: ip, getent and node still work`, checked(leaks, async (t) => {
      const appDir = makeAppDir(t);
      const r = await runDyno(runtime, testSpec({ appDir, net: { mode }, command: sh(REAL_PROGRAMS) }), 30_000);
      t.equal(r.status.code, 0, r.stderr);
      t.match(r.stdout, /^ip ok$/m, 'ip link (NETLINK_ROUTE)');
      t.match(r.stdout, /^getent ok$/m, 'getent ahosts localhost (getaddrinfo)');
      t.match(r.stdout, /^node pong [1-9]/m, 'node resolves localhost and talks TCP over loopback');
    }));
  }
}
