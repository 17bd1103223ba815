/**
 * Parse outcomes as data. The pure parser never throws: it returns one of these codes and the
 * connection layer maps it to a response (request side) or an H-code (response side).
 */
export enum ParseError {
  None = 0,
  // request line
  EmptyLinesBeforeRequest,
  InvalidMethod,
  InvalidTarget,
  InvalidVersion,
  UnsupportedVersion,
  RequestLineTooLong,
  ConnectMethod,
  // field lines (both directions)
  BareCR,
  BareLF,
  LeadingWhitespace,
  ObsFold,
  MissingColon,
  InvalidHeaderName,
  SpaceBeforeColon,
  InvalidHeaderValue,
  HeaderNameTooLong,
  HeaderLineTooLong,
  TooManyHeaders,
  HeadTooLarge,
  // request semantics
  MissingHost,
  DuplicateHost,
  InvalidHost,
  InvalidContentLength,
  DuplicateContentLength,
  TransferEncodingWithContentLength,
  TransferEncodingInHttp10,
  InvalidTransferEncoding,
  UpgradeWithoutUpgradeHeader,
  UnsupportedExpectation,
  // bodies
  BadChunk,
  BadTrailer,
  // response side
  InvalidStatusLine,
  StatusLineTooLong,
  CookieTooLong,
  ResponseHeaderTooLong,
}

export interface ParseErrorInfo {
  /** Stable, greppable identifier. */
  readonly name: string;
  /** Status a client gets for this error in a request. */
  readonly status: number;
  /** `cause=` for an H26 log line (Heroku uses "bad header" / "bad chunk" / "unsupported expect header value"). */
  readonly cause: string;
}

const badHeader = (name: string, status = 400): ParseErrorInfo => ({ name, status, cause: 'bad header' });

/** Indexed by ParseError. */
export const PARSE_ERRORS: readonly ParseErrorInfo[] = [
  { name: 'none', status: 200, cause: '' },
  badHeader('empty_lines_before_request'),
  badHeader('invalid_method'),
  badHeader('invalid_target'),
  badHeader('invalid_version'),
  badHeader('unsupported_version', 505),
  badHeader('request_line_too_long', 414),
  badHeader('connect_method'),
  badHeader('bare_cr'),
  badHeader('bare_lf'),
  badHeader('leading_whitespace'),
  badHeader('obs_fold'),
  badHeader('missing_colon'),
  badHeader('invalid_header_name'),
  badHeader('space_before_colon'),
  badHeader('invalid_header_value'),
  // Over a size limit of the head: 431 Request Header Fields Too Large (RFC 6585 §5), not a
  // malformed request; the request line alone has 414.
  badHeader('header_name_too_long', 431),
  badHeader('header_line_too_long', 431),
  badHeader('too_many_headers', 431),
  badHeader('head_too_large', 431),
  badHeader('missing_host'),
  badHeader('duplicate_host'),
  badHeader('invalid_host'),
  badHeader('invalid_content_length'),
  badHeader('duplicate_content_length'),
  badHeader('transfer_encoding_with_content_length'),
  badHeader('transfer_encoding_in_http10'),
  badHeader('invalid_transfer_encoding'),
  badHeader('upgrade_without_upgrade_header'),
  { name: 'unsupported_expectation', status: 417, cause: 'unsupported expect header value' },
  { name: 'bad_chunk', status: 400, cause: 'bad chunk' },
  { name: 'bad_trailer', status: 400, cause: 'bad chunk' },
  { name: 'invalid_status_line', status: 502, cause: 'invalid status line' },
  { name: 'status_line_too_long', status: 502, cause: 'oversized status line' },
  { name: 'cookie_too_long', status: 502, cause: 'oversized cookie' },
  { name: 'response_header_too_long', status: 502, cause: 'oversized header' },
];

export function parseErrorInfo(code: ParseError): ParseErrorInfo {
  return PARSE_ERRORS[code] ?? badHeader('unknown');
}
