/** Heroku-style text output for the CLI (docs/architecture.md#cli). Pure functions of the API results. */
import type { AppInfo, DynoStatus, PsResult, ReleaseInfo } from '../manifold/api/protocol';

const pad = (n: number): string => String(n).padStart(2, '0');

/** 2026/11/26 10:00:00 in local time. */
export function formatDate(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}/${pad(d.getMonth() + 1)}/${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** "3m", "8h", "2d", "12s". */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h`;
  return `${Math.floor(h / 24)}d`;
}

function dynoLine(d: DynoStatus, now: number): string {
  let line = `${d.state} ${formatDate(d.since)} (~ ${formatAge(now - d.since)} ago)`;
  if (d.host !== undefined) line += ` on ${d.host}`;
  if (d.state === 'crashed') {
    if (d.reason) line += `: ${d.reason}`;
    if (d.restartAt !== null) line += d.restartAt <= now ? ', restarting now' : `, next restart ${formatDate(d.restartAt)} (in ${formatAge(d.restartAt - now)})`;
  }
  return line;
}

/** What `manifold hosts` shows of one host (the API's HostView, without its raw record). */
export interface HostRow {
  id: string;
  uplink: string | null;
  subnet: string | null;
  roles: string[];
  state: string;
  dynos: number;
  memAssigned: number;
  memTotal: number | null;
  leaseAge: number | null;
}

const GB = 1024 ** 3;

/** `manifold hosts`: one aligned row per host. */
export function formatHosts(hosts: HostRow[]): string {
  if (hosts.length === 0) return 'No hosts in the cluster';
  const rows = [['ID', 'UPLINK', 'SUBNET', 'ROLES', 'STATE', 'DYNOS', 'MEMORY', 'LEASE AGE']];
  for (const h of hosts) {
    const mem = `${(h.memAssigned / GB).toFixed(1)}/${h.memTotal === null ? '?' : (h.memTotal / GB).toFixed(1)} GB`;
    rows.push([h.id, h.uplink ?? '-', h.subnet ?? '-', h.roles.join(',') || '-', h.state, String(h.dynos), mem, h.leaseAge === null ? '-' : `${h.leaseAge}s`]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

/** `ps` text: one block per process type, then one-off dynos. */
export function formatPs(ps: PsResult): string {
  const out: string[] = [];
  const byType = new Map<string, DynoStatus[]>();
  for (const d of ps.dynos) {
    if (d.oneoff) continue;
    const list = byType.get(d.type) ?? [];
    list.push(d);
    byType.set(d.type, list);
  }
  const types = [...new Set([...Object.keys(ps.types).filter((t) => byType.has(t)), ...byType.keys()])].sort();
  for (const type of types) {
    const dynos = byType.get(type) ?? [];
    const t = ps.types[type] ?? { command: dynos[0]?.command ?? '', size: dynos[0]?.size ?? '' };
    if (out.length) out.push('');
    out.push(`=== ${type} (${t.size}): \`${t.command}\``);
    for (const d of dynos) out.push(`${d.name}: ${dynoLine(d, ps.now)}`);
  }
  const oneoffs = ps.dynos.filter((d) => d.oneoff);
  if (oneoffs.length) {
    if (out.length) out.push('');
    out.push('=== run: one-off processes');
    for (const d of oneoffs) out.push(`${d.name} (${d.size}): ${dynoLine(d, ps.now)}: \`${d.command}\``);
  }
  if (out.length === 0) out.push(`No dynos on ${ps.app}`);
  return out.join('\n');
}

export function formatScale(formation: { type: string; quantity: number; size: string }[]): string {
  return `Scaling dynos... done, now running ${formation.map((f) => `${f.type} at ${f.quantity}:${f.size}`).join(', ')}`;
}

export function formatReleases(app: string, releases: ReleaseInfo[], now = Date.now()): string {
  const lines = [`=== ${app} Releases`];
  const w = Math.max(...releases.map((r) => `v${r.version}`.length), 2);
  const dw = Math.max(...releases.map((r) => r.description.length), 11);
  // Heroku's author column; `-` for a release stored before authors were kept
  const by = (r: ReleaseInfo): string => r.by ?? '-';
  const bw = Math.max(...releases.map((r) => by(r).length), 1);
  for (const r of releases) {
    lines.push(`${`v${r.version}`.padEnd(w)}  ${r.description.padEnd(dw)}  ${by(r).padEnd(bw)}  ${formatDate(r.createdAt)} (~ ${formatAge(now - r.createdAt)} ago)${r.current ? '' : ''}`);
  }
  return lines.join('\n');
}

export function formatConfig(app: string, config: Record<string, string>): string {
  const keys = Object.keys(config).sort();
  const lines = [`=== ${app} Config Vars`];
  const w = Math.max(0, ...keys.map((k) => k.length + 1));
  for (const k of keys) lines.push(`${`${k}:`.padEnd(w)} ${config[k]}`);
  return lines.join('\n');
}

export function formatInfo(info: AppInfo): string {
  const dynos = info.formation.filter((f) => f.quantity > 0).map((f) => `${f.type}: ${f.quantity}`).join(', ') || 'none';
  const rows: [string, string][] = [
    ['Dynos', dynos],
    ['Release', `v${info.release}`],
    ['Web URL', info.url],
    ['Created', formatDate(info.createdAt)],
  ];
  if (info.settings.stopGraceMs !== undefined) rows.push(['Stop grace', `${info.settings.stopGraceMs / 1000}s`]);
  if (info.settings.stopSignal !== undefined) rows.push(['Stop signal', info.settings.stopSignal]);
  if (info.settings.bootTimeoutMs !== undefined) rows.push(['Boot timeout', `${info.settings.bootTimeoutMs / 1000}s`]);
  const w = Math.max(...rows.map(([k]) => k.length + 1));
  return [`=== ${info.name}`, ...rows.map(([k, v]) => `${`${k}:`.padEnd(w)} ${v}`)].join('\n');
}

/** Joins `run` arguments into one shell command: a single argument is used as is, others are quoted when needed. */
export function joinCommand(args: string[]): string {
  if (args.length === 1) return args[0]!;
  return args.map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}
