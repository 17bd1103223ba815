/**
 * bench:cluster-faults (issue 11): the per-fault split of spec §7's "Figures each run prints" for host
 * faults #1–#4, on the fault test's setup (test/cluster/faults-hosts.test.ts): three netns hosts (h1, h2
 * every role, h3 `dynos,scheduler`), host TTL 3 s, examples/hello web=3 one per host, closed-loop load
 * C=12 through the routers of h1 and h2, started anew for each fault 4.5 s before t0 (1.5 s warm-up,
 * then the 3 s latency baseline).
 *
 * Per fault, from one etcd watch of `/manifold/v1/` (bench/lib/fault-timeline.ts): detection (t0 →
 * hosts/h3 DELETE), reschedule (→ run assignment of h3's web slot on another host), boot (→ that
 * dyno's endpoint put in state up), propagation (→ the later of h1's and h2's router applying that
 * revision), total (t0 → last router applied); and from the load: failed requests against the
 * in-flight bound and p50/p99 added latency (test/cluster/helpers/faults.ts analyzeFault). The latency
 * window is t0 → replacement routable for #1 (nothing heals) and t0 → heal for #2–#4. One more column,
 * requests answered only after > 1 s and the max latency, shows what analyzeFault's bound can't: a
 * request the router replayed on another dyno after detection counts for the dyno that answered it.
 *
 * The faults do not assert anything here (the tests do); a fault whose chain does not complete is
 * reported as broken and the run exits 1, as it does when setup fails.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Etcd3 } from 'etcd3';
import { createEtcdClient } from '../src/cluster/etcd-client';
import { keys } from '../src/cluster/keys';
import { parseRecord, type HostRecord } from '../src/cluster/records';
import { fabricMissing, startFabric } from '../test/cluster/helpers/fabric';
import { ClusterHosts, type HostDaemon } from '../test/cluster/helpers/cluster-hosts';
import { startLoad } from '../test/cluster/helpers/load';
import { analyzeFault, dynosOn, waitWhole, watchHost, type FaultFigures, type HostWatch, type PsDyno } from '../test/cluster/helpers/faults';
import { ROOT, sleep, waitFor } from '../test/manifold/helpers/daemon';
import { held, parts, PrefixLog, RouterProbe, servedBy, split, type Split } from './lib/fault-timeline';
import { fmt, mdTable } from './lib/stats';

const APP = 'hello';
const HELLO = path.join(ROOT, 'examples/hello');
const HOST = `${APP}.example.test`;
const PROBE = path.join(__dirname, 'lib', 'cluster-probe.js');
const TTL_MS = 3000;
/** Spec §5 target: a lost dyno replaced and serving within T + 5 s. */
const TARGET_MS = TTL_MS + 5000;
/** Probation of a host that comes back (scheduler default), plus a margin, as faults-hosts.test.ts. */
const PROBATION_MS = 10_000 + 1500;
/**
 * Load runs WARMUP_MS + BASELINE_MS before t0, and only the last BASELINE_MS are the latency baseline:
 * the client's first second (connections opening, JIT) is slower than steady state and would make
 * every "added" latency negative.
 */
const WARMUP_MS = 1500;
const BASELINE_MS = 3000;

const log = (line: string): void => console.log(`[${new Date().toISOString().slice(11, 23)}] ${line}`);
const webOn = (list: readonly PsDyno[], host: string): PsDyno[] => list.filter((d) => d.type === 'web' && d.host === host);

interface Fault {
  n: number;
  name: string;
  /** Injects the fault; returns its t0 (taken once the fault is in place). */
  inject(): number;
  /** Heals it (undefined: nothing to heal, the daemon is restarted instead). */
  heal?: () => void;
  /** How long the fault lasts before heal (ms). */
  durationMs?: number;
  /** For a fault that takes a while to strike (a daemon's kill -9): resolves when it has (its dynos all dead). */
  struck?: () => Promise<number>;
}

