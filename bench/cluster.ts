/**
 * bench:cluster (issue 10): cluster mode on three network-namespace hosts (the e2e test's fabric:
 * h1, h2 with every role, h3 `dynos,scheduler`; etcd on e1..e3; the client in `cl`), app examples/hello.
 *
 * 1. Route propagation: `ps:scale web=3→4` repeated (and back to 3). Each new web instance gives one sample:
 *    from the moment its agent published it as `up` (EndpointRecord.since, stamped by the agent just before
 *    its Txn) to the moment each router's RouteFeed had applied the revision of that put
 *    (RouteFeed.appliedAt(rev), asked through POST /v1/local/applied on each router host's cluster server).
 *    Also: scale command start (CLI spawn included) → the instance routable on every router.
 * 2. `ps:scale web=30` → every router has all 30 `up` backends: CLI start → the last router applied the
 *    first revision at which etcd held 30 `up` web endpoints.
 * 3. Deploy → every router routes only to new-release dynos: CLI start → the last router applied the first
 *    revision at which every `up` web endpoint carries a release newer than the one before the deploy and
 *    their number equals the formation (`draining` backends get no new requests, so they don't count).
 * 4. Throughput (wrk in `cl`, same C and duration, rounds in rotated order, medians): A client → router h1 →
 *    the one web dyno on h2 (h1 and h3 drained: the router's table holds only a remote dyno); B client → a
 *    single-host `manifold daemon` (no --etcd) in a 4th namespace h4 → its local dyno; C client → router h2 →
 *    the same dyno as A, local to it (splits A/B into the host-to-host hop, A/C, and cluster mode itself, C/B).
 *
 * The bench process stays in the root netns: it reads etcd through the members' unix sockets and runs a
 * small probe (bench/lib/cluster-probe) in `cl` for the calls to the hosts. Everything is stopped at the end
 * (daemons, fabric, h4's daemon; leak check printed). Exit 0 when the bench ran (goals missed are reported),
 * 1 when it broke.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import type { Etcd3, IWatchResponse, Watcher } from 'etcd3';
import { createEtcdClient } from '../src/cluster/etcd-client';
import { keys } from '../src/cluster/keys';
import { parseRecord, type EndpointRecord, type HostRecord } from '../src/cluster/records';
import { ApiClient } from '../src/cli/client';
import type { PsResult } from '../src/manifold/api/protocol';
import { CgroupTree } from '../src/runtime/cgroup';
import { fabricMissing, startFabric, type Fabric } from '../test/cluster/helpers/fabric';
import { ClusterHosts, ROUTER_PORT, type HostDaemon } from '../test/cluster/helpers/cluster-hosts';
import { BIN, ROOT, runCli, sleep } from '../test/manifold/helpers/daemon';
import type { ProbeAnswer } from './lib/cluster-probe';
import { fmt, mdTable, median } from './lib/stats';
import { parseWrk, type WrkResult } from './lib/wrk';

const APP = 'hello';
const HELLO = path.join(ROOT, 'examples/hello');
const HOST = `${APP}.example.test`;
const PROBE = path.join(__dirname, 'lib', 'cluster-probe.js');
const SAMPLES = Number(process.env.BENCH_CLUSTER_SAMPLES ?? 32);
const BIG = Number(process.env.BENCH_CLUSTER_BIG ?? 30);
/** web=PEER on the cluster and on the single-host peer (which can't hold 30 standard-1X dynos: writable-layer budget). */
const PEER = Number(process.env.BENCH_CLUSTER_PEER ?? 20);
const WRK_SECONDS = Number(process.env.BENCH_CLUSTER_WRK_SECONDS ?? 5);
const WRK_ROUNDS = Number(process.env.BENCH_CLUSTER_WRK_ROUNDS ?? 6);
const WRK_CONNECTIONS = 16;

const log = (line: string): void => console.log(`[${new Date().toISOString().slice(11, 23)}] ${line}`);

function pct(xs: readonly number[], p: number): number {
  const v = [...xs].sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  return v[Math.min(v.length - 1, Math.ceil((p / 100) * v.length) - 1)]!;
}

// ---- etcd view of the app's endpoints, revision by revision ----

