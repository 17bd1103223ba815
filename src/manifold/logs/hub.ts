/** One LogBuffer per app, created on first use and dropped with the app. */
import { LogBuffer, type LogSource } from './log-buffer';

export class LogHub {
  private readonly apps = new Map<string, LogBuffer>();

  constructor(private readonly capacity?: number) {}

  get(app: string): LogBuffer {
    let b = this.apps.get(app);
    if (!b) {
      b = new LogBuffer(this.capacity);
      this.apps.set(app, b);
    }
    return b;
  }

  push(app: string, source: LogSource, dyno: string, message: string): void {
    this.get(app).push(source, dyno, message);
  }

  drop(app: string): void {
    this.apps.delete(app);
  }
}
