/**
 * Issue 9, item 2: a bridged dyno reaches no host service. The host listens on 0.0.0.0:PORT and
 * [::]:PORT (and on each test gateway's port 53); a dyno tries every address of the host (from
 * os.networkInterfaces(): its bridge's gateway, the other test bridge's gateway, the host's other
 * interfaces, IPv6 global and link-local, the bridge's link-local on the dyno's own link), and
 * every attempt must fail, while the host still connects to the dyno (the router's direction)
 * and, on a bridge whose options say the host serves DNS there, the dyno reaches DNS on its
 * gateway and nothing else. Traffic goes only to the host's own addresses and to the test's dynos.
 *
 * Host state it creates and removes: two bridges of its own (10.218.1.0/24 and 10.218.2.0/24)
 * with their nftables tables (`inet manifold-BRIDGE`), checked gone at the end.
 */
import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { Runtime } from '../../src/runtime';
import { BridgeNetwork, natTable } from '../../src/runtime/network';
import { checked, leakWatch } from './helpers/leaks';
import { makeAppDir, REPO_ROOT, removeAtEndIfNew, requireRoot, startCaptured, TEST_RUN_DIR, testSpec } from './helpers/run';

const ID = process.pid % 100000;
const MAIN = { name: `mffw${ID}`, subnet: '10.218.1.0/24' };
const DNS = { name: `mffd${ID}`, subnet: '10.218.2.0/24', hostDns: true };
const MAIN_GW = '10.218.1.1';
const DNS_GW = '10.218.2.1';
const DYNO_PORT = 5000;
const PROBE = fs.readFileSync(path.join(REPO_ROOT, 'test/runtime/fixtures/connect-probe.js'), 'utf8');

interface Target {
  proto: 'tcp' | 'udp';
  host: string;
  port: number;
  why: string;
}

function tryRun(cmd: string, args: string[]): string | undefined {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch {
    return undefined;
  }
}

function skipReason(): string | undefined {
  if (tryRun('nft', ['--version']) === undefined) return 'needs nft (nftables): bridged dynos need it';
  for (const b of [MAIN, DNS]) if (fs.existsSync(`/sys/class/net/${b.name}`)) return `bridge ${b.name} already exists (a crashed run of this file?)`;
  const taken = (tryRun('ip', ['-4', '-o', 'addr', 'show']) ?? '').split('\n').find((l) => / inet 10\.218\./.test(l));
  return taken ? `10.218.0.0/16 is in use on this host (${taken.split(/\s+/)[1]})` : undefined;
}

/** The bridge's IPv6 link-local address once duplicate address detection is over, if it gets one. */
async function bridgeLinkLocal(bridge: string, deadlineMs = 5000): Promise<string | undefined> {
  const until = Date.now() + deadlineMs;
  while (Date.now() < until) {
    for (const line of (tryRun('cat', ['/proc/net/if_inet6']) ?? '').trim().split('\n')) {
      const f = line.trim().split(/\s+/);
      if (f[5] === bridge && f[0]!.startsWith('fe80') && (parseInt(f[4]!, 16) & 0x40) === 0) {
        return new URL(`http://[${f[0]!.replace(/(.{4})(?!$)/g, '$1:')}]`).hostname.slice(1, -1); // compressed, as os.networkInterfaces() has it
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return undefined;
}

/** A TCP listener recording who connected. */
async function listen(host: string, port: number, opts: { ipv6Only?: boolean } = {}): Promise<{ server: net.Server; peers: string[] }> {
  const peers: string[] = [];
  const server = net.createServer((s) => {
    peers.push(s.remoteAddress ?? '?');
    s.on('error', () => undefined); // a probe closes at once: a reset here is no failure
    s.end('host service\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, ...opts }, () => resolve());
  });
  return { server, peers };
}

/** A UDP "DNS server" answering every datagram. */
async function listenUdp(host: string, port: number): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  s.on('message', (_m, rinfo) => s.send('answer', rinfo.port, rinfo.address));
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.bind(port, host, () => resolve());
  });
  return s;
}

function request(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, timeout: 3000 });
    let data = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (data += d));
    s.on('end', () => resolve(data));
    s.on('timeout', () => s.destroy(new Error('timeout')));
    s.on('error', reject);
  });
}

