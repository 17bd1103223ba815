/**
 * Request generator for the differential fuzzer: a few valid templates, then 0–3 seeded mutations
 * aimed at the framing-relevant grammar (request line, field syntax, Content-Length,
 * Transfer-Encoding, chunk sizes/extensions/trailers, Host). Strings are latin1: one char = one byte.
 */
import { Prng } from './prng';

export interface Field {
  name: string;
  /** between name and value: ':' normally, ' :' for a space-before-colon mutation */
  colon: string;
  /** whitespace after the colon */
  ows: string;
  value: string;
  /** line terminator */
  end: string;
}

export interface Chunk {
  size: string; // hex text as sent
  ext: string; // e.g. ';a=b'
  sizeEnd: string; // normally CRLF
  data: string;
  dataEnd: string; // normally CRLF
}

export interface ChunkedBody {
  chunks: Chunk[];
  last: { size: string; ext: string; end: string };
  trailers: string[]; // full lines without terminator
  trailerEnd: string; // terminator of each trailer line
  finalEnd: string; // the empty line ending the trailer section
}

export interface Req {
  leading: string; // bytes before the request line (e.g. empty lines)
  method: string;
  sp1: string;
  target: string;
  sp2: string;
  version: string;
  lineEnd: string;
  fields: Field[];
  headEnd: string;
  /** body when not chunked (raw bytes after the head) */
  body: string;
  chunked: ChunkedBody | null;
}

export interface Case {
  id: number;
  template: string;
  mutations: string[];
  bytes: Buffer;
}

const CRLF = '\r\n';

function field(name: string, value: string): Field {
  return { name, colon: ':', ows: ' ', value, end: CRLF };
}

function chunk(data: string, ext = ''): Chunk {
  return { size: data.length.toString(16), ext, sizeEnd: CRLF, data, dataEnd: CRLF };
}

function chunkedBody(parts: string[], trailers: string[] = []): ChunkedBody {
  return { chunks: parts.map((p) => chunk(p)), last: { size: '0', ext: '', end: CRLF }, trailers, trailerEnd: CRLF, finalEnd: CRLF };
}

function base(method: string, target: string, version: string, fields: Field[]): Req {
  return { leading: '', method, sp1: ' ', target, sp2: ' ', version, lineEnd: CRLF, fields, headEnd: CRLF, body: '', chunked: null };
}

type Template = { name: string; make: (r: Prng) => Req };

const BODY_WORDS = ['hello', 'world', 'a', '0123456789abcdef', 'x'.repeat(40), 'GET / HTTP/1.1', '\r\n', 'é'];

function randomBody(r: Prng): string {
  let s = '';
  const n = 1 + r.int(3);
  for (let i = 0; i < n; i++) s += r.pick(BODY_WORDS);
  return s;
}

export const TEMPLATES: readonly Template[] = [
  { name: 'get', make: () => base('GET', '/', 'HTTP/1.1', [field('Host', 'example.com'), field('User-Agent', 'fuzz/1'), field('Accept', '*/*')]) },
  {
    name: 'post-cl',
    make: (r) => {
      const body = randomBody(r);
      const q = base('POST', '/submit?x=1', 'HTTP/1.1', [field('Host', 'app.localhost'), field('Content-Type', 'text/plain'), field('Content-Length', String(body.length))]);
      q.body = body;
      return q;
    },
  },
  {
    name: 'post-chunked',
    make: (r) => {
      const q = base('POST', '/upload', 'HTTP/1.1', [field('Host', 'app.localhost'), field('Transfer-Encoding', 'chunked')]);
      q.chunked = chunkedBody([randomBody(r), randomBody(r)]);
      return q;
    },
  },
  {
    name: 'chunked-trailers',
    make: (r) => {
      const q = base('PUT', '/t', 'HTTP/1.1', [field('Host', 'app.localhost'), field('Transfer-Encoding', 'chunked'), field('Trailer', 'X-Checksum')]);
      q.chunked = chunkedBody([randomBody(r)], ['X-Checksum: abc123']);
      return q;
    },
  },
  { name: 'http10-get', make: () => base('GET', '/old', 'HTTP/1.0', [field('Host', 'app.localhost'), field('Connection', 'keep-alive')]) },
  {
    name: 'http10-post-cl',
    make: (r) => {
      const body = randomBody(r);
      const q = base('POST', '/old', 'HTTP/1.0', [field('Host', 'app.localhost'), field('Content-Length', String(body.length))]);
      q.body = body;
      return q;
    },
  },
  { name: 'delete-cl0', make: () => base('DELETE', '/item/1', 'HTTP/1.1', [field('Host', 'app.localhost'), field('Content-Length', '0')]) },
  { name: 'options', make: () => base('OPTIONS', '*', 'HTTP/1.1', [field('Host', 'app.localhost')]) },
];

