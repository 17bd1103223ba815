/**
 * Differential fuzzer: our router's pure HTTP/1.1 request parser (src/router/http1) against Node's
 * own (llhttp, via a default `http.createServer` on 127.0.0.1).
 *
 * Each case is a valid request template with 0–3 seeded mutations (test/router/fuzz/generate.ts).
 * Both sides must agree on accept / reject / incomplete and, when accepted, on the body framing
 * (none, Content-Length N, chunked) and the decoded body bytes — or the difference must match a row
 * of the deliberate-differences table (test/router/fuzz/deliberate.ts). Anything else fails with the
 * minimized input. The incremental path (head parser and chunked decoder fed in pieces) must reach
 * the same decision as the one-shot parse.
 *
 * Reproduce: FUZZ_SEED=<seed> FUZZ_CASES=<n> npx tap dist/test/router/fuzz-diff.test.js
 * (FUZZ_MAX_MS bounds the run's time; default 50 s, the case count is what normally stops it.)
 */
import t from 'tap';
import { makeCase, TEMPLATES, serialize } from './fuzz/generate';
import { Oracle } from './fuzz/oracle';
import { ours, oursIncremental } from './fuzz/ours';
import { describe, sameOutcome, type Outcome } from './fuzz/outcome';
import { classify, DELIBERATE } from './fuzz/deliberate';
import { minimize } from './fuzz/minimize';
import { Prng } from './fuzz/prng';

const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed1);
const CASES = Number(process.env.FUZZ_CASES ?? 2000);
const MAX_MS = Number(process.env.FUZZ_MAX_MS ?? 50_000);

function show(b: Buffer): string {
  return JSON.stringify(b.toString('latin1'));
}

interface Finding {
  id: number;
  mutations: string[];
  input: Buffer;
  minimized: Buffer;
  oracle: Outcome;
  ours: Outcome;
}

t.test('templates: both parsers accept every unmutated template with the same framing', async (t) => {
  const oracle = new Oracle();
  await oracle.listen();
  t.teardown(() => oracle.close());
  for (const tpl of TEMPLATES) {
    const bytes = serialize(tpl.make(new Prng(1)));
    const a = await oracle.run(bytes);
    const b = ours(bytes);
    t.equal(a.verdict, 'accept', `llhttp accepts ${tpl.name}: ${describe(a)}`);
    t.ok(sameOutcome(a, b), `${tpl.name}: llhttp ${describe(a)} / ours ${describe(b)}`);
  }
});

