/**
 * A live copy of one etcd prefix: one read at a revision, then a watch from the next revision, and a
 * full re-read every `resyncMs` (missed events are silent: a wedged watch, a compaction, a reconnect
 * that resumed late). The agent uses it for its own assignments and for the host list. While etcd is
 * unreachable the copy is kept as it was (never emptied) and reads are retried.
 */
import { EventEmitter } from 'node:events';
import type { Etcd3, IKeyValue, Watcher } from 'etcd3';

export interface MirroredValue {
  value: string;
  modRevision: string;
  createRevision: string;
}

export interface PrefixMirrorOptions {
  client: Etcd3;
  prefix: string;
  resyncMs?: number;
  log?: (line: string) => void;
}

/** Events: 'change' () after any change of the copy (coalesced per event batch). */
export class PrefixMirror extends EventEmitter {
  readonly entries = new Map<string, MirroredValue>();
  /** Revision the copy reflects. */
  revision = '0';
  private watcher: Watcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private relisting: Promise<void> | undefined;
  private failing = false;

  constructor(private readonly o: PrefixMirrorOptions) {
    super();
  }

  /** Resolves after the first successful read (retrying while etcd is unreachable). */
  async start(): Promise<void> {
    await this.relist();
    this.timer = setInterval(() => void this.relist(), this.o.resyncMs ?? 10_000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    const w = this.watcher;
    this.watcher = undefined;
    await w?.cancel().catch(() => undefined);
  }

  /** Re-reads the prefix and re-watches from the read's revision (one at a time). */
  relist(): Promise<void> {
    this.relisting ??= this.relistLoop().finally(() => {
      this.relisting = undefined;
    });
    return this.relisting;
  }

  private async relistLoop(): Promise<void> {
    for (let delay = 100; !this.stopped; delay = Math.min(delay * 2, 2000)) {
      try {
        await this.relistOnce();
        if (this.failing) this.o.log?.(`etcd reachable again: ${this.o.prefix} re-read`);
        this.failing = false;
        return;
      } catch (err) {
        if (!this.failing) this.o.log?.(`cannot read ${this.o.prefix} from etcd (keeping the last copy, retrying): ${(err as Error).message}`);
        this.failing = true;
        await new Promise((r) => setTimeout(r, delay).unref());
      }
    }
  }

  private async relistOnce(): Promise<void> {
    const res = await this.o.client.getAll().prefix(this.o.prefix).exec();
    const rev = res.header.revision;
    const seen = new Set<string>();
    let changed = false;
    for (const kv of res.kvs) {
      const key = kv.key.toString();
      seen.add(key);
      changed = this.apply(key, kv) || changed;
    }
    for (const key of [...this.entries.keys()]) {
      if (!seen.has(key)) {
        this.entries.delete(key);
        changed = true;
      }
    }
    this.revision = rev;
    const old = this.watcher;
    this.watcher = undefined;
    await old?.cancel().catch(() => undefined);
    if (this.stopped) return;
    const w = await this.o.client.watch().prefix(this.o.prefix).startRevision(String(BigInt(rev) + 1n)).create();
    if (this.stopped) {
      await w.cancel().catch(() => undefined);
      return;
    }
    this.watcher = w;
    w.on('data', (r) => {
      let any = false;
      for (const ev of r.events) {
        const key = ev.kv.key.toString();
        if (ev.type === 'Delete') any = this.entries.delete(key) || any;
        else any = this.apply(key, ev.kv) || any;
        if (BigInt(ev.kv.mod_revision) > BigInt(this.revision)) this.revision = ev.kv.mod_revision;
      }
      if (any) this.emit('change');
    });
    // compaction or a cancel by the server: the stream can't resume, read everything again
    w.on('error', () => void this.relist());
    if (changed) this.emit('change');
  }

  private apply(key: string, kv: IKeyValue): boolean {
    const old = this.entries.get(key);
    if (old && old.modRevision === kv.mod_revision) return false;
    this.entries.set(key, { value: kv.value.toString(), modRevision: kv.mod_revision, createRevision: kv.create_revision });
    return true;
  }
}
