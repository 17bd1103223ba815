// A background worker for Manifold: logs a tick every second, stops on SIGTERM.
'use strict';
const dyno = process.env.DYNO || 'unknown';
let n = 0;
console.log(`${dyno} starting`);
const t = setInterval(() => console.log(`${dyno} tick ${++n}`), 1000);
process.on('SIGTERM', () => {
  console.log(`${dyno} got SIGTERM after ${n} ticks`);
  clearInterval(t);
  process.exit(0);
});
