/**
 * Runs a router in its own process so a test can measure the router's memory alone.
 * argv[2] = JSON {apps, config}. Prints the port on stdout; answers 'rss' IPC messages.
 */
import { createRouter, type AppInput, type RouterConfigInput } from '../../../src/router/index';

const { apps, config } = JSON.parse(process.argv[2]!) as { apps: Record<string, AppInput>; config: RouterConfigInput };
const router = createRouter(config);
router.table.replace({ apps });
router.on('log', (e) => process.send?.({ log: e.line }));
void router.listen([{ host: '127.0.0.1', port: 0 }]).then(([b]) => process.send?.({ port: b!.port }));
process.on('message', (m: unknown) => {
  if (m === 'rss') {
    process.send?.({ rss: process.memoryUsage().rss });
  } else if (m === 'exit') {
    void router.close().then(() => process.exit(0));
  }
});