interface UpEvent {
  key: string;
  rev: number;
  rec: EndpointRecord;
  /** When the bench's own watch saw it (epoch ms). */
  seenAt: number;
}

class EndpointView {
  readonly recs = new Map<string, EndpointRecord>();
  rev = 0;
  private watcher: Watcher | undefined;
  private readonly listeners = new Set<(ups: UpEvent[]) => void>();

  constructor(private readonly client: Etcd3) {}

  get prefix(): string {
    return `${keys.endpoints()}${APP}/`;
  }

  async start(): Promise<void> {
    const res = await this.client.getAll().prefix(this.prefix).exec();
    for (const kv of res.kvs) {
      const r = parseRecord<EndpointRecord>(kv.value);
      if (r) this.recs.set(kv.key.toString(), r);
    }
    this.rev = Number(res.header.revision);
    this.watcher = await this.client.watch().prefix(this.prefix).startRevision(String(this.rev + 1)).create();
    this.watcher.on('error', (err: Error) => log(`endpoint watch error: ${err.message}`));
    this.watcher.on('data', (res: IWatchResponse) => this.onData(res));
  }

  async stop(): Promise<void> {
    await this.watcher?.cancel().catch(() => undefined);
  }

  private onData(res: IWatchResponse): void {
    const seenAt = Date.now();
    const ups: UpEvent[] = [];
    for (const ev of res.events) {
      const key = ev.kv.key.toString();
      const rev = Number(ev.kv.mod_revision);
      // one listener pass per revision, so predicates see every intermediate state
      if (rev > this.rev) {
        this.flush(ups);
        this.rev = rev;
      }
      if (ev.type === 'Put') {
        const rec = parseRecord<EndpointRecord>(ev.kv.value);
        if (!rec) continue;
        const before = this.recs.get(key);
        this.recs.set(key, rec);
        if (rec.state === 'up' && before?.state !== 'up') ups.push({ key, rev, rec, seenAt });
      } else this.recs.delete(key);
    }
    this.flush(ups);
  }

  /** Tells the listeners that `this.recs` is the state at `this.rev`, with the ups that revision brought. */
  private flush(ups: UpEvent[]): void {
    const batch = ups.splice(0);
    for (const l of this.listeners) l(batch);
  }

  /** Calls `fn` after every revision (with the ups it brought) until it returns a value; resolves with it. */
  until<T>(what: string, fn: (ups: UpEvent[]) => T | undefined, timeoutMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const first = fn([]);
      if (first !== undefined) return resolve(first);
      const timer = setTimeout(() => {
        this.listeners.delete(l);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const l = (ups: UpEvent[]): void => {
        const v = fn(ups);
        if (v === undefined) return;
        clearTimeout(timer);
        this.listeners.delete(l);
        resolve(v);
      };
      this.listeners.add(l);
    });
  }

  web(state?: EndpointRecord['state']): [string, EndpointRecord][] {
    return [...this.recs].filter(([k, r]) => k.startsWith(`${this.prefix}web.`) && (state === undefined || r.state === state));
  }
}

// ---- the probe in cl ----

class Probe {
  private seq = 0;
  private readonly pending = new Map<number, (a: ProbeAnswer) => void>();
  private readonly child;

  constructor(fabric: Fabric, token: string) {
    this.child = fabric.node('cl', PROBE, [], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, MF_CLUSTER_TOKEN: token } });
    this.child.stdin!.on('error', () => undefined);
    readline.createInterface({ input: this.child.stdout! }).on('line', (line) => {
      const a = JSON.parse(line) as ProbeAnswer;
      this.pending.get(a.id)?.(a);
      this.pending.delete(a.id);
    });
  }

  call<T>(addr: string, p: string, body: unknown, timeoutMs = 10_000): Promise<T> {
    const id = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      const t = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`probe: no answer from ${addr} in ${timeoutMs + 5000} ms`));
      }, timeoutMs + 5000);
      this.pending.set(id, (a) => {
        clearTimeout(t);
        if ('error' in a) reject(new Error(`${addr}${p}: ${a.error}`));
        else resolve(a.result as T);
      });
      this.child.stdin!.write(`${JSON.stringify({ id, addr, path: p, body, timeoutMs })}\n`);
    });
  }

  stop(): void {
    this.child.stdin!.end();
  }
}

