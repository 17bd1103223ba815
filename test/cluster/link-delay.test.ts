/**
 * delayLink (helpers/link-delay.ts): a 200 ms delay on the fabric link towards h2, built in userspace
 * because this kernel has no sch_netem. RTT h1 → h2 before, during and after; 5 MB each way through the
 * delay (TCP's GSO super-frames and partial checksums must cross the forwarder intact); nothing left.
 *
 * The RTT is measured with a UDP echo in node rather than ping: iputils-ping is not on every box
 * (vagrant/provision.sh does not install it), node and python3 are.
 */
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { fabricMissing, serveIn, startFabric, type Fabric } from './helpers/fabric';
import { delayLink } from './helpers/link-delay';

// Echoes every UDP datagram back to its sender; says "ready" once bound.
const UDP_ECHO = `
const [host, port] = process.argv.slice(1);
const s = require('node:dgram').createSocket('udp4');
s.on('message', (m, r) => s.send(m, r.port, r.address));
s.bind(Number(port), host, () => console.log('ready'));
`;
// Sends COUNT probes INTERVAL ms apart, one at a time; prints the RTTs (ms) as JSON; a probe unanswered
// in 2 s counts as 2000.
const UDP_PING = `
const [host, port, count, interval] = process.argv.slice(1);
const s = require('node:dgram').createSocket('udp4');
const rtts = [];
let seq = 0, sentAt = 0, timer;
function probe() {
  if (seq === Number(count)) { console.log(JSON.stringify(rtts)); process.exit(0); }
  seq++;
  sentAt = performance.now();
  s.send(String(seq), Number(port), host);
  timer = setTimeout(() => { rtts.push(2000); next(); }, 2000);
}
function next() { setTimeout(probe, Number(interval)); }
s.on('message', (m) => {
  if (Number(String(m)) !== seq) return; // a late answer to a probe already counted as lost
  clearTimeout(timer);
  rtts.push(performance.now() - sentAt);
  next();
});
probe();
`;
// Deterministic payload shared by both ends (no need to ship a hash around).
const PAYLOAD = `
function payload(n) { const b = Buffer.alloc(n); for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >> 12)) % 251; return b; }
`;
// Port P: counts and hashes what arrives, answers "<bytes> <sha256>" at the end.
// Port P+1: sends SIZE bytes of payload() and ends.
const TCP_SERVER = `${PAYLOAD}
const [host, port, size] = process.argv.slice(1);
const net = require('node:net'), crypto = require('node:crypto');
const out = payload(Number(size));
let listening = 0;
const up = () => { if (++listening === 2) console.log('ready'); };
net.createServer((c) => {
  const h = crypto.createHash('sha256'); let n = 0;
  c.on('data', (d) => { n += d.length; h.update(d); });
  c.on('end', () => c.end(n + ' ' + h.digest('hex')));
}).listen(Number(port), host, up);
net.createServer((c) => c.end(out)).listen(Number(port) + 1, host, up);
`;
// Uploads SIZE bytes to port P, downloads from P+1; prints JSON {up, down, upMs, downMs}.
const TCP_CLIENT = `${PAYLOAD}
const [host, port, size] = process.argv.slice(1);
const net = require('node:net'), crypto = require('node:crypto');
const data = payload(Number(size));
const sha = crypto.createHash('sha256').update(data).digest('hex');
function upload() {
  return new Promise((resolve, reject) => {
    const t0 = performance.now(); let answer = '';
    const c = net.connect(Number(port), host, () => c.end(data));
    c.on('data', (d) => (answer += d)).on('error', reject);
    c.on('end', () => resolve({ ok: answer === data.length + ' ' + sha, answer, ms: performance.now() - t0 }));
  });
}
function download() {
  return new Promise((resolve, reject) => {
    const t0 = performance.now(); const h = crypto.createHash('sha256'); let n = 0;
    const c = net.connect(Number(port) + 1, host);
    c.on('data', (d) => { n += d.length; h.update(d); }).on('error', reject);
    c.on('end', () => resolve({ ok: n === data.length && h.digest('hex') === sha, bytes: n, ms: performance.now() - t0 }));
  });
}
(async () => {
  const up = await upload();
  const down = await download();
  console.log(JSON.stringify({ up, down }));
})().catch((e) => { console.log(JSON.stringify({ error: String(e) })); process.exit(1); });
`;

interface Transfer {
  up: { ok: boolean; answer: string; ms: number };
  down: { ok: boolean; bytes: number; ms: number };
}

const SIZE = 5 * 1024 * 1024;

const python = spawnSync('python3', ['--version'], { encoding: 'utf8' });
const missing = fabricMissing() ?? (python.error || python.status !== 0 ? 'python3 not available' : undefined);
if (missing) {
  t.plan(0, missing);
} else {
  main();
}


