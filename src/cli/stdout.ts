/**
 * Output of the client commands, written to fd 1 directly. process.stdout would load node:stream and
 * a stream for the descriptor: for `manifold --version`, more than all the rest of its work. Linux
 * writes to stdout synchronously either way, so the order of output is the same.
 */
import fs from 'node:fs';

export function writeStdout(text: string): void {
  const data = Buffer.from(text);
  let done = 0;
  while (done < data.length) {
    try {
      done += fs.writeSync(1, data, done);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // a non-blocking descriptor (left so by whoever gave it to us): the stream waits for it
      if (code === 'EAGAIN') {
        process.stdout.write(data.subarray(done));
        return;
      }
      // the reader is gone (`manifold logs -t | head`): nothing more to say, as with SIGPIPE
      if (code === 'EPIPE') process.exit();
      throw err;
    }
  }
}
