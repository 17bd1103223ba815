/**
 * Deliberate differences between our router's parser and llhttp (Node's `http` server, default,
 * non-lenient options). Every difference the fuzzer finds must match one of these rows; anything
 * else fails the test. Each row checks the input too, not only the error name, so a new reason to
 * reject (or accept) cannot hide behind an old row.
 *
 * Sources: docs/router.md#parsing-strictness (reject instead of resolving) and docs/router.md#request-smuggling; RFC 9110/9112.
 */
import type { Outcome } from './outcome';
import { ours } from './ours';

export interface Deliberate {
  id: string;
  direction: 'stricter' | 'more permissive';
  rule: string;
  reason: string;
  matches: (input: Buffer, oracle: Outcome, ours: Outcome) => boolean;
}

const TOKEN = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]+";
const TOKEN_LIST = new RegExp(`^${TOKEN}([ \\t]*,[ \\t]*${TOKEN})*$`);
const FORBIDDEN_TRAILERS = ['content-length', 'transfer-encoding', 'host', 'trailer', 'connection', 'upgrade', 'expect'];

/** Error name our parser reported (`reject [name status]`), or '' if it did not reject. */
function ourError(o: Outcome): string {
  if (o.verdict !== 'reject') return '';
  return o.detail.replace(/^body: /, '').split(' ')[0] ?? '';
}

/** The oracle got past the head: it accepted the message or was still reading its body. */
function oracleTookHead(o: Outcome): boolean {
  return o.verdict === 'accept' || o.verdict === 'incomplete' || o.verdict === 'upgrade';
}

/** Stricter row: we rejected with one of `errors` where llhttp accepted (or waited for more body). */
function stricter(errors: readonly string[], o: Outcome, u: Outcome): boolean {
  return oracleTookHead(o) && errors.includes(ourError(u));
}

/** Head as latin1 text, from the first byte to the first empty line (CRLF or LF forms). */
function headText(input: Buffer): string {
  const s = input.toString('latin1');
  const m = /\r?\n\r?\n/.exec(s.replace(/^(\r?\n)+/, ''));
  const start = s.length - s.replace(/^(\r?\n)+/, '').length;
  return m ? s.slice(start, start + m.index) : s.slice(start);
}

/** Field lines of the head as [lower-case name, raw value] (split on CRLF or LF, so bare-LF heads still split). */
function fieldLines(input: Buffer): Array<[string, string]> {
  const lines = headText(input).split(/\r?\n/).slice(1);
  const out: Array<[string, string]> = [];
  for (const line of lines) {
    const c = line.indexOf(':');
    if (c > 0) out.push([trimOws(line.slice(0, c)).toLowerCase(), trimOws(line.slice(c + 1))]);
  }
  return out;
}

/** Strip SP/HTAB only (String.prototype.trim also strips VT, FF, NBSP… which are not OWS). */
function trimOws(s: string): string {
  return s.replace(/^[ \t]+|[ \t]+$/g, '');
}

function requestLine(input: Buffer): string {
  return headText(input).split('\n')[0] ?? '';
}

/** The part after the head (the body as sent). */
function afterHead(input: Buffer): string {
  const s = input.toString('latin1');
  const i = s.indexOf('\r\n\r\n');
  return i < 0 ? '' : s.slice(i + 4);
}

