// `npm run bench:router-work`: the router's own per-request work with no socket at all, stage by
// stage (ns per request, median of rounds): parse + validate the request head, build the head the
// dyno gets, parse + analyze the dyno's response head, plan and build the client's head, the
// request id, the log record and line. Their sum is the least CPU any router on `net` doing
// Heroku's job adds to `net-floor` (bench:router): a lower bound for issue 12 §1's 1.1× goal.
//   BENCH_ITER=200000 BENCH_ROUNDS=5
import { randomUUID } from 'node:crypto';
import { analyzeRequest, analyzeResponse, type RequestInfo } from '../src/router/http1/framing';
import { HeadParser, type MessageHead } from '../src/router/http1/head-parser';
import { planClientResponse, type ClientResponsePlan } from '../src/router/http1/client-response';
import { ClientFraming, clientResponseHeadString, upstreamRequestHeadString } from '../src/router/http1/serialize';
import { formatLogLine, type RouterLogRecord } from '../src/router/log';
import { resolveConfig } from '../src/router/config';
import { envNum } from './lib/env';

const ITER = Math.max(1000, Math.round(envNum('BENCH_ITER', 200_000)));
const ROUNDS = Math.max(1, Math.round(envNum('BENCH_ROUNDS', 5)));
const config = resolveConfig({});

/** What wrk sends in bench:router, and what a browser sends (the figure that matters for real traffic). */
const REQUESTS: Record<string, Buffer> = {
  wrk: Buffer.from('GET / HTTP/1.1\r\nHost: bench.localhost\r\n\r\n', 'latin1'),
  browser: Buffer.from(
    'GET /products/42?ref=home HTTP/1.1\r\nHost: bench.localhost\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36\r\n' +
      'Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\nAccept-Language: en-US,en;q=0.9\r\nAccept-Encoding: gzip, deflate, br\r\n' +
      'Cookie: session=3f2a9c1e7b5d4a6f8e0c2b4d6f8a0c2e; theme=dark\r\nConnection: keep-alive\r\nUpgrade-Insecure-Requests: 1\r\n\r\n',
    'latin1',
  ),
};
const RESPONSE = Buffer.from('HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Wed, 02 Dec 2026 12:00:00 GMT\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: keep-alive\r\n\r\n', 'latin1');
const PLAN: ClientResponsePlan = { framing: ClientFraming.None, contentLength: 0, deChunk: false, keepClient: false, connection: null };

const STAGES = ['request head', 'request id', 'dyno head', 'response head', 'client head', 'log line'] as const;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

let sink = 0; // keeps results alive so nothing is optimised away

/** One request through the first `stages` stages (1..6): costs come from differences of prefixes, with no clock read per stage. */
function oneRequest(req: Buffer, reqParser: HeadParser, resParser: HeadParser, stages: number): void {
  reqParser.reset();
  if (reqParser.execute(req, 0) <= 0) throw new Error('request head did not parse');
  const head: MessageHead = reqParser.head;
  const info = analyzeRequest(head) as RequestInfo;
  if (stages < 2) return void (sink += info.host.length);
  const requestId = randomUUID();
  if (stages < 3) return void (sink += requestId.length);
  const up = upstreamRequestHeadString(head, info, { forwardedFor: '127.0.0.1', proto: 'http', port: 80, requestStartMs: 1_764_000_000_000, requestId, via: config.via, connectMs: 0, totalRouteMs: 0, keepAlive: true });
  if (stages < 4) return void (sink += up.length);
  resParser.reset();
  if (resParser.execute(RESPONSE, 0) <= 0) throw new Error('response head did not parse');
  const rhead = resParser.head;
  const rinfo = analyzeResponse(rhead, head.method, false);
  if (typeof rinfo === 'number') throw new Error('response refused');
  if (stages < 5) return void (sink += rinfo.contentLength);
  planClientResponse(PLAN, rhead.status, rinfo, head.versionMinor, info.keepAlive, true);
  const out = clientResponseHeadString(rhead, rinfo, { framing: PLAN.framing, contentLength: PLAN.contentLength, connection: PLAN.connection, via: config.via });
  // the head leaves with the body in one Buffer (response-relay.ts relayToClient)
  const wire = Buffer.allocUnsafe(out.length + 13);
  wire.write(out, 0, 'latin1');
  if (stages < 6) return void (sink += wire.length);
  const rec: RouterLogRecord = { at: 'info', code: null, desc: null, cause: null, sock: null, app: 'bench', method: head.method, path: head.target, host: info.host, requestId, fwd: '127.0.0.1', dyno: 'web.1', connectMs: 0, serviceMs: 1, status: rhead.status, bytes: wire.length, protocol: 'http' };
  sink += formatLogLine(rec).length;
}

function timeIt(req: Buffer, stages: number): number {
  const reqParser = new HeadParser(true, config.limits.request);
  const resParser = new HeadParser(false, config.limits.response);
  const a = process.hrtime.bigint();
  for (let i = 0; i < ITER; i++) oneRequest(req, reqParser, resParser, stages);
  return Number(process.hrtime.bigint() - a) / ITER;
}

function main(): void {
  console.log(`Router work per request without sockets (${ITER} requests per measurement, median of ${ROUNDS} rounds, ns; a stage = the difference of two prefixes)`);
  console.log('| request | ' + STAGES.join(' | ') + ' | total |');
  console.log('|---|' + STAGES.map(() => '---:|').join('') + '---:|');
  for (const [name, req] of Object.entries(REQUESTS)) {
    for (let k = 1; k <= STAGES.length; k++) timeIt(req, k); // warm-up (JIT)
    const totals: number[][] = STAGES.map(() => []);
    for (let r = 0; r < ROUNDS; r++) for (let k = 1; k <= STAGES.length; k++) totals[k - 1]!.push(timeIt(req, k));
    const prefix = totals.map(median);
    const stage = prefix.map((v, i) => Math.max(0, v - (i === 0 ? 0 : prefix[i - 1]!)));
    console.log(`| ${name} | ${stage.map((m) => m.toFixed(0)).join(' | ')} | ${prefix[prefix.length - 1]!.toFixed(0)} |`);
  }
  if (sink === 42) console.log('');
}

main();
