/**
 * etcd3 (with gRPC, ~40 modules) is for cluster mode only: the single-host daemon and the CLI must
 * never load it (issue 10). Checks that the cluster modules load it only when a client is created,
 * and that nothing outside src/cluster/ imports it or the modules that create clients.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';

const ROOT = path.resolve(__dirname, '../../..');
const DIST_CLUSTER = path.join(ROOT, 'dist/src/cluster');

/** Modules under node_modules/etcd3 that a fresh node has loaded after running `code`. */
function etcd3Loaded(code: string): boolean {
  const out = execFileSync(process.execPath, ['-e', `${code}; console.log(Object.keys(require.cache).some((m) => m.includes('/node_modules/etcd3/')))`], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  return out.trim() === 'true';
}

t.test('importing the cluster modules does not load etcd3', async (t) => {
  for (const mod of ['keys', 'etcd-client', 'leadership', 'cas', 'etcd-state-store']) {
    t.notOk(etcd3Loaded(`require(${JSON.stringify(path.join(DIST_CLUSTER, `${mod}.js`))})`), `${mod}.js alone`);
  }
  t.ok(
    etcd3Loaded(`require(${JSON.stringify(path.join(DIST_CLUSTER, 'etcd-client.js'))}).createEtcdClient(['http://127.0.0.1:9']).close()`),
    'creating a client loads it',
  );
});

t.test('no module outside src/cluster imports etcd3 or the cluster client', async (t) => {
  const offenders: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        if (file !== path.join(ROOT, 'src/cluster')) walk(file);
      } else if (entry.name.endsWith('.ts')) {
        const text = fs.readFileSync(file, 'utf8');
        if (/from ['"]etcd3['"]|require\(['"]etcd3['"]\)|cluster\/(etcd-client|leadership)['"]/.test(text)) offenders.push(path.relative(ROOT, file));
      }
    }
  };
  walk(path.join(ROOT, 'src'));
  t.same(offenders, [], 'the daemon, router, runtime and CLI stay free of etcd code');
});
