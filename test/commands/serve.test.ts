import {writeFileSync} from 'node:fs'
import {request as httpRequest} from 'node:http'
import {join} from 'node:path'

import {afterEach, describe, expect, it} from 'vitest'

import {randomPrefix, runCli, startCli, target, tempDir, waitFor, type RunningCli} from '../helpers/index.js'
import {freePort} from '../helpers/redis-server.js'

const TOKEN = 'a-test-token-of-32-characters-xx'
const running: RunningCli[] = []
afterEach(async () => {
  for (const r of running.splice(0)) {
    r.child.kill('SIGKILL')
    await r.exited
  }
})

/** Starts `raptor serve` and waits until it listens; returns its base URL (always reached via 127.0.0.1). */
async function serve(args: string[], env: Record<string, string> = {}) {
  const port = await freePort()
  const cli = startCli(['serve', '--port', String(port), ...target(randomPrefix()), ...args], {
    env,
    timeoutMs: 60_000,
  })
  running.push(cli)
  await waitFor(
    () => cli.stderr.includes('serve: listening on') || cli.child.exitCode !== null,
    15_000,
    'listening',
  )
  expect(cli.stderr).toContain('serve: listening on')
  return {cli, url: `http://127.0.0.1:${port}`}
}

describe('raptor serve', () => {
  it('refuses a non-loopback bind without a token: exit 2 before touching Redis', async () => {
    const result = await runCli(['serve', '--host', '0.0.0.0', '--redis-url', 'redis://127.0.0.1:1'])
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(
      /^Error: refusing to serve on 0\.0\.0\.0 without a token: pass --token-file FILE or set RAPTOR_TOKEN/m,
    )
    const short = await runCli(['serve', '--host', '0.0.0.0', '--redis-url', 'redis://127.0.0.1:1'], {
      env: {RAPTOR_TOKEN: 'short'},
    })
    expect(short.code).toBe(2)
    expect(short.stderr).toMatch(/the token is 5 characters long: use at least 16/)
    const missing = await runCli(['serve', '--token-file', '/nonexistent/token'])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toMatch(/cannot read --token-file \/nonexistent\/token: ENOENT/)
  })

  it('exits 69 when Redis is unreachable', async () => {
    const result = await runCli([
      'serve',
      '--port',
      String(await freePort()),
      '--redis-url',
      'redis://127.0.0.1:1',
    ])
    expect(result.code).toBe(69)
    expect(result.stderr).toMatch(/cannot reach Redis/)
  })

  it('bound to 0.0.0.0 with a token file: every request but /healthz needs the bearer token', async () => {
    const dir = tempDir()
    const file = join(dir, 'token')
    writeFileSync(file, TOKEN + '\n')
    const {cli, url} = await serve(['--host', '0.0.0.0', '--token-file', file])
    expect(cli.stderr).toMatch(/auth=bearer token/)
    expect((await fetch(`${url}/healthz`)).status).toBe(200)
    const none = await fetch(`${url}/v1/channels`)
    expect(none.status).toBe(401)
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="raptor"')
    expect(((await none.json()) as {error: {message: string}}).error.message).toMatch(
      /a bearer token is required/,
    )
    expect((await fetch(`${url}/v1/channels`, {headers: {authorization: `Bearer ${TOKEN}x`}})).status).toBe(
      401,
    )
    expect((await fetch(`${url}/metrics`, {headers: {authorization: 'Bearer wrong'}})).status).toBe(401)
    expect((await fetch(`${url}/v1/channels`, {headers: {authorization: `Bearer ${TOKEN}`}})).status).toBe(
      200,
    )
    expect((await fetch(`${url}/v1/stream?access_token=${TOKEN}`)).status).toBe(200)
    // A browser gets the sign-in page; the right token sets an HttpOnly cookie.
    const page = await fetch(`${url}/`, {headers: {accept: 'text/html'}})
    expect(page.status).toBe(401)
    expect(await page.text()).toContain('<form method="post" action="/login">')
    const login = await fetch(`${url}/login`, {
      method: 'POST',
      headers: {'content-type': 'application/x-www-form-urlencoded'},
      body: `token=${TOKEN}`,
      redirect: 'manual',
    })
    expect(login.status).toBe(303)
    const cookie = login.headers.get('set-cookie')!
    expect(cookie).toMatch(/^raptor_token=.*; HttpOnly; SameSite=Strict; Path=\//)
    const jar = cookie.split(';')[0]
    expect((await fetch(`${url}/`, {headers: {cookie: jar}})).status).toBe(200)
    // A change made with the cookie alone must prove it comes from the dashboard.
    const purge = {method: 'POST', body: '{"dryRun":true}'}
    expect(
      (
        await fetch(`${url}/v1/dlq/purge`, {
          ...purge,
          headers: {cookie: jar, 'content-type': 'application/json'},
        })
      ).status,
    ).toBe(403)
    expect(
      (
        await fetch(`${url}/v1/dlq/purge`, {
          ...purge,
          headers: {cookie: jar, 'content-type': 'application/json', 'x-raptor-csrf': '1'},
        })
      ).status,
    ).toBe(200)
    const bad = await fetch(`${url}/login`, {
      method: 'POST',
      headers: {'content-type': 'application/x-www-form-urlencoded'},
      body: 'token=nope',
      redirect: 'manual',
    })
    expect(bad.status).toBe(401)
  })

  it('on loopback without a token: only loopback Host names, no cross-origin changes, CORS off unless configured', async () => {
    const {url} = await serve([])
    expect((await fetch(`${url}/v1/channels`)).status).toBe(200)
    // fetch will not send another Host: a plain request can, as a browser after DNS rebinding does.
    const rebound = await new Promise<{status?: number; body: string}>((resolve, reject) => {
      const req = httpRequest(`${url}/v1/channels`, {headers: {host: 'evil.example:7700'}}, (res) => {
        let body = ''
        res.on('data', (d) => (body += d))
        res.on('end', () => resolve({status: res.statusCode, body}))
      })
      req.on('error', reject)
      req.end()
    })
    expect(rebound.status).toBe(403)
    expect(rebound.body).toMatch(/DNS rebinding/)
    const event = JSON.stringify({
      specversion: '1.0',
      type: 't',
      source: 's',
      channel: 'sys.state.update',
      data: {},
    })
    const ceHeaders = {'content-type': 'application/cloudevents+json'}
    const cross = await fetch(`${url}/v1/events`, {
      method: 'POST',
      headers: {...ceHeaders, origin: 'https://evil.example'},
      body: event,
    })
    expect(cross.status).toBe(403)
    const same = await fetch(`${url}/v1/events`, {
      method: 'POST',
      headers: {...ceHeaders, origin: url},
      body: event,
    })
    expect(same.status).toBe(201)
    // A page of another origin cannot open a WebSocket to read the bus (no CORS protects WebSockets).
    const {WebSocket} = await import('ws')
    const wsStatus = (origin?: string) =>
      new Promise<number>((resolve) => {
        const socket = new WebSocket(`${url.replace('http', 'ws')}/v1/ws`, origin ? {origin} : {})
        socket.on('open', () => (socket.close(), resolve(101)))
        socket.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))
      })
    expect(await wsStatus('https://evil.example')).toBe(403)
    expect(await wsStatus(url)).toBe(101)
    expect(await wsStatus()).toBe(101)
    const read = await fetch(`${url}/v1/channels`, {headers: {origin: 'https://app.example'}})
    expect(read.headers.get('access-control-allow-origin')).toBeNull()

    const withCors = await serve(['--cors-origin', 'https://app.example'])
    const allowed = await fetch(`${withCors.url}/v1/channels`, {headers: {origin: 'https://app.example'}})
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://app.example')
    const post = await fetch(`${withCors.url}/v1/events`, {
      method: 'POST',
      headers: {...ceHeaders, origin: 'https://app.example'},
      body: event,
    })
    expect(post.status).toBe(201)
  })

  it('SIGTERM ends the live streams and exits 0', async () => {
    const {cli, url} = await serve([])
    const stream = await fetch(`${url}/v1/stream`)
    const reader = stream.body!.getReader()
    cli.child.kill('SIGTERM')
    let text = ''
    for (;;) {
      const {done, value} = await reader.read()
      if (done) break
      text += Buffer.from(value).toString()
    }
    expect(text).toContain('event: shutdown')
    const result = await cli.exited
    expect(result.code).toBe(0)
    expect(result.stderr).toMatch(/SIGTERM: closing live streams and stopping/)
  })
})
