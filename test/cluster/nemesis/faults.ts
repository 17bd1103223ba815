/**
 * The nemesis's faults (spec §7 #1–#8 and etcd member restarts). Each one is injected, held, healed,
 * and says which host's dynos it put at risk (for the availability bound). The hosts that carry the
 * load's routers (h1, h2) are never frozen or killed: that would fail requests through their own
 * front door, which no cluster design can save; agents, schedulers, links and etcd members are fair game.
 * No netem here (this kernel lacks sch_netem): one-way loss is an nftables drop, and the spec's 200 ms
 * delay is a userspace forwarder spliced into h3's link (helpers/link-delay.ts); while it holds, h3's
 * port is off fab0, so it is not combined with linkDown/dropTo on h3 (the faults run one at a time).
 */
import type { Etcd3 } from 'etcd3';
import { keys } from '../../../src/cluster/keys';
import { sleep } from '../../manifold/helpers/daemon';
import type { ClusterHosts } from '../helpers/cluster-hosts';
import type { Fabric } from '../helpers/fabric';
import { delayLink } from '../helpers/link-delay';

export interface FaultContext {
  fabric: Fabric;
  cluster: ClusterHosts;
  client: Etcd3;
  /** Seeded randomness in [0, 1). */
  random: () => number;
  log: (line: string) => void;
  /**
   * For a fault that takes a while to strike (a daemon's kill -9: its dynos die by PDEATHSIG a moment
   * later): the epoch ms it had fully struck. Requests in flight on the host at risk until then count
   * in the availability bound.
   */
  struck: (at: number) => void;
}

export interface Fault {
  name: string;
  /**
   * Injects, holds and heals the fault; resolves once healed. Calls `injected` at t0 with the host
   * whose dynos the fault puts at risk, if any.
   */
  run(ctx: FaultContext, injected: (atRisk?: string) => Promise<void>): Promise<void>;
}

/** The host id of the scheduler leader: the candidate key with the lowest create revision. */
export async function schedulerLeader(client: Etcd3): Promise<string | undefined> {
  const res = await client.getAll().prefix(keys.election()).exec();
  const first = [...res.kvs].sort((a, b) => Number(a.create_revision) - Number(b.create_revision))[0];
  return first?.value.toString();
}

const between = (ctx: FaultContext, lo: number, hi: number): number => lo + Math.floor(ctx.random() * (hi - lo));

export const FAULTS: Fault[] = [
  {
    name: 'kill -9 agent h3',
    async run(ctx, injected) {
      const d = ctx.cluster.get('h3');
      // the fault strikes when the signal goes, not when this process sees the exit (a loaded box
      // took 100 ms to notice: requests that failed in between fell outside the fault's window)
      const exited = d.stop('SIGKILL');
      await injected('h3');
      await exited;
      ctx.struck(await ctx.cluster.dynosGoneAt('h3'));
      await sleep(between(ctx, 3000, 6000));
      await d.start();
    },
  },
  {
    name: 'SIGSTOP agent h3 10 s',
    async run(ctx, injected) {
      const c = ctx.cluster.get('h3').child!;
      c.kill('SIGSTOP');
      await injected('h3');
      await sleep(10_000);
      c.kill('SIGCONT');
    },
  },
  {
    name: 'link of h3 cut 15 s',
    async run(ctx, injected) {
      ctx.fabric.linkDown('h3');
      await injected('h3');
      await sleep(15_000);
      ctx.fabric.linkUp('h3');
    },
  },
  {
    name: 'one-way drop towards h3 15 s',
    async run(ctx, injected) {
      ctx.fabric.dropTo('h3');
      await injected('h3');
      await sleep(15_000);
      ctx.fabric.undrop('h3');
    },
  },
  {
    // Fails nothing by itself, but requests and etcd calls to h3 may now outrun their timeouts
    // (h3's lease keepalives and watch events arrive 200 ms late): its dynos count as at risk.
    name: '200 ms delay towards h3 15 s',
    async run(ctx, injected) {
      const delay = await delayLink(ctx.fabric, 'h3', 200);
      try {
        await injected('h3');
        await sleep(15_000);
      } finally {
        await delay.stop();
      }
    },
  },
  {
    name: 'kill -9 etcd leader, restarted',
    async run(ctx, injected) {
      const i = await ctx.fabric.leaderMember();
      await ctx.fabric.killMember(i);
      await injected();
      await sleep(between(ctx, 2000, 5000));
      await ctx.fabric.startMember(i);
    },
  },
  {
    name: 'SIGSTOP etcd leader 6 s',
    async run(ctx, injected) {
      const i = await ctx.fabric.leaderMember();
      ctx.fabric.stopMember(i);
      await injected();
      await sleep(6000);
      ctx.fabric.contMember(i);
    },
  },
  {
    name: 'kill -9 scheduler leader, restarted',
    async run(ctx, injected) {
      const leader = (await schedulerLeader(ctx.client)) ?? 'h4';
      const d = ctx.cluster.get(leader);
      const exited = d.stop('SIGKILL'); // struck now (see kill -9 agent h3)
      // the leader may be h3 (it runs dynos too): then its dynos are at risk like an agent kill's
      await injected(leader === 'h3' ? 'h3' : undefined);
      await exited;
      if (leader === 'h3') ctx.struck(await ctx.cluster.dynosGoneAt('h3'));
      await sleep(between(ctx, 2000, 5000));
      await d.start();
    },
  },
  {
    name: 'two of three etcd followers stopped 20 s',
    async run(ctx, injected) {
      // The two followers, as fault #7 of faults-control.test.ts does. With the leader among them,
      // nobody is elected while they are frozen, so the thawed leader is still leader, and etcd
      // 3.4.23's lessor then revokes every lease its clock finds expired before the agents can renew
      // (etcd-io/etcd #15247, fixed in 3.4.28): every host key and endpoint goes at once, and routers
      // must drop every backend. Seen in CI (seed 1519978666): all four host leases revoked, 2 810
      // requests failed in the ~2 s before the agents re-registered. Debian 12 ships 3.4.23.
      const leader = await ctx.fabric.leaderMember();
      const [first, second] = [1, 2, 3].filter((m) => m !== leader) as [number, number];
      ctx.fabric.stopMember(first);
      ctx.fabric.stopMember(second);
      await injected();
      await sleep(20_000);
      ctx.fabric.contMember(first);
      ctx.fabric.contMember(second);
    },
  },
  {
    name: 'router h2 cut off from etcd only 15 s',
    async run(ctx, injected) {
      const table = 'mf_nemesis_cut';
      const members = ctx.fabric.members.map((m) => ctx.fabric.address(m.ns)).join(', ');
      ctx.fabric.execOk('h2', 'nft', ['-f', '-'], {
        input: `add table inet ${table}\nadd chain inet ${table} out { type filter hook output priority filter; policy accept; }\nadd rule inet ${table} out ip daddr { ${members} } drop\n`,
      });
      await injected();
      await sleep(15_000);
      ctx.fabric.execOk('h2', 'nft', ['delete', 'table', 'inet', table]);
    },
  },
];
