/**
 * Routes validation, pure: a RoutesFile / AppInput from untrusted JSON (a routes file, or what the
 * daemon and the cluster feed hand the table), or a RoutesError naming the JSON path of the first
 * problem in one line (`routes file: apps.hello.maintenance: expected a boolean, got "yes"`).
 *
 * The rules are a table per object kind (app, backend): one line per field says whether it is
 * required and how its value is checked, so the shape lives in one place. Unknown fields are
 * tolerated: the supervisor's backends carry `gen` and `release`, which the router ignores.
 */
import { RouterError } from '../errors';
import type { AppInput, BackendState, RoutesFile } from './route-table';

export type RoutesProblem = 'type' | 'missing' | 'value' | 'duplicate-host';

/** EROUTES with the JSON path of the problem (`apps.a.backends[0].address`; '' for the whole document). */
export class RoutesError extends RouterError {
  constructor(
    readonly path: string,
    readonly problem: RoutesProblem,
    readonly detail: string,
    readonly label: string,
  ) {
    // name stays 'RouterError': callers and tests match routes errors as RouterError EROUTES
    super('EROUTES', `${label}: ${path === '' ? '' : `${path}: `}${detail}`);
  }
}

/** What a value is, for messages: strings quoted (cut at 40 chars), objects by kind. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
    case 'object':
      return 'an object';
    case 'undefined':
      return 'nothing';
    default:
      return String(v);
  }
}

/** `apps.hello`, or `apps["my.app"]` when the key would not read as one path segment. */
export function pathKey(base: string, key: string): string {
  return /^[A-Za-z0-9_-]+$/.test(key) ? `${base}.${key}` : `${base}[${JSON.stringify(key)}]`;
}

/** A failed check: the problem and its text; the caller adds the path. */
type Fail = { problem: RoutesProblem; detail: string };
/** A value check: undefined when the value is fine. */
type Check = (v: unknown) => Fail | undefined;

const typeFail = (expected: string, v: unknown): Fail => ({ problem: 'type', detail: `expected ${expected}, got ${describe(v)}` });

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const boolean: Check = (v) => (typeof v === 'boolean' ? undefined : typeFail('a boolean', v));

const nonEmptyString: Check = (v) => {
  if (typeof v !== 'string') return typeFail('a string', v);
  return v.length === 0 ? { problem: 'value', detail: 'must not be empty' } : undefined;
};

const STATES: readonly BackendState[] = ['starting', 'up', 'crashed', 'draining'];
const state: Check = (v) => {
  if (typeof v !== 'string') return typeFail('a string', v);
  return (STATES as readonly string[]).includes(v) ? undefined : { problem: 'value', detail: `expected one of ${STATES.join(', ')}, got ${describe(v)}` };
};

/** `host:port` or `[v6]:port`; the host part has no '/', ':' or blank (a URL is not an address). */
const ADDRESS = /^(?:\[[0-9A-Fa-f:.]+\]|[^:/\s[\]]+):(\d{1,5})$/;

export function addressParts(address: string): { host: string; port: number } | undefined {
  const m = ADDRESS.exec(address);
  if (m === null) return undefined;
  const port = Number(m[1]);
  if (port < 1 || port > 65535) return undefined;
  const host = address.slice(0, address.length - m[1]!.length - 1);
  return { host: host.startsWith('[') ? host.slice(1, -1) : host, port };
}

const address: Check = (v) => {
  if (typeof v !== 'string') return typeFail('a string "host:port"', v);
  return addressParts(v) === undefined ? { problem: 'value', detail: `bad address ${describe(v)} (expected host:port, port 1-65535)` } : undefined;
};

/** Host as the router compares it with a request's Host: lower case, no port, no trailing dot. */
export function normalizeHost(host: string): string {
  return host.trim().toLowerCase().replace(/:\d+$/, '').replace(/\.$/, '');
}

/** DNS-ish labels (underscores tolerated, as Host headers carry them) or a bracketed IPv6 literal. */
const HOSTNAME = /^(?:\[[0-9a-f:.]+\]|[a-z0-9_-]+(?:\.[a-z0-9_-]+)*)$/;

const hostname: Check = (v) => {
  if (typeof v !== 'string') return typeFail('a hostname string', v);
  const h = normalizeHost(v);
  // Checked after normalizing: what was accepted before (" A.test:80 ") stays accepted.
  if (h.length === 0 || h.length > 253 || !HOSTNAME.test(h)) return { problem: 'value', detail: `bad hostname ${describe(v)} (a bare hostname: no scheme, path or blank)` };
  return undefined;
};