interface Row {
  fault: Fault;
  split?: Split;
  figures?: FaultFigures;
  /** Requests per answering dyno in the baseline window, and the dynos that ran on h3 at t0. */
  baseline?: Record<string, number>;
  hostDynos?: string[];
  held?: { held: number; maxMs: number };
  error?: string;
}

/** h3's dyno cgroups that still hold a process (a killed daemon leaves empty ones behind). */
function populatedDynos(d: HostDaemon): string[] {
  if (!fs.existsSync(d.cgroupRoot)) return [];
  return fs.readdirSync(d.cgroupRoot, { withFileTypes: true }).filter((e) => {
    if (!e.isDirectory()) return false;
    try {
      return /^populated 1$/m.test(fs.readFileSync(path.join(d.cgroupRoot, e.name, 'cgroup.events'), 'utf8'));
    } catch {
      return false;
    }
  }).map((e) => e.name);
}

async function cli(d: HostDaemon, ...args: string[]): Promise<string> {
  const r = await d.cli(...args);
  if (r.code !== 0) throw new Error(`manifold ${args.join(' ')} on ${d.host}: ${r.stderr.trim()}`);
  return r.stdout;
}

/**
 * A web dyno on h3 before each fault (the faults are about it): once h3 is off probation, drain the
 * host holding two web dynos so one lands on h3, then undrain it (faults-hosts.test.ts webOnH3).
 */
async function webOnH3(h1: HostDaemon, h3Watch: HostWatch): Promise<PsDyno[]> {
  let list = (await waitWhole(h1, { app: APP, type: 'web', count: 3, timeoutMs: 30_000 })).list;
  if (webOn(list, 'h3').length > 0) return list;
  const wait = (h3Watch.creates.at(-1) ?? 0) + PROBATION_MS - Date.now();
  if (wait > 0) await sleep(wait);
  const doubled = ['h1', 'h2'].find((h) => webOn(list, h).length > 1);
  if (!doubled) throw new Error(`no host with two web dynos: ${JSON.stringify(list)}`);
  await cli(h1, 'hosts:drain', doubled);
  list = (await waitWhole(h1, { app: APP, type: 'web', count: 3, also: (l) => webOn(l, 'h3').length > 0 && webOn(l, doubled).length === 0, timeoutMs: 60_000 })).list;
  await cli(h1, 'hosts:undrain', doubled);
  return list;
}

const ms = (x: number | undefined): string => (x === undefined ? '–' : `${fmt(x)} ms`);
const signed = (x: number): string => (x < 0 ? `−${fmt(-x)}` : `+${fmt(x)}`);
const sec = (x: number): string => `${(x / 1000).toFixed(1)} s`;

function line(r: Row): string {
  if (!r.split || !r.figures) return `#${r.fault.n} ${r.fault.name}: BROKE: ${r.error ?? 'unknown'}`;
  const p = parts(r.split);
  const f = r.figures;
  const total = Object.values(r.baseline ?? {}).reduce((a, b) => a + b, 0);
  const onH3 = (r.hostDynos ?? []).reduce((a, d) => a + (r.baseline?.[d] ?? 0), 0);
  const share = total ? `; h3's ${(r.hostDynos ?? []).join(',')} served ${((100 * onH3) / total).toFixed(0)} % of the baseline (${JSON.stringify(r.baseline)})` : '';
  const viaSince = r.split.endpointSince === undefined ? '' : `, propagation from the agent's stamp ${ms(r.split.routedAt - r.split.endpointSince)}`;
  return (
    `#${r.fault.n} ${r.fault.name}: detection ${ms(p.detection)}, reschedule ${ms(p.reschedule)} (to ${r.split.newHost}), boot ${ms(p.boot)}, ` +
    `propagation ${ms(p.propagation)}${viaSince}, total ${ms(p.total)} (target ${sec(TARGET_MS)}: ${p.total <= TARGET_MS ? 'MET' : 'MISSED'}); ` +
    `failed ${f.failed} / bound ${f.inFlight} (in flight at t0 anywhere ${f.inFlightAll}; failed not in flight ${f.failedNotInFlight}; requests ${f.total}); ` +
    `p50 ${fmt(f.p50Before)}→${fmt(f.p50During)} ms, p99 ${fmt(f.p99Before)}→${fmt(f.p99During)} ms, max ${ms(r.held?.maxMs)}; ` +
    `answered 200 after > 1 s (held by the fault, replayed after detection) ${r.held?.held ?? '–'}` +
    share +
    (r.error ? `; after the split: ${r.error}` : '')
  );
}

