/** State shared by every connection of one router instance. */
import type { RouterConfig } from '../config';
import type { RouterLogRecord } from '../log';
import type { Balancer } from '../routing/balancer';
import type { RouteSnapshot, RouteTable } from '../routing/route-table';
import type { MemberList } from '../member-list';
import type { HasDeadline } from '../timers';
import type { UpstreamPool } from './upstream';

/**
 * A request the router core may have to move on (an Exchange): declared here, not imported, so the
 * core's shape depends on no connection module.
 */
export interface PendingRequest {
  /** Look for a dyno again (the table changed, a quarantine lapsed). */
  dispatch(): void;
  /** The table changed: abandon a connect or unanswered send to a dyno it dropped. */
  onTableChange(snapshot: RouteSnapshot): void;
  /** Its index in the core's `connecting` / `awaitingReply` lists (-1: not there). */
  connectingSlot: number;
  awaitingSlot: number;
}

/** A client connection as the core sees it: something with deadlines that can be closed. */
export interface PendingClient extends HasDeadline {
  destroy(): void;
  /** Its index in the core's `clients` list (-1: not there). */
  clientSlot: number;
}

export interface RouterCore {
  readonly config: RouterConfig;
  readonly table: RouteTable;
  readonly balancer: Balancer;
  readonly pool: UpstreamPool;
  /** Dyno address → time its quarantine ends. */
  readonly quarantine: Map<string, number>;
  /** Requests waiting for a dyno to come up or out of quarantine. */
  readonly waiting: Set<PendingRequest>;
  /** Requests whose fresh connect to a dyno is under way (aborted if the table drops that dyno). */
  readonly connecting: MemberList<PendingRequest>;
  /**
   * Replayable requests (bodiless, idempotent) sent to a dyno that has not answered a byte yet:
   * replayed on another dyno if the table drops that dyno.
   */
  readonly awaitingReply: MemberList<PendingRequest>;
  readonly clients: MemberList<PendingClient>;
  /** In-flight requests per app (H11); an app with none keeps a 0 (deleting keys churns the Map, see member-list.ts). */
  readonly appInFlight: Map<string, number>;
  /** False when nobody listens for log lines: callers skip building records. */
  readonly logging: boolean;
  log(record: RouterLogRecord): void;
}