// ---- a single-host daemon (no --etcd) in its own namespace, the throughput baseline ----

class SingleHost {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-bench-single-'));
  readonly socket = path.join(this.dir, 'api.sock');
  readonly cgroup = `mf-bench-single-${process.pid}`;
  readonly runDir = `/run/mf-bench-single-${process.pid}`;
  private child: ReturnType<Fabric['spawn']> | undefined;
  private out = '';

  constructor(
    private readonly fabric: Fabric,
    readonly ns: string,
  ) {}

  get router(): string {
    return `${this.fabric.address(this.ns)}:${ROUTER_PORT}`;
  }

  async start(): Promise<void> {
    const args = [
      BIN, 'daemon', '--state-dir', path.join(this.dir, 'state'), '--socket', this.socket, '--run-dir', this.runDir, '--cgroup', this.cgroup,
      '--listen', this.router, '--net', 'bridge', '--bridge', 'mfsingle0', '--subnet', '10.216.0.0/24', '--domain', 'example.test', '--stop-grace', '2s',
    ];
    const child = this.fabric.spawn(this.ns, process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stdout!.on('data', (d: Buffer) => (this.out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (this.out += d.toString()));
    const deadline = Date.now() + 30_000;
    while (!/ready:/.test(this.out)) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`single-host daemon exited: ${this.out}`);
      if (Date.now() > deadline) throw new Error(`single-host daemon did not start: ${this.out}`);
      await sleep(50);
    }
  }

