/**
 * 256-entry byte-class tables for the HTTP/1.1 grammar (RFC 9110 §5.6.2, RFC 9112).
 * Lookups in a Uint8Array are cheaper than regexes and keep the parser branch-light.
 */

function table(pred: (b: number) => boolean): Uint8Array {
  const t = new Uint8Array(256);
  for (let b = 0; b < 256; b++) t[b] = pred(b) ? 1 : 0;
  return t;
}

const isAlpha = (b: number): boolean => (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a);
const isDigit = (b: number): boolean => b >= 0x30 && b <= 0x39;

/** tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA */
export const TCHAR = table((b) => isAlpha(b) || isDigit(b) || "!#$%&'*+-.^_`|~".includes(String.fromCharCode(b)));

/** field-vchar plus SP/HTAB inside a value: VCHAR / obs-text / SP / HTAB. CR, LF, NUL and other CTLs are excluded. */
export const FIELD_VALUE = table((b) => b === 0x09 || b === 0x20 || (b >= 0x21 && b <= 0x7e) || b >= 0x80);

/**
 * Bytes accepted in a request-target. Printable ASCII only: no SP, no CTL, no obs-text (a deliberate
 * strictness: percent-encoding exists for everything else).
 */
export const TARGET = table((b) => b >= 0x21 && b <= 0x7e);

/** reason-phrase = *( HTAB / SP / VCHAR / obs-text ) */
export const REASON = FIELD_VALUE;

/** Value of a hex digit, or -1. */
export const HEX_VALUE = (() => {
  const t = new Int8Array(256).fill(-1);
  for (let i = 0; i < 10; i++) t[0x30 + i] = i;
  for (let i = 0; i < 6; i++) {
    t[0x41 + i] = 10 + i;
    t[0x61 + i] = 10 + i;
  }
  return t;
})();

/** Characters allowed in an X-Request-Id that the router keeps: [A-Za-z0-9+/=-]. */
export const REQUEST_ID = table((b) => isAlpha(b) || isDigit(b) || b === 0x2b || b === 0x2f || b === 0x3d || b === 0x2d);

export const CR = 0x0d;
export const LF = 0x0a;
export const SP = 0x20;
export const HTAB = 0x09;
export const COLON = 0x3a;
