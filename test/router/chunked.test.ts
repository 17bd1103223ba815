/** The chunked decoder (vegur_chunked_SUITE cases, llhttp chunk cases, smuggling chunk tricks). */
import t from 'tap';
import { ChunkedDecoder, decodeChunkedBody } from '../../src/router/http1/index';

const ok = (raw: string, body: string, trailers = ''): [string, string, string | null, string] => [raw, body, null, trailers];
const bad = (raw: string): [string, string, string | null, string] => [raw, '', 'error', ''];

const CASES: Array<[string, string, string | null, string]> = [
  ok('5\r\nhello\r\n0\r\n\r\n', 'hello'),
  ok('5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n', 'hello world'),
  ok('A\r\n0123456789\r\n0\r\n\r\n', '0123456789'),
  ok('000005\r\nhello\r\n0000\r\n\r\n', 'hello'),
  ok('5;name=value\r\nhello\r\n0\r\n\r\n', 'hello'),
  ok('5;a;b=c;d="q \\" s"\r\nhello\r\n0;last\r\n\r\n', 'hello'),
  ok('5 ;a\r\nhello\r\n0\r\n\r\n', 'hello'),
  ok('5\r\nhe\rlo\r\n0\r\n\r\n', 'he\rlo'), // embedded CR inside data is data (vegur embedded_cr)
  ok('5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other: d\r\n\r\n', 'hello', 'X-Checksum: abc\r\nX-Other: d\r\n'),
  bad('0x5\r\nhello\r\n0\r\n\r\n'),
  bad(' 5\r\nhello\r\n0\r\n\r\n'),
  bad('5 \r\nhello\r\n0\r\n\r\n'),
  bad('-5\r\nhello\r\n0\r\n\r\n'),
  bad('+5\r\nhello\r\n0\r\n\r\n'),
  bad('\r\nhello\r\n0\r\n\r\n'),
  bad('5\nhello\r\n0\r\n\r\n'),
  bad('5\r\r\nhello\r\n0\r\n\r\n'), // vegur: c\r\r\n rejected
  bad('5;\r\nhello\r\n0\r\n\r\n'), // llhttp: no extension after semicolon
  bad('5;a\nhello\r\n0\r\n\r\n'), // CVE-2025-55315 shape: LF inside an extension
  bad('5;a="b\r\nhello\r\n0\r\n\r\n'),
  bad('5;a=b c\r\nhello\r\n0\r\n\r\n'),
  bad('5\r\nhelloX\r\n0\r\n\r\n'),
  bad('5\r\nhello\n0\r\n\r\n'),
  bad('1these-bytes-should-fail\r\n'),
  bad('10000000000000\r\n'), // 14 hex digits
  bad('5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n'),
  bad('5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n'),
  bad('5\r\nhello\r\n0\r\nbad trailer\r\n\r\n'),
  bad('5\r\nhello\r\n0\r\nX: a\nY: b\r\n\r\n'),
  bad('5\r\nhello\r\n0\r\n\rX'),
];

t.test('corpus', async (t) => {
  for (const [raw, body, err, trailers] of CASES) {
    const r = decodeChunkedBody(Buffer.from(raw, 'latin1'));
    if (err !== null) {
      t.match(r, { ok: false, incomplete: false }, `rejects ${JSON.stringify(raw)}`);
    } else {
      t.ok(r.ok, `accepts ${JSON.stringify(raw)}`);
      if (r.ok) {
        t.equal(r.body.toString('latin1'), body);
        t.equal(r.end, raw.length, 'ends exactly after the final CRLF');
        t.equal(r.trailers.toString('latin1'), trailers === '' ? '\r\n' : `${trailers}\r\n`);
      }
    }
  }
});

t.test('every split point gives the same result (streaming)', async (t) => {
  const raw = Buffer.from('5;x="a;b"\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nT: v\r\n\r\nNEXT', 'latin1');
  const bodyEnd = raw.length - 4;
  for (let split = 0; split <= bodyEnd; split++) {
    const d = new ChunkedDecoder();
    const out: Buffer[] = [];
    const sink = (b: Buffer, s: number, e: number): void => void out.push(Buffer.from(b.subarray(s, e)));
    const a = d.execute(raw, 0, split, sink);
    if (a < 0) {
      t.fail(`split ${split}: error in first part`);
      continue;
    }
    const b = d.done ? a : d.execute(raw, split, raw.length, sink);
    if (Buffer.concat(out).toString() !== 'helloabcdefghijklmnopqrstuvwxyz' || b !== bodyEnd) t.fail(`split ${split}: got ${b}`);
  }
  t.pass('all split points decode identically and stop before NEXT');
});

t.test('incomplete body is not an error', async (t) => {
  t.match(decodeChunkedBody(Buffer.from('5\r\nhel')), { ok: false, incomplete: true });
  t.match(decodeChunkedBody(Buffer.from('5\r\nhello\r\n0\r\n')), { ok: false, incomplete: true });
});
