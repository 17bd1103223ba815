/**
 * Server-sent events for the dashboard. State and metrics go through one Feed each: while a page
 * is open it rebuilds its JSON on a timer and sends it only when it changed, so an idle daemon with
 * a page open does one cheap snapshot a second and writes nothing. A page that reads slowly gets
 * the latest value when its socket drains, never a queue of old ones.
 */
import type http from 'node:http';

export function sseHead(res: http.ServerResponse, headers: Record<string, string>): void {
  res.writeHead(200, { ...headers, 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive' });
  // the browser waits this long before reconnecting after the daemon restarts
  res.write('retry: 1000\n\n');
}

/** One SSE message; `data` must be one line (JSON is). */
export function sseMessage(event: string, data: string): string {
  return `event: ${event}\ndata: ${data}\n\n`;
}

interface Client {
  res: http.ServerResponse;
  /** The value to send when the socket drains (it was full when the last one came). */
  pending: string | undefined;
  blocked: boolean;
}

export class Feed {
  private readonly clients = new Set<Client>();
  private last: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private building = false;

  constructor(
    private readonly event: string,
    private readonly build: () => Promise<string>,
    private readonly everyMs: number,
    private readonly onError: (err: unknown) => void,
  ) {}

  get size(): number {
    return this.clients.size;
  }

  add(res: http.ServerResponse): void {
    const c: Client = { res, pending: undefined, blocked: false };
    this.clients.add(c);
    res.on('close', () => {
      this.clients.delete(c);
      if (this.clients.size === 0) this.idle();
    });
    if (this.last !== undefined) this.send(c, this.last);
    if (!this.timer) {
      this.timer = setInterval(() => void this.tick(false), this.everyMs);
      // a new page gets a fresh value at once rather than one up to a period old
      void this.tick(true);
    }
  }

  close(): void {
    for (const c of this.clients) c.res.destroy();
    this.clients.clear();
    this.idle();
  }

  private idle(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    // nobody watches: the next page starts from a fresh build, and nothing stale is kept
    this.last = undefined;
  }

  private async tick(force: boolean): Promise<void> {
    if (this.building) return;
    this.building = true;
    try {
      const json = await this.build();
      if (json === this.last && !force) return;
      this.last = json;
      const msg = sseMessage(this.event, json);
      for (const c of this.clients) this.send(c, msg, true);
    } catch (err) {
      this.onError(err);
    } finally {
      this.building = false;
    }
  }

  private send(c: Client, value: string, encoded = false): void {
    const msg = encoded ? value : sseMessage(this.event, value);
    if (c.blocked) {
      c.pending = msg;
      return;
    }
    if (!c.res.write(msg)) {
      c.blocked = true;
      c.res.once('drain', () => {
        c.blocked = false;
        const p = c.pending;
        c.pending = undefined;
        if (p !== undefined) this.send(c, p, true);
      });
    }
  }
}
