/**
 * Small checks shared by the cluster tests: a daemon expected to refuse to start (run to its exit,
 * timed), what it may have left on the host, and etcd's contents under the Manifold prefix.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Etcd3 } from 'etcd3';
import { findCgroup2Mount } from '../../../src/runtime/cgroup';
import { createEtcdClient } from '../../../src/cluster/etcd-client';
import { PREFIX } from '../../../src/cluster/keys';
import type { Fabric } from './fabric';
import type { HostDaemon } from './cluster-hosts';

export interface Refusal {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs daemon `d` (with `args`, default its own) in its host to its exit; kills it after `timeoutMs`. */
export function runToExit(d: HostDaemon, args: string[] = d.args(), timeoutMs = 30_000): Promise<Refusal> {
  const started = Date.now();
  const child = d.fabric.spawn(d.host, process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  d.child = child;
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => {
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      d.log = stdout + stderr;
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
}

/** Replaces the value of `--flag` in a daemon's argument list (appends it when absent). */
export function withFlag(args: string[], flag: string, value: string): string[] {
  const out = [...args];
  const i = out.indexOf(flag);
  if (i >= 0) out[i + 1] = value;
  else out.push(flag, value);
  return out;
}

/** The lines of stderr that say something (a refusal must be exactly one). */
export function stderrLines(s: string): string[] {
  return s.split('\n').filter((l) => l.trim() !== '');
}

/**
 * Where a daemon started by this process puts its cgroup subtree, found without creating it
 * (CgroupTree.open makes the directory, so a check through it would find what it just made).
 */
export function cgroupPath(name: string): string {
  const mount = findCgroup2Mount();
  if (!mount) return path.join('/sys/fs/cgroup', name);
  const own = mount.ownCgroup === '/' || mount.ownCgroup === '' ? mount.mountPoint : path.join(mount.mountPoint, mount.ownCgroup);
  return path.join(path.basename(own) === 'supervisor' ? path.dirname(own) : own, name);
}

/** What a daemon may have left on its host: its cgroup subtree and run dir. */
export function hostLeftovers(d: HostDaemon): string[] {
  const out: string[] = [];
  if (fs.existsSync(cgroupPath(d.cgroup))) out.push(`cgroup ${d.cgroup}`);
  if (fs.existsSync(d.runDir)) out.push(d.runDir);
  return out;
}

/** A client on the fabric's etcd, for the test process in the root namespace. */
export function etcdClient(fabric: Fabric): Etcd3 {
  return createEtcdClient(fabric.etcdLocalEndpoints);
}

/** Every key under the Manifold prefix and its value, except those under `volatile` prefixes (relative to PREFIX). */
export async function etcdSnapshot(client: Etcd3, volatile: string[] = []): Promise<Record<string, string>> {
  const all = await client.getAll().prefix(PREFIX).strings();
  const out: Record<string, string> = {};
  for (const k of Object.keys(all).sort()) {
    const rel = k.slice(PREFIX.length);
    if (volatile.some((v) => rel.startsWith(v))) continue;
    out[k] = all[k]!;
  }
  return out;
}

/**
 * A route table (a RoutesFile derived from etcd, or a router's /v1/local/table answer) in the form two
 * tables compare by: key order and backend order don't matter for "same table".
 */
export function canonicalTable(file: unknown): string {
  type App = { hosts: string[]; backends?: { dyno: string; address: string; state?: string }[]; maintenance?: boolean; crashed?: unknown };
  const apps = (file as { apps?: Record<string, App> } | null)?.apps ?? {};
  const out: Record<string, unknown> = {};
  for (const name of Object.keys(apps).sort()) {
    const a = apps[name]!;
    out[name] = {
      hosts: [...a.hosts].sort(),
      backends: (a.backends ?? []).map((b) => `${b.dyno}@${b.address}:${b.state ?? 'up'}`).sort(),
      maintenance: a.maintenance === true,
      crashed: Boolean(a.crashed),
    };
  }
  return JSON.stringify(out);
}
