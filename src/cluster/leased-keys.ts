/**
 * The keys a host owns under its lease (hosts/<id>, endpoints, status): callers set and delete keys
 * in memory, a single writer publishes the difference in Txns (≤128 ops each) in call order, and
 * reports the revision at which everything set so far is visible.
 *
 * Lease loss (spec §5): etcd3's 'lost' is only a client-side guess after 2×TTL without an answer;
 * the server may have kept the lease alive across a quorum loss. So a loss never stops a dyno: a new
 * lease is granted and every key is put again on it in one pass (moving keys to a new lease deletes
 * nothing, so routers see no gap), then the old lease is revoked. Every step catches its own
 * rejection: an unhandled one would take the whole daemon down while etcd is away.
 */
import { EventEmitter } from 'node:events';
import type { Etcd3, IOperation, Lease } from 'etcd3';
import { keys } from './keys';

const MAX_OPS = 128;
const REGRANT_GATE_MS = 5000;

export interface LeasedKeysOptions {
  client: Etcd3;
  ttlSeconds: number;
  log?: (line: string) => void;
}

/** Events: 'lease' (leaseId) each time a lease is granted, 'published' (revision). */
export class LeasedKeys extends EventEmitter {
  private readonly desired = new Map<string, string>();
  private readonly published = new Map<string, string>();
  private lease: Lease | undefined;
  private leaseId: string | undefined;
  private writing: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private failing = false;
  /** Revision after the last successful write. */
  revision = '0';
  private waiters: { upTo: number; resolve: (rev: string) => void }[] = [];
  private seq = 0;
  private writtenSeq = 0;
  grants = 0;
  /**
   * Runs after a lease loss, before the new lease is granted and the keys put on it again (the agent
   * stops what is no longer assigned here, so a stale host never re-publishes endpoints of dynos the
   * scheduler moved away). Bounded by REGRANT_GATE_MS: a hook that can't finish must not keep the
   * host's keys out of etcd, nor a stop() waiting.
   */
  beforeRegrant: (() => Promise<void>) | undefined;
  private gate: Promise<void> | undefined;

  constructor(private readonly o: LeasedKeysOptions) {
    super();
  }

  /** Grants the first lease (rejects if etcd doesn't answer: the daemon's start fails with it). */
  async start(): Promise<string> {
    return this.grant();
  }

  get id(): string | undefined {
    return this.leaseId;
  }

  set(key: string, value: string): void {
    if (this.desired.get(key) === value) return;
    this.desired.set(key, value);
    this.kick();
  }

  delete(key: string): void {
    if (!this.desired.has(key)) return;
    this.desired.delete(key);
    this.kick();
  }

  /** Keys under `prefix` that are set now. */
  keysUnder(prefix: string): string[] {
    return [...this.desired.keys()].filter((k) => k.startsWith(prefix));
  }

  /** Resolves with a revision at which every set/delete made so far is in etcd. */
  flushed(): Promise<string> {
    const upTo = this.seq;
    if (this.writtenSeq >= upTo) return Promise.resolve(this.revision);
    return new Promise((resolve) => this.waiters.push({ upTo, resolve }));
  }

  /** Revokes the lease (its keys vanish at once) and stops writing. */
  async stop(revoke = true): Promise<void> {
    this.stopped = true;
    await this.writing?.catch(() => undefined);
    const l = this.lease;
    this.lease = undefined;
    if (l) {
      if (revoke) await l.revoke().catch(() => undefined);
      else l.release();
    }
  }

  private kick(): void {
    this.seq++;
    if (this.writing) {
      this.again = true;
      return;
    }
    this.writing = this.writeLoop().finally(() => {
      this.writing = undefined;
    });
  }

  private async writeLoop(): Promise<void> {
    let delay = 50;
    do {
      this.again = false;
      const upTo = this.seq;
      try {
        await this.writeDiff();
        this.writtenSeq = upTo;
        if (this.failing) this.o.log?.('etcd writes resumed');
        this.failing = false;
        delay = 50;
        const done = this.waiters.filter((w) => w.upTo <= upTo);
        this.waiters = this.waiters.filter((w) => w.upTo > upTo);
        for (const w of done) w.resolve(this.revision);
        this.emit('published', this.revision);
      } catch (err) {
        if (this.stopped) return;
        if (!this.failing) this.o.log?.(`cannot publish to etcd (retrying): ${(err as Error).message}`);
        this.failing = true;
        this.again = true;
        await new Promise((r) => setTimeout(r, delay).unref());
        delay = Math.min(delay * 2, 1000);
      }
    } while (this.again && !this.stopped);
  }