async function rtts(fabric: Fabric): Promise<number[]> {
  const r = await fabric.run('h1', process.execPath, ['-e', UDP_PING, fabric.address('h2'), '7000', '5', '200']);
  if (r.status !== 0) throw new Error(`udp ping exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout) as number[];
}

// The median, not the mean: one probe slowed by a busy box (other suites, 2 cores) must not decide.
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
};
const fmt = (xs: number[]): string => xs.map((x) => x.toFixed(1)).join(' ');

async function transfer(fabric: Fabric): Promise<Transfer> {
  const r = await fabric.run('h1', process.execPath, ['-e', TCP_CLIENT, fabric.address('h2'), '7001', String(SIZE)], 60_000);
  if (r.status !== 0) throw new Error(`tcp client exited ${r.status}: ${r.stdout} ${r.stderr}`);
  return JSON.parse(r.stdout) as Transfer;
}

function fabLinks(fabric: Fabric): string {
  return fabric.execOk('fab', 'ip', ['-o', 'link', 'show']);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function main(): void {
  let fabric: Fabric;

  t.before(async () => {
    fabric = await startFabric(t, { hosts: 2, etcd: false });
    await serveIn(fabric, 'h2', UDP_ECHO, [fabric.address('h2'), '7000']);
    await serveIn(fabric, 'h2', TCP_SERVER, [fabric.address('h2'), '7001', String(SIZE)]);
  });

  t.test('200 ms towards h2: RTT h1 → h2 rises by 200 ms, 5 MB each way arrive whole, stop() restores', async (t) => {
    const before = await rtts(fabric);
    t.comment(`RTT before: ${fmt(before)} ms`);
    t.ok(median(before) < 20, `RTT before < 20 ms (median ${median(before).toFixed(1)})`);
    const plain = await transfer(fabric);
    t.ok(plain.up.ok && plain.down.ok, '5 MB each way without the delay');

    const delay = await delayLink(fabric, 'h2', 200);
    let stopped = false;
    t.teardown(() => (stopped ? undefined : delay.stop()));
    t.match(fabLinks(fabric), /\bdl2@dl2b\b.*\bmaster fab0\b/, 'dl2 is on fab0 in place of up2');
    t.notMatch(fabric.execOk('fab', 'ip', ['-o', 'link', 'show', 'up2']), /\bmaster\b/, 'up2 is off the bridge');

    const during = await rtts(fabric);
    t.comment(`RTT with 200 ms towards h2: ${fmt(during)} ms`);
    t.ok(median(during) >= 195 && median(during) <= 400, `RTT with the delay within 195–400 ms (median ${median(during).toFixed(1)})`);
    t.ok(Math.min(...during) >= 195, 'no probe faster than the delay');

    const slow = await transfer(fabric);
    const mbps = (ms: number): string => ((SIZE * 8) / 1e6 / (ms / 1000)).toFixed(1);
    t.comment(`5 MB through the delay: h1 → h2 ${slow.up.ms.toFixed(0)} ms (${mbps(slow.up.ms)} Mbit/s), h2 → h1 ${slow.down.ms.toFixed(0)} ms (${mbps(slow.down.ms)} Mbit/s); without: ${plain.up.ms.toFixed(0)} / ${plain.down.ms.toFixed(0)} ms`);
    t.ok(slow.up.ok, `upload through the delay arrives whole (${slow.up.answer.split(' ')[0]} of ${SIZE} bytes, hash checked)`);
    t.ok(slow.down.ok, `download through the delay arrives whole (${slow.down.bytes} of ${SIZE} bytes, hash checked)`);

    await delay.stop();
    stopped = true;
    await delay.stop(); // idempotent

    const after = await rtts(fabric);
    t.comment(`RTT after stop: ${fmt(after)} ms`);
    t.ok(median(after) < 20, `RTT after stop < 20 ms (median ${median(after).toFixed(1)})`);

    const links = fabLinks(fabric);
    t.notMatch(links, /^\d+:\s+dl/m, 'no dl* veth left in fab');
    t.match(fabric.execOk('fab', 'ip', ['-o', 'link', 'show', 'up2']), /\bmaster fab0\b.*state UP|state UP.*\bmaster fab0\b/, 'up2 back on fab0 and up');
    t.notOk(alive(delay.pid), 'the forwarder is gone');
  });

  t.test('a second delay on the same host is refused while one is active', async (t) => {
    const delay = await delayLink(fabric, 'h2', 50);
    await t.rejects(delayLink(fabric, 'h2', 50), /not on fab0/);
    await delay.stop();
    t.notMatch(fabLinks(fabric), /^\d+:\s+dl/m, 'no dl* veth left in fab');
  });

  t.test('a forwarder killed during the delay: stop() heals the link and reports it', async (t) => {
    const delay = await delayLink(fabric, 'h2', 200);
    process.kill(delay.pid, 'SIGKILL');
    await t.rejects(delay.stop(), /ended with SIGKILL, not 0 on SIGTERM/);
    t.notMatch(fabLinks(fabric), /^\d+:\s+dl/m, 'no dl* veth left in fab');
    t.match(fabric.execOk('fab', 'ip', ['-o', 'link', 'show', 'up2']), /\bmaster fab0\b/, 'up2 back on fab0');
    t.ok(median(await rtts(fabric)) < 20, 'h2 answers undelayed');
  });

  t.test('stopping the fabric leaves nothing', async (t) => {
    await fabric.stop();
    const leak = fabric.leakCheck();
    t.same(leak.dirs, [], 'no fabric dir');
    t.same(leak.processesInNamespaces, [], 'no process (forwarder, servers) left in the namespaces');
    t.same(leak.ourLinksInRoot, [], 'no fabric veth or bridge in the root namespace');
    t.same(leak.rootLinksAdded.filter((l) => /^(dl|mf)/.test(l)), [], 'no dl* link in the root namespace');
    t.same(leak.rootLinksRemoved, [], 'no root interface removed');
  });
}