function tableRow(r: Row): string[] {
  const label = `#${r.fault.n} ${r.fault.name}`;
  if (!r.split || !r.figures) return [label, '–', '–', '–', '–', '–', 'broke', '–', '–', r.error ?? ''];
  const p = parts(r.split);
  const f = r.figures;
  return [
    label, ms(p.detection), ms(p.reschedule), ms(p.boot), ms(p.propagation), `**${ms(p.total)}**`,
    p.total <= TARGET_MS ? 'MET' : 'MISSED', `${f.failed} / ${f.inFlight}`, `${signed(f.addedP50)} / ${signed(f.addedP99)} ms`,
    `${r.held?.held ?? '–'} / ${ms(r.held?.maxMs)}`,
  ];
}

/** Published defaults of the peers (spec §1, §5): reference rows, nothing here is measured. */
const REFERENCE: string[][] = [
  ['Kubernetes defaults (published, not measured)', '40 s (50 s since v1.32)', '+300 s unreachable toleration', '–', '–', '≈ 6 min', '–', '–', '–', '–'],
  ['Nomad defaults (published, not measured)', '≈ 20 s (heartbeat TTL ≥ 10 s + 10 s grace)', 'at once (allocs lost → replaced)', '–', '–', '≈ 20 s + placement', '–', '–', '–', '–'],
  ['Manifold production, T = 10 s (spec §5 target, not measured)', '≤ 10.5 s', '–', '–', '–', '≤ 15 s', '–', '–', '–', '–'],
];

function machine(): string {
  const model = os.cpus()[0]?.model.trim() ?? '?';
  const nproc = execFileSync('nproc', { encoding: 'utf8' }).trim();
  return `nproc ${nproc}, ${model}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}, ${os.type()} ${os.release()}`;
}