t.test('known cases land where the spec says', async (t) => {
  const oracle = new Oracle();
  await oracle.listen();
  t.teardown(() => oracle.close());
  const cases: Array<[string, string, 'equal' | string]> = [
    ['CL+TE', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG', 'equal'],
    ['differing CLs', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab', 'equal'],
    ['obs-fold', 'GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n', 'equal'],
    ['space before colon', 'GET / HTTP/1.1\r\nHost : a\r\n\r\n', 'equal'],
    ['NUL in value', 'GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n', 'equal'],
    ['xchunked', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n', 'equal'],
    ['chunked body', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nX-T: 1\r\n\r\n', 'equal'],
    ['TE in HTTP/1.0', 'POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 'transfer-encoding-exact'],
    ['gzip, chunked', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n', 'transfer-encoding-exact'],
    ['HTTP/0.9', 'GET /\r\n\r\n', 'request-line-shape'],
    ['bare LF before request line', '\nGET / HTTP/1.1\r\nHost: a\r\n\r\n', 'bare-lf'],
    ['duplicate Host', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 'host-validation'],
    ['14 hex digits', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n00000000000001\r\na\r\n0\r\n\r\n', 'chunk-size-digits'],
  ];
  for (const [name, raw, expected] of cases) {
    const bytes = Buffer.from(raw, 'latin1');
    const a = await oracle.run(bytes);
    const b = ours(bytes);
    if (expected === 'equal') {
      t.ok(sameOutcome(a, b), `${name}: llhttp ${describe(a)} / ours ${describe(b)}`);
    } else {
      t.notOk(sameOutcome(a, b), `${name} differs: llhttp ${describe(a)} / ours ${describe(b)}`);
      t.equal(classify(bytes, a, b)?.id, expected, `${name} is listed as ${expected}`);
    }
  }
});

t.test(`differential fuzz: seed ${SEED}, ${CASES} cases`, async (t) => {
  const oracle = new Oracle();
  await oracle.listen();
  t.teardown(() => oracle.close());
  const started = Date.now();
  let equal = 0;
  let hung = 0;
  let ran = 0;
  const listed = new Map<string, number>();
  const unlisted: Finding[] = [];
  const incrementalMismatch: string[] = [];

  for (let i = 0; i < CASES; i++) {
    if (Date.now() - started > MAX_MS) {
      t.comment(`time budget ${MAX_MS} ms reached after ${i} cases`);
      break;
    }
    const c = makeCase(SEED, i);
    const a = await oracle.run(c.bytes);
    const b = ours(c.bytes);
    ran++;
    if (a.detail.includes('hung')) hung++;

    // the incremental path must agree with the one-shot parse, for 3 random cut sets
    const r = new Prng(SEED ^ (i * 7919));
    for (let k = 0; k < 3; k++) {
      const cuts = Array.from({ length: 1 + r.int(6) }, () => r.int(c.bytes.length + 1));
      if (k === 2) cuts.push(...Array.from({ length: Math.min(c.bytes.length, 400) }, (_, j) => j)); // byte by byte at the start
      const inc = oursIncremental(c.bytes, cuts);
      if (!sameOutcome(inc, b) || inc.detail.split(' ')[0] !== b.detail.split(' ')[0]) {
        incrementalMismatch.push(`case ${i}: one-shot ${describe(b)} / incremental ${describe(inc)} cuts ${JSON.stringify(cuts.slice(0, 8))} input ${show(c.bytes)}`);
        break;
      }
    }

    if (sameOutcome(a, b)) {
      equal++;
      continue;
    }
    const d = classify(c.bytes, a, b);
    if (d) {
      listed.set(d.id, (listed.get(d.id) ?? 0) + 1);
      continue;
    }
    const signature = `${a.verdict}/${a.framing}|${b.verdict}/${b.framing}`;
    const minimized = await minimize(c.bytes, async (cand) => {
      const oa = await oracle.run(cand);
      const ob = ours(cand);
      return !sameOutcome(oa, ob) && classify(cand, oa, ob) === null && `${oa.verdict}/${oa.framing}|${ob.verdict}/${ob.framing}` === signature;
    });
    const ma = await oracle.run(minimized);
    unlisted.push({ id: i, mutations: c.mutations, input: c.bytes, minimized, oracle: ma, ours: ours(minimized) });
    if (unlisted.length >= 10) {
      t.comment('stopping after 10 unlisted differences');
      break;
    }
  }

  const ms = Date.now() - started;
  t.comment(`${ran} cases in ${ms} ms: ${equal} equal, ${ran - equal - unlisted.length} listed differences, ${unlisted.length} unlisted, ${hung} oracle hangs`);
  for (const d of DELIBERATE) t.comment(`  ${String(listed.get(d.id) ?? 0).padStart(5)}  ${d.direction.padEnd(15)} ${d.id}`);
  t.ok(ran >= Math.min(CASES, 200), `ran ${ran} cases`);
  t.equal(hung, 0, 'the oracle never needed its watchdog');
  t.same(incrementalMismatch, [], 'incremental parsing agrees with one-shot parsing');
  for (const f of unlisted) {
    t.fail(`unlisted difference (case ${f.id}, seed ${SEED})`, {
      minimized: show(f.minimized),
      llhttp: describe(f.oracle),
      ours: describe(f.ours),
      mutations: f.mutations.join(' | '),
      original: show(f.input),
    });
  }
  if (unlisted.length === 0) t.pass('every difference is a listed, deliberate choice');
});
