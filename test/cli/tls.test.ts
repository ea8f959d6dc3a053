import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {RaptorBus} from '../../src/bus/index.js'
import {childProcesses} from '../helpers/child.js'
import {BIN, cliProcesses, isolatedEnv, randomPrefix, runCli, tempDir, waitFor} from '../helpers/index.js'
import type {RedisServer} from '../helpers/redis-server.js'
import {makeTestCerts, startTlsServer, type TestCerts} from '../helpers/tls.js'

// A real TLS redis-server (TLS only, `--port 0`) with certificates made by openssl here: a CA, a
// server certificate for 127.0.0.1/localhost, a client certificate for mutual TLS, a stranger CA.
let certs: TestCerts
let server: RedisServer
let mutual: RedisServer

beforeAll(async () => {
  certs = makeTestCerts()
  server = await startTlsServer(certs, false)
  mutual = await startTlsServer(certs, true)
})

afterAll(async () => {
  await server?.stop()
  await mutual?.stop()
  certs?.remove()
})

const url = (s: RedisServer) => `rediss://127.0.0.1:${s.port}/0`
const startCli = cliProcesses()
const spawnChild = childProcesses()

function publish(args: string[], env: Record<string, string> = {}) {
  return runCli(
    ['publish', '--channel', 'sys.state.update', '--type', 'job', '--payload', '{"n":1}', '--json', ...args],
    {env},
  )
}

const ca = () => ['--tls-ca', certs.ca]
const clientCert = () => ['--tls-cert', certs.clientCert, '--tls-key', certs.clientKey]