// ----------------------------------------------------------------------------------------------
// mutations

type Mutation = { name: string; apply: (q: Req, r: Prng) => string | null };

const NAME_BYTES = ['\x00', '\x01', '\x7f', ' ', '\t', '@', '(', '"', '/', '\x80', '\xff', '_', '\r', '\n', '\x0b'];
const VALUE_BYTES = ['\x00', '\x01', '\x08', '\x0b', '\x0c', '\x1f', '\x7f', '\r', '\n', '\t', ' ', '\x80', '\xff', '"', ','];

function insertAt(s: string, i: number, ins: string): string {
  return s.slice(0, i) + ins + s.slice(i);
}

function anyField(q: Req, r: Prng): Field | null {
  return q.fields.length === 0 ? null : r.pick(q.fields);
}

function findField(q: Req, lower: string): Field | undefined {
  return q.fields.find((f) => f.name.toLowerCase() === lower);
}

function ensureChunked(q: Req, r: Prng): ChunkedBody {
  if (q.chunked) return q.chunked;
  q.fields = q.fields.filter((f) => f.name.toLowerCase() !== 'content-length' && f.name.toLowerCase() !== 'transfer-encoding');
  q.fields.push(field('Transfer-Encoding', 'chunked'));
  if (q.method === 'GET' || q.method === 'OPTIONS') q.method = 'POST';
  q.chunked = chunkedBody([randomBody(r), randomBody(r)]);
  q.body = '';
  return q.chunked;
}

function setCl(q: Req, value: string): void {
  const f = findField(q, 'content-length');
  if (f) f.value = value;
  else q.fields.push(field('Content-Length', value));
}

function bodyLength(q: Req): number {
  return q.chunked ? serializeBody(q).length : q.body.length;
}

const TE_VALUES = [
  'chunked',
  ' chunked',
  'chunked ',
  '\tchunked',
  'Chunked',
  'CHUNKED',
  'chunked, gzip',
  'gzip, chunked',
  'gzip,chunked',
  'xchunked',
  'chunkedx',
  'chunked\x00',
  '"chunked"',
  'identity',
  'chunked, chunked',
  ',chunked',
  'chunked,',
  'chunked;q=1',
  'chunk',
  'deflate',
  '',
  'chunked\x0b',
  'chunked , identity',
];

const CL_VALUES = (n: number): string[] => [
  String(n),
  `0${n}`,
  `00${n}`,
  `+${n}`,
  `-${n}`,
  `0x${n.toString(16)}`,
  `${n}, ${n}`,
  `${n},${n}`,
  `${n}, ${n + 1}`,
  `${n} ${n}`,
  `${n}.0`,
  `${n}\x0b`,
  ` ${n} `,
  '',
  '1'.repeat(16),
  '99999999999999999999',
  '9007199254740993',
  `${n}_`,
  String(n + 1),
  String(Math.max(0, n - 1)),
  '0',
];