/** What might be left in the root namespace or the cgroup tree after teardown (anyone's, printed as is). */
function globalLeftovers(): string[] {
  const links = spawnSync('ip', ['-o', 'link'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => /mf/.test(l)).map((l) => `link ${l.split(':')[1]?.trim()}`);
  const unified = '/sys/fs/cgroup/unified';
  const cgroups = fs.existsSync(unified) ? fs.readdirSync(unified).filter((n) => n.startsWith('mf-')).map((n) => `cgroup ${n}`) : [];
  const etcd = spawnSync('pgrep', ['-a', 'etcd'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map((l) => `process ${l}`);
  return [...links, ...cgroups, ...etcd];
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    console.log('bench:cluster-faults: needs root (network namespaces, dynos); skipped');
    return 0;
  }
  const missing = fabricMissing();
  if (missing) {
    console.log(`bench:cluster-faults: ${missing}; skipped`);
    return 0;
  }
  const started = Date.now();
  log(`bench:cluster-faults on ${machine()}; load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const before = globalLeftovers();
  if (before.length) log(`before the run, already present (not ours): ${before.join(', ')}`);
  const fabric = await startFabric(undefined, { hosts: 3 });
  const cluster = new ClusterHosts(fabric);
  let client: Etcd3 | undefined;
  let h3Watch: HostWatch | undefined;
  let timeline: PrefixLog | undefined;
  let probe: RouterProbe | undefined;
  let broke: unknown;
  const rows: Row[] = [];
  let frozenPid: number | undefined;
  try {
    const h1 = cluster.add('h1', { hostTtl: '3s' });
    const h2 = cluster.add('h2', { hostTtl: '3s' });
    const h3 = cluster.add('h3', { roles: 'dynos,scheduler', hostTtl: '3s' });
    await Promise.all([h1.start(), h2.start(), h3.start()]);
    client = createEtcdClient(fabric.etcdLocalEndpoints);
    h3Watch = await watchHost(client, 'h3');
    timeline = await PrefixLog.start(client);
    const token = (await client.get(keys.secret()).string()) ?? '';
    const routers = new Map<string, string>();
    for (const d of [h1, h2]) {
      const rec = parseRecord<HostRecord>((await client.get(keys.host(d.host)).string()) ?? '');
      if (!rec) throw new Error(`no host record for ${d.host}`);
      routers.set(d.host, `${rec.uplink}:${rec.clusterPort}`);
    }
    probe = new RouterProbe(fabric, PROBE, token);

    await cli(h1, 'apps:create', APP);
    await cli(h1, 'deploy', HELLO, '-a', APP);
    await cli(h2, 'ps:scale', 'web=3', '-a', APP);
    const { list } = await waitWhole(h1, { app: APP, type: 'web', count: 3, timeoutMs: 60_000 });
    log(`hello deployed, web=3 on ${list.filter((d) => d.type === 'web').map((d) => `${d.name}@${d.host}`).join(' ')}`);

    const faults: Fault[] = [
      // h3's dynos die by PDEATHSIG a moment after their daemon: in flight on h3 until then counts in the bound
      { n: 1, name: 'kill -9 h3', inject: () => (h3.child?.kill('SIGKILL'), Date.now()), struck: () => cluster.dynosGoneAt('h3') },
      {
        n: 2, name: 'SIGSTOP h3 10 s', durationMs: 10_000,
        inject: () => {
          frozenPid = h3.child?.pid;
          if (frozenPid === undefined) throw new Error('h3 not running');
          process.kill(frozenPid, 'SIGSTOP');
          return Date.now();
        },
        heal: () => {
          if (frozenPid !== undefined) process.kill(frozenPid, 'SIGCONT');
          frozenPid = undefined;
        },
      },
      // t0 after the synchronous nsenter/nft call, as the test does: a request started during it may still get through
      { n: 3, name: 'h3 link cut 15 s', durationMs: 15_000, inject: () => (fabric.linkDown('h3'), Date.now()), heal: () => fabric.linkUp('h3') },
      { n: 4, name: 'one-way drop towards h3 15 s', durationMs: 15_000, inject: () => (fabric.dropTo('h3'), Date.now()), heal: () => fabric.undrop('h3') },
    ];

    for (const fault of faults) {
      const row: Row = { fault };
      rows.push(row);
      let healed = fault.heal === undefined;
      let load: ReturnType<typeof startLoad> | undefined;
      try {
        const onH3 = await webOnH3(h1, h3Watch);
        const slot = webOn(onH3, 'h3')[0]!.name;
        const hostDynos = dynosOn(onH3, 'h3');
        load = startLoad(fabric, { targets: [h1.router, h2.router], host: HOST, connections: 12, durationMs: 120_000, dynoBodyRegex: 'Hello from (\\S+)' });
        await sleep(WARMUP_MS + BASELINE_MS);
        const t0 = fault.inject();
        const struckAt = fault.struck ? await fault.struck() : undefined;
        const s = await split(timeline, probe, { t0, host: 'h3', app: APP, slot, routers, timeoutMs: 30_000 });
        row.split = s;
        let t1 = s.routedAt;
        if (fault.heal) {
          await sleep(Math.max(0, t0 + fault.durationMs! - Date.now()));
          t1 = Date.now();
          fault.heal();
          healed = true;
        }
        await sleep(1000);
        const res = await load.stop();
        load = undefined;
        row.figures = analyzeFault(res.records, { t0, t1, hostDynos, detectedAt: s.deleteAt, beforeMs: BASELINE_MS, struckAt });
        row.baseline = servedBy(res.records, t0 - BASELINE_MS, t0);
        row.hostDynos = [...hostDynos];
        row.held = held(res.records, t0, t1);
        // back to a whole formation with nothing of h3's old instance left, before the next fault
        if (!fault.heal) {
          const creates = h3Watch.creates.length;
          await h3.start();
          await waitFor('h3 registered again', async () => (h3Watch!.creates.length > creates ? true : undefined), 10_000, 20);
        }
        try {
          await waitFor("h3's old dynos gone", async () => (populatedDynos(h3).length === 0 ? true : undefined), 30_000, 50);
          await waitWhole(h1, { app: APP, type: 'web', count: 3, timeoutMs: 30_000 });
        } catch (err) {
          row.error = err instanceof Error ? err.message : String(err);
        }
      } catch (err) {
        row.error = err instanceof Error ? err.message : String(err);
        broke ??= err;
      } finally {
        if (!healed) fault.heal?.();
        if (load) await load.stop().catch(() => undefined);
      }
      log(line(row));
    }
  } catch (err) {
    broke = err;
    console.error(`bench:cluster-faults broke: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  } finally {
    // a frozen daemon would ignore SIGTERM until the 20 s SIGKILL
    if (frozenPid !== undefined) process.kill(frozenPid, 'SIGCONT');
    probe?.stop();
    await timeline?.close();
    await h3Watch?.close();
    client?.close();
    await cluster.stop().catch((e: unknown) => console.error(`cluster stop: ${String(e)}`));
    await fabric.stop().catch((e: unknown) => console.error(`fabric stop: ${String(e)}`));
    const leak = fabric.leakCheck();
    const ours = [...cluster.leftovers(), ...leak.dirs, ...leak.processesInNamespaces.map((p) => `pid ${p}`), ...leak.ourLinksInRoot];
    const after = globalLeftovers().filter((x) => !before.includes(x));
    log(ours.length ? `LEFTOVERS of this run: ${ours.join(', ')}` : 'torn down: no daemon, namespace, cgroup, dir or link of this run left');
    if (after.length) log(`new since the start (ip -o link | grep mf, /sys/fs/cgroup/unified/mf-*, pgrep etcd; may be another session's): ${after.join(', ')}`);
    if (ours.length) broke ??= new Error('leftovers');
  }
  if (rows.length) {
    const file = path.join(ROOT, 'bench', 'results', `cluster-faults-${new Date(started).toISOString().slice(0, 19).replace(/:/g, '-')}.json`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const raw = rows.map((r) => ({ fault: r.fault.name, split: r.split, parts: r.split && parts(r.split), figures: r.figures && { ...r.figures, failedSample: r.figures.failedSample.slice(0, 3) }, baseline: r.baseline, hostDynos: r.hostDynos, held: r.held, error: r.error }));
    fs.writeFileSync(file, `${JSON.stringify({ startedAt: new Date(started).toISOString(), machine: machine(), loadavgEnd: os.loadavg(), rows: raw }, null, 1)}\n`);
    log(`raw figures: ${path.relative(ROOT, file)}`);
    console.log(`\n## bench:cluster-faults — ${new Date().toISOString()} (${machine()}; load average at end ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}; ${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
    const head = ['fault', 'detection', 'reschedule', 'boot', 'propagation', 'total', `target T+5 s=${sec(TARGET_MS)}`, 'failed / bound', 'added p50 / p99', 'answered after > 1 s / max latency'];
    console.log(mdTable(head, [...rows.map(tableRow), ...REFERENCE]));
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
