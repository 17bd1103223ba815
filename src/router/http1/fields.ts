/**
 * Header names the router interprets, matched on bytes (no string per header). Every other field
 * is carried as a byte range and copied verbatim.
 */
export enum FieldKind {
  Other = 0,
  Host,
  ContentLength,
  TransferEncoding,
  Connection,
  Upgrade,
  Expect,
  TE,
  KeepAlive,
  ProxyConnection,
  ProxyAuthorization,
  XForwardedFor,
  XForwardedProto,
  XForwardedPort,
  XRequestId,
  XRequestStart,
  Via,
  ConnectTime,
  TotalRouteTime,
  Accept,
  SetCookie,
}

const NAMES: ReadonlyArray<[string, FieldKind]> = [
  ['host', FieldKind.Host],
  ['content-length', FieldKind.ContentLength],
  ['transfer-encoding', FieldKind.TransferEncoding],
  ['connection', FieldKind.Connection],
  ['upgrade', FieldKind.Upgrade],
  ['expect', FieldKind.Expect],
  ['te', FieldKind.TE],
  ['keep-alive', FieldKind.KeepAlive],
  ['proxy-connection', FieldKind.ProxyConnection],
  ['proxy-authorization', FieldKind.ProxyAuthorization],
  ['x-forwarded-for', FieldKind.XForwardedFor],
  ['x-forwarded-proto', FieldKind.XForwardedProto],
  ['x-forwarded-port', FieldKind.XForwardedPort],
  ['x-request-id', FieldKind.XRequestId],
  ['x-request-start', FieldKind.XRequestStart],
  ['via', FieldKind.Via],
  ['connect-time', FieldKind.ConnectTime],
  ['total-route-time', FieldKind.TotalRouteTime],
  ['accept', FieldKind.Accept],
  ['set-cookie', FieldKind.SetCookie],
];

interface KnownName {
  readonly bytes: Uint8Array;
  readonly kind: FieldKind;
}

/** Candidates indexed by name length, so most unknown names are dismissed by one array read. */
const BY_LENGTH: KnownName[][] = [];
for (const [name, kind] of NAMES) {
  (BY_LENGTH[name.length] ??= []).push({ bytes: Buffer.from(name, 'latin1'), kind });
}

/**
 * Classifies a field name given as bytes. Case-insensitive: `b | 0x20` folds ASCII letters; for the
 * other bytes in these names ('-') no other tchar folds onto them.
 */
export function classifyFieldName(buf: Uint8Array, start: number, end: number): FieldKind {
  const candidates = BY_LENGTH[end - start];
  if (candidates === undefined) return FieldKind.Other;
  for (let c = 0; c < candidates.length; c++) {
    const known = candidates[c]!.bytes;
    let i = 0;
    while (i < known.length && (buf[start + i]! | 0x20) === known[i]) i++;
    if (i === known.length) return candidates[c]!.kind;
  }
  return FieldKind.Other;
}

/** Lower-cased name → kind, for names given as strings (e.g. tokens listed in `Connection`). */
export function classifyFieldNameString(lowerName: string): FieldKind {
  for (const [name, kind] of NAMES) if (name === lowerName) return kind;
  return FieldKind.Other;
}