const CHUNK_SIZE_FORMS = (n: number): string[] => {
  const h = n.toString(16);
  return [
    h,
    h.toUpperCase(),
    `0${h}`,
    `000000000000${h}`.slice(-13),
    `0000000000000${h}`.slice(-14),
    ` ${h}`,
    `${h} `,
    `${h}\t`,
    `0x${h}`,
    `+${h}`,
    `-${h}`,
    `${h}_`,
    '',
    'fffffffffffffffff',
    'ffffffffffffff',
    `${h}g`,
    (n + 1).toString(16),
    n > 0 ? (n - 1).toString(16) : '1',
  ];
};

const CHUNK_EXTS = [';a=b', ';a', ';a="q"', ';a="q\\"x"', ';a="unterminated', ';', ';=b', ' ;a=b', ';a =b', ';a= b', ';a=b;c=d', ';a=b c', ';a=\x01', ';\x7f', ';a="\r"', ';' + 'e'.repeat(5000)];

const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'TRACE', 'CONNECT', 'get', 'Get', 'FOO', 'M-SEARCH', 'PROPFIND', 'PURGE', 'PRI', 'G@T', 'GE T', '', 'G\x00T', 'POST\t', 'LINK', 'SOURCE', 'QUERY'];
const TARGETS = ['/', '/a?b=c', '*', 'http://app.localhost/x', 'http://other.example/x', 'https://app.localhost', 'HTTP://APP.LOCALHOST/y', '//x', 'a', '/%00', '/\x7f', '/a\x00b', '/a b', '/a#frag', '/\xc3\xa9', '/"{|}', '/\\', '/a\tb', 'app.localhost:80', '/' + 'a'.repeat(9000), '/?\x01'];
const VERSIONS = ['HTTP/1.1', 'HTTP/1.0', 'HTTP/1.2', 'HTTP/2.0', 'HTTP/0.9', 'http/1.1', 'HTTP/1.1 ', 'HTTP/01.1', 'HTTP/1', 'HTTP/1.10', 'HTTP/1.1\x00', 'HTTP /1.1', 'HTTP/9.9', ''];
const HOSTS = ['app.localhost', 'App.LocalHost', 'app.localhost:80', 'app.localhost:', 'app.localhost:99999', 'app.localhost:8a', 'user@app.localhost', 'app.localhost/x', '[::1]', '[::1]:8080', '[::1', 'a b', 'a,b', 'a_b', '%41pp', '', '127.0.0.1', 'app.localhost.', '\xe9.example', 'a;b'];
const LINE_ENDS = ['\n', '\r', '\r\r\n', '\n\r', ' \r\n', '\r\n\r\n'];

