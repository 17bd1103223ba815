/**
 * A loopback address:port where TCP connects hang (for connect timeouts without leaving 127.0.0.1):
 * a listener with a backlog of 0 that never accepts, its queue filled by a few dummy connects, so
 * the kernel drops further SYNs. Node cannot listen without accepting, hence a tiny python3 helper.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as net from 'node:net';

export interface Blackhole {
  port: number;
  close(): void;
}

export async function startBlackhole(): Promise<Blackhole> {
  const child: ChildProcess = spawn('python3', [
    '-c',
    'import socket,sys,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\nsys.stdin.read()',
  ], { stdio: ['pipe', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('error', reject);
  });
  const fillers: net.Socket[] = [];
  for (let i = 0; i < 3; i++) {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    fillers.push(s);
  }
  await new Promise((r) => setTimeout(r, 150));
  return {
    port,
    close() {
      for (const s of fillers) s.destroy();
      child.stdin!.end();
      child.kill();
    },
  };
}
