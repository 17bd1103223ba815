/** State shared by every connection of one router instance. */
import type { RouterConfig } from '../config';
import type { RouterLogRecord } from '../log';
import type { Balancer } from '../routing/balancer';
import type { RouteTable } from '../routing/route-table';
import type { ClientConnection } from './client-conn';
import type { Exchange } from './exchange';
import type { UpstreamPool } from './upstream';

export interface RouterCore {
  readonly config: RouterConfig;
  readonly table: RouteTable;
  readonly balancer: Balancer;
  readonly pool: UpstreamPool;
  /** Dyno address → time its quarantine ends. */
  readonly quarantine: Map<string, number>;
  /** Requests waiting for a dyno to come up or out of quarantine. */
  readonly waiting: Set<Exchange>;
  /** Requests whose fresh connect to a dyno is under way (aborted if the table drops that dyno). */
  readonly connecting: Set<Exchange>;
  /**
   * Replayable requests (bodiless, idempotent) sent to a dyno that has not answered a byte yet:
   * replayed on another dyno if the table drops that dyno.
   */
  readonly awaitingReply: Set<Exchange>;
  readonly clients: Set<ClientConnection>;
  /** In-flight requests per app (H11). */
  readonly appInFlight: Map<string, number>;
  /** False when nobody listens for log lines: callers skip building records. */
  readonly logging: boolean;
  log(record: RouterLogRecord): void;
}
