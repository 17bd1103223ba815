/**
 * A scheduler candidate in its own process, so a test can SIGSTOP it (a frozen leader) without
 * freezing the test. Usage: node candidate.js ID TTL_SECONDS ENDPOINT[,ENDPOINT…]
 * Prints JSON lines: {event:'elected',rev} {event:'lost',message} {event:'txn',succeeded} {event:'error',message}.
 * Reads JSON lines on stdin: {cmd:'txn',key,value} writes key=value fenced; stdin closed → resign and exit.
 */
import readline from 'node:readline';
import { createEtcdClient } from '../../../src/cluster/etcd-client';
import { Leadership } from '../../../src/cluster/leadership';

const [id, ttl, endpoints] = process.argv.slice(2);
if (!id || !ttl || !endpoints) {
  process.stderr.write('usage: candidate.js ID TTL_SECONDS ENDPOINTS\n');
  process.exit(2);
}
const say = (msg: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify(msg)}\n`);
};
const client = createEtcdClient(endpoints.split(','));
const leadership = new Leadership({ client, id, ttlSeconds: Number(ttl) });
leadership.on('elected', (rev: string) => say({ event: 'elected', rev, key: leadership.leaderKey }));
leadership.on('lost', (err: Error) => say({ event: 'lost', message: err.message }));

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const cmd = JSON.parse(line) as { cmd: string; key: string; value: string };
  if (cmd.cmd !== 'txn') return say({ event: 'error', message: `unknown command ${cmd.cmd}` });
  leadership.fencedTxn([client.put(cmd.key).value(cmd.value)]).then(
    (succeeded) => say({ event: 'txn', succeeded, state: leadership.state }),
    (err: Error) => say({ event: 'error', message: err.message }),
  );
});
rl.on('close', () => {
  // A resign that can't reach etcd must not keep the process alive: the test waits for our exit.
  const timer = setTimeout(() => process.exit(0), 2000);
  leadership
    .resign()
    .catch(() => undefined)
    .finally(() => {
      clearTimeout(timer);
      client.close();
      process.exit(0);
    });
});
