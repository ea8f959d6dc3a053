import {InvalidInputError} from './errors.js'

/**
 * Redis URLs: parsed, checked and redacted in one place, so that every door (flag, environment,
 * config file, library option) accepts the same URLs and no error, log or debug line prints a
 * password.
 *
 * Grammar (standalone): `redis[s]://[[user]:password@]host[:port][/db][?param=value&…]`; a Redis
 * Cluster takes the same URL of any node, or several seeds: `redis://host1:7000,host2:7001`.
 * - The user information runs to the **last** `@`, so a password may hold `/`, `?` or `#` unencoded
 *   (common in base64 secrets); percent-encoding (`%2F`) works too.
 * - Query parameters: `password`, `username`, `db` (when the path has none), `family` (4 or 6).
 * Anything else is refused with a message saying what is wrong. The sentinel form
 * (`redis-sentinel://…`) is an addition to {@link SCHEMES} and to the endpoint list, not a new parser.
 */

/** A URL scheme raptor understands, and whether it means TLS. */
interface SchemeInfo {
  tls: boolean
}

/** The schemes accepted, by name (without `://`). */
export const SCHEMES: Readonly<Record<string, SchemeInfo>> = {
  redis: {tls: false},
  rediss: {tls: true},
}

/** One host and port to connect to. */
export interface RedisEndpoint {
  host: string
  port: number
}

/** A parsed, checked Redis URL. */
export interface RedisUrl {
  /** The scheme, e.g. `redis` or `rediss`. */
  scheme: string
  /** True for `rediss://`. */
  tls: boolean
  /** Where to connect: one endpoint for a standalone server; one or more seeds of a cluster. */
  endpoints: RedisEndpoint[]
  /** ACL user name, when given. */
  username?: string
  /** Password, when given (decoded). */
  password?: string
  /** Database index. @defaultValue 0 */
  db: number
  /** IP family to resolve the host to (4 or 6), when given. */
  family?: 4 | 6
  /** The URL with any password replaced by `***`: safe to print. */
  redacted: string
}

/** What a Redis URL looks like, for error messages. */
const SHAPE = 'redis://host[:port][/db], rediss:// for TLS, with user:password@ before the host when needed'

const DEFAULT_PORT = 6379

/** Query parameters that carry a secret. */
const SECRET_PARAMS = /([?&](?:password|pass|pwd|auth|token)=)([^&#\s'"]*)/gi

function fail(url: string, what: string, why: string): never {
  throw new InvalidInputError(`invalid ${what} '${redactUrl(url)}': ${why}`, {url: redactUrl(url)})
}

function decode(text: string, url: string, what: string, part: string): string {
  try {
    return decodeURIComponent(text)
  } catch {
    return fail(url, what, `the ${part} has a malformed %-escape: write % as %25`)
  }
}

/** Splits `scheme://rest` (or returns no scheme). */
function splitScheme(url: string): {scheme?: string; rest: string} {
  const match = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(url)
  return match ? {scheme: match[1].toLowerCase(), rest: url.slice(match[0].length)} : {rest: url}
}

/** Splits the user information (up to the last `@`) from the rest. */
function splitUserinfo(rest: string): {userinfo?: string; hostPart: string} {
  const at = rest.lastIndexOf('@')
  return at < 0 ? {hostPart: rest} : {userinfo: rest.slice(0, at), hostPart: rest.slice(at + 1)}
}

function parseEndpoint(text: string, url: string, what: string): RedisEndpoint {
  let host: string
  let portText: string | undefined
  if (text.startsWith('[')) {
    const close = text.indexOf(']')
    if (close < 0) fail(url, what, 'an IPv6 host must be closed with ]')
    host = text.slice(1, close)
    const after = text.slice(close + 1)
    if (after !== '' && !after.startsWith(':')) fail(url, what, `unexpected '${after}' after the host`)
    portText = after === '' ? undefined : after.slice(1)
  } else {
    const colon = text.lastIndexOf(':')
    host = colon < 0 ? text : text.slice(0, colon)
    portText = colon < 0 ? undefined : text.slice(colon + 1)
  }
  if (host === '') fail(url, what, `no host: use ${SHAPE}`)
  if (!/^[A-Za-z0-9._~%-]+$/.test(host) && !/^[0-9A-Fa-f:.]+$/.test(host))
    fail(url, what, `'${host}' is not a host name: use ${SHAPE}`)
  let port = DEFAULT_PORT
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535)
      fail(url, what, `port '${portText}' is not a number from 1 to 65535`)
    port = Number(portText)
  }
  return {host, port}
}

function parseDb(text: string, url: string, what: string): number {
  if (!/^\d{1,9}$/.test(text)) fail(url, what, `database '${text}' is not a number: use /0, /1, …`)
  return Number(text)
}

/**
 * Parses and checks a Redis URL.
 * @param what how to name the URL in errors (`--redis-url`, `redisUrl in raptor.config.json`)
 * @throws InvalidInputError naming what is wrong (never with the password in it)
 */
