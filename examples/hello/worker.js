// A background worker for Manifold's hello app: logs a heartbeat every few seconds, stops on SIGTERM.
'use strict';
const dyno = process.env.DYNO || 'unknown';
let beats = 0;
const timer = setInterval(() => console.log(`${dyno} heartbeat ${++beats}`), 5000);
console.log(`${dyno} working`);
process.on('SIGTERM', () => {
  console.log(`${dyno} got SIGTERM, stopping`);
  clearInterval(timer);
  process.exit(0);
});
