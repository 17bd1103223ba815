/**
 * BodyFraming (src/router/http1/body-framing.ts) without sockets: where a body ends in the bytes
 * after its head, across reads, and that one instance serves message after message.
 */
import t from 'tap';
import { BodyFraming } from '../../src/router/http1/body-framing';
import { DEFAULT_CHUNKED_LIMITS } from '../../src/router/http1/chunked';
import { BodyKind } from '../../src/router/http1/framing';
import { ParseError } from '../../src/router/http1/parse-errors';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

t.test('Content-Length: stops at the count, across reads', async (t) => {
  const f = new BodyFraming(DEFAULT_CHUNKED_LIMITS);
  f.begin(BodyKind.Length, 5);
  t.notOk(f.done);
  t.equal(f.take(b('abc'), 0, null), 3, 'all of a short read');
  t.notOk(f.done);
  t.equal(f.take(b('xdeGET /'), 1, null), 3, 'two more from offset 1, the rest is the next request');
  t.ok(f.done);
  t.equal(f.take(b('more'), 0, null), 0, 'nothing past the end');
});

t.test('chunked: payload to the sink, framing not; the end found', async (t) => {
  const f = new BodyFraming(DEFAULT_CHUNKED_LIMITS);
  f.begin(BodyKind.Chunked, 0);
  const got: string[] = [];
  const sink = (buf: Buffer, s: number, e: number): void => void got.push(buf.toString('latin1', s, e));
  const msg = b('3\r\nabc\r\n0\r\n\r\nNEXT');
  t.equal(f.take(msg.subarray(0, 6), 0, sink), 6, 'needs more');
  t.notOk(f.done);
  t.equal(f.take(msg, 6, sink), msg.length - 4, 'ends before NEXT');
  t.ok(f.done);
  t.same(got.join(''), 'abc');
});

t.test('chunked: broken framing is a negated ParseError', async (t) => {
  const f = new BodyFraming(DEFAULT_CHUNKED_LIMITS);
  f.begin(BodyKind.Chunked, 0);
  t.equal(f.take(b('zz\r\n'), 0, null), -ParseError.BadChunk);
});

t.test('no body, close-delimited body', async (t) => {
  const f = new BodyFraming(DEFAULT_CHUNKED_LIMITS);
  f.begin(BodyKind.None, 0);
  t.ok(f.done, 'no body is done at once');
  t.equal(f.take(b('xyz'), 1, null), 1);
  f.begin(BodyKind.UntilClose, 0);
  t.equal(f.take(b('xyz'), 1, null), 3, 'everything until the close');
  t.notOk(f.done, 'never done by itself');
});

t.test('reused: begin() forgets the previous message', async (t) => {
  const f = new BodyFraming(DEFAULT_CHUNKED_LIMITS);
  f.begin(BodyKind.Chunked, 0);
  f.take(b('5\r\nab'), 0, null); // cut mid-chunk
  f.begin(BodyKind.Chunked, 0);
  t.equal(f.take(b('0\r\n\r\n'), 0, null), 5, 'a fresh chunked body');
  t.ok(f.done);
  f.begin(BodyKind.Length, 2);
  t.notOk(f.done, 'Length after chunked');
  t.equal(f.take(b('hi!'), 0, null), 2);
  t.ok(f.done);
});