describe('TLS: --tls-ca, --tls-cert, --tls-key, --tls-servername', () => {
  it('publish and get over TLS with the CA given by flag, environment, context or config file', async () => {
    const prefix = randomPrefix()
    const byFlag = await publish(['--redis-url', url(server), '--prefix', prefix, ...ca()])
    expect(byFlag.code, byFlag.stderr).toBe(0)
    const id = (JSON.parse(byFlag.stdout) as {ids: string[]}).ids[0]
    const got = await runCli(['get', id, '--json', '--redis-url', url(server), '--prefix', prefix], {
      env: {RAPTOR_TLS_CA: certs.ca},
    })
    expect(got.code, got.stderr).toBe(0)
    expect(JSON.parse(got.stdout)).toMatchObject({id, data: {n: 1}})

    const home = tempDir()
    const add = await runCli(
      ['context', 'add', 'secure', '--redis-url', url(mutual), '--prefix', prefix, ...ca(), ...clientCert()],
      {env: {XDG_CONFIG_HOME: home}},
    )
    expect(add.code, add.stderr).toBe(0)
    const byContext = await publish(['--context', 'secure'], {XDG_CONFIG_HOME: home})
    expect(byContext.code, byContext.stderr).toBe(0)

    const dir = tempDir({'raptor.config.json': {redisUrl: url(server), prefix, tls: {ca: 'certs/ca.pem'}}})
    const {mkdirSync} = await import('node:fs')
    mkdirSync(join(dir, 'certs'))
    writeFileSync(join(dir, 'certs', 'ca.pem'), readFileSync(certs.ca))
    const byConfig = await runCli(['get', id, '--json'], {cwd: dir})
    expect(byConfig.code, byConfig.stderr).toBe(0)
  })

  it('precedence per setting: flag > env > context > config file', async () => {
    const prefix = randomPrefix()
    const target = ['--redis-url', url(server), '--prefix', prefix]
    // The flag wins over a stranger CA in the environment.
    const flagOverEnv = await publish([...target, ...ca()], {RAPTOR_TLS_CA: certs.otherCa})
    expect(flagOverEnv.code, flagOverEnv.stderr).toBe(0)
    // The environment wins over the context's stranger CA.
    const home = tempDir()
    expect(
      (
        await runCli(['context', 'add', 'c', '--redis-url', url(server), '--tls-ca', certs.otherCa], {
          env: {XDG_CONFIG_HOME: home},
        })
      ).code,
    ).toBe(0)
    const envOverContext = await publish(['--prefix', prefix], {
      XDG_CONFIG_HOME: home,
      RAPTOR_TLS_CA: certs.ca,
    })
    expect(envOverContext.code, envOverContext.stderr).toBe(0)
    const contextAlone = await publish(['--prefix', prefix], {XDG_CONFIG_HOME: home})
    expect(contextAlone.code).toBe(69)
    // The context wins over the config file.
    const dir = tempDir({'raptor.config.json': {tls: {ca: certs.ca}}})
    const contextOverConfig = await runCli(['channels', '--json', '--prefix', prefix], {
      cwd: dir,
      env: {XDG_CONFIG_HOME: home},
    })
    expect(contextOverConfig.code).toBe(69)
    expect(contextOverConfig.stderr).toMatch(/not trusted/)
  })

  it('tail and the agent over mutual TLS; the library with its tls option', async () => {
    const prefix = randomPrefix()
    const target = ['--redis-url', url(mutual), '--prefix', prefix, ...ca(), ...clientCert()]
    const tail = startCli(['tail', 'sys.alert.*', '--count', '3', '--json', ...target])
    await waitFor(() => tail.stderr.includes('listening'), 15_000, 'tail listening')
    const agent = spawnChild(
      [
        BIN,
        'agent',
        '--json',
        '--plugin',
        fileURLToPath(new URL('../fixtures/plugins/worker.mjs', import.meta.url)),
      ].concat(['--heartbeat-interval', '1s', ...target]),
      isolatedEnv(),
    )
    await waitFor(() => agent.lines.some((l) => String(l.msg).includes('started')), 15_000, 'agent start')
    const bus = await RaptorBus.connect({
      redisUrl: url(mutual),
      prefix,
      tls: {
        ca: readFileSync(certs.ca),
        cert: readFileSync(certs.clientCert),
        key: readFileSync(certs.clientKey),
      },
    })
    try {
      const ids = await bus.publishMany(
        [1, 2, 3].map((n) => ({channel: 'sys.state.update', type: 'job', payload: {n}})),
      )
      const result = await tail.exited
      expect(result.code, result.stderr).toBe(0)
      const done = result.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as {type: string; data: {id: string}})
      expect(done.map((e) => e.type)).toEqual(['done', 'done', 'done'])
      expect(done.map((e) => e.data.id).sort()).toEqual([...ids].sort())
    } finally {
      await bus.close()
      agent.child.kill('SIGTERM')
    }
    expect(await agent.exit).toBe(0)
  })

  it('a server that requires a client certificate, given none: named, with the flags to pass', async () => {
    const result = await publish(['--redis-url', url(mutual), '--prefix', randomPrefix(), ...ca()])
    expect(result.code, result.stderr).toBe(69)
    expect(result.stderr).toMatch(
      new RegExp(
        `TLS handshake with 127\\.0\\.0\\.1:${mutual.port} failed: the server requires a client certificate .*pass --tls-cert FILE and --tls-key FILE`,
      ),
    )
  })

  it('a client certificate signed by a CA the server does not trust: named as refused', async () => {
    const result = await publish(
      ['--redis-url', url(mutual), '--prefix', randomPrefix(), ...ca()].concat([
        '--tls-cert',
        certs.strangerCert,
        '--tls-key',
        certs.strangerKey,
      ]),
    )
    expect(result.code, result.stderr).toBe(69)
    expect(result.stderr).toMatch(
      /failed: the server refused the client certificate .*pass a --tls-cert FILE signed by a CA the server trusts/,
    )
  })

  it('the wrong CA, or none: named, with --tls-ca', async () => {
    for (const extra of [['--tls-ca', certs.otherCa], []]) {
      const result = await publish(['--redis-url', url(server), '--prefix', randomPrefix(), ...extra])
      expect(result.code, result.stderr).toBe(69)
      expect(result.stderr).toMatch(
        new RegExp(
          `TLS handshake with 127\\.0\\.0\\.1:${server.port} failed: the server's certificate is not trusted \\(self-signed certificate in certificate chain\\): pass --tls-ca FILE`,
        ),
      )
    }
  })

  it('a server name the certificate does not hold: named, with --tls-servername; one it holds works', async () => {
    const target = ['--redis-url', url(server), '--prefix', randomPrefix(), ...ca()]
    const wrong = await publish([...target, '--tls-servername', 'redis.example.com'])
    expect(wrong.code, wrong.stderr).toBe(69)
    expect(wrong.stderr).toMatch(
      /the server's certificate is not for redis\.example\.com \(it holds IP Address:127\.0\.0\.1, DNS:localhost\): pass --tls-servername NAME/,
    )
    const right = await publish([...target, '--tls-servername', 'localhost'])
    expect(right.code, right.stderr).toBe(0)
    const viaEnv = await publish(target, {RAPTOR_TLS_SERVERNAME: 'localhost'})
    expect(viaEnv.code, viaEnv.stderr).toBe(0)
  })

  it('files that cannot be read or used are exit 2 naming the file, before connecting', async () => {
    const target = ['--redis-url', url(server), '--prefix', randomPrefix()]
    const missing = await publish([...target, '--tls-ca', '/nonexistent/ca.pem'])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toMatch(/--tls-ca: cannot read \/nonexistent\/ca\.pem \(ENOENT\)/)
    const fromEnv = await publish(target, {RAPTOR_TLS_CA: '/nonexistent/ca.pem'})
    expect(fromEnv.code).toBe(2)
    expect(fromEnv.stderr).toMatch(/RAPTOR_TLS_CA: cannot read \/nonexistent\/ca\.pem/)
    const notPem = await publish([...target, '--tls-ca', fileURLToPath(import.meta.url)])
    expect(notPem.code).toBe(2)
    expect(notPem.stderr).toMatch(/--tls-ca .*tls\.test\.ts is not a PEM certificate/)
    const wrongKey = await publish([
      ...target,
      ...ca(),
      '--tls-cert',
      certs.clientCert,
      '--tls-key',
      certs.serverKey,
    ])
    expect(wrongKey.code).toBe(2)
    expect(wrongKey.stderr).toMatch(/--tls-key .*server\.key is not the key of --tls-cert .*client\.pem/)
    const half = await publish([...target, ...ca(), '--tls-cert', certs.clientCert])
    expect(half.code).toBe(2)
    expect(half.stderr).toMatch(/--tls-cert needs --tls-key/)
    const config = await runCli(['channels'], {
      cwd: tempDir({'raptor.config.json': {redisUrl: url(server), tls: {ca: 'nope.pem'}}}),
    })
    expect(config.code).toBe(2)
    expect(config.stderr).toMatch(/tls\.ca of the config file: cannot read \S*nope\.pem \(ENOENT\)/)
  })

  it('TLS options for a plain redis:// URL are refused (never a silent plain connection)', async () => {
    const result = await publish(['--redis-url', `redis://127.0.0.1:${server.port}/0`, ...ca()])
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(
      /TLS ca given \(--tls-ca \/ tls\.ca\) for redis:\/\/127\.0\.0\.1:\d+\/0, which is not TLS: use rediss:\/\//,
    )
  })
})