export const MUTATIONS: readonly Mutation[] = [
  {
    name: 'name-byte',
    apply: (q, r) => {
      const f = anyField(q, r);
      if (!f) return null;
      const b = r.pick(NAME_BYTES);
      const i = r.int(f.name.length + 1);
      f.name = r.chance(0.5) ? insertAt(f.name, i, b) : f.name.slice(0, i) + b + f.name.slice(i + 1);
      return `${JSON.stringify(b)} in name of ${f.name}`;
    },
  },
  {
    name: 'value-byte',
    apply: (q, r) => {
      const f = anyField(q, r);
      if (!f) return null;
      const b = r.pick(VALUE_BYTES);
      const i = r.int(f.value.length + 1);
      f.value = insertAt(f.value, i, b);
      return `${JSON.stringify(b)} in value of ${f.name}`;
    },
  },
  {
    name: 'space-before-colon',
    apply: (q, r) => {
      const f = anyField(q, r);
      if (!f) return null;
      f.colon = r.pick([' :', '\t:', '  :']);
      return `space before colon in ${f.name}`;
    },
  },
  {
    name: 'ows',
    apply: (q, r) => {
      const f = anyField(q, r);
      if (!f) return null;
      f.ows = r.pick(['', '\t', '  ', ' \t ', '\x0b', '\x0c', '\x00']);
      if (r.chance(0.5)) f.value += r.pick([' ', '\t', ' \t', '\x0b']);
      return `OWS around value of ${f.name}`;
    },
  },
  {
    name: 'obs-fold',
    apply: (q, r) => {
      const f = anyField(q, r);
      if (!f) return null;
      const i = r.int(f.value.length + 1);
      f.value = insertAt(f.value, i, r.pick(['\r\n ', '\r\n\t', '\n ', '\r\n  ']));
      return `obs-fold in ${f.name}`;
    },
  },
  {
    name: 'leading-ws-line',
    apply: (q, r) => {
      const f = anyField(q, r);
      if (!f) return null;
      f.name = r.pick([' ', '\t']) + f.name;
      return `leading whitespace before ${f.name.trim()}`;
    },
  },
  {
    name: 'field-line-end',
    apply: (q, r) => {
      const f = anyField(q, r);
      if (!f) return null;
      f.end = r.pick(LINE_ENDS);
      return `line end ${JSON.stringify(f.end)} after ${f.name}`;
    },
  },
  {
    name: 'head-end',
    apply: (q, r) => {
      q.headEnd = r.pick(['\n', '\r', '\r\r\n', '\r\n\r\n']);
      return `head ends ${JSON.stringify(q.headEnd)}`;
    },
  },
  {
    name: 'no-colon',
    apply: (q, r) => {
      q.fields.splice(r.int(q.fields.length + 1), 0, { name: r.pick(['Junk', 'X-Foo bar', '', ':', ':empty-name']), colon: r.pick(['', ':']), ows: '', value: r.pick(['', 'x']), end: CRLF });
      return 'odd field line';
    },
  },
  {
    name: 'content-length',
    apply: (q, r) => {
      const n = bodyLength(q);
      const v = r.pick(CL_VALUES(n));
      setCl(q, v);
      return `Content-Length: ${JSON.stringify(v)}`;
    },
  },
  {
    name: 'duplicate-cl',
    apply: (q, r) => {
      const n = bodyLength(q);
      setCl(q, String(n));
      const second = r.pick([String(n), String(n + 1), '0', '', `0${n}`]);
      q.fields.splice(r.int(q.fields.length + 1), 0, field(r.pick(['Content-Length', 'content-length', 'CONTENT-LENGTH']), second));
      return `second Content-Length: ${JSON.stringify(second)}`;
    },
  },
  {
    name: 'te',
    apply: (q, r) => {
      ensureChunked(q, r);
      let f = findField(q, 'transfer-encoding');
      if (!f) {
        f = field('Transfer-Encoding', 'chunked');
        q.fields.push(f);
      }
      f.value = r.pick(TE_VALUES);
      if (r.chance(0.2)) f.name = r.pick(['transfer-encoding', 'TRANSFER-ENCODING', 'Transfer_Encoding', 'Transfer-Encodin', 'Transfer-Encoding ', 'XTransfer-Encoding']);
      return `Transfer-Encoding ${JSON.stringify(f.name)}: ${JSON.stringify(f.value)}`;
    },
  },
  {
    name: 'te-twice',
    apply: (q, r) => {
      ensureChunked(q, r);
      const v = r.pick(['chunked', 'identity', 'gzip', '']);
      q.fields.splice(r.int(q.fields.length + 1), 0, field('Transfer-Encoding', v));
      return `second Transfer-Encoding: ${v}`;
    },
  },
  {
    name: 'te-plus-cl',
    apply: (q, r) => {
      ensureChunked(q, r);
      const v = r.pick(['0', '5', String(bodyLength(q)), '100']);
      q.fields.splice(r.int(q.fields.length + 1), 0, field('Content-Length', v));
      return `Content-Length: ${v} next to Transfer-Encoding`;
    },
  },
  {
    name: 'te-http10',
    apply: (q, r) => {
      ensureChunked(q, r);
      q.version = 'HTTP/1.0';
      return 'Transfer-Encoding in HTTP/1.0';
    },
  },
  {
    name: 'chunk-size',
    apply: (q, r) => {
      const c = ensureChunked(q, r);
      if (c.chunks.length === 0 || r.chance(0.2)) {
        c.last.size = r.pick(['00', '000000000000000', ' 0', '0 ', '-0', '+0', '0x0', '']);
        return `last-chunk size ${JSON.stringify(c.last.size)}`;
      }
      const ch = r.pick(c.chunks);
      ch.size = r.pick(CHUNK_SIZE_FORMS(ch.data.length));
      return `chunk size ${JSON.stringify(ch.size)} for ${ch.data.length} bytes`;
    },
  },
  {
    name: 'chunk-ext',
    apply: (q, r) => {
      const c = ensureChunked(q, r);
      const ext = r.pick(CHUNK_EXTS);
      if (c.chunks.length === 0 || r.chance(0.3)) c.last.ext = ext;
      else r.pick(c.chunks).ext = ext;
      return `chunk extension ${JSON.stringify(ext.length > 40 ? `${ext.slice(0, 20)}…(${ext.length})` : ext)}`;
    },
  },
  {
    name: 'chunk-crlf',
    apply: (q, r) => {
      const c = ensureChunked(q, r);
      const end = r.pick(['\n', '\r', '', 'X\r\n', '\r\r\n', '\r\n\r\n']);
      const which = r.int(4);
      if (c.chunks.length > 0 && which === 0) r.pick(c.chunks).sizeEnd = end;
      else if (c.chunks.length > 0 && which === 1) r.pick(c.chunks).dataEnd = end;
      else if (which === 2) c.last.end = end;
      else c.finalEnd = end;
      return `chunk line end ${JSON.stringify(end)} at ${['size', 'data', 'last', 'final'][which]}`;
    },
  },
  {
    name: 'chunk-missing-last',
    apply: (q, r) => {
      const c = ensureChunked(q, r);
      c.last = { size: '', ext: '', end: '' };
      c.finalEnd = '';
      return 'no last-chunk';
    },
  },
  {
    name: 'trailer',
    apply: (q, r) => {
      const c = ensureChunked(q, r);
      const t = r.pick(['X-T: v', 'Content-Length: 5', 'Transfer-Encoding: chunked', 'Host: evil', 'X T: v', 'X-T : v', ' X-T: v', 'X-T: a\x00b', 'X-T:', 'NoColon', 'Set-Cookie: a=b', 'Trailer: x']);
      c.trailers.push(t);
      if (r.chance(0.2)) c.trailerEnd = r.pick(['\n', '\r']);
      return `trailer ${JSON.stringify(t)}`;
    },
  },
  {
    name: 'method',
    apply: (q, r) => {
      q.method = r.pick(METHODS);
      return `method ${JSON.stringify(q.method)}`;
    },
  },
  {
    name: 'target',
    apply: (q, r) => {
      q.target = r.pick(TARGETS);
      return `target ${JSON.stringify(q.target.length > 40 ? `${q.target.slice(0, 10)}…(${q.target.length})` : q.target)}`;
    },
  },
  {
    name: 'version',
    apply: (q, r) => {
      q.version = r.pick(VERSIONS);
      return `version ${JSON.stringify(q.version)}`;
    },
  },
  {
    name: 'request-line-seps',
    apply: (q, r) => {
      const s = r.pick(['  ', '\t', '\x0b', '', ' \t']);
      if (r.chance(0.5)) q.sp1 = s;
      else q.sp2 = s;
      return `request-line separator ${JSON.stringify(s)}`;
    },
  },
  {
    name: 'request-line-end',
    apply: (q, r) => {
      q.lineEnd = r.pick(LINE_ENDS);
      return `request-line end ${JSON.stringify(q.lineEnd)}`;
    },
  },
  {
    name: 'http09',
    apply: (q) => {
      q.sp2 = '';
      q.version = '';
      return 'no version (HTTP/0.9 form)';
    },
  },
  {
    name: 'leading-empty-lines',
    apply: (q, r) => {
      q.leading = r.pick(['\r\n', '\r\n\r\n', '\n', '\r\n'.repeat(8), ' \r\n']);
      return `leading ${JSON.stringify(q.leading)}`;
    },
  },
  {
    name: 'host',
    apply: (q, r) => {
      const v = r.pick(HOSTS);
      const f = findField(q, 'host');
      if (f) f.value = v;
      else q.fields.unshift(field('Host', v));
      return `Host: ${JSON.stringify(v)}`;
    },
  },
  {
    name: 'host-missing',
    apply: (q) => {
      q.fields = q.fields.filter((f) => f.name.toLowerCase() !== 'host');
      return 'no Host';
    },
  },
  {
    name: 'host-duplicate',
    apply: (q, r) => {
      const v = r.pick(['app.localhost', 'other.example', '']);
      q.fields.push(field(r.pick(['Host', 'host']), v));
      return `second Host: ${v}`;
    },
  },
  {
    name: 'connection',
    apply: (q, r) => {
      const v = r.pick(['close', 'keep-alive', 'Keep-Alive, X-Foo', 'close,', ', close', 'clo se', 'upgrade', '', 'close, close']);
      const f = findField(q, 'connection');
      if (f) f.value = v;
      else q.fields.push(field('Connection', v));
      return `Connection: ${JSON.stringify(v)}`;
    },
  },
  {
    name: 'expect',
    apply: (q, r) => {
      const v = r.pick(['100-continue', '100-Continue', 'whatever', '', '100-continue, foo']);
      q.fields.push(field('Expect', v));
      return `Expect: ${JSON.stringify(v)}`;
    },
  },
  {
    name: 'byte-flip',
    apply: (q, r) => {
      // one random byte of one random field line replaced by a random byte
      const f = anyField(q, r);
      if (!f) return null;
      const b = String.fromCharCode(r.int(256));
      if (r.chance(0.5) && f.value.length > 0) {
        const i = r.int(f.value.length);
        f.value = f.value.slice(0, i) + b + f.value.slice(i + 1);
      } else {
        const i = r.int(f.name.length);
        f.name = f.name.slice(0, i) + b + f.name.slice(i + 1);
      }
      return `byte 0x${b.charCodeAt(0).toString(16).padStart(2, '0')} in ${f.name}`;
    },
  },
];