export const DELIBERATE: readonly Deliberate[] = [
  {
    id: 'request-line-shape',
    direction: 'stricter',
    rule: 'request-line is exactly `method SP target SP HTTP/d.d CRLF`: no extra/other whitespace, no HTTP/0.9 form',
    reason: 'RFC 9112 §3 (one SP); llhttp tolerates repeated spaces and accepts `GET /` as HTTP/0.9 (docs/router.md#parsing-strictness: reject 0.9)',
    matches: (i, o, u) =>
      stricter(['invalid_target', 'invalid_version', 'invalid_method', 'bare_cr'], o, u) &&
      !/^[!-~]+ [!-~]+ HTTP\/[0-9]\.[0-9]\r$/.test(requestLine(i)),
  },
  {
    id: 'http-version',
    direction: 'stricter',
    rule: 'only HTTP/1.x (505 for any other major version; 1.2+ are read as 1.1, see http-1-higher-minor)',
    reason: 'llhttp parses any HTTP/d.d such as HTTP/2.0 or HTTP/0.9 on the HTTP/1 wire; we answer 505 (docs/router.md#parsing-strictness)',
    matches: (i, o, u) => stricter(['unsupported_version'], o, u) && !/ HTTP\/1\.[01]\r?$/.test(requestLine(i)),
  },
  {
    id: 'bare-lf',
    direction: 'stricter',
    rule: 'every line of the head ends in CRLF; a bare LF (also before the request line) is a 400',
    reason: 'RFC 9112 §2.2 allows but does not require bare LF; it is a known header-visibility split (docs/router.md#request-smuggling). llhttp accepts LF-only empty lines before the request line',
    matches: (i, o, u) => stricter(['bare_lf'], o, u) && /(^|[^\r])\n/.test(i.toString('latin1')),
  },
  {
    id: 'leading-empty-lines',
    direction: 'stricter',
    rule: 'at most 5 empty lines before a request line',
    reason: 'RFC 9112 §2.2 says "at least one"; an unbounded run is a cheap way to hold a connection. llhttp skips any number',
    matches: (i, o, u) => stricter(['empty_lines_before_request'], o, u) && /^(\r?\n){6,}/.test(i.toString('latin1')),
  },
  {
    id: 'host-validation',
    direction: 'stricter',
    rule: 'exactly one Host, a valid uri-host[:port] (no userinfo, path, list, spaces); Host required in HTTP/1.0 too; absolute-form authority must equal Host',
    reason: 'RFC 9112 §3.2 "MUST respond with 400"; the router routes on Host (docs/router.md#parsing-strictness). Node only checks that an HTTP/1.1 request has one',
    matches: (i, o, u) => {
      const e = ourError(u);
      if (!stricter(['invalid_host', 'duplicate_host', 'missing_host'], o, u)) return false;
      const hosts = fieldLines(i).filter(([n]) => n === 'host');
      if (e === 'duplicate_host') return hosts.length > 1;
      if (e === 'missing_host') return hosts.length === 0;
      return hosts.length === 1 || /^[A-Za-z]+ [a-zA-Z]+:\/\//.test(requestLine(i));
    },
  },
  {
    id: 'transfer-encoding-exact',
    direction: 'stricter',
    rule: 'a request Transfer-Encoding is one field whose value is exactly `chunked` (case-insensitive); TE in HTTP/1.0, or any TE field (even empty) next to Content-Length, is a 400',
    reason: 'docs/router.md#request-smuggling: every TE.TE obfuscation (`gzip, chunked`, two TE lines, `chunked;q=1`…) and RFC 9112 §6.1 "TE in HTTP/1.0 … MUST treat as faulty"; llhttp accepts a list ending in chunked, several TE lines and TE in 1.0',
    matches: (i, o, u) => {
      if (!stricter(['invalid_transfer_encoding', 'transfer_encoding_in_http10', 'transfer_encoding_with_content_length'], o, u)) return false;
      const te = fieldLines(i).filter(([n]) => n === 'transfer-encoding');
      if (ourError(u) === 'transfer_encoding_in_http10') return te.length > 0 && / HTTP\/1\.0\r?$/.test(requestLine(i));
      // llhttp ignores an empty or non-chunked TE next to Content-Length; any TE field with a CL is a 400 here
      if (ourError(u) === 'transfer_encoding_with_content_length') return te.length > 0 && fieldLines(i).some(([n]) => n === 'content-length');
      return te.length > 1 || (te.length === 1 && te[0]![1].toLowerCase() !== 'chunked');
    },
  },
  {
    id: 'content-length-digits',
    direction: 'stricter',
    rule: 'Content-Length is at most 15 digits',
    reason: 'values above 2^53 are not exact in JS numbers (docs/router.md#parsing-strictness); llhttp accepts up to 2^64-1',
    matches: (i, o, u) =>
      stricter(['invalid_content_length'], o, u) && fieldLines(i).some(([n, v]) => n === 'content-length' && /^[0-9]{16,}$/.test(v)),
  },
  {
    id: 'connection-upgrade-syntax',
    direction: 'stricter',
    rule: 'Connection must be a clean token list; at most one Upgrade field; `Connection: upgrade` needs an Upgrade field',
    reason: 'hop-by-hop handling depends on these lists (RFC 9110 §7.6.1, §7.8); llhttp tolerates empty elements and junk in them',
    matches: (i, o, u) => {
      if (!stricter(['invalid_header_value', 'upgrade_without_upgrade_header'], o, u)) return false;
      const f = fieldLines(i);
      const conn = f.filter(([n]) => n === 'connection');
      const upg = f.filter(([n]) => n === 'upgrade');
      if (ourError(u) === 'upgrade_without_upgrade_header') return upg.length === 0 && conn.some(([, v]) => /upgrade/i.test(v));
      return upg.length > 1 || conn.some(([, v]) => !TOKEN_LIST.test(v));
    },
  },
  {
    id: 'expect-exact',
    direction: 'stricter',
    rule: 'Expect must be exactly `100-continue` (one field); anything else gets 417',
    reason: 'RFC 9110 §10.1.1 allows 417 for any other expectation (vegur does the same); Node accepts any value containing 100-continue',
    matches: (i, o, u) => {
      if (!stricter(['unsupported_expectation'], o, u)) return false;
      const ex = fieldLines(i).filter(([n, v]) => n === 'expect' && v !== '');
      return ex.length > 1 || ex.some(([, v]) => v.toLowerCase() !== '100-continue');
    },
  },
  {
    id: 'http-1-higher-minor',
    direction: 'more permissive',
    rule: 'HTTP/1.2 … HTTP/1.9 are read (and forwarded, answered) as HTTP/1.1',
    reason: 'RFC 9110 §2.5: a recipient processes a higher minor version of a major version it implements as its highest minor (issue 12); llhttp rejects them',
    matches: (i, o, u) => o.verdict === 'reject' && o.detail.startsWith('HPE_INVALID_VERSION') && u.verdict !== 'reject' && / HTTP\/1\.[2-9]\r$/.test(requestLine(i)),
  },
  {
    id: 'empty-expect',
    direction: 'more permissive',
    rule: 'an empty Expect field is ignored',
    reason: 'vegur 2.0.5 accepts an empty Expect; it expects nothing and does not affect framing. Node answers 417',
    matches: (i, o, u) =>
      o.verdict === 'reject' && o.detail.startsWith('417') && u.verdict !== 'reject' && fieldLines(i).some(([n, v]) => n === 'expect' && v === ''),
  },
  {
    id: 'method-token',
    direction: 'more permissive',
    rule: 'any token is a method (case-sensitive, so `get` is not GET); only CONNECT is refused',
    reason: 'RFC 9110 §9.1 methods are extensible; Heroku/vegur forward every method except CONNECT. Request framing never depends on the method, so this cannot desync. llhttp knows a fixed list',
    matches: (i, o, u) =>
      o.verdict === 'reject' &&
      (o.detail.startsWith('HPE_INVALID_METHOD') || (o.detail.startsWith('HPE_INVALID_VERSION') && requestLine(i).startsWith('PRI '))) &&
      u.verdict !== 'reject' &&
      new RegExp(`^${TOKEN} `).test(requestLine(i)),
  },
  {
    id: 'asterisk-form-options-only',
    direction: 'stricter',
    rule: 'the asterisk-form target `*` only with OPTIONS',
    reason: 'RFC 9112 §3.2.4: asterisk-form is only used for a server-wide OPTIONS request; llhttp accepts `*` with any method',
    matches: (i, o, u) => stricter(['invalid_target'], o, u) && /^[!-~]+ \* HTTP\/1\.[01]\r$/.test(requestLine(i)) && !requestLine(i).startsWith('OPTIONS '),
  },
  {
    id: 'content-length-ows',
    direction: 'more permissive',
    rule: 'SP/HTAB around a Content-Length value are not part of it (`Content-Length: \t 7\t` is 7)',
    reason: 'RFC 9110 §5.5: OWS around a field value is excluded from it; the router forwards the length re-serialised, so nothing ambiguous reaches a backend. llhttp rejects some OWS mixes (e.g. SP then HTAB after the digits)',
    matches: (i, o, u) =>
      o.verdict === 'reject' &&
      o.detail.startsWith('HPE_INVALID_CONTENT_LENGTH') &&
      u.verdict !== 'reject' &&
      fieldLines(i).filter(([n]) => n === 'content-length').length === 1 &&
      fieldLines(i).some(([n, v]) => n === 'content-length' && /^[0-9]{1,15}$/.test(v)),
  },
  {
    id: 'transfer-encoding-ows',
    direction: 'more permissive',
    rule: 'SP/HTAB around the Transfer-Encoding value are not part of it (`Transfer-Encoding: chunked \t` is chunked)',
    reason: 'RFC 9110 §5.5 (OWS is not part of a field value); the router never forwards the received TE field: it writes `Transfer-Encoding: chunked` itself (serialize.ts). llhttp treats trailing HTAB as part of the coding name',
    matches: (i, o, u) =>
      o.verdict === 'reject' &&
      o.detail === 'body: HPE_INVALID_TRANSFER_ENCODING' &&
      (u.verdict === 'accept' || u.verdict === 'incomplete') &&
      u.framing !== 'length' &&
      fieldLines(i).filter(([n]) => n === 'transfer-encoding').length === 1 &&
      fieldLines(i).some(([n, v]) => n === 'transfer-encoding' && v.toLowerCase() === 'chunked'),
  },
  {
    id: 'reject-when-line-completes',
    direction: 'stricter',
    rule: 'a head is judged line by line when each line (or the whole head) completes; a bare CR is caught at the next LF or at the line limit, not on the byte after it',
    reason: 'the same input is rejected by both parsers once the line completes; llhttp only notices earlier. No bytes are forwarded before the head is complete, so this is not a framing difference (checked here by completing the line)',
    matches: (i, o, u) => {
      if (o.verdict !== 'reject' || u.verdict !== 'incomplete' || u.detail !== 'head') return false;
      return ours(Buffer.concat([i, Buffer.from('\n')])).verdict === 'reject' || ours(Buffer.concat([i, Buffer.from('\r\n\r\n')])).verdict === 'reject';
    },
  },
  {
    id: 'chunk-ext-bws',
    direction: 'more permissive',
    rule: 'BWS (SP/HTAB) is allowed around `;` and `=` in chunk extensions (`5 ;a = b`)',
    reason: 'RFC 9112 §7.1.1 grammar: chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ); the size is already delimited, so framing is unambiguous. llhttp rejects the whitespace. (src/router/http1/chunked.ts: "BWS is only allowed before a chunk extension")',
    matches: (i, o, u) =>
      o.verdict === 'reject' &&
      /^body: HPE_(INVALID_CHUNK_SIZE|STRICT)/.test(o.detail) &&
      (u.verdict === 'accept' || u.verdict === 'incomplete') &&
      (/(^|\n)[0-9A-Fa-f]+([ \t]+;|[^\r\n]*;[^\r\n]*([ \t]=|=[ \t]|;[ \t]))/.test(afterHead(i)) ||
        // input ends inside such whitespace: a ';' may still follow, so we wait
        (u.verdict === 'incomplete' && /(^|\n)[0-9A-Fa-f]+[ \t]+$/.test(afterHead(i)))),
  },
  {
    id: 'chunk-ext-name-token',
    direction: 'stricter',
    rule: 'a chunk extension needs a non-empty token name (`5;=b`, `5;` are errors)',
    reason: 'RFC 9112 §7.1.1 chunk-ext-name = token; llhttp accepts an empty name before "="',
    matches: (i, o, u) => stricter(['bad_chunk'], o, u) && /(^|\n)[0-9A-Fa-f]+[ \t]*;[ \t]*(=|;|\r)/.test(afterHead(i)),
  },
  {
    id: 'connect',
    direction: 'stricter',
    rule: 'CONNECT is refused with 400',
    reason: 'the router is not a forward proxy (vegur: all methods except CONNECT)',
    matches: (_i, o, u) => o.verdict === 'connect' && u.verdict === 'reject',
  },
  {
    id: 'size-limits',
    direction: 'stricter',
    rule: 'request line ≤ 8192 (414), field name ≤ 1000, field value ≤ 8192, ≤ 1000 fields',
    reason: "Heroku's router limits (docs/router.md#limits); Node only caps the whole head at 16 KiB",
    matches: (_i, o, u) => stricter(['request_line_too_long', 'header_name_too_long', 'header_line_too_long', 'too_many_headers', 'head_too_large'], o, u),
  },
  {
    id: 'chunk-size-digits',
    direction: 'stricter',
    rule: 'a chunk-size has at most 13 hex digits (leading zeros count)',
    reason: "HAProxy's cap: sizes stay below 2^52, exact in JS numbers (docs/router.md#limits); llhttp accepts up to 2^64-1",
    matches: (i, o, u) => stricter(['bad_chunk'], o, u) && /(^|\n)[0-9A-Fa-f]{14,}[\r;\s]/.test(afterHead(i)),
  },
  {
    id: 'chunk-extension-length',
    direction: 'stricter',
    rule: 'chunk extensions ≤ 4096 bytes per size line',
    reason: 'RFC 9112 §7.1.1 "ought to limit the total length of chunk extensions"; llhttp has no limit',
    matches: (i, o, u) => stricter(['bad_chunk'], o, u) && /;[^\r\n]{4096,}/.test(afterHead(i)),
  },
  {
    id: 'forbidden-trailers',
    direction: 'stricter',
    rule: `trailers may not carry ${FORBIDDEN_TRAILERS.join(', ')}`,
    reason: 'RFC 9110 §6.5.1: framing/routing fields in trailers are never honoured; refusing them keeps them from reaching a backend that might (docs/router.md#parsing-strictness)',
    matches: (i, o, u) =>
      stricter(['bad_trailer'], o, u) && new RegExp(`\\r\\n0[^\\r\\n]*\\r\\n(.*\\r\\n)*?(${FORBIDDEN_TRAILERS.join('|')})\\s*:`, 'i').test(afterHead(i)),
  },
];

export function classify(input: Buffer, oracle: Outcome, ours: Outcome): Deliberate | null {
  for (const d of DELIBERATE) if (d.matches(input, oracle, ours)) return d;
  return null;
}
