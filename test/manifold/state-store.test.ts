import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { SqliteStateStore } from '../../src/manifold/state/sqlite-state-store';
import { Store } from '../../src/manifold/store/store';
import { stateStoreSuite } from './helpers/state-store-suite';

t.test('SqliteStateStore', async (t) => {
  stateStoreSuite(t, async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-state-'));
    const s = new SqliteStateStore(new Store(path.join(dir, 'm.db')));
    t.teardown(async () => {
      await s.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    return s;
  });
});