const crashed: Check = (v) => {
  if (typeof v === 'boolean') return undefined;
  if (!isObject(v)) return typeFail('a boolean or {"message": "..."}', v);
  if (v.message !== undefined && typeof v.message !== 'string') return typeFail('a string', v.message);
  return undefined;
};

interface FieldRule {
  required: boolean;
  /** A check of the value, or `each` for an array whose elements are checked one by one. */
  check?: Check;
  each?: (v: unknown, path: string, label: string) => void;
}

const BACKEND_FIELDS: Readonly<Record<string, FieldRule>> = {
  dyno: { required: true, check: nonEmptyString },
  address: { required: true, check: address },
  state: { required: false, check: state },
};

const APP_FIELDS: Readonly<Record<string, FieldRule>> = {
  hosts: { required: true, each: (v, path, label) => checkValue(hostname, v, path, label) },
  backends: { required: false, each: (v, path, label) => checkFields(BACKEND_FIELDS, v, path, label, 'a backend {"dyno", "address", "state"?}') },
  maintenance: { required: false, check: boolean },
  crashed: { required: false, check: crashed },
};

function checkValue(check: Check, v: unknown, path: string, label: string): void {
  const fail = check(v);
  if (fail !== undefined) throw new RoutesError(path, fail.problem, fail.detail, label);
}

/**
 * Checks an object against a field table; an optional field may be absent (undefined), not null.
 * Paths are built only on failure: a 10 000-app file is checked on every reload.
 */
function checkFields(fields: Readonly<Record<string, FieldRule>>, v: unknown, path: string, label: string, what: string): void {
  if (!isObject(v)) throw new RoutesError(path, 'type', typeFail(what, v).detail, label);
  for (const key in fields) {
    const rule = fields[key]!;
    const value = v[key];
    if (value === undefined) {
      if (rule.required) throw new RoutesError(pathKey(path, key), 'missing', 'missing', label);
      continue;
    }
    if (rule.check !== undefined) {
      const fail = rule.check(value);
      if (fail !== undefined) throw new RoutesError(pathKey(path, key), fail.problem, fail.detail, label);
    }
    if (rule.each !== undefined) {
      const at = pathKey(path, key);
      if (!Array.isArray(value)) throw new RoutesError(at, 'type', typeFail('an array', value).detail, label);
      for (let i = 0; i < value.length; i++) rule.each(value[i], `${at}[${i}]`, label);
    }
  }
}

/** One app's input, checked (throws RoutesError). `label` starts the message: 'routes file', 'routes'. */
export function validateApp(name: string, input: unknown, label = 'routes'): AppInput {
  const path = pathKey('apps', name);
  if (name.length === 0) throw new RoutesError(path, 'value', 'app name must not be empty', label);
  checkFields(APP_FIELDS, input, path, label, 'an app {"hosts": [...], "backends": [...]}');
  return input as AppInput;
}

/** The first host claimed by two apps, as a RoutesError, or undefined. */
export function duplicateHost(apps: Iterable<readonly [string, AppInput]>, label = 'routes'): RoutesError | undefined {
  const owner = new Map<string, string>();
  for (const [name, app] of apps) {
    for (let i = 0; i < app.hosts.length; i++) {
      const h = normalizeHost(app.hosts[i]!);
      const other = owner.get(h);
      if (other !== undefined && other !== name) {
        return new RoutesError(`${pathKey('apps', name)}.hosts[${i}]`, 'duplicate-host', `host ${h} is claimed by both ${other} and ${name}`, label);
      }
      owner.set(h, name);
    }
  }
  return undefined;
}

/** The document's outer shape: an object with an `apps` object (throws RoutesError); apps not checked. */
export function validateRoot(doc: unknown, label = 'routes'): { apps: Record<string, unknown> } {
  if (!isObject(doc)) throw new RoutesError('', 'type', `expected an object {"apps": {"NAME": {...}}}, got ${describe(doc)}`, label);
  if (doc.apps === undefined) throw new RoutesError('apps', 'missing', 'missing (expected {"apps": {"NAME": {"hosts": [...], "backends": [...]}}})', label);
  // An array here used to pass as an empty table: every route gone on a typo.
  if (!isObject(doc.apps)) throw new RoutesError('apps', 'type', typeFail('an object of app name → route', doc.apps).detail, label);
  return { apps: doc.apps };
}

/** A whole routes document, checked, hosts unique across apps (throws RoutesError). */
export function validateRoutes(doc: unknown, label = 'routes'): RoutesFile {
  const { apps } = validateRoot(doc, label);
  for (const name of Object.keys(apps)) validateApp(name, apps[name], label);
  const dup = duplicateHost(Object.entries(apps as Record<string, AppInput>), label);
  if (dup !== undefined) throw dup;
  return doc as RoutesFile;
}
