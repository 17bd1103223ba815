/**
 * The pure parser against a corpus: llhttp's request/response cases (test/request/*.md,
 * test/response/*.md) and the smuggling classes of docs/router.md#request-smuggling, written as our own table.
 * Each case: raw bytes → accepted with a framing, or rejected with a named error and status.
 */
import t from 'tap';
import { BodyKind, HeadParser, NEED_MORE, parseRequestHead, parseResponseHead, DEFAULT_REQUEST_LIMITS } from '../../src/router/http1/index';

type Expect = { ok: BodyKind; cl?: number; target?: string; host?: string; keepAlive?: boolean; upgrade?: string | null; expectContinue?: boolean } | { error: string; status: number };

const H = 'Host: example.com\r\n';
const REQUESTS: Array<[string, string, Expect]> = [
  // ── accepted (llhttp request corpus, strict mode) ──
  ['simple GET', `GET / HTTP/1.1\r\n${H}\r\n`, { ok: BodyKind.None, target: '/', host: 'example.com', keepAlive: true }],
  ['query string', `GET /test?x=1&y=%20 HTTP/1.1\r\n${H}\r\n`, { ok: BodyKind.None, target: '/test?x=1&y=%20' }],
  ['fragment is stripped', `GET /a#frag HTTP/1.1\r\n${H}\r\n`, { ok: BodyKind.None, target: '/a' }],
  ['leading CRLF before request line', `\r\nGET / HTTP/1.1\r\n${H}\r\n`, { ok: BodyKind.None }],
  ['Content-Length with OWS', `POST / HTTP/1.1\r\n${H}Content-Length:\t 42 \t\r\n\r\n`, { ok: BodyKind.Length, cl: 42 }],
  ['Content-Length leading zeros', `POST / HTTP/1.1\r\n${H}Content-Length: 003\r\n\r\n`, { ok: BodyKind.Length, cl: 3 }],
  ['Content-Length 0', `POST / HTTP/1.1\r\n${H}Content-Length: 0\r\n\r\n`, { ok: BodyKind.None, cl: 0 }],
  ['chunked', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n`, { ok: BodyKind.Chunked }],
  ['chunked, case-insensitive', `POST / HTTP/1.1\r\n${H}transfer-encoding: CHUNKED\r\n\r\n`, { ok: BodyKind.Chunked }],
  ['HTTP/1.0 defaults to close', `GET / HTTP/1.0\r\n${H}\r\n`, { ok: BodyKind.None, keepAlive: false }],
  ['HTTP/1.0 keep-alive', `GET / HTTP/1.0\r\n${H}Connection: keep-alive\r\n\r\n`, { ok: BodyKind.None, keepAlive: true }],
  ['HTTP/1.1 close', `GET / HTTP/1.1\r\n${H}Connection: close\r\n\r\n`, { ok: BodyKind.None, keepAlive: false }],
  ['Connection list', `GET / HTTP/1.1\r\n${H}Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n`, { ok: BodyKind.None, upgrade: 'websocket' }],
  ['Upgrade without Connection is not an upgrade', `GET / HTTP/1.1\r\n${H}Upgrade: websocket\r\n\r\n`, { ok: BodyKind.None, upgrade: null }],
  ['Upgrade POST with body', `POST /ws HTTP/1.1\r\n${H}Connection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 4\r\n\r\n`, { ok: BodyKind.Length, cl: 4, upgrade: 'h2c' }],
  ['Expect 100-continue', `PUT / HTTP/1.1\r\n${H}Expect: 100-Continue\r\nContent-Length: 5\r\n\r\n`, { ok: BodyKind.Length, expectContinue: true }],
  ['Expect ignored on HTTP/1.0', `PUT / HTTP/1.0\r\n${H}Expect: 100-continue\r\nContent-Length: 5\r\n\r\n`, { ok: BodyKind.Length, expectContinue: false }],
  ['empty Expect is ignored', `GET / HTTP/1.1\r\n${H}Expect:\r\n\r\n`, { ok: BodyKind.None, expectContinue: false }],
  ['absolute-form target', `GET http://example.com/p?q HTTP/1.1\r\n${H}\r\n`, { ok: BodyKind.None, target: '/p?q' }],
  ['absolute-form without path', `GET http://example.com HTTP/1.1\r\n${H}\r\n`, { ok: BodyKind.None, target: '/' }],
  ['OPTIONS *', `OPTIONS * HTTP/1.1\r\n${H}\r\n`, { ok: BodyKind.None, target: '*' }],
  ['host with port', `GET / HTTP/1.1\r\nHost: Example.COM:8080\r\n\r\n`, { ok: BodyKind.None, host: 'example.com' }],
  ['IPv6 host', `GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n`, { ok: BodyKind.None, host: '[::1]' }],
  ['custom method', `PROPFIND / HTTP/1.1\r\n${H}\r\n`, { ok: BodyKind.None }],
  ['obs-text in a value', `GET / HTTP/1.1\r\n${H}X-Name: caf\xe9\r\n\r\n`, { ok: BodyKind.None }],
  ['empty header value', `GET / HTTP/1.1\r\n${H}X-Empty:\r\n\r\n`, { ok: BodyKind.None }],
  ['tab inside a value', `GET / HTTP/1.1\r\n${H}X-T: a\tb\r\n\r\n`, { ok: BodyKind.None }],

  // ── rejected: request line ──  (HTTP/1.2 is accepted as 1.1: RFC 9110 §2.5, issue 12; rfc-accept.test.ts)
  ['HTTP/0.9', 'GET /\r\n\r\n', { error: 'invalid_target', status: 400 }],
  ['lower-case version', `GET / http/1.1\r\n${H}\r\n`, { error: 'invalid_version', status: 400 }],
  ['HTTP/2.0', `GET / HTTP/2.0\r\n${H}\r\n`, { error: 'unsupported_version', status: 505 }],
  ['HTTP/01.1', `GET / HTTP/01.1\r\n${H}\r\n`, { error: 'invalid_version', status: 400 }],
  ['two spaces', `GET  / HTTP/1.1\r\n${H}\r\n`, { error: 'invalid_target', status: 400 }],
  ['trailing space', `GET / HTTP/1.1 \r\n${H}\r\n`, { error: 'invalid_version', status: 400 }],
  ['tab separator', `GET\t/ HTTP/1.1\r\n${H}\r\n`, { error: 'invalid_method', status: 400 }],
  ['CONNECT', `CONNECT example.com:443 HTTP/1.1\r\n${H}\r\n`, { error: 'connect_method', status: 400 }],
  ['relative target', `GET foo HTTP/1.1\r\n${H}\r\n`, { error: 'invalid_target', status: 400 }],
  ['non-ASCII target', `GET /caf\xe9 HTTP/1.1\r\n${H}\r\n`, { error: 'invalid_target', status: 400 }],
  ['too many empty lines', `\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n${H}\r\n`, { error: 'empty_lines_before_request', status: 400 }],

  // ── rejected: line endings and bytes ──
  ['bare LF everywhere', 'GET / HTTP/1.1\nHost: a\n\n', { error: 'bare_lf', status: 400 }],
  ['bare LF in a header', `GET / HTTP/1.1\r\n${H}X: y\n\r\n`, { error: 'bare_lf', status: 400 }],
  ['bare CR as separator', `GET / HTTP/1.1\r\n${H}X: a\rTransfer-Encoding: chunked\r\n\r\n`, { error: 'bare_cr', status: 400 }],
  ['NUL in a value', `GET / HTTP/1.1\r\nHost: a\x00.b\r\n\r\n`, { error: 'invalid_header_value', status: 400 }],
  ['DEL in a value', `GET / HTTP/1.1\r\n${H}X: a\x7fb\r\n\r\n`, { error: 'invalid_header_value', status: 400 }],
  ['VT in Content-Length', `POST / HTTP/1.1\r\n${H}Content-Length: 5\x0b\r\n\r\n`, { error: 'invalid_header_value', status: 400 }],

  // ── rejected: field syntax ──
  ['space before colon', `POST / HTTP/1.1\r\n${H}Content-Length : 4\r\n\r\n`, { error: 'space_before_colon', status: 400 }],
  ['tab before colon', `GET / HTTP/1.1\r\n${H}X\t: 1\r\n\r\n`, { error: 'space_before_colon', status: 400 }],
  ['obs-fold', `GET / HTTP/1.1\r\n${H}X: a\r\n b\r\n\r\n`, { error: 'obs_fold', status: 400 }],
  ['obs-folded TE', `POST / HTTP/1.1\r\n${H}Transfer-Encoding:\r\n chunked\r\n\r\n`, { error: 'obs_fold', status: 400 }],
  ['leading whitespace before first field', `GET / HTTP/1.1\r\n ${H}\r\n`, { error: 'leading_whitespace', status: 400 }],
  ['no colon', `GET / HTTP/1.1\r\n${H}Foo\r\n\r\n`, { error: 'missing_colon', status: 400 }],
  ['empty name', `GET / HTTP/1.1\r\n${H}: x\r\n\r\n`, { error: 'invalid_header_name', status: 400 }],
  ['@ in name', `GET / HTTP/1.1\r\n${H}Fo@: x\r\n\r\n`, { error: 'invalid_header_name', status: 400 }],
  ['non-ASCII name', `GET / HTTP/1.1\r\n${H}\xefoo: x\r\n\r\n`, { error: 'invalid_header_name', status: 400 }],
  ['underscore TE name is just another field', `POST / HTTP/1.1\r\n${H}Transfer_Encoding: chunked\r\n\r\n`, { ok: BodyKind.None }],

  // ── rejected: Host ──
  ['missing Host', 'GET / HTTP/1.1\r\n\r\n', { error: 'missing_host', status: 400 }],
  ['missing Host on 1.0', 'GET / HTTP/1.0\r\n\r\n', { error: 'missing_host', status: 400 }],
  ['empty Host', 'GET / HTTP/1.1\r\nHost:\r\n\r\n', { error: 'invalid_host', status: 400 }],
  ['duplicate Host', `GET / HTTP/1.1\r\n${H}${H}\r\n`, { error: 'duplicate_host', status: 400 }],
  ['Host list', 'GET / HTTP/1.1\r\nHost: a,b\r\n\r\n', { error: 'invalid_host', status: 400 }],
  ['Host with userinfo', 'GET / HTTP/1.1\r\nHost: u@a\r\n\r\n', { error: 'invalid_host', status: 400 }],
  ['Host with path', 'GET / HTTP/1.1\r\nHost: a/b\r\n\r\n', { error: 'invalid_host', status: 400 }],
  ['Host bad port', 'GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n', { error: 'invalid_host', status: 400 }],
  ['absolute-form disagrees with Host', `GET http://other.com/ HTTP/1.1\r\n${H}\r\n`, { error: 'invalid_host', status: 400 }],

  // ── rejected: framing (CL.TE, TE.TE, CL.CL) ──
  ['CL + TE', `POST / HTTP/1.1\r\n${H}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n`, { error: 'transfer_encoding_with_content_length', status: 400 }],
  ['TE + CL', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n`, { error: 'transfer_encoding_with_content_length', status: 400 }],
  ['TE in HTTP/1.0', `POST / HTTP/1.0\r\n${H}Transfer-Encoding: chunked\r\n\r\n`, { error: 'transfer_encoding_in_http10', status: 400 }],
  ['TE gzip, chunked', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n`, { error: 'invalid_transfer_encoding', status: 400 }],
  ['TE chunked, gzip', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, gzip\r\n\r\n`, { error: 'invalid_transfer_encoding', status: 400 }],
  ['TE xchunked', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n`, { error: 'invalid_transfer_encoding', status: 400 }],
  ['TE chunk', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunk\r\n\r\n`, { error: 'invalid_transfer_encoding', status: 400 }],
  ['TE quoted', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: "chunked"\r\n\r\n`, { error: 'invalid_transfer_encoding', status: 400 }],
  ['TE ,chunked', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: ,chunked\r\n\r\n`, { error: 'invalid_transfer_encoding', status: 400 }],
  ['TE chunked twice', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n`, { error: 'invalid_transfer_encoding', status: 400 }],
  ['TE with parameter', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked;q=1\r\n\r\n`, { error: 'invalid_transfer_encoding', status: 400 }],
  ['TE with VT', `POST / HTTP/1.1\r\n${H}Transfer-Encoding:\x0bchunked\r\n\r\n`, { error: 'invalid_header_value', status: 400 }],
  ['TE identity', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: identity\r\n\r\n`, { error: 'invalid_transfer_encoding', status: 400 }],
  ['duplicate equal CL', `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 5\r\n\r\n`, { error: 'duplicate_content_length', status: 400 }],
  ['differing CL', `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 6\r\n\r\n`, { error: 'duplicate_content_length', status: 400 }],
  ['comma CL', `POST / HTTP/1.1\r\n${H}Content-Length: 5, 5\r\n\r\n`, { error: 'invalid_content_length', status: 400 }],
  ['CL +5', `POST / HTTP/1.1\r\n${H}Content-Length: +5\r\n\r\n`, { error: 'invalid_content_length', status: 400 }],
  ['CL -1', `POST / HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\n`, { error: 'invalid_content_length', status: 400 }],
  ['CL hex', `POST / HTTP/1.1\r\n${H}Content-Length: 0x10\r\n\r\n`, { error: 'invalid_content_length', status: 400 }],
  ['CL 1_0', `POST / HTTP/1.1\r\n${H}Content-Length: 1_0\r\n\r\n`, { error: 'invalid_content_length', status: 400 }],
  ['CL inner space', `POST / HTTP/1.1\r\n${H}Content-Length: 1 0\r\n\r\n`, { error: 'invalid_content_length', status: 400 }],
  ['CL 5.0', `POST / HTTP/1.1\r\n${H}Content-Length: 5.0\r\n\r\n`, { error: 'invalid_content_length', status: 400 }],
  ['CL empty', `POST / HTTP/1.1\r\n${H}Content-Length:\r\n\r\n`, { error: 'invalid_content_length', status: 400 }],
  ['CL overflow', `POST / HTTP/1.1\r\n${H}Content-Length: 18446744073709551617\r\n\r\n`, { error: 'invalid_content_length', status: 400 }],
  ['Connection: upgrade without Upgrade', `GET / HTTP/1.1\r\n${H}Connection: upgrade\r\n\r\n`, { error: 'upgrade_without_upgrade_header', status: 400 }],
  ['unknown expectation', `GET / HTTP/1.1\r\n${H}Expect: whatever\r\n\r\n`, { error: 'unsupported_expectation', status: 417 }],
  ['bad Connection syntax', `GET / HTTP/1.1\r\n${H}Connection: close,,\r\n\r\n`, { error: 'invalid_header_value', status: 400 }],
];

t.test('request corpus', async (t) => {
  for (const [name, raw, expect] of REQUESTS) {
    const r = parseRequestHead(Buffer.from(raw, 'latin1'));
    if ('error' in expect) {
      t.match(r, { ok: false, incomplete: false, errorName: expect.error, status: expect.status }, name);
    } else {
      t.ok(r.ok, `${name}: accepted`);
      if (!r.ok) continue;
      t.equal(r.consumed, raw.length, `${name}: consumed the whole head`);
      t.equal(r.info.bodyKind, expect.ok, `${name}: framing`);
      if (expect.cl !== undefined && expect.ok === BodyKind.Length) t.equal(r.info.contentLength, expect.cl, `${name}: length`);
      if (expect.target !== undefined) t.equal(r.info.forwardTarget, expect.target, `${name}: target`);
      if (expect.host !== undefined) t.equal(r.info.routeHost, expect.host, `${name}: host`);
      if (expect.keepAlive !== undefined) t.equal(r.info.keepAlive, expect.keepAlive, `${name}: keep-alive`);
      if (expect.upgrade !== undefined) t.equal(r.info.upgrade, expect.upgrade, `${name}: upgrade`);
      if (expect.expectContinue !== undefined) t.equal(r.info.expectContinue, expect.expectContinue, `${name}: expect`);
    }
  }
});

t.test('limits (vegur request suite: url_limits, header_line_limits, header_count_limits)', async (t) => {
  const line = (n: number): string => `GET /${'a'.repeat(n - 15)} HTTP/1.1\r\n`;
  t.ok(parseRequestHead(Buffer.from(`${line(8192)}${H}\r\n`)).ok, 'request line of 8192 bytes is fine');
  t.match(parseRequestHead(Buffer.from(`${line(10000)}${H}\r\n`)), { status: 414 }, 'request line of 10000 → 414');
  t.match(parseRequestHead(Buffer.from(line(10000))), { status: 414, incomplete: false }, 'an unfinished overlong line is refused before its end');
  t.ok(parseRequestHead(Buffer.from(`GET / HTTP/1.1\r\n${H}${'n'.repeat(1000)}: v\r\n\r\n`)).ok, 'header name of 1000 is fine');
  t.match(parseRequestHead(Buffer.from(`GET / HTTP/1.1\r\n${H}${'n'.repeat(2100)}: v\r\n\r\n`)), { status: 431, errorName: 'header_name_too_long' });
  t.ok(parseRequestHead(Buffer.from(`GET / HTTP/1.1\r\n${H}X: ${'v'.repeat(8192)}\r\n\r\n`)).ok, 'header value of 8192 is fine');
  t.match(parseRequestHead(Buffer.from(`GET / HTTP/1.1\r\n${H}X: ${'v'.repeat(9100)}\r\n\r\n`)), { status: 431, errorName: 'header_line_too_long' });
  const fields = (n: number): string => Array.from({ length: n }, (_, i) => `X-${i}: v\r\n`).join('');
  t.ok(parseRequestHead(Buffer.from(`GET / HTTP/1.1\r\n${H}${fields(999)}\r\n`)).ok, '1000 headers including Host are fine');
  t.match(parseRequestHead(Buffer.from(`GET / HTTP/1.1\r\n${H}${fields(1100)}\r\n`)), { status: 431, errorName: 'too_many_headers' });
  t.match(parseRequestHead(Buffer.from(`GET / HTTP/1.1\r\n${H}`), { ...DEFAULT_REQUEST_LIMITS, maxHeadBytes: 20 }), { status: 431 });
});

t.test('incremental parsing: byte by byte gives the same head', async (t) => {
  const raw = Buffer.from(`POST /x HTTP/1.1\r\n${H}Content-Length: 3\r\nX-A: b\r\n\r\nabc`);
  const p = new HeadParser(true, DEFAULT_REQUEST_LIMITS);
  let r = NEED_MORE;
  let n = 0;
  for (n = 1; n <= raw.length && r === NEED_MORE; n++) r = p.execute(raw.subarray(0, n), 0);
  t.equal(r, raw.length - 3, 'complete exactly at the empty line');
  t.same(p.head.headerList(), [['Host', 'example.com'], ['Content-Length', '3'], ['X-A', 'b']]);
  // Bare LF is caught as soon as its line arrives, without waiting for the end of the head.
  const q = new HeadParser(true, DEFAULT_REQUEST_LIMITS);
  t.ok(q.execute(Buffer.from('GET / HTTP/1.1\n'), 0) < 0, 'bare LF rejected early');
});

const RESPONSES: Array<[string, string, string, { ok: BodyKind; cl?: number; close?: boolean } | { error: string }]> = [
  ['200 with CL', 'GET', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n', { ok: BodyKind.Length, cl: 5, close: false }],
  ['200 chunked', 'GET', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', { ok: BodyKind.Chunked }],
  ['200 no framing reads until close', 'GET', 'HTTP/1.1 200 OK\r\n\r\n', { ok: BodyKind.UntilClose, close: true }],
  ['HEAD response with CL has no body', 'HEAD', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n', { ok: BodyKind.None }],
  ['304 with CL has no body', 'GET', 'HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n', { ok: BodyKind.None }],
  ['204 has no body', 'GET', 'HTTP/1.1 204 No Content\r\n\r\n', { ok: BodyKind.None }],
  ['100 continue', 'GET', 'HTTP/1.1 100 Continue\r\n\r\n', { ok: BodyKind.None }],
  ['missing reason phrase (vegur accepts)', 'GET', 'HTTP/1.1 421\r\nContent-Length: 0\r\n\r\n', { ok: BodyKind.None }],
  ['blank reason phrase', 'GET', 'HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n', { ok: BodyKind.None }],
  ['HTTP/1.0 response closes', 'GET', 'HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n', { ok: BodyKind.Length, close: true }],
  ['HTTP/1.0 keep-alive response', 'GET', 'HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n', { ok: BodyKind.Length, close: false }],
  ['TE + CL: chunked wins, close after', 'GET', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n', { ok: BodyKind.Chunked, close: true }],
  ['chunked not last: until close', 'GET', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n', { ok: BodyKind.UntilClose, close: true }],
  ['identical duplicate CL merged', 'GET', 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n', { ok: BodyKind.Length, cl: 3 }],
  ['differing CL', 'GET', 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n', { error: 'invalid_content_length' }],
  ['comma CL', 'GET', 'HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\n', { error: 'invalid_content_length' }],
  ['two-digit status', 'GET', 'HTTP/1.1 20 OK\r\n\r\n', { error: 'invalid_status_line' }],
  ['bad version', 'GET', 'HTTP/1.x 200 OK\r\n\r\n', { error: 'invalid_status_line' }],
  ['101 without upgrade request', 'GET', 'HTTP/1.1 101 Switching Protocols\r\n\r\n', { error: 'invalid_status_line' }],
  ['long status line', 'GET', `HTTP/1.1 200 ${'x'.repeat(9000)}\r\n\r\n`, { error: 'status_line_too_long' }],
  ['long cookie', 'GET', `HTTP/1.1 200 OK\r\nSet-Cookie: ${'c'.repeat(9000)}\r\n\r\n`, { error: 'cookie_too_long' }],
  ['space before colon', 'GET', 'HTTP/1.1 200 OK\r\nContent-Length : 1\r\n\r\n', { error: 'space_before_colon' }],
  ['obs-fold', 'GET', 'HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n', { error: 'obs_fold' }],
];

t.test('response corpus', async (t) => {
  for (const [name, method, raw, expect] of RESPONSES) {
    const r = parseResponseHead(Buffer.from(raw, 'latin1'), method);
    if ('error' in expect) {
      t.match(r, { ok: false, errorName: expect.error }, name);
      continue;
    }
    t.ok(r.ok, `${name}: accepted`);
    if (!r.ok) continue;
    t.equal(r.info.bodyKind, expect.ok, `${name}: framing`);
    if (expect.cl !== undefined) t.equal(r.info.contentLength, expect.cl, `${name}: length`);
    if (expect.close !== undefined) t.equal(r.info.upstreamClose, expect.close, `${name}: upstream close`);
  }
  t.ok(parseResponseHead(Buffer.from(`HTTP/1.1 200 OK\r\nX-Big: ${'v'.repeat(500_000)}\r\n\r\n`), 'GET').ok, 'a 500 KB header line is within Heroku limits');
  t.match(parseResponseHead(Buffer.from(`HTTP/1.1 200 OK\r\nX-Big: ${'v'.repeat(530_000)}\r\n\r\n`), 'GET'), { errorName: 'response_header_too_long' });
  t.match(parseResponseHead(Buffer.from('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nContent-Length: 5\r\n\r\n'), 'GET', true), {
    ok: true,
    info: { bodyKind: BodyKind.Tunnel },
  });
});
