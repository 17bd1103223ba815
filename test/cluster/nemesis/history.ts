/**
 * The nemesis's record of everything that happened in etcd: a watch of `/manifold/v1/` from the
 * revision the run started at, every event kept in order (and written as JSONL for a look after a
 * failed run). The checkers replay it revision by revision.
 */
import fs from 'node:fs';
import type { Etcd3, Watcher } from 'etcd3';
import { PREFIX } from '../../../src/cluster/keys';

export interface HistoryEvent {
  rev: number;
  type: 'put' | 'delete';
  key: string;
  value: string;
  createRev: number;
}

export class History {
  readonly events: HistoryEvent[] = [];
  private watcher: Watcher | undefined;
  private out: fs.WriteStream | undefined;

  constructor(
    private readonly client: Etcd3,
    private readonly file?: string,
  ) {}

  /** Starts recording from `fromRev` (the run's first revision: everything after it is checked). */
  async start(fromRev: number): Promise<void> {
    if (this.file) this.out = fs.createWriteStream(this.file);
    const w = await this.client.watch().prefix(PREFIX).startRevision(String(fromRev)).create();
    this.watcher = w;
    w.on('data', (res) => {
      for (const ev of res.events) {
        const e: HistoryEvent = { rev: Number(ev.kv.mod_revision), type: ev.type === 'Delete' ? 'delete' : 'put', key: ev.kv.key.toString(), value: ev.type === 'Delete' ? '' : ev.kv.value.toString(), createRev: Number(ev.kv.create_revision) };
        // a resumed watch may repeat what it already sent: keep each revision's events once
        const last = this.events[this.events.length - 1];
        if (last && (e.rev < last.rev || (e.rev === last.rev && this.events.some((x) => x.rev === e.rev && x.key === e.key && x.type === e.type)))) continue;
        this.events.push(e);
        this.out?.write(`${JSON.stringify(e)}\n`);
      }
    });
    w.on('error', () => undefined);
  }

  async stop(): Promise<void> {
    await this.watcher?.cancel().catch(() => undefined);
    await new Promise<void>((r) => (this.out ? this.out.end(() => r()) : r()));
  }
}
