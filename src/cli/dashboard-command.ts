/**
 * `manifold dashboard`: prints the dashboard's address with its token (docs/dashboard.md). The
 * daemon says where the dashboard listens and where the token is; the token itself is read from
 * its root-only file here, never sent over the control socket (which a group may share).
 */
import fs from 'node:fs';
import type { DaemonInfo } from '../manifold/api/protocol';
import { socketPathFrom } from '../shared/defaults';
import type { ClientCommand } from './client-command';
import { ApiClient } from './client';
import { writeStdout } from './stdout';

export const dashboardCommands: ClientCommand[] = [
  {
    usage: 'dashboard',
    describe: "Print the dashboard's address with its access token (the daemon runs with --dashboard HOST:PORT)",
    options: { json: { type: 'boolean', describe: 'print JSON' } },
    run: async (a) => {
      const info = await new ApiClient(socketPathFrom(a.socket)).call<DaemonInfo>('info', {});
      if (!info.dashboard) throw new Error('the dashboard is off (start the daemon with --dashboard 127.0.0.1:PORT)');
      let token: string;
      try {
        token = fs.readFileSync(info.dashboard.tokenFile, 'utf8').trim();
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        throw new Error(code === 'EACCES' ? `not permitted to read ${info.dashboard.tokenFile} (the dashboard token is root-only; run as root)` : `cannot read ${info.dashboard.tokenFile}: ${code ?? String(err)}`);
      }
      const url = `${info.dashboard.url}?token=${encodeURIComponent(token)}`;
      writeStdout(a.json ? `${JSON.stringify({ url, address: info.dashboard.url }, null, 2)}\n` : `${url}\n`);
    },
  },
];
