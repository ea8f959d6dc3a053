import {execFileSync} from 'node:child_process'
import {join} from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {keysUnder, randomPrefix, redisUrl, runCli, tempDir} from '../helpers/index.js'
import {RedisServer, freePort} from '../helpers/redis-server.js'

// Lying URLs and leaked secrets, through the built binary as a user runs it.

const publish = (url: string, prefix = randomPrefix(), env: Record<string, string> = {}) =>
  runCli(['publish', '-c', 'sys.alert.warning', '-t', 'x', '--redis-url', url, '--prefix', prefix], {env})

/** The test Redis's host:port. */
const hostPort = () => new URL(redisUrl()).host

describe('a URL that cannot be right is exit 2 saying what is wrong, with nothing written', () => {
  it('an unsupported scheme', async () => {
    const result = await publish(`http://${hostPort()}/0`)
    expect(result.code, result.stderr).toBe(2)
    expect(result.stderr).toMatch(/unsupported scheme 'http:\/\/': use redis:\/\/ \(or rediss:\/\/ for TLS\)/)
  })

  it('not a URL at all', async () => {
    const result = await publish('notaurl')
    expect(result.code, result.stderr).toBe(2)
    expect(result.stderr).toMatch(/invalid Redis URL 'notaurl': it has no scheme/)
  })

  it('a database that is not a number', async () => {
    const prefix = randomPrefix()
    const result = await publish(`redis://${hostPort()}/abc`, prefix)
    expect(result.code, result.stderr).toBe(2)
    expect(result.stderr).toMatch(/database 'abc' is not a number/)
    expect(result.stderr).not.toMatch(/\bat \S+:\d+:\d+/) // no stack trace
    expect(await keysUnder(prefix)).toEqual([])
  })

  it('a database the server lacks (checked with SELECT before anything is written)', async () => {
    const prefix = randomPrefix()
    const result = await publish(`redis://${hostPort()}/99`, prefix)
    expect(result.code, result.stderr).toBe(2)
    expect(result.stderr).toMatch(/database 99 does not exist on the Redis at 127\.0\.0\.1:\d+/)
    expect(result.stdout).toBe('')
    expect(await keysUnder(prefix)).toEqual([]) // db 0 untouched
  })
})

describe('TLS mismatches are named as TLS problems', () => {
  let tlsServer: RedisServer
  let tlsPort: number

  beforeAll(async () => {
    const dir = tempDir()
    const [key, cert] = [join(dir, 'key.pem'), join(dir, 'cert.pem')]
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
      ],
      {stdio: 'ignore'},
    )
    tlsPort = await freePort()
    tlsServer = await RedisServer.start(
      tlsPort,
      [
        '--port',
        '0',
        '--tls-port',
        String(tlsPort),
        '--tls-cert-file',
        cert,
        '--tls-key-file',
        key,
        '--tls-ca-cert-file',
        cert,
        '--tls-auth-clients',
        'no',
      ],
      ['--tls', '--insecure'],
    )
  })

  afterAll(async () => {
    await tlsServer?.stop()
  })

  it('rediss:// to a plain port', async () => {
    const result = await publish(`rediss://${hostPort()}/0`)
    expect(result.code, result.stderr).toBe(69)
    expect(result.stderr).toMatch(
      /TLS handshake with 127\.0\.0\.1:\d+ failed: the server there speaks plain Redis, not TLS; use redis:\/\//,
    )
  })

  it('redis:// to a TLS port', async () => {
    const result = await publish(`redis://127.0.0.1:${tlsPort}/0`)
    expect(result.code, result.stderr).toBe(69)
    expect(result.stderr).toMatch(
      new RegExp(`the server at 127\\.0\\.0\\.1:${tlsPort} expects TLS: use rediss://`),
    )
  })

  it('rediss:// to a server whose certificate is not trusted', async () => {
    const result = await publish(`rediss://127.0.0.1:${tlsPort}/0`)
    expect(result.code, result.stderr).toBe(69)
    expect(result.stderr).toMatch(
      /TLS handshake with 127\.0\.0\.1:\d+ failed: the server's certificate is not trusted/,
    )
  })
})

describe('passwords are never printed', () => {
  const SECRET = 'c2VjcmV0/K3y+s4Lt=='

  it('a password holding "/" in a connection error', async () => {
    const result = await publish(`redis://:${SECRET}@127.0.0.1:1/0`)
    expect(result.code).toBe(69)
    expect(result.stderr).toMatch(/cannot reach Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:1\/0/)
    for (const part of SECRET.split('/')) expect(result.stderr).not.toContain(part)
  })

  it('a ?password= parameter and a scheme-less URL', async () => {
    const query = await publish(`redis://127.0.0.1:1/0?password=${encodeURIComponent(SECRET)}`)
    expect(query.code).toBe(69)
    expect(query.stderr).toContain('?password=***')
    const bare = await publish(`:${SECRET}@127.0.0.1:1`)
    expect(bare.code).toBe(2)
    expect(bare.stderr).toContain(":***@127.0.0.1:1': it has no scheme")
    for (const r of [query, bare]) for (const part of SECRET.split('/')) expect(r.stderr).not.toContain(part)
  })

  it('DEBUG=ioredis:* and DEBUG=oclif:* show *** where the password was', async () => {
    const server = await RedisServer.start(
      undefined,
      ['--requirepass', SECRET],
      ['-a', SECRET, '--no-auth-warning'],
    )
    try {
      const url = `redis://:${encodeURIComponent(SECRET)}@127.0.0.1:${server.port}/0`
      const ioredis = await publish(url, randomPrefix(), {DEBUG: 'ioredis:*'})
      expect(ioredis.code, ioredis.stderr.slice(-500)).toBe(0)
      expect(ioredis.stderr).toContain("auth([ '***' ])")
      const oclif = await publish(url, randomPrefix(), {DEBUG: 'oclif:*'})
      expect(oclif.code).toBe(0)
      expect(oclif.stderr).toMatch(/argv/)
      for (const r of [ioredis, oclif]) {
        expect(r.stderr).not.toContain(SECRET)
        expect(r.stderr).not.toContain(encodeURIComponent(SECRET))
      }
    } finally {
      await server.stop()
    }
  })

  it('a password on the command line gets a one-line warning naming the safe ways; REDIS_URL does not', async () => {
    const url = `redis://:${SECRET}@127.0.0.1:1/0`
    const flag = await publish(url)
    expect(flag.stderr.split('\n')[0]).toBe(
      'Warning: a password on the command line is visible to other users (ps); set REDIS_URL, or save it in a context: raptor context add NAME --redis-url …',
    )
    const env = await runCli(['publish', '-c', 'sys.alert.warning', '-t', 'x'], {env: {REDIS_URL: url}})
    expect(env.code).toBe(69)
    expect(env.stderr).not.toContain('Warning')
    expect(env.stderr).not.toContain(SECRET)
  })
})
