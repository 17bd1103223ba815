/**
 * The fenced scheduler leader of spec §5. etcd elections alone are not safe (Jepsen on etcd 3.4.3:
 * locks are "fundamentally unsafe"): a leader frozen past its lease TTL still believes it leads when
 * it wakes. So every write of the leader is a Txn guarded on its own leader key still having the
 * create_revision R it had when elected; once the lease has expired that key is gone (or belongs to
 * someone else), the guard fails on the server and the write does nothing.
 */
import { EventEmitter } from 'node:events';
import type { Campaign, Etcd3, IOperation } from 'etcd3';
import { PREFIX, SCHEDULER_ELECTION } from './keys';

/** etcd 3.4's `--max-txn-ops` default: a larger Txn is rejected whole, so callers batch. */
export const MAX_TXN_OPS = 128;

export type LeadershipState = 'campaigning' | 'leader' | 'lost' | 'resigned';

export interface LeadershipOptions {
  client: Etcd3;
  /** Value of the candidate key: who this is (a host id). */
  id: string;
  /** Lease TTL in seconds: 10 s in production, 2-3 s in tests (etcd's floor is 2 s at default timings). */
  ttlSeconds: number;
  /** Election name (default `scheduler`). */
  election?: string;
}

/** Events: 'elected' (leaderRevision: string), 'lost' (error: Error). */
export class Leadership extends EventEmitter {
  state: LeadershipState = 'campaigning';
  /** The full etcd key of this candidate, known once elected. */
  leaderKey: string | undefined;
  /** create_revision of leaderKey when elected: the fence of every write. */
  leaderRevision: string | undefined;
  private readonly campaign: Campaign;

  constructor(private readonly opts: LeadershipOptions) {
    super();
    const election = opts.client.namespace(PREFIX).election(opts.election ?? SCHEDULER_ELECTION, opts.ttlSeconds);
    this.campaign = election.campaign(opts.id);
    this.campaign.on('elected', () => {
      this.onElected().catch((err: unknown) => this.onLost(asError(err)));
    });
    // etcd3 emits 'error' when the campaign's lease is lost (keepalive answered "expired", or no answer
    // for 2×TTL) or when campaigning fails. Either way this candidate no longer leads, or never will.
    this.campaign.on('error', (err: Error) => this.onLost(err));
  }

  /** Resolves once elected; rejects if the campaign is lost first. */
  elected(): Promise<string> {
    if (this.state === 'leader' && this.leaderRevision) return Promise.resolve(this.leaderRevision);
    if (this.state === 'lost' || this.state === 'resigned') return Promise.reject(new Error(`leadership ${this.state}`));
    return new Promise((resolve, reject) => {
      const onElected = (rev: string): void => {
        this.off('lost', onLost);
        resolve(rev);
      };
      const onLost = (err: Error): void => {
        this.off('elected', onElected);
        reject(err);
      };
      this.once('elected', onElected);
      this.once('lost', onLost);
    });
  }

  /**
   * Commits `ops` only if this candidate's leader key still has the revision it had when elected.
   * Returns whether the Txn succeeded. Sent to the server even when the state is already 'lost': that
   * state is a client-side guess (etcd3 reports lost after 2×TTL without an answer, while the server
   * may have refreshed the lease on a leader change), and the server's compare is the authority.
   */
  async fencedTxn(ops: IOperation[], deadlineMs?: number): Promise<boolean> {
    if (ops.length > MAX_TXN_OPS) throw new RangeError(`a fenced Txn takes at most ${MAX_TXN_OPS} ops (got ${ops.length}); batch them`);
    if (!this.leaderKey || !this.leaderRevision) return false; // never elected: there is nothing to fence on
    const { client } = this.opts;
    const txn = client.if(this.leaderKey, 'Create', '==', this.leaderRevision).then(...ops);
    // a caller's own deadline replaces the client's default one (etcd-client.ts)
    if (deadlineMs !== undefined) txn.options({ deadline: Date.now() + deadlineMs });
    const res = await txn.commit();
    return res.succeeded;
  }

  /** Gives up leadership (revokes the lease, deleting the leader key) so a standby takes over at once. */
  async resign(): Promise<void> {
    if (this.state === 'resigned') return;
    this.state = 'resigned';
    await this.campaign.resign();
  }

  private async onElected(): Promise<void> {
    const key = await this.campaign.getCampaignKey();
    // Read R from the server rather than trust the campaign's copy: the key may already be gone if the
    // lease expired while we were being elected, and then we must not act as leader at all.
    const res = await this.opts.client.get(key).exec();
    const kv = res.kvs[0];
    if (!kv) throw new Error(`leader key ${key} vanished on election`);
    if (this.state !== 'campaigning') return;
    this.leaderKey = key;
    this.leaderRevision = kv.create_revision;
    this.state = 'leader';
    this.emit('elected', kv.create_revision);
  }

  private onLost(err: Error): void {
    if (this.state === 'lost' || this.state === 'resigned') return;
    this.state = 'lost';
    this.emit('lost', err);
  }
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