/** Runs the probe in a bridged dyno; returns each target's outcome, its IPv6 line, and what the host got connecting to it. */
async function probe(t: Test, runtime: Runtime, name: string, targets: Target[]): Promise<{ outcomes: string[]; ipv6: string; hostToDyno: string }> {
  const appDir = makeAppDir(t, { 'probe.js': PROBE });
  const c = startCaptured(runtime, testSpec({ name, appDir, port: DYNO_PORT, net: { mode: 'bridge' }, command: { argv: ['node', '/app/probe.js', JSON.stringify(targets)] } }));
  const dyno = await c.started;
  await c.waitFor(/^DONE$/m, 20_000);
  const hostToDyno = await request(dyno.address!, DYNO_PORT).catch((e: Error) => `failed: ${e.message}`);
  const r = await c.done;
  const outcomes = targets.map((_, i) => new RegExp(`^RESULT ${i} (\\S+)$`, 'm').exec(r.stdout)?.[1] ?? 'missing');
  return { outcomes, ipv6: /^IPV6 (\S+)$/m.exec(r.stdout)?.[1] ?? 'missing', hostToDyno };
}

function main(): void {
  removeAtEndIfNew(t, TEST_RUN_DIR);
  const mainRt = Runtime.open({ runDir: TEST_RUN_DIR, cgroupName: `manifold-test-${process.pid}`, bridge: MAIN });
  const dnsRt = Runtime.open({ runDir: TEST_RUN_DIR, cgroupName: `manifold-test-${process.pid}-dns`, bridge: DNS });
  const cleanupAll = (): void => {
    for (const b of [MAIN, DNS]) BridgeNetwork.cleanup(TEST_RUN_DIR, b.name);
  };
  t.teardown(() => {
    cleanupAll();
    for (const r of [mainRt, dnsRt]) {
      try {
        fs.rmdirSync(r.cgroups.root);
      } catch {
        /* leftovers are reported by the leak checks */
      }
    }
  });
  const mainLeaks = leakWatch(mainRt);
  const dnsLeaks = leakWatch(dnsRt);
  // both bridges (and their tables) exist before the listeners bind to their gateways
  mainRt.bridge();
  dnsRt.bridge();

  let v4: Awaited<ReturnType<typeof listen>>;
  let v6: Awaited<ReturnType<typeof listen>> | undefined;
  const dnsTcp: Awaited<ReturnType<typeof listen>>[] = [];
  let dnsUdp: dgram.Socket | undefined;
  let port = 0;
  t.before(async () => {
    v4 = await listen('0.0.0.0', 0);
    port = (v4.server.address() as net.AddressInfo).port;
    v6 = await listen('::', port, { ipv6Only: true }).catch(() => undefined); // a host without IPv6
    for (const gw of [MAIN_GW, DNS_GW]) dnsTcp.push(await listen(gw, 53));
    dnsUdp = await listenUdp(DNS_GW, 53);
  });
  t.teardown(() => {
    for (const l of [v4, v6, ...dnsTcp]) l?.server.close();
    dnsUdp?.close();
  });
  const hostPeers = (): string[] => [...v4!.peers, ...(v6?.peers ?? []), ...dnsTcp.flatMap((l) => l.peers)];

  t.test('a bridged dyno reaches no host address (IPv4, IPv6), while the host reaches the dyno', checked(mainLeaks, async (t) => {
    // a dyno on the bridge gives it a carrier, and so its IPv6 link-local address
    const keeper = await mainRt.start(testSpec({ name: 'keeper.1', appDir: makeAppDir(t), net: { mode: 'bridge' }, command: { argv: ['sleep', '60'] } }));
    const bridgeLL = await bridgeLinkLocal(MAIN.name);
    const targets: Target[] = [];
    for (const [ifname, addrs] of Object.entries(os.networkInterfaces())) {
      for (const a of addrs ?? []) {
        if (a.internal) continue; // 127.0.0.1 and ::1 are the dyno's own loopback in there
        if (a.family === 'IPv4') targets.push({ proto: 'tcp', host: a.address, port, why: `${ifname} ${a.address}` });
        // a link-local address is reached on the dyno's one link: only the bridge's can answer, all are tried
        else targets.push({ proto: 'tcp', host: a.address.startsWith('fe80') ? `${a.address.split('%')[0]}%eth0` : a.address, port, why: `${ifname} ${a.address}` });
      }
    }
    targets.push({ proto: 'tcp', host: MAIN_GW, port: 53, why: 'DNS on the gateway, not opened on this bridge' });
    targets.push({ proto: 'tcp', host: DNS_GW, port: 53, why: 'DNS opened on the other bridge only' });
    const hosts = targets.map((x) => x.host);
    t.ok(hosts.includes(MAIN_GW) && hosts.includes(DNS_GW), 'the targets include both test gateways');
    t.ok(targets.some((x) => x.proto === 'tcp' && net.isIPv4(x.host) && !x.host.startsWith('10.218.')), `and another host IPv4 address: ${hosts.filter((h) => net.isIPv4(h)).join(' ')}`);
    if (bridgeLL) t.ok(hosts.includes(`${bridgeLL}%eth0`), `and the bridge's link-local ${bridgeLL}`);

    const r = await probe(t, mainRt, 'probe.1', targets);
    targets.forEach((x, i) => t.not(r.outcomes[i], 'connected', `${x.proto} ${x.host} port ${x.port} (${x.why}): ${r.outcomes[i]}`));
    t.notOk(r.outcomes.includes('missing'), 'every target was tried');
    t.same(hostPeers(), [], 'no host listener saw a connection');
    t.equal(r.hostToDyno, 'probe here', 'the host connects to the dyno (the router\'s direction): replies pass');
    if (v6 && bridgeLL && r.ipv6 !== 'none') t.match(r.ipv6, /^fe80/, `the dyno had IPv6 (link-local ${r.ipv6}), so [::]:${port} was tried through the bridge's link-local`);
    else t.comment(`IPv6 through the bridge not tried: host listener ${v6 ? 'up' : 'none'}, bridge link-local ${bridgeLL ?? 'none'}, dyno ${r.ipv6}`);
    await keeper.stop(1000);
    await keeper.exited;
  }));

  t.test('hostDns opens DNS on the gateway to its own bridge, and nothing else', checked(dnsLeaks, async (t) => {
    const targets: Target[] = [
      { proto: 'tcp', host: DNS_GW, port: 53, why: 'DNS over TCP' },
      { proto: 'udp', host: DNS_GW, port: 53, why: 'DNS over UDP' },
      { proto: 'tcp', host: DNS_GW, port, why: 'another port of the gateway' },
      { proto: 'tcp', host: MAIN_GW, port: 53, why: 'the other bridge\'s gateway' },
      { proto: 'tcp', host: MAIN_GW, port, why: 'the other bridge\'s gateway' },
    ];
    const r = await probe(t, dnsRt, 'probe.2', targets);
    t.same(r.outcomes.slice(0, 2), ['connected', 'answered'], `DNS on the gateway answers: ${r.outcomes.slice(0, 2).join(' ')}`);
    targets.slice(2).forEach((x, i) => t.not(r.outcomes[i + 2], 'connected', `${x.host} port ${x.port} (${x.why}): ${r.outcomes[i + 2]}`));
    t.equal(r.hostToDyno, 'probe here', 'the host connects to the dyno');
  }));

  t.test('cleanup removes the bridges and their nftables tables', async (t) => {
    for (const b of [MAIN, DNS]) t.match(tryRun('nft', ['list', 'table', 'inet', natTable(b.name)]) ?? '', new RegExp(`iifname "${b.name}" reject`), `${b.name} has its input filter until then`);
    // a table of family ip by the same name is what earlier versions kept NAT in: cleanup removes it too
    execFileSync('nft', ['add', 'table', 'ip', natTable(MAIN.name)]);
    cleanupAll();
    const ruleset = tryRun('nft', ['list', 'ruleset']) ?? '';
    for (const b of [MAIN, DNS]) {
      t.notOk(fs.existsSync(`/sys/class/net/${b.name}`), `bridge ${b.name} removed`);
      t.notMatch(ruleset, new RegExp(`manifold-${b.name}|"${b.name}"`), `nothing of ${b.name} left in the ruleset (no table, inet or ip)`);
    }
  });
}

if (requireRoot(t)) {
  const reason = skipReason();
  if (reason !== undefined) t.plan(0, `skip: ${reason}`);
  else main();
}