export function parseRedisUrl(url: string, what = 'Redis URL'): RedisUrl {
  if (typeof url !== 'string' || url.trim() === '') fail(String(url), what, `it is empty: use ${SHAPE}`)
  const trimmed = url.trim()
  const {scheme, rest} = splitScheme(trimmed)
  if (scheme === undefined) {
    fail(url, what, `it has no scheme: write it as ${SHAPE}`)
  }
  const info = SCHEMES[scheme]
  if (!info)
    fail(url, what, `unsupported scheme '${scheme}://': use redis:// (or rediss:// for TLS), as in ${SHAPE}`)
  const {userinfo, hostPart} = splitUserinfo(rest)
  // Host part: host[:port][/db][?query][#…]; a fragment has no meaning for Redis and is refused.
  const hash = hostPart.indexOf('#')
  if (hash >= 0) fail(url, what, "'#' after the host has no meaning: percent-encode it (%23) in a password")
  const q = hostPart.indexOf('?')
  const beforeQuery = q < 0 ? hostPart : hostPart.slice(0, q)
  const query = q < 0 ? '' : hostPart.slice(q + 1)
  const slash = beforeQuery.indexOf('/')
  const authority = slash < 0 ? beforeQuery : beforeQuery.slice(0, slash)
  const path = slash < 0 ? '' : beforeQuery.slice(slash + 1)
  // Several hosts, comma-separated, are seeds of a Redis Cluster (any one of them is enough).
  const endpoints = authority.split(',').map((host) => parseEndpoint(host, url, what))
  let db: number | undefined
  if (path !== '') {
    if (path.includes('/'))
      fail(url, what, `unexpected path '/${path}': only a database number may follow the host`)
    db = parseDb(path, url, what)
  }
  let username: string | undefined
  let password: string | undefined
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(':')
    if (colon < 0)
      fail(url, what, 'a user name without a password: write redis://:password@host, or user:password@host')
    username = decode(userinfo.slice(0, colon), url, what, 'user name') || undefined
    password = decode(userinfo.slice(colon + 1), url, what, 'password')
  }
  let family: 4 | 6 | undefined
  for (const pair of query === '' ? [] : query.split('&')) {
    if (pair === '') continue
    const eq = pair.indexOf('=')
    const key = decode(eq < 0 ? pair : pair.slice(0, eq), url, what, 'query')
    const value = decode(eq < 0 ? '' : pair.slice(eq + 1).replace(/\+/g, ' '), url, what, 'query')
    if (key === 'password') password = value
    else if (key === 'username') username = value || undefined
    else if (key === 'db') {
      if (db !== undefined && path !== '') fail(url, what, 'the database is given twice (/db and ?db=)')
      db = parseDb(value, url, what)
    } else if (key === 'family') {
      if (value !== '4' && value !== '6') fail(url, what, `family must be 4 or 6, not '${value}'`)
      family = Number(value) as 4 | 6
    } else fail(url, what, `unknown parameter '${key}': supported are password, username, db and family`)
  }
  if (username !== undefined && (password === undefined || password === ''))
    fail(url, what, `user '${username}' has no password: write user:password@host`)
  return {
    scheme,
    tls: info.tls,
    endpoints,
    username,
    password: password === '' ? undefined : password,
    db: db ?? 0,
    family,
    redacted: redactUrl(url),
  }
}

/**
 * The URL with its password replaced by `***`, safe to print. Works on any text, including URLs
 * that do not parse: the user information runs to the last `@` (a password may hold `/`), a
 * scheme-less `user:password@host` is redacted too, and so are `?password=` parameters.
 */
export function redactUrl(url: string): string {
  const {scheme, rest} = splitScheme(url)
  const {userinfo, hostPart} = splitUserinfo(rest)
  let safeRest = rest
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(':')
    const user = colon < 0 ? '' : userinfo.slice(0, colon)
    safeRest = `${colon < 0 ? '***' : `${user}:***`}@${hostPart}`
  }
  const safe = (scheme === undefined ? '' : url.slice(0, url.indexOf('://') + 3)) + safeRest
  return safe.replace(SECRET_PARAMS, '$1***')
}

/** True when the text holds a password (in the user information or a `password=` parameter). */
export function hasPassword(url: string | undefined): boolean {
  if (!url) return false
  const {userinfo} = splitUserinfo(splitScheme(url).rest)
  if (userinfo !== undefined && userinfo.indexOf(':') < userinfo.length - 1) return true
  return [...url.matchAll(SECRET_PARAMS)].some((m) => m[2] !== '')
}

/** The secrets a URL carries (its password, raw, decoded and encoded), to scrub from any text. */
export function secretsOf(url: string | undefined): string[] {
  if (!url) return []
  const found = new Set<string>()
  const {rest} = splitScheme(url)
  const {userinfo} = splitUserinfo(rest)
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(':')
    found.add(colon < 0 ? userinfo : userinfo.slice(colon + 1))
  }
  for (const match of url.matchAll(SECRET_PARAMS)) found.add(match[2])
  for (const s of [...found]) {
    try {
      found.add(decodeURIComponent(s))
    } catch {
      // not %-encoded
    }
    found.add(encodeURIComponent(s))
  }
  // Very short strings would blank out ordinary text; the URL-shaped patterns below still catch them.
  return [...found].filter((s) => s.length >= 3)
}

/** `scheme://user:password@` anywhere in a text. */
const URL_USERINFO = /([A-Za-z][A-Za-z0-9+.-]*:\/\/)([^\s:@'"]*):([^\s'"]*)@(?=[^\s@'"]*)/g

/**
 * Removes passwords from any text (an error message, a stack, a debug line): every known secret,
 * the user information of any URL in it, and `password=` parameters.
 */
export function redactText(text: string, secrets: Iterable<string> = []): string {
  let out = text
  for (const secret of secrets) if (secret.length >= 3) out = out.split(secret).join('***')
  return out.replace(URL_USERINFO, '$1$2:***@').replace(SECRET_PARAMS, '$1***')
}