export function serializeBody(q: Req): string {
  const c = q.chunked;
  if (!c) return q.body;
  let s = '';
  for (const ch of c.chunks) s += ch.size + ch.ext + ch.sizeEnd + ch.data + ch.dataEnd;
  s += c.last.size + c.last.ext + c.last.end;
  for (const t of c.trailers) s += t + c.trailerEnd;
  s += c.finalEnd;
  return s;
}

export function serialize(q: Req): Buffer {
  let s = q.leading + q.method + q.sp1 + q.target + q.sp2 + q.version + q.lineEnd;
  for (const f of q.fields) s += f.name + f.colon + f.ows + f.value + f.end;
  s += q.headEnd;
  s += serializeBody(q);
  return Buffer.from(s, 'latin1');
}

/** Case `index` of the run seeded with `seed`: the same (seed, index) always gives the same bytes. */
export function makeCase(seed: number, index: number): Case {
  const r = new Prng((seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
  const t = r.pick(TEMPLATES);
  const q = t.make(r);
  const mutations: string[] = [];
  // ~8 % plain templates, otherwise 1–3 mutations
  const n = r.chance(0.08) ? 0 : 1 + r.int(3);
  for (let i = 0; i < n; i++) {
    const m = r.pick(MUTATIONS);
    const d = m.apply(q, r);
    if (d !== null) mutations.push(`${m.name}: ${d}`);
  }
  return { id: index, template: t.name, mutations, bytes: serialize(q) };
}
