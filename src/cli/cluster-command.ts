/** `manifold cluster:import`: a single-host state into an empty cluster, once (src/cluster/import.ts). */
import type { Argv, CommandModule } from 'yargs';
import { DEFAULT_STATE_DIR } from '../shared/defaults';
import { report, UsageError } from './errors';

interface ImportArgs {
  from: string;
  etcd: string;
  'host-id': string;
}

export const clusterImportCommand: CommandModule = {
  command: 'cluster:import',
  describe: 'Copy a single-host state (apps, releases, slugs, config, formation) into an empty cluster, once',
  builder: (y: Argv) =>
    y
      .option('from', { type: 'string', default: DEFAULT_STATE_DIR, describe: 'state directory of the stopped single-host daemon' })
      .option('etcd', { type: 'string', demandOption: true, describe: 'etcd client URLs, comma-separated' })
      .option('host-id', { type: 'string', demandOption: true, describe: 'the cluster host that will run with --state-dir FROM (it serves the slugs)' }),
  handler: async (argv) => {
    const a = argv as unknown as ImportArgs;
    try {
      const etcd = a.etcd.split(',').map((u) => u.trim()).filter((u) => u !== '');
      for (const u of etcd) if (!/^https?:\/\/[^/\s]+$/.test(u)) throw new UsageError(`invalid --etcd URL '${u}' (e.g. http://10.0.0.5:2379)`);
      if (process.getuid?.() !== 0) throw new UsageError('cluster:import must run as root (it reads the daemon\'s state)');
      const { importState } = require('../cluster/import') as typeof import('../cluster/import');
      const r = await importState({ from: a.from, etcd, hostId: a['host-id'], log: (l) => process.stderr.write(`manifold: ${l}\n`) });
      process.stdout.write(`Imported ${r.apps} app(s), ${r.releases} release(s) and ${r.slugs} slug(s) into the cluster; start the daemon on ${a['host-id']} with --state-dir ${a.from} --etcd ${etcd.join(',')}\n`);
    } catch (err) {
      report(err);
    }
  },
};
