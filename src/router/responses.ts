/**
 * Router-generated responses: Heroku-style unstyled HTML error pages, or JSON when the client's
 * Accept prefers it. Encoded once per (status, page, format, connection) and reused.
 */
import type { ErrorPage } from './errors';

const REASONS: Readonly<Record<number, string>> = {
  100: 'Continue',
  400: 'Bad Request',
  404: 'Not Found',
  408: 'Request Timeout',
  414: 'URI Too Long',
  417: 'Expectation Failed',
  431: 'Request Header Fields Too Large',
  499: 'Client Closed Request',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  505: 'HTTP Version Not Supported',
};

export function reasonPhrase(status: number): string {
  return REASONS[status] ?? 'Error';
}

interface PageText {
  title: string;
  message: string;
}

const PAGES: Readonly<Record<ErrorPage, PageText>> = {
  'application-error': {
    title: 'Application Error',
    message:
      'An error occurred in the application and your page could not be served. If you are the application owner, check your logs for details.',
  },
  maintenance: { title: 'Offline for Maintenance', message: 'This app is undergoing maintenance right now. Please check back later.' },
  'no-such-app': { title: 'No such app', message: "There's nothing here, yet." },
  'bad-request': { title: 'Bad Request', message: 'The request could not be understood by the router.' },
};

function htmlPage(page: PageText): string {
  return (
    '<!DOCTYPE html>\n<html>\n  <head>\n    <meta name="viewport" content="width=device-width, initial-scale=1">\n' +
    `    <meta charset="utf-8">\n    <title>${page.title}</title>\n  </head>\n  <body>\n` +
    `    <h1>${page.title}</h1>\n    <p>${page.message}</p>\n  </body>\n</html>\n`
  );
}

/** q-value the Accept header gives to `type/subtype` (wildcards honoured), 0 if none. */
function acceptQuality(accept: string, type: string): number {
  const [major] = type.split('/');
  let best = -1;
  let bestSpecificity = -1;
  for (const part of accept.split(',')) {
    const [rangeRaw, ...params] = part.split(';');
    const range = rangeRaw!.trim().toLowerCase();
    let specificity: number;
    if (range === type) specificity = 2;
    else if (range === `${major}/*`) specificity = 1;
    else if (range === '*/*') specificity = 0;
    else continue;
    let q = 1;
    for (const p of params) {
      const m = /^\s*q\s*=\s*([0-9.]+)\s*$/i.exec(p);
      if (m) q = Number(m[1]);
    }
    if (specificity > bestSpecificity) {
      bestSpecificity = specificity;
      best = q;
    }
  }
  return best < 0 ? 0 : best;
}

/** True when the client prefers JSON over HTML (strictly higher q-value). */
export function prefersJson(accept: string | null): boolean {
  if (accept === null || accept.length === 0) return false;
  return acceptQuality(accept, 'application/json') > acceptQuality(accept, 'text/html');
}

const cache = new Map<string, Buffer>();

/**
 * A complete error response. `close` adds `Connection: close`; `code` names the H-code in the JSON
 * body and an `X-Router-Error` header-free page (Heroku sends none).
 */
export function errorResponse(status: number, page: ErrorPage, json: boolean, close: boolean, code: string | null): Buffer {
  const key = `${status}|${page}|${json ? 1 : 0}|${close ? 1 : 0}|${code ?? ''}`;
  let out = cache.get(key);
  if (out !== undefined) return out;
  const text = PAGES[page];
  const body = json
    ? `${JSON.stringify({ id: page, status, code, error: text.title, message: text.message })}\n`
    : htmlPage(text);
  const bodyBytes = Buffer.byteLength(body, 'utf8');
  const head =
    `HTTP/1.1 ${status} ${reasonPhrase(status)}\r\n` +
    `Content-Type: ${json ? 'application/json' : 'text/html; charset=utf-8'}\r\n` +
    `Content-Length: ${bodyBytes}\r\nCache-Control: no-cache, no-store\r\n` +
    (close ? 'Connection: close\r\n' : '') +
    '\r\n';
  out = Buffer.concat([Buffer.from(head, 'latin1'), Buffer.from(body, 'utf8')]);
  if (cache.size < 256) cache.set(key, out);
  return out;
}

export const CONTINUE_100 = Buffer.from('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