  async cli(...args: string[]): Promise<string> {
    const r = await runCli(args, { MANIFOLD_SOCKET: this.socket });
    if (r.code !== 0) throw new Error(`single-host manifold ${args.join(' ')}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  async stop(): Promise<void> {
    const c = this.child;
    if (c && c.exitCode === null && c.signalCode === null) {
      const gone = new Promise((r) => c.once('exit', r));
      c.kill('SIGTERM');
      const t = setTimeout(() => c.kill('SIGKILL'), 15_000);
      await gone;
      clearTimeout(t);
    }
    fs.rmSync(this.runDir, { recursive: true, force: true });
    fs.rmSync(this.dir, { recursive: true, force: true });
    // its cgroup root is removed with the cluster's, by path (bench main)
  }
}

// ---- helpers ----

/** `pid (comm)` of every process in a cgroup subtree (empty when it doesn't exist). */
function procsUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const pid of fs.readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
      let comm = '?';
      try {
        comm = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      } catch {
        /* gone */
      }
      out.push(`${pid} (${comm}) in ${path.relative('/sys/fs/cgroup/unified', d)}`);
    }
    for (const e of fs.readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(path.join(d, e.name));
  };
  try {
    walk(dir);
  } catch {
    /* removed meanwhile */
  }
  return out;
}

async function cli(d: HostDaemon, ...args: string[]): Promise<string> {
  const r = await d.cli(...args);
  if (r.code !== 0) throw new Error(`manifold ${args.join(' ')} on ${d.host}: ${r.stderr.trim()}`);
  return r.stdout;
}

interface Applied {
  rev: number;
  at: number | null;
}

/** Router → dyno TCP connections seen in the router's namespace halfway through a run (keep-alive check). */
interface BackendConns {
  established: number;
  timeWait: number;
}

async function wrkIn(fabric: Fabric, url: string, routerNs: string): Promise<WrkResult & { backend: BackendConns }> {
  const args = ['-t1', `-c${WRK_CONNECTIONS}`, `-d${WRK_SECONDS}s`, '--latency', '-H', `Host: ${HOST}`, url];
  const run = fabric.run('cl', 'wrk', args, (WRK_SECONDS + 15) * 1000);
  await sleep((WRK_SECONDS * 1000) / 2);
  // dyno addresses: 10.200.<n>.x in the cluster, 10.216.0.x on the single host
  const count = (state: string): number =>
    fabric.exec(routerNs, 'ss', ['-Htn', 'state', state]).stdout.split('\n').filter((l) => /\s10\.2(00|16)\.\d+\.\d+:\d+\s*$/.test(l)).length;
  const backend = { established: count('established'), timeWait: count('time-wait') };
  const r = await run;
  if (r.status !== 0) throw new Error(`wrk ${url} exited ${r.status}: ${r.stderr}`);
  return { ...parseWrk(r.stdout), backend };
}

function sampleLine(name: string, xs: number[]): string {
  return `${name}: n=${xs.length} p50 ${fmt(pct(xs, 50), 1)} ms, p99 ${fmt(pct(xs, 99), 1)} ms, max ${fmt(Math.max(...xs), 1)} ms`;
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    console.log('bench:cluster: needs root (network namespaces, dynos); skipped');
    return 0;
  }
  const missing = fabricMissing();
  if (missing) {
    console.log(`bench:cluster: ${missing}; skipped`);
    return 0;
  }
  const started = Date.now();
  log(`bench:cluster on ${os.cpus().length} CPUs, Node ${process.version}, load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const fabric = await startFabric(undefined, { hosts: 4 });
  const cluster = new ClusterHosts(fabric);
  const single = new SingleHost(fabric, 'h4');
  let client: Etcd3 | undefined;
  let view: EndpointView | undefined;
  let probe: Probe | undefined;
  const rows: string[][] = [];
  const notes: string[] = [];
  /** Raw figures, written to bench/results/cluster-<time>.json. */
  const raw: Record<string, unknown> = { startedAt: new Date(started).toISOString(), cpus: os.cpus().length, node: process.version, loadavgStart: os.loadavg() };
  let broke: unknown;
  /** The daemons' cgroup roots (taken while they exist), removed by path at the end. */
  const cgPaths: string[] = [];
  try {
    const h1 = cluster.add('h1');
    const h2 = cluster.add('h2');
    const h3 = cluster.add('h3', { roles: 'dynos,scheduler' });
    await Promise.all([h1.start(), h2.start(), h3.start(), single.start()]);
    log('3 cluster hosts and the single-host daemon (h4) up');
    for (const c of [...[...cluster.daemons.values()].map((d) => d.cgroup), single.cgroup]) cgPaths.push(CgroupTree.open(c).root);
    client = createEtcdClient(fabric.etcdLocalEndpoints);
    const token = (await client.get(keys.secret()).string()) ?? '';
    const routerHosts = [h1, h2];
    const admin = new Map<string, string>();
    for (const d of routerHosts) {
      const rec = parseRecord<HostRecord>((await client.get(keys.host(d.host)).string()) ?? '');
      if (!rec) throw new Error(`no host record for ${d.host}`);
      admin.set(d.host, `${rec.uplink}:${rec.clusterPort}`);
    }
    probe = new Probe(fabric, token);
    const p = probe;
    /** When every router first reflected `rev` (epoch ms each), waiting up to 10 s for each. */
    const appliedOnAll = async (rev: number): Promise<number[]> =>
      Promise.all(
        routerHosts.map(async (d) => {
          const a = await p.call<Applied>(admin.get(d.host)!, '/v1/local/applied', { rev, timeout: 10_000 });
          if (a.at === null) throw new Error(`router ${d.host} had not applied revision ${rev} (at ${a.rev})`);
          return a.at;
        }),
      );

    view = new EndpointView(client);
    await view.start();
    const v = view;

    await cli(h1, 'apps:create', APP);
    await cli(h1, 'deploy', HELLO, '-a', APP);
    await cli(h1, 'ps:scale', 'web=3', '-a', APP);
    await v.until('3 web endpoints up', () => (v.web('up').length === 3 ? true : undefined), 60_000);
    await appliedOnAll(v.rev);
    log(`hello deployed, web=3 up on ${v.web('up').map(([, r]) => r.host).join(',')}`);

    // ---- 1. route propagation ----
    const prop: number[] = [];
    const cmdToAll: number[] = [];
    const putSeen: number[] = [];
    const phase1Deadline = Date.now() + 240_000;
    for (let i = 0; prop.length / routerHosts.length < SAMPLES && Date.now() < phase1Deadline; i++) {
      const t0 = Date.now();
      const upWait = v.until('a 4th web endpoint up', (ups) => ups.find((u) => u.key.startsWith(`${v.prefix}web.`)), 60_000);
      await cli(h2, 'ps:scale', 'web=4', '-a', APP);
      const up = await upWait;
      const ats = await appliedOnAll(up.rev);
      const since = up.rec.since;
      if (since === undefined) throw new Error('endpoint record without since: the daemons run a build without the bench hook');
      for (const at of ats) prop.push(at - since);
      putSeen.push(up.seenAt - since);
      cmdToAll.push(Math.max(...ats) - t0);
      await cli(h2, 'ps:scale', 'web=3', '-a', APP);
      await v.until('back to 3 web endpoints', () => (v.web().length === 3 && v.web('up').length === 3 ? true : undefined), 60_000);
    }
    Object.assign(raw, { propagationMs: prop, publishToBenchWatchMs: putSeen, scaleCommandToAllRoutersMs: cmdToAll });
    log(sampleLine('propagation agent publish → router applied (per router)', prop));
    log(sampleLine('agent publish → bench watch saw it', putSeen));
    log(sampleLine('scale command start → routable on every router', cmdToAll));
    rows.push(['route propagation: endpoint `up` published → applied on each router, p50', `${fmt(pct(prop, 50), 1)} ms`, '—', `n=${prop.length} (${prop.length / 2} dynos × 2 routers)`]);
    rows.push(['route propagation, p99', `${fmt(pct(prop, 99), 1)} ms`, '≤ 100 ms', pct(prop, 99) <= 100 ? 'MET' : 'MISSED']);
    rows.push(['  max', `${fmt(Math.max(...prop), 1)} ms`, '', '']);
    rows.push(['  agent publish → bench watch (etcd commit+watch, peer figure), p50 / p99', `${fmt(pct(putSeen, 50), 1)} / ${fmt(pct(putSeen, 99), 1)} ms`, '', `n=${putSeen.length}`]);
    rows.push(['scale web=3→4 command start → routable on every router, p50 / p99', `${fmt(pct(cmdToAll, 50), 0)} / ${fmt(pct(cmdToAll, 99), 0)} ms`, '—', 'CLI start (node) + placement + dyno boot included']);

    // ---- 2. web=30 (and web=PEER, the size the single-host peer can hold) ----
    /** ps:scale web=n from web=3: CLI start → every router applied the revision with n web endpoints up; then back to 3. */
    const scaleCluster = async (n: number): Promise<{ cliMs: number; lastPublishMs: number; routersMs: number[]; totalMs: number; spread: string }> => {
      const t0 = Date.now();
      const all = v.until(`${n} web endpoints up`, () => (v.web('up').length >= n ? { rev: v.rev, at: Date.now() } : undefined), 120_000);
      await cli(h1, 'ps:scale', `web=${n}`, '-a', APP);
      const cliMs = Date.now() - t0;
      const got = await all;
      const ats = await appliedOnAll(got.rev);
      const totalMs = Math.max(...ats) - t0;
      const byHost = new Map<string, number>();
      for (const [, r] of v.web('up')) byHost.set(r.host, (byHost.get(r.host) ?? 0) + 1);
      const spread = [...byHost].sort().map(([h, k]) => `${h}:${k}`).join(' ');
      const lastPublishMs = Math.max(...v.web('up').map(([, r]) => r.since ?? Number.NaN)) - t0;
      log(`cluster web=${n}: CLI returned after ${cliMs} ms; last agent publish at +${lastPublishMs} ms; all ${n} up seen by the bench at +${got.at - t0} ms; routable on every router at +${totalMs} ms (${ats.map((a) => a - t0).join(', ')}); spread ${spread}`);
      const t1 = Date.now();
      await cli(h1, 'ps:scale', 'web=3', '-a', APP);
      await v.until('back to 3 web endpoints', () => (v.web().length === 3 && v.web('up').length === 3 ? true : undefined), 120_000);
      log(`scaled back to web=3 in ${Date.now() - t1} ms`);
      return { cliMs, lastPublishMs, routersMs: ats.map((a) => a - t0), totalMs, spread };
    };
    {
      const big = await scaleCluster(BIG);
      rows.push([`ps:scale web=${BIG} → all ${BIG} routable on every router`, `${fmt(big.totalMs)} ms`, '≤ 3000 ms', big.totalMs <= 3000 ? 'MET' : 'MISSED']);
      rows.push([`  CLI returned / last of ${BIG} published \`up\` by its agent`, `${fmt(big.cliMs)} / ${fmt(big.lastPublishMs)} ms`, '', `spread ${big.spread}`]);
      const peer = await scaleCluster(PEER);

      // the peer, same run: the single-host daemon (h4) scaled to web=PEER. Its writable-layer budget (half the RAM,
      // 512 MiB a dyno) holds ~23 standard-1X dynos, so not 30. Its router table is updated in-process when a dyno is up.
      await single.cli('apps:create', APP);
      await single.cli('deploy', HELLO, '-a', APP);
      const api = new ApiClient(single.socket);
      const s0 = Date.now();
      await single.cli('ps:scale', `web=${PEER}`, '-a', APP);
      const sCli = Date.now() - s0;
      const deadline = Date.now() + 120_000;
      let ups: number[] = [];
      for (;;) {
        const ps = await api.call<PsResult>('ps', { app: APP });
        const web = ps.dynos.filter((d) => d.type === 'web');
        if (web.length >= PEER && web.every((d) => d.state === 'up')) {
          ups = web.map((d) => d.since);
          break;
        }
        if (Date.now() > deadline) throw new Error(`single-host: ${PEER} web dynos not up in 120 s`);
        await sleep(20);
      }
      const sTotal = Math.max(...ups) - s0;
      raw.scale = { big: { n: BIG, ...big }, peer: { n: PEER, ...peer }, single: { n: PEER, cliMs: sCli, totalMs: sTotal } };
      log(`single-host web=${PEER}: CLI returned after ${sCli} ms; last dyno up (routable) at +${sTotal} ms`);
      rows.push([`  cluster ps:scale web=${PEER} → all routable on every router`, `${fmt(peer.totalMs)} ms`, '', `spread ${peer.spread}`]);
      rows.push([`  peer, same run: single-host daemon (h4) ps:scale web=${PEER} → all up and routable`, `${fmt(sTotal)} ms`, '', `cluster / single-host = ${(peer.totalMs / sTotal).toFixed(2)}×`]);
      await single.cli('ps:scale', 'web=1', '-a', APP);
    }

    // ---- 3. deploy → every router on the new release ----
    {
      const before = Math.max(...v.web('up').map(([, r]) => r.release));
      const quantity = v.web('up').length;
      const t0 = Date.now();
      const done = v.until('every up web endpoint on the new release', () => {
        const up = v.web('up');
        return up.length === quantity && up.every(([, r]) => r.release > before) ? { rev: v.rev, at: Date.now() } : undefined;
      }, 180_000);
      await cli(h1, 'deploy', HELLO, '-a', APP);
      const cliDone = Date.now() - t0;
      const got = await done;
      const ats = await appliedOnAll(got.rev);
      const total = Math.max(...ats) - t0;
      const rel = v.web('up')[0]![1].release;
      raw.deploy = { from: before, to: rel, cliMs: cliDone, etcdSeenMs: got.at - t0, routersMs: ats.map((a) => a - t0), totalMs: total };
      log(`deploy v${before} → v${rel}: CLI returned after ${cliDone} ms; etcd state reached at +${got.at - t0} ms; every router at +${total} ms`);
      // the old instances drained and gone before the next phase
      await v.until('old release instances gone', () => (v.web().length === quantity && v.web('up').length === quantity ? true : undefined), 120_000);
      log(`deploy settled (old instances gone) at +${Date.now() - t0} ms`);
      rows.push([`deploy → every router routes only to the new release (web=${quantity})`, `${fmt(total)} ms`, '—', `CLI returned at ${fmt(cliDone)} ms (build + release), rollout after`]);
    }

    // ---- 4. throughput: cluster path vs single-host path (and the same cluster dyno through its own host's router) ----
    {
      // h1 and h3 drained: the one web dyno runs on h2, remote to h1's router and local to h2's. Scaled to 1
      // before the drain: a drain's move (`retire` with `after`) of a slot that a scale-down then removes waits
      // for the moved slot forever (scheduler bug seen 2026-12-02: the old instance stays up).
      await cli(h1, 'ps:scale', 'web=1', '-a', APP);
      await v.until('1 web endpoint', () => (v.web().length === 1 && v.web('up').length === 1 ? true : undefined), 120_000);
      await cli(h1, 'hosts:drain', 'h1');
      await cli(h1, 'hosts:drain', 'h3');
      await v.until('1 web endpoint, on h2', () => {
        const all = v.web();
        return all.length === 1 && all[0]![1].state === 'up' && all[0]![1].host === 'h2' ? true : undefined;
      }, 120_000);
      await appliedOnAll(v.rev);
      const paths = [
        { key: 'A', name: 'cluster, remote dyno: cl → router h1 → dyno on h2', url: `http://${h1.router}/`, ns: 'h1', runs: [] as (WrkResult & { backend: BackendConns })[] },
        { key: 'B', name: 'single-host: cl → daemon h4 (no etcd) → its local dyno', url: `http://${single.router}/`, ns: single.ns, runs: [] as (WrkResult & { backend: BackendConns })[] },
        { key: 'C', name: 'cluster, local dyno: cl → router h2 → the same dyno on h2', url: `http://${h2.router}/`, ns: 'h2', runs: [] as (WrkResult & { backend: BackendConns })[] },
      ];
      // every path answers 200 before any timed run
      for (const { url } of paths) {
        const deadline = Date.now() + 60_000;
        for (;;) {
          const r = fabric.exec('cl', 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-m', '2', '-H', `Host: ${HOST}`, url]);
          if (r.stdout.trim() === '200') break;
          if (Date.now() > deadline) throw new Error(`${url} never answered 200 (last: ${r.stdout} ${r.stderr})`);
          await sleep(250);
        }
      }
      log(`throughput: wrk -t1 -c${WRK_CONNECTIONS} -d${WRK_SECONDS}s in cl, ${WRK_ROUNDS} rounds, order rotated each round; ${paths.map((p) => `${p.key} = ${p.name}`).join('; ')}`);
      // warm-up of every path (JIT, connection setup), not counted
      for (const { url } of paths) await fabric.run('cl', 'wrk', ['-t1', `-c${WRK_CONNECTIONS}`, '-d2s', '-H', `Host: ${HOST}`, url], 20_000);
      for (let i = 0; i < WRK_ROUNDS; i++) {
        const order = [...paths.slice(i % paths.length), ...paths.slice(0, i % paths.length)];
        for (const path of order) {
          const r = await wrkIn(fabric, path.url, path.ns);
          path.runs.push(r);
          log(`  ${path.key} run ${i + 1}: ${fmt(r.reqPerSec)} req/s, p50 ${fmt(r.p50Ms, 2)} ms, p99 ${fmt(r.p99Ms, 2)} ms, non-2xx ${r.non2xx}, socket errors ${r.socketErrors}; router→dyno conns mid-run: ${r.backend.established} established, ${r.backend.timeWait} time-wait`);
        }
      }
      const [a, b, c] = [paths[0]!.runs, paths[1]!.runs, paths[2]!.runs];
      const med = (xs: WrkResult[]): number => median(xs.map((r) => r.reqPerSec));
      const pairedOf = (x: WrkResult[], y: WrkResult[]): number => median(x.map((r, i) => r.reqPerSec / y[i]!.reqPerSec));
      const ratio = med(a) / med(b);
      const paired = pairedOf(a, b);
      raw.throughput = {
        connections: WRK_CONNECTIONS,
        seconds: WRK_SECONDS,
        paths: paths.map((p) => ({ key: p.key, name: p.name, median: med(p.runs), runs: p.runs.map(({ raw: _r, ...x }) => x) })),
        ratio,
        pairedRatio: paired,
        remoteOverLocal: med(a) / med(c),
        clusterLocalOverSingle: med(c) / med(b),
      };
      const errs = paths.flatMap((p) => p.runs).reduce((n, r) => n + r.non2xx + r.socketErrors, 0);
      for (const p of paths) rows.push([`throughput ${p.key}, ${p.name}: median req/s`, fmt(med(p.runs)), '—', p.runs.map((r) => fmt(r.reqPerSec)).join(', ')]);
      rows.push(['ratio A / B, cluster path / single-host (of the medians)', `${ratio.toFixed(3)}`, '≥ 0.95', ratio >= 0.95 ? 'MET' : 'MISSED']);
      rows.push(['  median of the per-round paired ratios A/B', `${paired.toFixed(3)}`, '', a.map((r, i) => (r.reqPerSec / b[i]!.reqPerSec).toFixed(2)).join(', ')]);
      rows.push(['  A / C: the hop to another host (same router code, same dyno), paired', `${pairedOf(a, c).toFixed(3)}`, '', `of the medians ${(med(a) / med(c)).toFixed(3)}`]);
      rows.push(['  C / B: cluster-mode daemon vs single-host daemon, both to a local dyno, paired', `${pairedOf(c, b).toFixed(3)}`, '', `of the medians ${(med(c) / med(b)).toFixed(3)}`]);
      for (const p of paths) rows.push([`  latency p50 / p99, ${p.key}`, `${fmt(median(p.runs.map((r) => r.p50Ms)), 2)} / ${fmt(median(p.runs.map((r) => r.p99Ms)), 2)} ms`, '', '']);
      if (errs > 0) notes.push(`${errs} non-2xx or socket errors during the wrk runs`);
      await cli(h1, 'hosts:undrain', 'h1');
      await cli(h1, 'hosts:undrain', 'h3');
    }
  } catch (err) {
    broke = err;
    console.error(`bench:cluster broke: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  } finally {
    probe?.stop();
    await view?.stop();
    client?.close();
    await single.stop().catch((e: unknown) => console.error(`single-host stop: ${String(e)}`));
    await cluster.stop().catch((e: unknown) => console.error(`cluster stop: ${String(e)}`));
    // A daemon's cgroup subtree can still be busy (a dying dyno) at its cleanup: retry by path for a few seconds.
    // (Not through CgroupTree.open() or ClusterHosts.leftovers(): open() mkdirs the cgroup it opens.)
    const rmCgroups = async (): Promise<void> => {
      for (let i = 0; i < 50 && cgPaths.some((c) => fs.existsSync(c)); i++) {
        for (const c of cgPaths) {
          try {
            fs.rmdirSync(c);
          } catch {
            /* busy or gone */
          }
        }
        if (cgPaths.some((c) => fs.existsSync(c))) await sleep(100);
      }
    };
    await rmCgroups();
    const busy = cgPaths.flatMap((c) => procsUnder(c));
    if (busy.length) log(`after every daemon exited, still in their cgroups: ${busy.join(', ')} (fabric.stop kills them)`);
    await fabric.stop();
    await rmCgroups();
    const left = [
      ...cgPaths.filter((c) => fs.existsSync(c)).map((c) => `cgroup ${c}`),
      ...[...[...cluster.daemons.values()].map((d) => d.runDir), cluster.dir].filter((d) => fs.existsSync(d)),
    ];
    const leak = fabric.leakCheck();
    const leaks = [...left, ...leak.dirs, ...leak.processesInNamespaces.map((p) => `pid ${p}`), ...leak.ourLinksInRoot];
    if (fs.existsSync(single.runDir) || fs.existsSync(single.dir)) leaks.push('single-host dirs');
    log(leaks.length ? `LEFTOVERS: ${leaks.join(', ')}` : 'torn down: no daemon, namespace, dir or link left');
  }
  if (rows.length) {
    raw.loadavgEnd = os.loadavg();
    raw.broke = broke ? String(broke) : null;
    const file = path.join(ROOT, 'bench', 'results', `cluster-${new Date(started).toISOString().slice(0, 19).replace(/:/g, '-')}.json`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, `${JSON.stringify(raw, null, 1)}\n`);
    log(`raw figures: ${path.relative(ROOT, file)}`);
    console.log(`\n## bench:cluster — ${new Date().toISOString()} (${os.cpus().length} CPUs, Node ${process.version}, load average at end ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}, ${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
    console.log(mdTable(['figure', 'value', 'goal', 'note'], rows));
    for (const n of notes) console.log(`- ${n}`);
  }
  return broke ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