  private async writeDiff(): Promise<void> {
    const { client } = this.o;
    if (!this.leaseId) {
      await this.gate;
      if (this.stopped) throw new Error('stopped');
      await this.grant();
    }
    const ops: { op: IOperation; key: string; value: string | undefined }[] = [];
    for (const [k, v] of this.desired) if (this.published.get(k) !== v) ops.push({ op: client.put(k).value(v).lease(this.leaseId!), key: k, value: v });
    for (const k of this.published.keys()) if (!this.desired.has(k)) ops.push({ op: client.delete().key(k), key: k, value: undefined });
    for (let i = 0; i < ops.length; i += MAX_OPS) {
      const batch = ops.slice(i, i + MAX_OPS);
      // the layout key always exists: the Txn is unconditional in effect (etcd3 needs one compare)
      const res = await client.if(keys.layout(), 'Version', '>', 0).then(...batch.map((b) => b.op)).commit();
      this.revision = res.header.revision;
      for (const b of batch) {
        if (b.value === undefined) this.published.delete(b.key);
        else this.published.set(b.key, b.value);
      }
    }
  }

  private async grant(): Promise<string> {
    const lease = this.o.client.lease(this.o.ttlSeconds, { autoKeepAlive: true });
    const id = await lease.grant();
    this.grants++;
    // a re-grant is logged, so a loop of them (a lease lost again at once) shows in the daemon's log
    if (this.grants > 1) this.o.log?.(`host lease ${id} granted (grant ${this.grants})`);
    this.lease = lease;
    this.leaseId = id;
    // etcd3 can emit 'lost' twice for one lease (its keepalive loop and its error path both do):
    // the second must not clear what the first's re-grant already published
    let handled = false;
    lease.on('lost', (err) => {
      if (this.lease !== lease || this.stopped || handled) return;
      handled = true;
      this.o.log?.(`host lease ${id} lost (${err.message}): granting a new one and putting every key on it again`);
      this.leaseId = undefined;
      // everything goes again on the new lease; the old one is revoked once it has
      this.published.clear();
      const hook = this.beforeRegrant;
      if (hook) {
        let timer: NodeJS.Timeout | undefined;
        const bound = new Promise<void>((r) => (timer = setTimeout(r, REGRANT_GATE_MS)));
        const gate: Promise<void> = Promise.race([hook().catch((e: unknown) => this.o.log?.(`before re-granting the host lease: ${(e as Error).message}`)), bound]).finally(() => {
          clearTimeout(timer);
          if (this.gate === gate) this.gate = undefined;
        });
        this.gate = gate;
      }
      this.kick();
      void this.flushed().then(() => lease.revoke().catch(() => undefined));
    });
    // The lease this one replaces is not revoked here: its keys are still on it until the write that
    // follows puts them on this one, and a revoke now would delete them first (a DELETE of hosts/<id>
    // and of every endpoint, which the scheduler and the routers act on). The 'lost' handler revokes it
    // once the keys have moved.
    this.watchBeats(lease);
    this.emit('lease', id);
    return id;
  }

  /**
   * etcd3 keeps a lease alive on one stream to one member and gives up on that member only after a
   * whole TTL without an answer, then opens the next stream on a member picked at random (maybe the
   * same one). With T = 3 s the server expires the lease first: the control-plane fault test saw the
   * etcd leader frozen for 6 s cost a host its lease, its dynos moved and requests failed. So when a
   * keepalive beat (T/3) passes with no answer, one more keepalive goes out on a fresh stream, which
   * the pool sends to a member picked afresh, bounded by one beat. An "expired" answer is a positive
   * one: etcd3 then reports the lease lost, and the 'lost' handler moves the keys to a new lease.
   */
  private watchBeats(lease: Lease): void {
    const beat = (this.o.ttlSeconds * 1000) / 3;
    let lastOk = Date.now();
    lease.on('keepaliveSucceeded', () => (lastOk = Date.now()));
    const timer = setInterval(() => {
      if (this.lease !== lease || lease.revoked() || this.stopped) {
        clearInterval(timer);
        return;
      }
      if (Date.now() - lastOk <= beat + 250) return;
      lease.keepaliveOnce({ deadline: Date.now() + beat }).then(
        () => (lastOk = Date.now()),
        () => undefined,
      );
    }, beat / 2);
    timer.unref();
  }
}
