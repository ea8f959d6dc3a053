/**
 * Who may talk to the gateway.
 *
 * - With a token (required on any bind but loopback): every request but `GET /healthz` carries it, as
 *   `Authorization: Bearer <token>`, or — for browsers, which cannot set that header on EventSource
 *   and WebSocket — the `raptor_token` cookie the dashboard's sign-in sets, or `?access_token=`.
 *   Tokens are compared in constant time.
 * - Without a token (loopback only): the Host header must name the loopback, so that a web page that
 *   rebinds its DNS name to 127.0.0.1 cannot reach the gateway from a browser.
 * - Always: a request that changes something (not GET/HEAD/OPTIONS), and a WebSocket handshake, from
 *   a browser page of another origin is refused unless CORS allows that origin.
 */
import {createHash, timingSafeEqual} from 'node:crypto'

import type {FastifyReply, FastifyRequest} from 'fastify'

import {HttpError} from './errors.js'

export const TOKEN_COOKIE = 'raptor_token'
/** Shortest token accepted: a guessable token on a network bind is no protection. */
export const MIN_TOKEN_LENGTH = 16

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]'])
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

export interface AuthOptions {
  /** The bearer token; undefined only on a loopback bind. */
  token?: string
  /** Origins allowed by CORS (also allowed to POST). */
  corsOrigins: readonly string[]
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest()
}

/** Compares a presented token with the expected one in constant time (digests have equal length). */
export function tokenMatches(presented: string, expected: Buffer): boolean {
  return timingSafeEqual(digest(presented), expected)
}

function cookie(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim())
      } catch {
        return undefined
      }
    }
  }
  return undefined
}

/** The token a request presents, and how. */
function presented(request: FastifyRequest): {token?: string; via?: 'header' | 'cookie' | 'query'} {
  const header = request.headers.authorization
  if (header !== undefined) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header)
    return match ? {token: match[1], via: 'header'} : {}
  }
  const fromCookie = cookie(request.headers.cookie, TOKEN_COOKIE)
  if (fromCookie !== undefined) return {token: fromCookie, via: 'cookie'}
  const query = (request.query as Record<string, unknown> | undefined)?.access_token
  if (typeof query === 'string') return {token: query, via: 'query'}
  return {}
}

function hostName(host: string | undefined): string {
  if (!host) return ''
  return host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.split(':', 1)[0]
}

/** The checks of every request, as a Fastify onRequest hook. */
export function authHook(options: AuthOptions) {
  const expected = options.token === undefined ? undefined : digest(options.token)
  const allowed = new Set(options.corsOrigins)
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const path = request.url.split('?', 1)[0]
    if (path === '/healthz') return
    if (expected) {
      if (path === '/login' && request.method === 'POST') return // checks the token itself
      const {token, via} = presented(request)
      if (token === undefined || !tokenMatches(token, expected)) {
        if (request.method === 'GET' && path === '/' && (request.headers.accept ?? '').includes('text/html'))
          return reply
            .code(401)
            .type('text/html; charset=utf-8')
            .send(loginPage(token !== undefined))
        throw new HttpError(
          401,
          'UNAUTHORIZED',
          token === undefined
            ? 'a bearer token is required: send Authorization: Bearer <token>'
            : 'the token is not valid',
        )
      }
      // A cookie rides along on any request the browser makes: state changes need same-origin proof.
      if (via === 'cookie' && !SAFE_METHODS.has(request.method) && request.headers['x-raptor-csrf'] !== '1')
        throw new HttpError(
          403,
          'FORBIDDEN',
          'a cookie-authenticated change needs the X-Raptor-Csrf: 1 header',
        )
    } else if (!LOOPBACK_HOSTS.has(hostName(request.headers.host))) {
      throw new HttpError(
        403,
        'FORBIDDEN',
        `Host ${JSON.stringify(request.headers.host ?? '')} is not the loopback: without a token the gateway ` +
          'answers only http://127.0.0.1 or http://localhost (protection against DNS rebinding)',
      )
    }
    // A WebSocket has no CORS: a page of any origin could open one and read the bus, so the
    // handshake is held to the same rule as a change.
    const origin = request.headers.origin
    const guarded =
      !SAFE_METHODS.has(request.method) || request.headers.upgrade?.toLowerCase() === 'websocket'
    if (origin !== undefined && guarded && !allowed.has(origin)) {
      let sameOrigin = false
      try {
        sameOrigin = new URL(origin).host === request.headers.host
      } catch {
        // An unparsable Origin is not ours.
      }
      if (!sameOrigin)
        throw new HttpError(
          403,
          'FORBIDDEN',
          `requests from origin ${origin} are not allowed: see --cors-origin`,
        )
    }
  }
}

/** `POST /login` (the dashboard's sign-in form): sets the cookie when the token is right. */
export function loginHandler(token: string) {
  const expected = digest(token)
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const body = request.body as Record<string, unknown> | undefined
    const given = typeof body?.token === 'string' ? body.token : ''
    if (!tokenMatches(given, expected))
      return reply.code(401).type('text/html; charset=utf-8').send(loginPage(true))
    return reply
      .header('set-cookie', `${TOKEN_COOKIE}=${encodeURIComponent(given)}; HttpOnly; SameSite=Strict; Path=/`)
      .redirect('/', 303)
  }
}

/** The sign-in page a browser gets instead of the dashboard when it has no valid token. */
export function loginPage(failed: boolean): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>raptor — sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font:15px system-ui,sans-serif;background:#0f1419;color:#e6e6e6;display:grid;place-items:center;height:100vh;margin:0}
form{background:#1a2027;padding:24px 28px;border-radius:8px;min-width:320px}input{width:100%;box-sizing:border-box;padding:8px;margin:8px 0 12px;background:#0f1419;color:inherit;border:1px solid #39424d;border-radius:4px}
button{padding:8px 16px;background:#3b82f6;color:#fff;border:0;border-radius:4px}p.err{color:#f87171}</style></head>
<body><form method="post" action="/login"><h1>raptor</h1>
<label for="token">Bearer token (<code>--token-file</code> / <code>RAPTOR_TOKEN</code>)</label>
<input id="token" name="token" type="password" autocomplete="current-password" autofocus>
${failed ? '<p class="err">That token is not valid.</p>' : ''}<button type="submit">Sign in</button></form></body></html>`
}
